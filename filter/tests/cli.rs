//! `filter analyze` as a scientist runs it: the document's exact shape on success, and
//! for each kind of bad input a one-line error and its own exit code.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{clip, clips, lazycache};
use testkit::http::{files_with_ranges, HttpServer};

fn analyze(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_filter"))
        .arg("analyze")
        .args(args)
        .env("GRID_LOG", "warn")
        .output()
        .expect("running filter analyze")
}

/// Asserts the exit code and a single `error:` line mentioning `needle`.
fn assert_fails(out: &Output, code: i32, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "nothing else printed: {stderr}"
    );
    assert!(errors[0].contains(needle), "{needle:?} not in {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.stdout.is_empty(), "no document on failure");
}

fn ffmpeg(args: &[&str], out: &Path) {
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .arg(out)
        .status()
        .expect("ffmpeg");
    assert!(status.success());
}

fn scratch(name: &str) -> PathBuf {
    clips().path().join(name)
}

#[test]
fn the_document_has_the_reference_shape() {
    let video = clip("cli-640-60.mov", 640, 360, 60);
    let out_path = scratch("cli_optical_flow.json");
    let out = analyze(&[
        video.to_str().unwrap(),
        "--scale",
        "0.5",
        "--output",
        out_path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "with --output, stdout stays empty");
    let text = std::fs::read_to_string(&out_path).unwrap();
    assert!(text.ends_with("}\n"), "trailing newline");
    assert!(
        text.starts_with("{\n  \"contents\": {\n    \"movie\": \"1.0\","),
        "2-space indent:\n{}",
        &text[..80]
    );

    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let keys: Vec<&str> = doc
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["contents", "frameStats", "movie", "performance", "analysis"]
    );
    assert_eq!(doc["contents"]["frameStats"]["opticalFlow"], "1.1");
    assert_eq!(
        doc["contents"]["performance"],
        serde_json::json!({"timing": "1.0", "hostinfo": "1.1"})
    );
    assert_eq!(doc["contents"]["analysis"], "1.0");
    assert_eq!(doc["movie"]["NumFrames"], 60);
    assert!((doc["movie"]["Duration"].as_f64().unwrap() - 60.0 * 1001.0 / 30000.0).abs() < 0.01);
    for key in ["elapsedSeconds", "startTime", "endTime"] {
        assert!(!doc["performance"]["timing"][key].is_null(), "{key}");
    }
    assert!(doc["performance"]["hostinfo"]["hostname"].is_string());
    assert!(doc["performance"]["hostinfo"]["cpu"].is_string());
    let a = &doc["analysis"];
    assert_eq!(
        (
            a["stride"].as_u64(),
            a["start"].as_u64(),
            a["stop"].as_i64()
        ),
        (Some(10), Some(1), Some(-1))
    );
    assert_eq!(
        (a["pairGap"].as_u64(), a["imgScale"].as_f64()),
        (Some(10), Some(0.5))
    );
    assert_eq!(
        a["decoder"], "libav",
        "the reduced decoder is used at 1/4 and 1/8 only"
    );

    let stats = doc["frameStats"].as_array().unwrap();
    let numbers: Vec<u64> = stats
        .iter()
        .map(|s| s["frameNumber"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 11, 21, 31, 41, 51]);
    let first = &stats[0]["opticalFlow"];
    assert_eq!(
        (first["fromFrame"].as_u64(), first["toFrame"].as_u64()),
        (Some(1), Some(6))
    );
    assert_eq!(first["center"], serde_json::json!([-320.0, -180.0]));
    assert_eq!(first["flowScale"], 1.0);
    let entry_keys: Vec<&str> = stats[1]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        entry_keys,
        ["frameNumber", "durationSeconds", "opticalFlow"]
    );
    let of_keys: Vec<&str> = stats[1]["opticalFlow"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        of_keys,
        [
            "fromFrame",
            "toFrame",
            "imgScale",
            "flowScale",
            "center",
            "similarity",
            "valid",
            "performance"
        ]
    );
    assert!(stats[1]["opticalFlow"]["performance"]["timing"]["elapsedSeconds"].is_f64());
}

#[test]
fn the_document_goes_to_stdout_without_output() {
    let video = clip("cli-640-60.mov", 640, 360, 60);
    let out = analyze(&[
        video.to_str().unwrap(),
        "--scale",
        "0.5",
        "--stride",
        "25",
        "--threads",
        "1",
    ]);
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["frameStats"].as_array().unwrap().len(), 3);
}

#[test]
fn a_missing_file_exits_10() {
    assert_fails(&analyze(&["/nonexistent/video.mov"]), 10, "no such file");
}

#[test]
fn a_file_that_is_not_a_video_exits_16() {
    let path = scratch("notes.txt");
    std::fs::write(&path, "these are not frames\n".repeat(100)).unwrap();
    assert_fails(&analyze(&[path.to_str().unwrap()]), 16, "not a QuickTime");
    let empty = scratch("empty.mov");
    std::fs::write(&empty, b"").unwrap();
    assert_fails(&analyze(&[empty.to_str().unwrap()]), 16, "not a QuickTime");
}

#[test]
fn a_truncated_or_corrupt_file_exits_17() {
    let video = clip("cli-640-60.mov", 640, 360, 60);
    let bytes = std::fs::read(&video).unwrap();
    let cut = scratch("truncated.mov");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    assert_fails(
        &analyze(&[cut.to_str().unwrap()]),
        17,
        "corrupt or truncated",
    );

    // Break the frame-size table's count inside an intact file.
    let mut broken = bytes.clone();
    let at = broken.windows(4).position(|w| w == b"stsz").unwrap();
    broken[at + 12..at + 16].copy_from_slice(&u32::MAX.to_be_bytes());
    let path = scratch("corrupt.mov");
    std::fs::write(&path, &broken).unwrap();
    assert_fails(&analyze(&[path.to_str().unwrap()]), 17, "corrupt");
}

#[test]
fn a_movie_without_video_frames_exits_18() {
    let path = scratch("audio-only.mov");
    ffmpeg(
        &["-f", "lavfi", "-i", "sine=duration=1", "-c:a", "pcm_s16le"],
        &path,
    );
    assert_fails(&analyze(&[path.to_str().unwrap()]), 18, "no video frames");
}

#[test]
fn a_video_shorter_than_a_pair_exits_19() {
    let path = scratch("short.mov");
    support::synth::render(&path, 320, 180, 8, |n| support::synth::scripted(n, 320));
    assert_fails(&analyze(&[path.to_str().unwrap()]), 19, "has 8 frames");
}

#[test]
fn a_codec_other_than_prores_exits_20() {
    let path = scratch("mjpeg.mov");
    ffmpeg(
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x180:rate=30",
            "-frames:v",
            "20",
            "-c:v",
            "mjpeg",
        ],
        &path,
    );
    assert_fails(&analyze(&[path.to_str().unwrap()]), 20, "not supported");
}

#[test]
fn network_failures_have_their_own_codes() {
    let port = testkit::free_port().unwrap();
    assert_fails(
        &analyze(&[&format!("http://127.0.0.1:{port}/a.mov")]),
        13,
        "cannot reach",
    );

    let server = HttpServer::start(files_with_ranges(clips().path(), true));
    assert_fails(
        &analyze(&[&format!("{}/missing.mov", server.url())]),
        12,
        "HTTP 404",
    );

    let cache = lazycache::start(clips().path().to_path_buf());
    let url = format!("{}{}gone.mov", cache.url(), lazycache::PREFIX);
    assert_fails(&analyze(&[&url]), 15, "lazycache says");
}

#[test]
fn an_https_archive_is_trusted_only_through_its_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let pki = testkit::stunnel::Pki::new(dir.path(), "archive");
    let options = testkit::NginxOptions {
        tls: Some((pki.file("server.pem"), pki.file("server.key"))),
        http2: true,
        ..Default::default()
    };
    let nginx = testkit::Nginx::start(clips().path(), &options);
    let video = clip("cli-640-60.mov", 640, 360, 60);
    let url = format!(
        "{}/{}",
        nginx.url(),
        video.file_name().unwrap().to_string_lossy()
    );
    // The public web's CAs by default: refused, saying what to do.
    assert_fails(&analyze(&[&url, "--stride", "10"]), 13, "--http-ca-file");
    // Its CA given (here by the environment, as a service's unit gives it).
    let out = Command::new(env!("CARGO_BIN_EXE_filter"))
        .args(["analyze", &url, "--stride", "10", "--http2", "alpn"])
        .env("GRID_LOG", "warn")
        .env("FILTER_HTTP_CA_FILE", pki.file("ca.pem"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc["frameStats"].as_array().is_some_and(|f| !f.is_empty()));
    assert!(
        nginx.protocols().iter().all(|p| p == "HTTP/2.0"),
        "{:?}",
        nginx.protocols()
    );
}

#[test]
fn bad_arguments_exit_2_with_a_reason() {
    for (args, needle) in [
        (&["a.mov", "--stride", "0"][..], "--stride"),
        (&["a.mov", "--scale", "2"], "not a scale"),
        (&["a.mov", "--stop", "-5"], "--stop"),
        (&["a.mov", "--source", "ftp"], "not one of"),
        (&["a.mov", "--http2", "h3"], "--http2"),
        (
            &["a.mov", "--http-ca-file", "/nonexistent/ca.pem"],
            "--http-ca-file",
        ),
    ] {
        let out = analyze(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(needle),
            "{args:?}"
        );
    }
}

#[test]
fn an_empty_frame_range_exits_21() {
    let video = clip("cli-640-60.mov", 640, 360, 60);
    assert_fails(
        &analyze(&[video.to_str().unwrap(), "--start", "50", "--stop", "40"]),
        21,
        "nothing to analyse",
    );
}

#[test]
fn analyze_can_plot_the_motion() {
    let video = clip("cli-640-60.mov", 640, 360, 60);
    let svg = scratch("plot.svg");
    let out = analyze(&[
        video.to_str().unwrap(),
        "--scale",
        "0.5",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.contains("theta (rad)"));
}

#[test]
fn a_plot_never_costs_the_document() {
    let video = clip("cli-640-60.mov", 640, 360, 60);
    let json = scratch("plot-first_optical_flow.json");
    let run = |plot: &str| {
        analyze(&[
            video.to_str().unwrap(),
            "--scale",
            "0.5",
            "--output",
            json.to_str().unwrap(),
            "--plot",
            plot,
        ])
    };

    // A name that is neither .svg nor .png is refused before any analysis.
    assert_fails(&run("motion.pdf"), 1, "name it FILE.svg or FILE.png");
    assert!(!json.exists());

    // PNG works, next to the document.
    let png = scratch("motion.png");
    let out = run(png.to_str().unwrap());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read(&png)
        .unwrap()
        .starts_with(b"\x89PNG\r\n\x1a\n"));

    // A plot that cannot be written fails the command, but the document is there.
    std::fs::remove_file(&json).unwrap();
    let out = run(scratch("no-such-dir/motion.png").to_str().unwrap());
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("writing the plot"));
    assert!(json.exists(), "the document was written before the plot");
}
