//! Hostile or broken videos cost one clear error, bounded time and bounded memory: a
//! hostile HTTP server (a trickle, endless atoms behind a lying length, a 206 carrying
//! more than asked, a redirect to file://, lazycache metadata and frames that lie) and
//! crafted .mov files (patched stsz, stsc, stsd; a sparse file claiming huge frames),
//! each run through `filter analyze` with its peak memory read from the process itself.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use testkit::http::{HttpServer, Request, Response};

const LAZYCACHE: &str = "/v1/org/oceanobservatories/rawdata/files/";

/// Runs `filter analyze` with `args`, returning its output and how long it took.
fn analyze(args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_filter"))
        .arg("analyze")
        .args(["--scale", "0.5", "--threads", "1"])
        .args(args)
        .env("GRID_LOG", "info")
        .output()
        .expect("running filter analyze");
    (out, started.elapsed())
}

/// Asserts the exit code, the error's words, the time bound and a peak under 500 MB.
fn assert_refused(result: (Output, Duration), code: i32, needle: &str, bound: Duration) {
    let (out, took) = result;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    assert!(error.contains(needle), "{needle:?} not in {error}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(took < bound, "took {took:?}, more than {bound:?}");
    let peak: f64 = stderr
        .lines()
        .find_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("peak_rss_mb="))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no peak in {stderr}"));
    assert!(peak < 500.0, "peak {peak} MB");
}

/// A 30-frame 192x108 ProRes clip, made once per test.
fn clip(dir: &Path) -> PathBuf {
    let path = dir.join("clip.mov");
    testkit::clip::prores(&path, "192x108", 30);
    path
}

/// The position of the first atom of type `kind` (its size field) in `bytes`.
fn atom(bytes: &[u8], kind: &[u8; 4]) -> usize {
    bytes.windows(4).position(|w| w == kind).expect("atom") - 4
}

fn put_u32(bytes: &mut [u8], at: usize, v: u32) {
    bytes[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// A copy of the clip with `patch` applied, as `name`.
fn patched(dir: &Path, name: &str, patch: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut bytes = std::fs::read(clip(dir)).unwrap();
    patch(&mut bytes);
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_string_lossy().into_owned()
}

const QUICK: Duration = Duration::from_secs(20);

#[test]
fn a_sample_table_claiming_huge_frames_is_refused_before_anything_is_allocated() {
    let dir = tempfile::tempdir().unwrap();
    let mov = patched(dir.path(), "huge.mov", |b| {
        let stsz = atom(b, b"stsz");
        put_u32(b, stsz + 20, 0xFFFF_FFF0); // frame 1: 4 GB
    });
    assert_refused(analyze(&[&mov]), 26, "more than the", QUICK);
}

#[test]
fn a_sample_table_claiming_a_hundred_million_frames_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mov = patched(dir.path(), "many.mov", |b| {
        let stsz = atom(b, b"stsz");
        put_u32(b, stsz + 12, 1); // every sample 1 byte…
        put_u32(b, stsz + 16, 100_000_000); // …and a hundred million of them
    });
    assert_refused(analyze(&[&mov]), 25, "100000000 frames", QUICK);
}

#[test]
fn frames_that_add_up_to_more_than_the_file_are_implausible() {
    let dir = tempfile::tempdir().unwrap();
    let mov = patched(dir.path(), "sum.mov", |b| {
        let stsz = atom(b, b"stsz");
        for i in 0..30 {
            put_u32(b, stsz + 20 + 4 * i, 16 << 20); // 30 frames of 16 MB in a small file
        }
    });
    assert_refused(analyze(&[&mov]), 27, "implausible index", QUICK);
}

#[test]
fn a_sparse_file_with_huge_frames_is_read_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mov = patched(dir.path(), "sparse.mov", |b| {
        let stsz = atom(b, b"stsz");
        for i in 1..30 {
            put_u32(b, stsz + 20 + 4 * i, 30 << 20); // 30 MB each, past the real data
        }
    });
    // A hole of 1 GB behind the data: the sizes fit the file, the bytes are zeros.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&mov)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let (out, took) = analyze(&[&mov, "--stride", "1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Either refused for a frame that is not where the index says, or analysed with those
    // frames invalid; never unbounded.
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(took < Duration::from_secs(120), "{took:?}");
    let peak: f64 = stderr
        .lines()
        .find_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("peak_rss_mb="))
        })
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(peak < 500.0, "peak {peak} MB: {stderr}");
    assert!(
        stderr.matches("could not be had").count() <= 3,
        "one summary line per kind of frame error, not one per frame: {stderr}"
    );
}

#[test]
fn a_sample_description_that_lies_about_the_size_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mov = patched(dir.path(), "stsd.mov", |b| {
        let stsd = atom(b, b"stsd");
        b[stsd + 48..stsd + 50].copy_from_slice(&1920u16.to_be_bytes());
        b[stsd + 50..stsd + 52].copy_from_slice(&1080u16.to_be_bytes());
    });
    assert_refused(analyze(&[&mov]), 28, "the first frame is 192x108", QUICK);
}

#[test]
fn a_sample_to_chunk_table_naming_missing_chunks_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let mov = patched(dir.path(), "stsc.mov", |b| {
        let stsc = atom(b, b"stsc");
        put_u32(b, stsc + 16, 0); // chunks are counted from 1
    });
    assert_refused(analyze(&[&mov]), 17, "corrupt", QUICK);
}

#[test]
fn a_fifo_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("video.mov");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    assert_refused(
        analyze(&[fifo.to_str().unwrap()]),
        24,
        "not a regular file",
        QUICK,
    );
}

/// A correct Range reply from `bytes` (claiming `total` bytes in all, if given).
fn range_reply(bytes: &[u8], req: &Request, total: Option<u64>) -> Response {
    let (a, b) = req
        .header("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split_once('-'))
        .map(|(a, b)| (a.parse::<u64>().unwrap(), b.parse::<u64>().unwrap()))
        .unwrap();
    let last = b.min(bytes.len() as u64 - 1);
    let mut r = Response::new(
        206,
        "video/quicktime",
        bytes[a as usize..=last as usize].to_vec(),
    );
    let total = total.unwrap_or(bytes.len() as u64);
    r.headers
        .push(("Content-Range".into(), format!("bytes {a}-{b}/{total}")));
    r
}

#[test]
fn a_trickling_server_fails_within_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(clip(dir.path())).unwrap();
    let server = HttpServer::start(move |req| {
        let mut r = range_reply(&bytes, req, None);
        if r.body.len() > 1 {
            r.trickle = Some(Duration::from_millis(500)); // 2 bytes a second
        }
        r
    });
    let url = format!("{}/files/a/x.mov", server.url());
    let started = Instant::now();
    assert_refused(
        analyze(&[&url, "--http-deadline", "3"]),
        22,
        "too slow",
        Duration::from_secs(15),
    );
    assert!(started.elapsed() >= Duration::from_secs(3));
}

#[test]
fn endless_atoms_behind_a_lying_length_end_after_a_bounded_walk() {
    let server = HttpServer::start(|req: &Request| {
        // Wherever it is read, the file is 8-byte `free` atoms back to back, and it
        // "is" a terabyte long.
        let atom = [0, 0, 0, 8, b'f', b'r', b'e', b'e'];
        let (a, b) = req
            .header("range")
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.split_once('-'))
            .map(|(a, b)| (a.parse::<u64>().unwrap(), b.parse::<u64>().unwrap()))
            .unwrap();
        let body: Vec<u8> = (a..=b).map(|i| atom[(i % 8) as usize]).collect();
        let mut r = Response::new(206, "video/quicktime", body);
        let range = format!("bytes {a}-{b}/{}", 1u64 << 40);
        r.headers.push(("Content-Range".into(), range));
        r
    });
    let url = format!("{}/files/a/x.mov", server.url());
    assert_refused(analyze(&[&url]), 17, "top-level atoms", QUICK);
    assert!(server.requests() < 100, "{} requests", server.requests());
}

#[test]
fn a_206_carrying_more_than_asked_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(clip(dir.path())).unwrap();
    let server = HttpServer::start(move |req| {
        let mut r = range_reply(&bytes, req, None);
        r.body.extend_from_slice(&[0u8; 4096]); // more than the range says
        r
    });
    let url = format!("{}/files/a/x.mov", server.url());
    assert_refused(analyze(&[&url]), 13, "more than the", QUICK);
}

#[test]
fn a_redirect_to_a_local_file_is_refused_without_a_panic() {
    let server = HttpServer::start(|_| {
        let mut r = Response::new(302, "text/plain", "");
        r.headers
            .push(("Location".into(), "file:///etc/passwd".into()));
        r
    });
    let url = format!("{}/files/a/x.mov", server.url());
    assert_refused(analyze(&[&url]), 23, "only http and https", QUICK);
}

/// A lazycache server whose metadata is `meta` and whose frames are `png`.
fn lazycache(meta: serde_json::Value, png: Vec<u8>) -> (HttpServer, String) {
    let server = HttpServer::start(move |req| {
        if req.path().contains("/frame/") {
            Response::new(200, "image/png", png.clone())
        } else {
            Response::new(200, "application/json", meta.to_string())
        }
    });
    let url = format!("{}{LAZYCACHE}a/x.mov", server.url());
    (server, url)
}

/// The first 33 bytes of a PNG claiming `w` x `h` pixels.
fn png_header(w: u32, h: u32) -> Vec<u8> {
    let mut p = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    p.extend_from_slice(&w.to_be_bytes());
    p.extend_from_slice(&h.to_be_bytes());
    p.extend_from_slice(&[8, 0, 0, 0, 0, 0, 0, 0, 0]);
    p
}

#[test]
fn lazycache_metadata_with_absurd_frame_counts_is_refused() {
    let (_s, url) = lazycache(
        serde_json::json!({"NumFrames": 1_000_000_000_000u64, "Duration": 1.0}),
        png_header(192, 108),
    );
    assert_refused(analyze(&[&url]), 25, "frames", QUICK);
    let (_s, url) = lazycache(
        serde_json::json!({"NumFrames": 1_000_000, "Duration": 1.0, "FileSize": 5000}),
        png_header(192, 108),
    );
    assert_refused(analyze(&[&url]), 27, "NumFrames 1000000", QUICK);
}

#[test]
fn a_frame_image_claiming_huge_dimensions_is_refused_before_decoding() {
    let (_s, url) = lazycache(
        serde_json::json!({"NumFrames": 30, "Duration": 1.0}),
        png_header(100_000, 100_000),
    );
    assert_refused(analyze(&[&url]), 29, "100000x100000", QUICK);
}

#[test]
fn a_server_that_holds_every_frame_costs_the_video_deadline_and_no_more() {
    // Each Range reply would be within its own allowance; the gate never lets a frame
    // go, so only the video's deadline can end this.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("files/a")).unwrap();
    testkit::clip::prores(&dir.path().join("files/a/x.mov"), "192x108", 30);
    let gate = testkit::Gate::closed();
    let server = HttpServer::start(testkit::files_with_gate(
        dir.path().to_owned(),
        gate.clone(),
    ));
    let url = format!("{}/files/a/x.mov", server.url());
    let result = analyze(&["--video-deadline", "2", &url]);
    gate.open();
    assert_refused(result, 32, "deadline of 2 s", QUICK);
}

#[test]
fn lazycache_without_a_file_size_may_claim_only_the_frames_that_fit_its_deadline() {
    let (_s, url) = lazycache(
        serde_json::json!({"NumFrames": 4_999_999, "Duration": 1.0}),
        png_header(192, 108),
    );
    // The automatic deadline before the size is known is an hour: 360,000 frames.
    assert_refused(analyze(&[&url]), 27, "without a FileSize", QUICK);
    assert_refused(
        analyze(&["--video-deadline", "60", &url]),
        27,
        "more than the 6000 that fit",
        QUICK,
    );
    // Within the hour's frames (360,000), but its plan would get 2.6 hours: refused at
    // once with its figures, not granted them.
    let (_s, url) = lazycache(
        serde_json::json!({"NumFrames": 359_999, "Duration": 12_012.0}),
        png_header(192, 108),
    );
    assert_refused(analyze(&[&url]), 27, "would get 9300 s", QUICK);
}

#[test]
fn a_video_whose_frame_count_and_duration_make_no_frame_rate_is_refused() {
    let (_s, url) = lazycache(
        serde_json::json!({"NumFrames": 30, "Duration": 0.0, "FileSize": 1 << 30}),
        png_header(192, 108),
    );
    assert_refused(analyze(&[&url]), 27, "not a frame rate", QUICK);
}
