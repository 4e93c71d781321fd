//! The sink trusts nothing: each kind of bad result, put into a batch between good ones,
//! is buried with a record naming the problem, while every good result in the batch and
//! behind it is committed exactly once, nothing else in the checkout is ever committed,
//! and nothing outside the checkout changes. Real sink, real git, real beanstalkd.

use std::path::PathBuf;
use std::process::Output;

use common::beanstalk::{Client, PutOptions};
use testkit::git::{commit, git};
use testkit::Beanstalkd;

const GOOD: [&str; 3] = [
    "RS03ASHS/PN03B/06-CAMHDA301/2017/06/14/CAMHDA301-20170614T000000_optical_flow.json",
    "RS03ASHS/PN03B/06-CAMHDA301/2017/06/14/CAMHDA301-20170614T030000_optical_flow.json",
    "RS03ASHS/PN03B/06-CAMHDA301/2017/06/14/CAMHDA301-20170614T060000_optical_flow.json",
];

fn flow_document(marker: u64) -> serde_json::Value {
    testkit::flow_document(marker, "/data/x.mov")
}

/// A result body, built as raw JSON so that it can carry what our own types refuse.
fn body(output: &str, video: &str, force: bool, document: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "version": 1,
        "job": {"version": 1, "video": video, "output": output, "stride": 10, "start": 1, "stop": -1, "force": force},
        "document": document,
        "computed_by": {"host": "t", "software": "t", "started_at": "2026-11-24T00:00:00Z", "finished_at": "2026-11-24T00:00:00Z", "elapsed_seconds": 0.0}
    }))
    .unwrap()
}

fn good(i: usize) -> Vec<u8> {
    body(GOOD[i], "/data/x.mov", false, flow_document(i as u64))
}

/// A checkout seeded with an untracked file and a modified tracked file, which must stay
/// out of every commit, beside a sentinel folder outside it that must never change.
struct World {
    base: testkit::World,
    co: PathBuf,
}

impl std::ops::Deref for World {
    type Target = testkit::World;
    fn deref(&self) -> &testkit::World {
        &self.base
    }
}

impl World {
    fn new() -> World {
        World::with_server(Beanstalkd::start().unwrap())
    }

    fn with_server(server: Beanstalkd) -> World {
        let base = testkit::World::with_server(server, "h");
        let co = base.checkout();
        std::fs::write(co.join("untracked.txt"), "mine\n").unwrap();
        std::fs::write(co.join("README.md"), "# edited, not committed\n").unwrap();
        std::fs::create_dir_all(base.dir.path().join("outside")).unwrap();
        World { base, co }
    }

    async fn put(&self, bodies: &[Vec<u8>]) {
        let mut c = Client::connect(&self.server.addr()).await.unwrap();
        c.use_tube("h.results").await.unwrap();
        for b in bodies {
            c.put(b, PutOptions::default()).await.unwrap();
        }
    }

    fn sink(&self, extra: &[&str]) -> Output {
        let co = self.co.to_str().unwrap();
        let mut args = vec![
            "--checkout",
            co,
            "--commit-every",
            "1",
            "--exit-when-idle",
            "2",
        ];
        args.extend(extra);
        let out = self.run("sink", &args);
        assert!(
            out.status.success(),
            "the sink goes on: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// The spec every bad result is held to.
    fn assert_parked_and_the_rest_committed(&self, bad: usize, reason: &str) {
        self.assert_parked_beside(bad, reason, &[]);
    }

    /// The same, where the test itself left `also` untracked in the checkout.
    fn assert_parked_beside(&self, bad: usize, reason: &str, also: &[&str]) {
        let failed = self.failed();
        assert_eq!(failed.len(), bad, "{failed:#?}");
        for f in &failed {
            assert_eq!(f["kind"], "result");
            let error = f["last_error"].as_str().unwrap();
            assert!(error.contains(reason), "{error:?} does not say {reason:?}");
        }
        for g in GOOD {
            let commits = git(&self.co, &["log", "--oneline", "--", g]);
            assert_eq!(commits.lines().count(), 1, "{g} committed once");
        }
        let mut status: Vec<String> = git(&self.co, &["status", "--porcelain"])
            .lines()
            .map(str::to_owned)
            .collect();
        let mut expected: Vec<String> = [" M README.md", "?? untracked.txt"]
            .iter()
            .chain(also)
            .map(|s| s.to_string())
            .collect();
        status.sort();
        expected.sort();
        assert_eq!(status, expected, "nothing else");
        let committed = git(&self.co, &["log", "--name-only", "--format="]);
        assert!(!committed.contains("untracked.txt"));
        assert_eq!(
            std::fs::read_dir(self.dir.path().join("outside"))
                .unwrap()
                .count(),
            0,
            "nothing outside the checkout changed"
        );
    }
}

async fn batch_with(world: &World, bad: Vec<Vec<u8>>) {
    let mut bodies = vec![good(0)];
    bodies.extend(bad);
    bodies.push(good(1));
    world.put(&bodies).await;
    world.put(&[good(2)]).await; // and one behind the batch
}

#[tokio::test]
async fn a_path_through_an_existing_file_is_buried_not_fatal() {
    let world = World::new();
    let doc = flow_document(9);
    batch_with(
        &world,
        vec![body("README.md/x_optical_flow.json", "/v.mov", false, doc)],
    )
    .await;
    world.sink(&[]);
    world.assert_parked_and_the_rest_committed(1, "cannot write README.md/x_optical_flow.json");
}

#[tokio::test]
async fn a_forced_result_whose_path_is_a_folder_is_buried() {
    let world = World::new();
    let folder = "RS03ASHS/dir_optical_flow.json";
    std::fs::create_dir_all(world.co.join(folder).join("inside")).unwrap();
    std::fs::write(world.co.join(folder).join("inside/keep"), "x").unwrap();
    batch_with(&world, vec![body(folder, "/v.mov", true, flow_document(9))]).await;
    world.sink(&[]);
    world.assert_parked_beside(
        1,
        "cannot write RS03ASHS/dir_optical_flow.json",
        &["?? RS03ASHS/dir_optical_flow.json/"],
    );
    assert_eq!(
        std::fs::read_to_string(world.co.join(folder).join("inside/keep")).unwrap(),
        "x"
    );
}

#[tokio::test]
async fn paths_outside_the_policy_are_buried_before_anything_is_written() {
    let world = World::new();
    std::os::unix::fs::symlink(world.dir.path().join("outside"), world.co.join("link")).unwrap();
    let long = format!("{}_optical_flow.json", "n".repeat(250));
    let hostile = [
        ".GIT/x_optical_flow.json",
        "sub/.git/x_optical_flow.json",
        "sub/.Git/x_optical_flow.json",
        ":/x_optical_flow.json",
        ":(exclude)x_optical_flow.json",
        "link/x_optical_flow.json",
        &long,
    ];
    let bad = hostile
        .iter()
        .map(|p| body(p, "/v.mov", false, flow_document(9)))
        .collect();
    batch_with(&world, bad).await;
    world.sink(&[]);
    world.assert_parked_beside(hostile.len(), "output path", &["?? link"]);
    assert!(!world.co.join("sub").exists());
}

#[tokio::test]
async fn anything_but_an_optical_flow_document_is_buried() {
    let world = World::new();
    let bad = vec![
        body(
            "a/hello_optical_flow.json",
            "/v.mov",
            false,
            serde_json::json!({"hello": "world"}),
        ),
        body(
            "a/nan_optical_flow.json",
            "/v.mov",
            false,
            serde_json::json!({"contents": {"frameStats": {"opticalFlow": "1.1"}}, "movie": {}, "frameStats": [{"frameNumber": 1, "opticalFlow": {"similarity": [1, 0, 0], "valid": true}}]}),
        ),
    ];
    batch_with(&world, bad).await;
    world.sink(&[]);
    world.assert_parked_and_the_rest_committed(2, "not an optical-flow document");
    assert!(!world.co.join("a").exists());
}

#[tokio::test]
async fn numbers_no_camera_or_video_can_have_are_refused_with_their_reason() {
    // Each would hang a plot of it for ever (plotters' axis layout), or lie to every
    // reader of the record; each is buried with what is wrong in its failure record.
    let world = World::new();
    let with = |name: &str, change: &dyn Fn(&mut serde_json::Value)| {
        let mut doc = flow_document(9);
        change(&mut doc);
        body(&format!("a/{name}_optical_flow.json"), "/v.mov", false, doc)
    };
    let bad = vec![
        with("huge", &|d| {
            d["frameStats"][0]["opticalFlow"]["similarity"] = serde_json::json!([1.7e308, 0, 0, 0]);
        }),
        with("far", &|d| {
            d["frameStats"][0]["opticalFlow"]["similarity"] =
                serde_json::json!([1, 0, -1.7e308, 0]);
        }),
        with("rate", &|d| {
            d["movie"]["NumFrames"] = serde_json::json!(5e-324);
            d["movie"]["Duration"] = serde_json::json!(1e308);
        }),
        with("still", &|d| {
            d["movie"]["Duration"] = serde_json::json!(0.0)
        }),
        with("frame", &|d| {
            d["frameStats"][0]["frameNumber"] = serde_json::json!(-5)
        }),
    ];
    batch_with(&world, bad).await;
    world.sink(&[]);
    world.assert_parked_and_the_rest_committed(5, "not an optical-flow document");
    let failed: Vec<String> = world
        .failed()
        .iter()
        .map(|f| f["last_error"].as_str().unwrap_or_default().to_owned())
        .collect();
    for reason in [
        "scale 1.7e308",
        "translation",
        "NumFrames",
        "Duration 0",
        "frameNumber -5",
    ] {
        assert!(
            failed.iter().any(|f| f.contains(reason)),
            "no failure record says {reason:?}: {failed:#?}"
        );
    }
}

#[tokio::test]
async fn a_path_git_refuses_is_split_out_of_its_batch_and_buried_with_gits_message() {
    let world = World::new();
    // Paths git will not add (ignored) make `git add` fail for the whole batch.
    std::fs::write(world.co.join(".gitignore"), "ignored/\n").unwrap();
    git(&world.co, &["add", ".gitignore"]);
    commit(&world.co, "ignore");
    let bad = vec![body(
        "ignored/x_optical_flow.json",
        "/v.mov",
        false,
        flow_document(9),
    )];
    batch_with(&world, bad).await;
    let out = world.sink(&["--batch", "10"]);
    world.assert_parked_and_the_rest_committed(1, "git refused it");
    assert!(
        !world.co.join("ignored/x_optical_flow.json").exists(),
        "the refused file is removed again"
    );
    let log = String::from_utf8_lossy(&out.stderr);
    // Halving 4 results finds the culprit in two splits; nothing is retried whole.
    assert_eq!(
        log.matches("splitting the batch").count(),
        2,
        "the same failure is not repeated: {log}"
    );
}

#[tokio::test]
async fn a_stale_git_index_lock_is_removed_with_a_warning() {
    let world = World::new();
    std::fs::write(world.co.join(".git/index.lock"), "").unwrap();
    batch_with(&world, Vec::new()).await;
    let out = world.sink(&[]);
    world.assert_parked_and_the_rest_committed(0, "");
    assert!(String::from_utf8_lossy(&out.stderr).contains("stale git index lock"));
}

#[tokio::test]
async fn a_hundred_results_with_long_paths_commit_in_one_go() {
    let world = World::new();
    // ~1,000-byte paths (the policy's limit is 1,024) and ~1,600-byte video names: the
    // commit message alone is ~160 KB, past the kernel's 128 KB limit for one argument.
    let dir = format!("{}/", "d".repeat(240)).repeat(4);
    let bodies: Vec<Vec<u8>> = (0..100)
        .map(|i| {
            let out = format!("{dir}v{i:03}_optical_flow.json");
            let video = format!("/{}/v{i:03}.mov", "x".repeat(1600));
            body(&out, &video, false, flow_document(i))
        })
        .collect();
    world.put(&bodies).await;
    batch_with(&world, Vec::new()).await;
    world.sink(&["--batch", "100"]);
    world.assert_parked_and_the_rest_committed(0, "");
    let files = git(&world.co, &["log", "--name-only", "--format="]);
    assert_eq!(files.lines().filter(|l| l.starts_with(&dir)).count(), 100);
}

/// The sink's peak resident memory, as it reports it when it stops (`VmHWM`).
fn peak_mb(out: &Output) -> f64 {
    let log = String::from_utf8_lossy(&out.stderr);
    log.lines()
        .find_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("peak_rss_mb="))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or_else(|| panic!("no peak_rss_mb in the sink's log: {log}"))
}

#[tokio::test]
async fn an_inflate_bomb_and_a_huge_document_are_buried_in_bounded_memory() {
    let server = Beanstalkd::builder()
        .max_job_size(80 << 20)
        .start()
        .unwrap();
    let world = World::with_server(server);
    // 174 KB of gzip that inflates to ~170 MB of spaces.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![b' '; 1 << 20];
    for _ in 0..170 {
        std::io::Write::write_all(&mut gz, &zeros).unwrap();
    }
    let packed = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        gz.finish().unwrap(),
    );
    let mut bomb: serde_json::Value = serde_json::from_slice(&body(
        "a/bomb_optical_flow.json",
        "/v.mov",
        false,
        serde_json::Value::Null,
    ))
    .unwrap();
    bomb["document_gzip"] = packed.into();
    // A 62 MB plain document: real-looking entries, far past the default 32 MiB cap.
    let entry = serde_json::json!({"frameNumber": 1, "opticalFlow": {"similarity": [1.0001, 0.00012, 3.25, -0.5], "valid": true, "center": [-960.0, -540.0]}});
    let entries = vec![entry; 560_000];
    let mut huge = flow_document(0);
    huge["frameStats"] = serde_json::Value::Array(entries);
    let huge = body("a/huge_optical_flow.json", "/v.mov", false, huge);
    assert!(huge.len() > 62_000_000, "{}", huge.len());
    batch_with(&world, vec![serde_json::to_vec(&bomb).unwrap(), huge]).await;
    let out = world.sink(&[]);
    world.assert_parked_and_the_rest_committed(2, "result too large");
    let peak = peak_mb(&out);
    eprintln!("sink peak RSS with a 62 MB document and an inflate bomb: {peak:.0} MB");
    assert!(peak < 300.0, "peak {peak} MB");
}

#[tokio::test]
async fn every_commit_message_lists_exactly_the_videos_whose_files_it_holds() {
    let world = World::new();
    std::fs::write(world.co.join(".gitignore"), "ignored/\n").unwrap();
    git(&world.co, &["add", ".gitignore"]);
    commit(&world.co, "ignore");
    // GOOD[0] is committed already: a second, unforced result keeps it.
    std::fs::create_dir_all(world.co.join(GOOD[0]).parent().unwrap()).unwrap();
    std::fs::write(world.co.join(GOOD[0]), "{}\n").unwrap();
    git(&world.co, &["add", GOOD[0]]);
    commit(&world.co, "an earlier analysis");
    let bodies = vec![
        body(GOOD[0], "/kept.mov", false, flow_document(0)),
        body(GOOD[1], "/one.mov", false, flow_document(1)),
        body(
            "ignored/x_optical_flow.json",
            "/ignored.mov",
            false,
            flow_document(9),
        ),
        body(GOOD[2], "/two.mov", false, flow_document(2)),
    ];
    world.put(&bodies).await;
    world.sink(&["--batch", "10"]);
    let log = git(&world.co, &["log", "--format=%x00%H"]);
    let mut listed_in_all = Vec::new();
    for id in log.split('\0').map(str::trim).filter(|s| !s.is_empty()) {
        let message = git(&world.co, &["show", "-s", "--format=%B", id]);
        if !message.starts_with("Add optical flow") {
            continue;
        }
        let files = git(&world.co, &["show", "--name-only", "--format=", id]);
        let files: Vec<&str> = files.lines().filter(|l| !l.is_empty()).collect();
        let listed: Vec<&str> = message
            .lines()
            .filter_map(|l| l.strip_prefix("- "))
            .collect();
        assert_eq!(listed.len(), files.len(), "{message}\n{files:?}");
        assert!(
            message.starts_with(&format!("Add optical flow for {} video(s)", files.len())),
            "{message}"
        );
        listed_in_all.extend(listed.iter().map(|s| s.to_string()));
    }
    listed_in_all.sort();
    assert_eq!(listed_in_all, ["/one.mov", "/two.mov"]);
}
