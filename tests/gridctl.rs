//! `gridctl` as an operator uses it, against a real beanstalkd holding crafted jobs and
//! failure records: failed, retry, peek, pause, resume, drain.

use std::process::Output;
use std::time::Duration;

use chrono::Utc;
use common::beanstalk::{Client, PutOptions};
use common::wire::{Failure, Job, WIRE_VERSION};
use testkit::{bin, Beanstalkd};

fn gridctl(server: &Beanstalkd, args: &[&str]) -> Output {
    bin::command("gridctl")
        .args(args)
        .env("GRID_SERVER", server.addr())
        .env("GRID_NAMESPACE", "ops")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn record(job_id: u64, video: &str, attempt: u32, error: &str) -> Vec<u8> {
    Failure {
        version: WIRE_VERSION,
        job_id,
        video: video.into(),
        output: "o_optical_flow.json".into(),
        attempt,
        action: "buried".into(),
        error: error.into(),
        host: "desk-3".into(),
        at: Utc::now() + chrono::Duration::seconds(attempt as i64),
    }
    .encode()
}

/// Three jobs: a and b buried with records (a twice), c deleted but with a stale record.
async fn failed_world(server: &Beanstalkd) -> (Client, [u64; 3]) {
    let mut c = Client::connect(&server.addr()).await.unwrap();
    c.use_tube("ops.jobs").await.unwrap();
    c.watch("ops.jobs").await.unwrap();
    let mut ids = [0; 3];
    for (i, v) in ["a.mov", "b.mov", "c.mov"].iter().enumerate() {
        ids[i] = c
            .put(
                &Job::new(*v, "o_optical_flow.json").encode(),
                PutOptions::default(),
            )
            .await
            .unwrap();
    }
    for &id in &ids {
        c.reserve_job(id).await.unwrap();
        c.bury(id, 0).await.unwrap();
    }
    c.delete(ids[2]).await.unwrap();
    c.use_tube("ops.failures").await.unwrap();
    for body in [
        record(ids[0], "a.mov", 1, "HTTP 503"),
        record(ids[0], "a.mov", 2, "HTTP 503 again"),
        record(ids[1], "b.mov", 1, "not a QuickTime (.mov) video file"),
        record(ids[2], "c.mov", 1, "gone"),
    ] {
        c.put(&body, PutOptions::default()).await.unwrap();
    }
    (c, ids)
}

#[tokio::test]
async fn failed_lists_buried_jobs_with_their_history_and_retry_puts_them_back() {
    let server = Beanstalkd::start().unwrap();
    let (mut c, ids) = failed_world(&server).await;

    let out = gridctl(&server, &["failed", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let failed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let failed = failed.as_array().unwrap();
    assert_eq!(failed.len(), 2, "c was deleted: {failed:?}");
    assert_eq!(
        (failed[0]["video"].as_str(), failed[0]["attempts"].as_u64()),
        (Some("a.mov"), Some(2))
    );
    assert_eq!(failed[0]["last_error"], "HTTP 503 again");
    assert_eq!(failed[1]["host"], "desk-3");
    let human = text(&gridctl(&server, &["failed"]));
    assert!(
        human.contains("b.mov") && human.contains("not a QuickTime"),
        "{human}"
    );
    assert_eq!(
        c.stats_tube("ops.failures")
            .await
            .unwrap()
            .current_jobs_ready,
        4,
        "records stay"
    );

    let out = gridctl(&server, &["retry", "a.mov"]);
    assert!(out.status.success());
    assert!(text(&out).contains(&format!("retrying job {} a.mov", ids[0])));
    assert_eq!(
        c.stats_tube("ops.jobs").await.unwrap().current_jobs_ready,
        1
    );

    let out = gridctl(&server, &["retry", "nope.mov"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("had no failed job"));

    assert!(gridctl(&server, &["retry", "--all"]).status.success());
    let s = c.stats_tube("ops.jobs").await.unwrap();
    assert_eq!((s.current_jobs_ready, s.current_jobs_buried), (2, 0));
    assert_eq!(
        text(&gridctl(&server, &["failed"])).trim(),
        "no failed jobs in ops.jobs"
    );
}

#[tokio::test]
async fn peek_decodes_jobs_and_says_when_there_is_none() {
    let server = Beanstalkd::start().unwrap();
    let (_c, ids) = failed_world(&server).await;
    let out = gridctl(&server, &["peek", &ids[1].to_string()]);
    assert!(out.status.success());
    let t = text(&out);
    assert!(
        t.starts_with(&format!("job {} in ops.jobs: buried", ids[1])),
        "{t}"
    );
    assert!(t.contains("\"video\": \"b.mov\""), "{t}");
    let out = gridctl(&server, &["peek", "999999"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no job 999999"));
}

#[tokio::test]
async fn pause_resume_and_drain_control_the_jobs_tube() {
    let server = Beanstalkd::start().unwrap();
    let mut c = Client::connect(&server.addr()).await.unwrap();
    c.use_tube("ops.jobs").await.unwrap();
    c.watch("ops.jobs").await.unwrap();
    for _ in 0..2 {
        c.put(
            &Job::new("v.mov", "o_optical_flow.json").encode(),
            PutOptions::default(),
        )
        .await
        .unwrap();
    }
    assert!(text(&gridctl(&server, &["pause", "100"])).contains("paused for 100s"));
    assert_eq!(c.stats_tube("ops.jobs").await.unwrap().pause, 100);
    assert!(matches!(
        c.reserve_with_timeout(0).await,
        Err(common::beanstalk::Error::TimedOut)
    ));
    assert!(gridctl(&server, &["resume"]).status.success());
    let held = c.reserve_with_timeout(1).await.unwrap();

    // drain waits for the job in progress, then reports.
    let mut drain = bin::command("gridctl")
        .arg("drain")
        .env("GRID_SERVER", server.addr())
        .env("GRID_NAMESPACE", "ops")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        drain.try_wait().unwrap().is_none(),
        "still waiting for the held job"
    );
    c.delete(held.id).await.unwrap();
    let out = drain.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(text(&out).contains("drained"));
    assert!(
        c.stats_tube("ops.jobs").await.unwrap().pause > 1_000_000,
        "paused until resumed"
    );
}

#[test]
fn status_watch_prints_one_object_per_refresh_with_a_rate() {
    let server = Beanstalkd::start().unwrap();
    let mut watch = bin::command("gridctl")
        .args(["status", "--watch", "1", "--json"])
        .env("GRID_SERVER", server.addr())
        .env("GRID_NAMESPACE", "ops")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2600));
    watch.kill().unwrap();
    let out = watch.wait_with_output().unwrap();
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 2, "{lines:?}");
    assert!(lines[0]["finished_per_minute"].is_null());
    assert_eq!(lines[1]["finished_per_minute"], 0.0);
    assert_eq!(lines[1]["workers"], serde_json::json!([]));
}

#[test]
fn plot_draws_four_traces_with_invalid_entries_marked() {
    let server = Beanstalkd::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let entry = |f: u64, valid: bool| {
        let sim = if valid {
            [1.01, 0.001, 5.0 + f as f64, -2.0]
        } else {
            [1.0, 0.0, 0.0, 0.0]
        };
        serde_json::json!({"frameNumber": f, "opticalFlow": {"similarity": sim, "valid": valid}})
    };
    let doc = serde_json::json!({
        "frameStats": [entry(1, true), entry(11, false), entry(21, true), entry(31, false), entry(41, true)],
        "movie": {"NumFrames": 50, "Duration": 1.668},
    });
    let json = dir.path().join("x_optical_flow.json");
    std::fs::write(&json, doc.to_string()).unwrap();
    let out = gridctl(&server, &["plot", json.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text(&out).contains("plotted 5 entries"));
    let svg = std::fs::read_to_string(dir.path().join("x_optical_flow.svg")).unwrap();
    assert!(svg.starts_with("<svg"), "an SVG document");
    for caption in ["scale", "theta (rad)", "tx (px)", "ty (px)", "seconds"] {
        assert!(svg.contains(caption), "{caption} missing");
    }
    assert_eq!(
        svg.matches("#DC0000").count(),
        2 * 4,
        "each invalid entry marked on each panel"
    );

    let png = dir.path().join("x.png");
    let out = gridctl(
        &server,
        &["plot", json.to_str().unwrap(), "-o", png.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("rsvg-convert"));
}
