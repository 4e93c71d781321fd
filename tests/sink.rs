//! The sink against crafted results on a real beanstalkd and git: it writes only inside
//! the checkout, buries what it must not write, changes nothing for a duplicate, and
//! refuses a folder that is not the metadata checkout.

use std::path::Path;
use std::process::Output;

use common::beanstalk::{Client, PutOptions};
use common::wire::{ComputedBy, Job, JobResult, WIRE_VERSION};
use testkit::git::{git, metadata_checkout};
use testkit::{bin, Beanstalkd};

fn result(output: &str, marker: u64, force: bool) -> Vec<u8> {
    let job = Job {
        force,
        ..Job::new("/data/files/x.mov", output)
    };
    let now = chrono::Utc::now();
    JobResult {
        version: WIRE_VERSION,
        job,
        job_id: None,
        document: flow_document(marker),
        document_gzip: None,
        computed_by: ComputedBy {
            host: "t".into(),
            software: "test".into(),
            started_at: now,
            finished_at: now,
            elapsed_seconds: 0.0,
        },
    }
    .encode()
}

/// The smallest document the sink accepts as an `_optical_flow.json`, marked.
fn flow_document(marker: u64) -> serde_json::Value {
    testkit::flow_document(marker, "/data/files/x.mov")
}

fn sink(server: &Beanstalkd, co: &Path) -> Output {
    sink_with(server, co, &[])
}

fn sink_with(server: &Beanstalkd, co: &Path, extra: &[&str]) -> Output {
    bin::command("sink")
        .args([
            "--checkout",
            co.to_str().unwrap(),
            "--commit-every",
            "1",
            "--exit-when-idle",
            "2",
        ])
        .args(extra)
        .env("GRID_SERVER", server.addr())
        .env("GRID_NAMESPACE", "s")
        .output()
        .unwrap()
}

async fn put_all(server: &Beanstalkd, bodies: &[Vec<u8>]) -> Client {
    let mut c = Client::connect(&server.addr()).await.unwrap();
    c.use_tube("s.results").await.unwrap();
    for b in bodies {
        c.put(b, PutOptions::default()).await.unwrap();
    }
    c
}

#[tokio::test]
async fn the_sink_writes_only_what_is_safe_and_new() {
    let server = Beanstalkd::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let co = metadata_checkout(dir.path());
    let good = "RS03ASHS/2017/06/14/a_optical_flow.json";
    let mut c = put_all(
        &server,
        &[
            result(good, 1, false),
            result("../escape_optical_flow.json", 2, false),
            result(".git/hooks/x_optical_flow.json", 3, false),
            b"not json".to_vec(),
            result(good, 4, false), // duplicate: the first stays
        ],
    )
    .await;
    let out = sink(&server, &co);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(co.join(good)).unwrap()).unwrap();
    assert_eq!(written["marker"], 1);
    assert!(!dir.path().join("escape_optical_flow.json").exists());
    assert!(!co.join(".git/hooks/x_optical_flow.json").exists());
    let stats = c.stats_tube("s.results").await.unwrap();
    assert_eq!(
        (stats.current_jobs_ready, stats.current_jobs_buried),
        (0, 3)
    );
    assert_eq!(
        git(&co, &["log", "--oneline"]).lines().count(),
        2,
        "one commit for the batch"
    );
    the_operator_sees_why_each_result_was_parked(&server);

    // A forced result replaces the file in a new commit; an unforced one changes nothing.
    c.put(&result(good, 5, true), PutOptions::default())
        .await
        .unwrap();
    c.put(&result(good, 6, false), PutOptions::default())
        .await
        .unwrap();
    assert!(sink(&server, &co).status.success());
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(co.join(good)).unwrap()).unwrap();
    assert_eq!(written["marker"], 5);
    assert_eq!(git(&co, &["log", "--oneline"]).lines().count(), 3);
    assert!(git(&co, &["status", "--porcelain"]).is_empty());
}

/// `gridctl failed` lists the three buried results with the sink's reasons.
fn the_operator_sees_why_each_result_was_parked(server: &Beanstalkd) {
    let out = bin::command("gridctl")
        .args(["failed", "--json"])
        .env("GRID_SERVER", server.addr())
        .env("GRID_NAMESPACE", "s")
        .output()
        .unwrap();
    assert!(out.status.success());
    let failed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut seen: Vec<(&str, &str)> = failed
        .iter()
        .map(|f| {
            assert_eq!(f["kind"], "result", "{f}");
            (
                f["video"].as_str().unwrap(),
                f["last_error"].as_str().unwrap(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(seen.len(), 3, "{failed:?}");
    assert_eq!(seen[0].0, "(unreadable)");
    assert!(seen[0].1.starts_with("malformed result"), "{}", seen[0].1);
    for (video, error) in &seen[1..] {
        assert_eq!(*video, "/data/files/x.mov");
        assert!(
            error.contains("\"output\" is invalid") && error.contains("refusing output path"),
            "{error}"
        );
    }
}

#[test]
fn the_sink_refuses_anything_but_a_metadata_checkout() {
    let server = Beanstalkd::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    let out = sink(&server, &plain);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a git work tree"));

    let co = metadata_checkout(dir.path());
    std::fs::remove_file(co.join("README.md")).unwrap();
    let out = sink(&server, &co);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no README.md"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn only_one_sink_may_write_a_checkout() {
    let server = Beanstalkd::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let co = metadata_checkout(dir.path());
    let mut first = bin::command("sink")
        .args(["--checkout", co.to_str().unwrap(), "--exit-when-idle", "5"])
        .env("GRID_SERVER", server.addr())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Start the second only once the first holds the lock: it takes it before it
    // connects, so once it watches the results tube it holds it.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let start = std::time::Instant::now();
    while rt.block_on(async {
        let mut c = common::beanstalk::Client::connect(&server.addr())
            .await
            .unwrap();
        c.stats_tube("camhd.results")
            .await
            .map_or(0, |s| s.current_watching)
    }) == 0
    {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "the first sink never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let second = sink(&server, &co);
    let _ = first.kill();
    let _ = first.wait();
    assert_eq!(second.status.code(), Some(75), "EX_TEMPFAIL");
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("another sink holds"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
}

#[tokio::test]
async fn the_sink_pushes_after_committing_and_survives_a_broken_remote() {
    let server = Beanstalkd::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let co = metadata_checkout(dir.path());
    let bare = dir.path().join("remote.git");
    git(
        dir.path(),
        &["init", "-q", "--bare", bare.to_str().unwrap()],
    );
    git(&co, &["remote", "add", "origin", bare.to_str().unwrap()]);
    git(&co, &["remote", "add", "broken", "/nonexistent/remote.git"]);
    let run = |remote: &str| sink_with(&server, &co, &["--push", remote]);
    put_all(&server, &[result("a/b_optical_flow.json", 1, false)]).await;
    let out = run("origin");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let head = git(&co, &["rev-parse", "HEAD"]);
    assert_eq!(
        git(&bare, &["rev-parse", "HEAD"]),
        head,
        "the remote has the commit"
    );

    put_all(&server, &[result("a/c_optical_flow.json", 2, false)]).await;
    let out = run("broken");
    assert!(out.status.success(), "a failed push is not fatal");
    assert!(String::from_utf8_lossy(&out.stderr).contains("push failed"));
    assert!(co.join("a/c_optical_flow.json").exists());
    assert_eq!(
        git(&co, &["log", "--oneline"]).lines().count(),
        3,
        "committed all the same"
    );
}

#[tokio::test]
async fn a_sink_killed_at_any_moment_loses_nothing_and_commits_nothing_twice() {
    let server = Beanstalkd::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let co = metadata_checkout(dir.path());
    let outputs: Vec<String> = (0..40)
        .map(|i| format!("d/v{i:02}_optical_flow.json"))
        .collect();
    let bodies: Vec<Vec<u8>> = outputs
        .iter()
        .enumerate()
        .map(|(i, o)| result(o, i as u64, false))
        .collect();
    let mut c = put_all(&server, &bodies).await;
    let start = |idle: &str| {
        bin::command("sink")
            .args([
                "--checkout",
                co.to_str().unwrap(),
                "--batch",
                "3",
                "--commit-every",
                "1",
            ])
            .args(["--exit-when-idle", idle])
            .env("GRID_SERVER", server.addr())
            .env("GRID_NAMESPACE", "s")
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    // SIGKILL at moments that land before, inside and after writes, commits and deletes.
    for ms in [40, 120, 260, 500, 90, 700] {
        let mut sink = start("30");
        std::thread::sleep(std::time::Duration::from_millis(ms));
        sink.kill().unwrap();
        sink.wait().unwrap();
    }
    assert!(start("2").wait().unwrap().success());

    for o in &outputs {
        assert!(co.join(o).exists(), "{o} is missing");
        let commits = git(&co, &["log", "--oneline", "--", o]);
        assert_eq!(
            commits.lines().count(),
            1,
            "{o} committed {} times",
            commits.lines().count()
        );
    }
    assert!(
        git(&co, &["status", "--porcelain"]).is_empty(),
        "nothing left uncommitted"
    );
    let s = c.stats_tube("s.results").await.unwrap();
    assert_eq!(
        s.current_jobs_ready + s.current_jobs_reserved + s.current_jobs_buried,
        0
    );
}
