//! `gridctl` as an operator uses it, against a real beanstalkd holding crafted jobs and
//! failure records: failed, retry, peek, pause, resume, drain.

use std::path::Path;
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
        action: common::wire::Action::Buried,
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
    assert_eq!(
        (failed[1]["host"].as_str(), failed[1]["kind"].as_str()),
        (Some("desk-3"), Some("job"))
    );
    let out = gridctl(&server, &["failed"]);
    let human = text(&out);
    assert!(
        human.contains("b.mov") && human.contains("not a QuickTime"),
        "{human}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1 record(s) of jobs that no longer exist"),
        "c's record is stale"
    );
    assert_eq!(
        c.stats_tube("ops.failures")
            .await
            .unwrap()
            .current_jobs_ready,
        4,
        "records stay"
    );
    let out = gridctl(&server, &["failed", "--prune"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("pruned 1 record(s)"));
    assert_eq!(
        c.stats_tube("ops.failures")
            .await
            .unwrap()
            .current_jobs_ready,
        3,
        "only c's record went"
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
        "no failed jobs in ops.jobs or results in ops.results"
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
async fn failed_waits_for_another_reader_and_says_when_the_list_may_be_short() {
    let server = Beanstalkd::start().unwrap();
    let (_c, _ids) = failed_world(&server).await;
    // Another reader (standing in for a second `gridctl failed`) holds one record.
    let mut other = Client::connect(&server.addr()).await.unwrap();
    other.watch("ops.failures").await.unwrap();
    let held = other.reserve_with_timeout(0).await.unwrap();

    let reader = bin::command("gridctl")
        .args(["failed", "--json"])
        .env("GRID_SERVER", server.addr())
        .env("GRID_NAMESPACE", "ops")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Let go only once gridctl is reading.
    while other
        .stats_tube("ops.failures")
        .await
        .unwrap()
        .current_watching
        < 2
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    other.release(held.id, 1024, 0).await.unwrap();
    let out = reader.wait_with_output().unwrap();
    let failed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let attempts: Vec<u64> = failed
        .iter()
        .map(|f| f["attempts"].as_u64().unwrap())
        .collect();
    assert_eq!(attempts, [2, 1], "every record counted: {failed:?}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A reader that never lets go: the list comes back, with a warning.
    let held = other.reserve_with_timeout(0).await.unwrap();
    let out = gridctl(&server, &["failed"]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the list may be incomplete"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    other.release(held.id, 1024, 0).await.unwrap();
}

#[tokio::test]
async fn discard_deletes_only_buried_jobs_with_their_records() {
    let server = Beanstalkd::start().unwrap();
    let (mut c, ids) = failed_world(&server).await;
    c.use_tube("ops.jobs").await.unwrap();
    let ready = c
        .put(
            &Job::new("d.mov", "o_optical_flow.json").encode(),
            PutOptions::default(),
        )
        .await
        .unwrap();

    let out = gridctl(&server, &["discard", &ids[0].to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text(&out).trim(), format!("discarded job {} a.mov", ids[0]));
    assert!(matches!(
        c.peek(ids[0]).await,
        Err(common::beanstalk::Error::NotFound)
    ));
    assert_eq!(
        c.stats_tube("ops.failures")
            .await
            .unwrap()
            .current_jobs_ready,
        2,
        "a's two records went with it"
    );

    let out = gridctl(&server, &["discard", &ready.to_string(), "999999"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("job {ready} is ready in ops.jobs")),
        "{err}"
    );
    assert!(err.contains("no job 999999"), "{err}");
    assert!(
        c.peek(ready).await.is_ok(),
        "a ready job is never discarded"
    );
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
    let status = text(&gridctl(&server, &["status"]));
    assert!(
        status.contains("ops.jobs PAUSED: no job is handed out for another"),
        "status says so (issue 35): {status}"
    );
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
    let status = text(&gridctl(&server, &["status"]));
    assert!(
        status.contains("until `gridctl resume`; 0 in progress, drained"),
        "{status}"
    );
}

#[tokio::test]
async fn a_finished_grid_is_drained_paused_and_resumed_without_an_error() {
    // A grid whose jobs were all committed: beanstalkd forgot its jobs and results
    // tubes; the queuer's marker is still there.
    let server = Beanstalkd::start().unwrap();
    let out = gridctl(&server, &["status"]);
    assert_eq!(out.status.code(), Some(3), "a namespace never used");
    let mut c = Client::connect(&server.addr()).await.unwrap();
    c.use_tube("ops.grid").await.unwrap();
    let marker = PutOptions {
        delay: i32::MAX as u32,
        ..PutOptions::default()
    };
    c.put(
        br#"{"grid":"00ff","created":"2026-12-01T00:00:00Z"}"#,
        marker,
    )
    .await
    .unwrap();
    let out = gridctl(&server, &["status"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text(&out).contains("no job left"), "{}", text(&out));
    for (args, says) in [
        (&["pause"][..], "nothing to hold back"),
        (&["resume"][..], "nothing is paused"),
        (&["drain"][..], "drained: the grid has no jobs"),
    ] {
        let out = gridctl(&server, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text(&out).contains(says), "{args:?}: {}", text(&out));
        // On an empty grid nothing is paused: no word of resuming (issue 35).
        if args == ["drain"] {
            assert!(!text(&out).contains("resume"), "{}", text(&out));
        }
    }
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
    // Read refreshes as they come (however long each takes), then stop it.
    let mut reader = std::io::BufReader::new(watch.stdout.take().unwrap());
    let lines: Vec<serde_json::Value> = (0..2)
        .map(|_| {
            let mut line = String::new();
            std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
            serde_json::from_str(&line).unwrap()
        })
        .collect();
    watch.kill().unwrap();
    watch.wait().unwrap();
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
        // Two runs of valid entries and a lone one, split by two invalid ones.
        "frameStats": [entry(1, true), entry(11, true), entry(21, false), entry(31, true),
                       entry(41, true), entry(51, false), entry(61, true)],
        "movie": {"NumFrames": 70, "Duration": 2.336},
    });
    let json = dir.path().join("x_optical_flow.json");
    std::fs::write(&json, doc.to_string()).unwrap();
    let out = gridctl(&server, &["plot", json.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text(&out).contains("plotted 7 entries"));
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
    let blue = |element: &str| {
        svg.lines()
            .filter(|l| l.starts_with(element) && l.contains("#0000FF"))
            .count()
    };
    assert_eq!(blue("<polyline"), 2 * 4, "no line across an invalid entry");
    assert_eq!(blue("<circle"), 4, "the lone valid entry is a dot");

    let png = dir.path().join("x.png");
    let out = gridctl(
        &server,
        &["plot", json.to_str().unwrap(), "-o", png.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let image = Rgb::read(&png);
    assert_eq!((image.width, image.height), (1200, 1000));
    assert!(
        image.count(0..1200, 0..40, |p| p[0] < 100 && p[1] < 100 && p[2] < 100) > 200,
        "the title is drawn in dark glyphs"
    );
    // Panels are 240 px tall below the 40 px title: each has its blue trace and red marks.
    for panel in 0..4 {
        let rows = 40 + panel * 240..40 + (panel + 1) * 240;
        // Sloped lines are anti-aliased: count bluish pixels, not only pure blue.
        let blue = image.count(0..1200, rows.clone(), |[r, g, b]| {
            b > 150 && r < 150 && g < 150 && b - r.max(g) > 60
        });
        let red = image.count(0..1200, rows, |p| p == [220, 0, 0]);
        assert!(
            blue > 100 && red > 20,
            "panel {panel}: {blue} blue, {red} red pixels"
        );
    }

    let out = gridctl(&server, &["plot", json.to_str().unwrap(), "-o", "x.pdf"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("name it FILE.svg or FILE.png"));
}

#[test]
fn a_plot_needs_no_grid_so_a_broken_grid_key_does_not_stop_it() {
    // Plotting reads one file: a grid setting that would fail a grid command (here a key
    // file that does not exist) is not read at all.
    let dir = tempfile::tempdir().unwrap();
    let doc = serde_json::json!({
        "frameStats": [{"frameNumber": 1, "opticalFlow": {"similarity": [1.0, 0.0, 1.0, 2.0], "valid": true}}],
        "movie": {"NumFrames": 2, "Duration": 0.07},
    });
    let json = dir.path().join("y_optical_flow.json");
    std::fs::write(&json, doc.to_string()).unwrap();
    let missing_key = dir.path().join("no-such.key");
    let with_key = |args: &[&str]| {
        bin::command("gridctl")
            .args(args)
            .env("GRID_SERVER", "127.0.0.1:1")
            .env("GRID_KEY_FILE", &missing_key)
            .output()
            .unwrap()
    };
    let out = with_key(&["plot", json.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text(&out).contains("plotted 1 entries"));
    // The same setting still fails a command that talks to the grid, naming the file.
    let out = with_key(&["status"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such.key"), "{err}");
}

#[test]
fn a_plot_ends_whatever_numbers_its_document_holds() {
    // Each of these made plotters' axis layout loop for ever (the process never ended).
    // A plot ends and draws; a hang fails the test at its bound, not a timing.
    let server = Beanstalkd::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let entry = |f: serde_json::Value, sim: [f64; 4]| serde_json::json!({"frameNumber": f, "opticalFlow": {"similarity": sim, "valid": true}});
    let movie = serde_json::json!({"NumFrames": 70, "Duration": 2.336});
    let cases = [
        (
            "huge",
            vec![
                entry(1.into(), [1.7e308, 0.0, 0.0, 0.0]),
                entry(11.into(), [-1.7e308, 0.0, 0.0, 0.0]),
            ],
            movie.clone(),
        ),
        (
            "rate",
            vec![
                entry(1.into(), [1.0, 0.0, 0.0, 0.0]),
                entry(11.into(), [1.0, 0.0, 1.0, 0.0]),
            ],
            serde_json::json!({"NumFrames": 5e-324, "Duration": 1e308}),
        ),
        (
            "narrow",
            vec![
                entry(1.into(), [1.0, 1e15, 0.0, 0.0]),
                entry(11.into(), [1.0, 1e15 + 0.125, 0.0, 0.0]),
            ],
            movie.clone(),
        ),
        (
            "far",
            vec![
                entry(1.into(), [1.0, 0.0, 0.0, 0.0]),
                entry(u64::MAX.into(), [1.0, 0.0, 0.0, 0.0]),
            ],
            movie.clone(),
        ),
        (
            "tiny",
            vec![
                entry(1.into(), [1.0, 5e-324, 0.0, 0.0]),
                entry(11.into(), [1.0, -5e-324, 0.0, 0.0]),
            ],
            movie,
        ),
    ];
    for (name, entries, movie) in cases {
        let json = dir.path().join(format!("{name}_optical_flow.json"));
        let doc = serde_json::json!({"frameStats": entries, "movie": movie});
        std::fs::write(&json, doc.to_string()).unwrap();
        let svg = dir.path().join(format!("{name}.svg"));
        let mut child = bin::command("gridctl")
            .args(["plot", json.to_str().unwrap(), "-o", svg.to_str().unwrap()])
            .env("GRID_SERVER", server.addr())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > Duration::from_secs(120) {
                child.kill().unwrap();
                panic!("{name}: the plot never ended");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "{name}: {status}");
        assert!(
            std::fs::read_to_string(&svg).unwrap().starts_with("<svg"),
            "{name}"
        );
    }
}

#[test]
fn a_plot_of_a_long_document_draws_what_its_width_can_show() {
    // 200,000 entries, every 50th invalid: a few thousand points a panel, not 800,000.
    let server = Beanstalkd::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let entries: Vec<serde_json::Value> = (0..200_000u64)
        .map(|i| {
            let valid = i % 50 != 7;
            let tx = if i == 123_456 { 777.0 } else { (i % 13) as f64 };
            serde_json::json!({"frameNumber": 1 + i, "opticalFlow": {
                "similarity": [1.0, 0.0, tx, 0.0], "valid": valid, "center": [-960.0, -540.0]}})
        })
        .collect();
    let doc = serde_json::json!({"frameStats": entries, "movie": {"NumFrames": 200_011, "Duration": 6673.7}});
    let json = dir.path().join("long_optical_flow.json");
    std::fs::write(&json, doc.to_string()).unwrap();
    let svg = dir.path().join("long.svg");
    let out = gridctl(
        &server,
        &["plot", json.to_str().unwrap(), "-o", svg.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text(&out).contains("plotted 200000 entries"));
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.len() < 8 << 20, "{} bytes of SVG", svg.len());
    let red = svg.matches("#DC0000").count();
    assert!(red > 1000 && red < 4 * 2 * 2400, "{red} invalid marks");
    // The one spike is kept by the thinning: tx's axis reaches it.
    assert!(
        svg.lines().any(|l| l.trim() == "800.0"),
        "the spike's axis label"
    );
}

/// A decoded RGB(A) PNG.
struct Rgb {
    width: usize,
    height: usize,
    channels: usize,
    pixels: Vec<u8>,
}

impl Rgb {
    fn read(path: &std::path::Path) -> Rgb {
        let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
        let mut reader = decoder.read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut pixels).unwrap();
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        Rgb {
            width: info.width as usize,
            height: info.height as usize,
            channels: info.color_type.samples(),
            pixels,
        }
    }

    /// How many pixels in the rectangle satisfy `test` (given R, G, B).
    fn count(
        &self,
        xs: std::ops::Range<usize>,
        ys: std::ops::Range<usize>,
        test: impl Fn([u8; 3]) -> bool,
    ) -> usize {
        ys.flat_map(|y| xs.clone().map(move |x| (x, y)))
            .filter(|&(x, y)| {
                let i = (y * self.width + x) * self.channels;
                test([self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]])
            })
            .count()
    }
}

/// A job for `video` in ops.jobs, buried, with one failure record saying `error`.
async fn buried_with_record(c: &mut Client, video: &str, error: &str) -> u64 {
    c.use_tube("ops.jobs").await.unwrap();
    let job = Job::new(video, "o_optical_flow.json").encode();
    let id = c.put(&job, PutOptions::default()).await.unwrap();
    c.reserve_job(id).await.unwrap();
    c.bury(id, 0).await.unwrap();
    c.use_tube("ops.failures").await.unwrap();
    c.put(&record(id, video, 1, error), PutOptions::default())
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn escape_sequences_in_bodies_are_shown_escaped_never_obeyed() {
    let server = Beanstalkd::start().unwrap();
    let mut c = Client::connect(&server.addr()).await.unwrap();
    let video = "/data/\x1b[2J\x1b]0;pwned\x07a.mov";
    let id = buried_with_record(&mut c, video, "bad\x1b[31m red\r\noverwritten").await;
    // A body that is no camhd-grid body at all, printed raw before.
    c.use_tube("ops.jobs").await.unwrap();
    let raw = c
        .put(b"\x1b[2J\x1b[H\x9bgotcha", PutOptions::default())
        .await
        .unwrap();

    for args in [
        vec!["failed".to_owned()],
        vec!["peek".to_owned(), id.to_string()],
        vec!["peek".to_owned(), raw.to_string()],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = gridctl(&server, &args);
        assert!(out.status.success(), "{args:?}");
        let shown = text(&out);
        assert!(
            !shown.contains('\x1b'),
            "{args:?} printed an escape: {shown:?}"
        );
        assert!(
            !shown.contains('\x07') && !shown.contains('\r'),
            "{shown:?}"
        );
        assert!(
            shown.contains("\\u{1b}[2J") || shown.contains("\\u001b[2J"),
            "{args:?} shows it escaped: {shown}"
        );
    }
}

#[tokio::test]
async fn c1_controls_and_bidi_overrides_are_escaped_in_json_and_peek_too() {
    let server = Beanstalkd::start().unwrap();
    let mut c = Client::connect(&server.addr()).await.unwrap();
    // U+009B is a one-byte CSI on many terminals; U+202E turns "vom.exe" into "exe.mov".
    let video = "/data/\u{9b}2J\u{202e}vom.exe\u{7f}.mov";
    let id = buried_with_record(&mut c, video, "bad\u{9b}31m\u{2066}").await;
    for args in [
        vec!["failed".to_owned(), "--json".to_owned()],
        vec!["status".to_owned(), "--json".to_owned()],
        vec!["peek".to_owned(), id.to_string()],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = gridctl(&server, &args);
        assert!(out.status.success(), "{args:?}");
        let shown = text(&out);
        assert!(
            !shown.contains(['\u{9b}', '\u{202e}', '\u{2066}', '\u{7f}']),
            "{args:?} printed a control raw: {shown:?}"
        );
        if args[0] != "status" {
            assert!(
                shown.contains("\\u009b2J\\u202evom.exe"),
                "{args:?}: {shown}"
            );
        }
        if args.contains(&"--json") {
            let value: serde_json::Value = serde_json::from_str(&shown).unwrap();
            if args[0] == "failed" {
                assert!(
                    value.to_string().contains('\u{202e}'),
                    "the same JSON value"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_heartbeat_from_the_future_or_past_its_total_is_shown_as_implausible() {
    use common::wire::Heartbeat;
    let server = Beanstalkd::start().unwrap();
    let mut c = Client::connect(&server.addr()).await.unwrap();
    let beat = |host: &str, at: chrono::DateTime<chrono::Utc>, done: u64| Heartbeat {
        version: WIRE_VERSION,
        host: host.into(),
        pid: 7,
        slot: 0,
        job_id: Some(1),
        video: Some("/v/a.mov".into()),
        frames_done: done,
        frames_total: 10,
        // A day: however slowly the test runs, "over" stays alive (it is about its
        // progress); "future" is dead for its date whatever its interval.
        every_seconds: Some(86_400),
        refusing: None,
        at,
    };
    let now = chrono::Utc::now();
    c.use_tube("ops.status.future.7.0").await.unwrap();
    let future = beat("future", now + chrono::Duration::days(1), 1);
    c.put(&future.encode(), PutOptions::default())
        .await
        .unwrap();
    c.use_tube("ops.status.over.7.0").await.unwrap();
    let over = beat("over", now, 18_446_744_073_709_551);
    c.put(&over.encode(), PutOptions::default()).await.unwrap();

    let table = text(&gridctl(&server, &["status"]));
    assert!(table.contains("workers (1):"), "{table}");
    assert!(table.contains("(implausible progress)"), "{table}");
    assert!(!table.contains('%'), "no percentage past 100: {table}");
    assert!(
        table.contains("dead (1):") && table.contains("in the future"),
        "{table}"
    );
    // The operator clears the dead one (issue 35); the living one stays.
    let out = gridctl(&server, &["forget-dead"]);
    assert!(text(&out).contains("forgot 1 dead worker(s)"), "{out:?}");
    let table = text(&gridctl(&server, &["status"]));
    assert!(
        table.contains("workers (1):") && !table.contains("dead ("),
        "{table}"
    );
}

#[tokio::test]
async fn a_heartbeat_with_a_huge_name_is_shown_cut() {
    use common::wire::Heartbeat;
    let server = Beanstalkd::start().unwrap();
    let mut c = Client::connect(&server.addr()).await.unwrap();
    let beat = Heartbeat {
        version: WIRE_VERSION,
        host: "h".repeat(30_000),
        pid: 7,
        slot: 0,
        job_id: Some(1),
        video: Some(format!("/v/{}.mov", "x".repeat(30_000))),
        frames_done: 1,
        frames_total: 10,
        // Alive however slowly the test runs.
        every_seconds: Some(86_400),
        refusing: None,
        at: chrono::Utc::now(),
    };
    c.use_tube("ops.status.big.7.0").await.unwrap();
    c.put(&beat.encode(), PutOptions::default()).await.unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&text(&gridctl(&server, &["status", "--json"]))).unwrap();
    let worker = &json["workers"][0];
    for field in ["host", "video"] {
        let shown = worker[field].as_str().unwrap();
        assert!(
            shown.len() < 1_100 && shown.ends_with("(cut)"),
            "{field}: {} chars",
            shown.len()
        );
    }
}

#[test]
fn plot_draws_the_regions_as_bands_behind_the_traces() {
    let server = Beanstalkd::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let json = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("flowdoc/tests/regions/flow/clip_pans_optical_flow.json");
    let svg = dir.path().join("pans.svg");
    let out = gridctl(
        &server,
        &["plot", json.to_str().unwrap(), "-o", svg.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svg = std::fs::read_to_string(svg).unwrap();
    // Three static regions and two moves (E, SW: see its expected regions), on 4 panels.
    let rects = |colour: &str| {
        svg.lines()
            .filter(|l| l.starts_with("<rect") && l.contains(colour))
            .count()
    };
    assert_eq!(rects("#E1E1E1"), 3 * 4, "static bands");
    assert_eq!(rects("#FFE4B5"), 2 * 4, "move bands");
    for name in ["E", "SW"] {
        let labels = svg.lines().filter(|l| l.trim() == name).count();
        assert_eq!(labels, 1, "{name} named once, in the first panel");
    }
}
