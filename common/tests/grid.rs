//! The grid layer against a real beanstalkd: a sealed put leaves the connection on its
//! tube, a failure record lands in the failures tube, "is job N still this video's job?"
//! is answered the same way for every process, and heartbeats are listed with their
//! signatures checked — a forged or unsigned one is never taken for the grid's.

use chrono::Utc;
use common::beanstalk::{Client, PutOptions};
use common::config::{GridConfig, DEFAULT_NAMESPACE};
use common::grid::{Grid, JobNow, Trust};
use common::sign::{Key, Keys, Kind};
use common::wire::{Failure, Heartbeat, Job, WIRE_VERSION};
use testkit::Beanstalkd;

fn grid(server: &Beanstalkd, keys: Keys) -> Grid {
    let config = GridConfig {
        server: server.addr().parse().unwrap(),
        namespace: DEFAULT_NAMESPACE.parse().unwrap(),
        tls: Default::default(),
    };
    Grid::new(config, keys, "test-host")
}

fn keys(secret: u8) -> Keys {
    Keys::new(DEFAULT_NAMESPACE, Key::new(vec![secret; 32]), vec![])
}

fn beat(host: &str) -> Heartbeat {
    Heartbeat {
        version: WIRE_VERSION,
        host: host.into(),
        pid: 7,
        slot: 0,
        job_id: None,
        video: None,
        frames_done: 0,
        frames_total: 0,
        every_seconds: Some(10),
        refusing: None,
        at: Utc::now(),
    }
}

#[tokio::test]
async fn a_sealed_put_lands_in_its_tube_and_the_connection_stays_on_its_own() {
    let server = Beanstalkd::start().unwrap();
    let grid = grid(&server, keys(1));
    let mut c = Client::connect(&server.addr()).await.unwrap();
    c.use_tube("camhd.results").await.unwrap();
    let failure = Failure::now(9, None, "broken", grid.host());
    let id = grid.record_failure(&mut c, &failure).await.unwrap();
    assert_eq!(c.used_tube(), "camhd.results");
    assert_eq!(c.list_tube_used().await.unwrap(), "camhd.results");
    let stats = c.stats_job(id).await.unwrap();
    assert_eq!(stats.tube, "camhd.failures");
    let body = c.peek(id).await.unwrap().body;
    assert_eq!(grid.trust(Kind::Failure, &body), Trust::Signed);
    assert_eq!(
        grid.trust(Kind::Job, &body),
        Trust::Forged,
        "a record is no job"
    );
}

#[tokio::test]
async fn the_same_job_question_has_one_answer_for_every_process() {
    let server = Beanstalkd::start().unwrap();
    let grid = grid(&server, keys(1));
    let mut c = Client::connect(&server.addr()).await.unwrap();
    let job = Job::new("/data/a.mov", "a_optical_flow.json");
    let sealed = grid.seal(Kind::Job, &job.encode());
    let ours = grid
        .put(&mut c, "camhd.jobs", &sealed, PutOptions::default())
        .await
        .unwrap();
    let now = grid.job(&mut c, ours).await.unwrap();
    assert!(matches!(&now, JobNow::Ours { job: j, .. } if j.video == "/data/a.mov"));
    assert!(now
        .for_output(ours, Some("/data/a.mov"), "a_optical_flow.json")
        .is_ok());
    assert!(now.for_output(ours, None, "a_optical_flow.json").is_ok());
    let other = now
        .for_output(ours, Some("/data/b.mov"), "a_optical_flow.json")
        .unwrap_err();
    assert!(other.contains("another video"), "{other}");
    assert!(grid
        .idle_job_for(&mut c, ours, "/data/a.mov", "a_optical_flow.json")
        .await
        .unwrap());

    // Reserved by someone: still ours, but not idle, so the sink leaves it alone.
    let mut filter = Client::connect(&server.addr()).await.unwrap();
    filter.watch("camhd.jobs").await.unwrap();
    filter.reserve_job(ours).await.unwrap();
    assert!(!grid
        .idle_job_for(&mut c, ours, "/data/a.mov", "a_optical_flow.json")
        .await
        .unwrap());

    // The same body in another tube, signed by another key, or gone.
    let elsewhere = grid
        .put(&mut c, "other.jobs", &sealed, PutOptions::default())
        .await
        .unwrap();
    assert!(
        matches!(grid.job(&mut c, elsewhere).await.unwrap(), JobNow::Elsewhere { tube } if tube == "other.jobs")
    );
    c.use_tube("camhd.jobs").await.unwrap();
    let forged = c
        .put(
            &keys(2).seal(Kind::Job, &job.encode()),
            PutOptions::default(),
        )
        .await
        .unwrap();
    assert!(matches!(
        grid.job(&mut c, forged).await.unwrap(),
        JobNow::Foreign { .. }
    ));
    c.delete(forged).await.unwrap();
    assert_eq!(grid.job(&mut c, forged).await.unwrap(), JobNow::Gone);
}

#[tokio::test]
async fn heartbeats_are_listed_with_their_signatures_checked() {
    let server = Beanstalkd::start().unwrap();
    let grid = grid(&server, keys(1));
    let mut c = Client::connect(&server.addr()).await.unwrap();
    c.use_tube("camhd.results").await.unwrap();
    for (host, body) in [
        (
            "real",
            grid.seal(Kind::Heartbeat, &beat("real").encode())
                .as_bytes()
                .to_vec(),
        ),
        (
            "forged",
            keys(2).seal(Kind::Heartbeat, &beat("forged").encode()),
        ),
        ("unsigned", beat("unsigned").encode()),
        (
            "a-job",
            grid.seal(Kind::Job, &beat("a-job").encode())
                .as_bytes()
                .to_vec(),
        ),
    ] {
        let mut other = Client::connect(&server.addr()).await.unwrap();
        other
            .use_tube(&grid.config().status_tube(host, 7, 0))
            .await
            .unwrap();
        other.put(&body, PutOptions::default()).await.unwrap();
    }
    let mut listed: Vec<(String, Trust)> = grid
        .heartbeats(&mut c)
        .await
        .unwrap()
        .into_iter()
        .map(|l| (l.beat.host, l.trust))
        .collect();
    listed.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        listed,
        [
            ("a-job".into(), Trust::Forged),
            ("forged".into(), Trust::OtherKey),
            ("real".into(), Trust::Signed),
            ("unsigned".into(), Trust::Unsigned),
        ]
    );
    assert_eq!(
        c.used_tube(),
        "camhd.results",
        "the connection is back on its tube"
    );
    // Without a key nothing can be checked, and nothing is called forged for it.
    let keyless = grid_without_keys(&server);
    let trusts: Vec<Trust> = keyless
        .heartbeats(&mut c)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.trust)
        .collect();
    assert!(
        trusts
            .iter()
            .all(|t| matches!(t, Trust::Unchecked | Trust::Unsigned)),
        "{trusts:?}"
    );
}

fn grid_without_keys(server: &Beanstalkd) -> Grid {
    grid(server, Keys::none())
}

#[tokio::test]
async fn the_archive_budget_is_kept_as_tokens_and_lowered_as_they_come_back() {
    use common::archive::{keep_tokens, tokens};
    let server = Beanstalkd::start().unwrap();
    let grid = grid(&server, Keys::none());
    let mut keeper = Client::connect(&server.addr()).await.unwrap();
    assert_eq!(
        tokens(&grid, &mut keeper).await.unwrap(),
        None,
        "no budget yet"
    );
    let kept = keep_tokens(&grid, &mut keeper, 5).await.unwrap();
    assert_eq!((kept.total, kept.free), (5, 5));
    assert_eq!(
        keeper.used_tube(),
        "default",
        "the connection is back on its tube"
    );
    // A filter holds two; the budget is lowered to one: the free ones go now, one held
    // token once it comes back.
    let mut filter = Client::connect(&server.addr()).await.unwrap();
    filter.watch("camhd.archive").await.unwrap();
    let held = [
        filter.reserve_with_timeout(1).await.unwrap(),
        filter.reserve_with_timeout(1).await.unwrap(),
    ];
    let kept = keep_tokens(&grid, &mut keeper, 1).await.unwrap();
    assert_eq!((kept.total, kept.in_use, kept.free), (2, 2, 0));
    for token in &held {
        filter.release(token.id, 0, 0).await.unwrap();
    }
    let kept = keep_tokens(&grid, &mut keeper, 1).await.unwrap();
    assert_eq!((kept.total, kept.free), (1, 1));
    // A filter that dies gives its tokens back with its connection.
    let _ = filter.reserve_with_timeout(1).await.unwrap();
    assert_eq!(tokens(&grid, &mut keeper).await.unwrap().unwrap().in_use, 1);
    drop(filter);
    let since = std::time::Instant::now();
    while tokens(&grid, &mut keeper).await.unwrap().unwrap().free != 1 {
        assert!(since.elapsed().as_secs() < 30, "the token never came back");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
