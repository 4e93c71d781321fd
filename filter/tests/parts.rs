//! Frames fetched in parts (issue 20): over HTTP only the bytes the reduced decoder reads
//! are asked for, many ranges to a request, and the motion is the same as from whole
//! frames. A server that answers several ranges any other way than exactly (the whole
//! file, one range, other ranges, more than asked, a trickle) costs whole frames or one
//! clear error, never a wrong answer.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use filter::decode::FetchChoice;
use filter::document::OpticalFlowDocument;
use filter::prores::ReducedDecoder;
use filter::source::{
    self, Fetched, FrameSource, FrameStream, HttpBytes, HttpLimits, PartsPlanner, Payload,
    ReadError, SourceKind, VideoInfo, Window,
};
use filter::{analyze, AnalysisError, Settings};
use support::{clip, clips, parts_of};
use testkit::http::{files_with_multiranges, files_with_ranges, HttpServer, Request, Response};

/// The scripted clip at 960x540: at the default scale 0.25 the reduced decoder reads it.
fn clip_path() -> std::path::PathBuf {
    clip("scripted-960.mov", 960, 540, 60)
}

fn run(video: &str, fetch: FetchChoice) -> (OpticalFlowDocument, u64) {
    let source = source::open(video, SourceKind::Auto, 0.25).expect("opening the clip");
    let settings = Settings {
        stride: 5,
        fetch,
        ..Settings::default()
    };
    let analysis = analyze(source, &settings, &mut |_| {}).expect("analysis");
    (analysis.document, analysis.stats.bytes_fetched)
}

fn similarities(doc: &OpticalFlowDocument) -> Vec<(u64, [f64; 4], bool)> {
    doc.frame_stats
        .iter()
        .map(|s| {
            let of = &s.optical_flow;
            (s.frame_number, of.similarity, of.valid)
        })
        .collect()
}

fn url_of(server: &HttpServer) -> String {
    let name = clip_path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    format!("{}/{name}", server.url())
}

#[test]
fn parts_over_http_give_the_same_motion_for_fewer_bytes() {
    let path = clip_path();
    let (whole, whole_bytes) = run(path.to_str().unwrap(), FetchChoice::Whole);
    assert!(whole.frame_stats.iter().any(|s| s.optical_flow.valid));

    let server = HttpServer::start(files_with_multiranges(clips().path(), 200));
    let (parts, parts_bytes) = run(&url_of(&server), FetchChoice::Auto);
    let served = server.body_bytes_sent();
    eprintln!(
        "whole frames {whole_bytes} bytes; parts {parts_bytes} ({:.1}%), served {served} in {} requests",
        100.0 * parts_bytes as f64 / whole_bytes as f64,
        server.requests()
    );
    assert_eq!(similarities(&parts), similarities(&whole), "same motion");
    assert_eq!(
        parts_bytes, served,
        "the client counts what the server sent"
    );
    assert!(
        parts_bytes * 10 < whole_bytes * 7,
        "parts {parts_bytes} of whole frames' {whole_bytes}"
    );
}

#[test]
fn local_files_read_whole_frames_unless_parts_are_asked_for() {
    let path = clip_path();
    let path = path.to_str().unwrap();
    let (auto, auto_bytes) = run(path, FetchChoice::Auto);
    let (whole, whole_bytes) = run(path, FetchChoice::Whole);
    let (parts, parts_bytes) = run(path, FetchChoice::Parts);
    assert_eq!(auto_bytes, whole_bytes, "auto reads local files whole");
    assert!(
        parts_bytes * 10 < whole_bytes * 7,
        "{parts_bytes} of {whole_bytes}"
    );
    assert_eq!(similarities(&parts), similarities(&whole));
    assert_eq!(similarities(&auto), similarities(&whole));
}

#[test]
fn servers_that_do_not_answer_several_ranges_exactly_get_whole_frames() {
    let path = clip_path();
    let (whole, whole_bytes) = run(path.to_str().unwrap(), FetchChoice::Whole);
    let root = clips().path().to_path_buf();
    let multi = files_with_multiranges(root.clone(), 10_000);
    let single = files_with_ranges(root.clone(), true);
    // Each answers a request for several ranges its own wrong way, and single ranges
    // as it should.
    let servers: Vec<(&str, HttpServer)> = vec![
        (
            "the whole file (no multi-range support)",
            HttpServer::start(single),
        ),
        (
            "the whole file (more ranges than its MaxRanges)",
            HttpServer::start(files_with_multiranges(root.clone(), 10)),
        ),
        (
            "one range",
            HttpServer::start(hostile(multi, |req, r| {
                let first = first_range(req);
                let mut one = Response::new(206, "video/quicktime", vec![0; 0]);
                one.headers.push(("Content-Range".into(), first));
                let _ = r;
                one
            })),
        ),
        (
            "other ranges",
            HttpServer::start(hostile(
                files_with_multiranges(root.clone(), 10_000),
                |_, mut r| {
                    r.body = String::from_utf8_lossy(&r.body)
                        .replacen("Content-Range: bytes 1", "Content-Range: bytes 2", 1)
                        .into_bytes();
                    r
                },
            )),
        ),
        (
            "a part longer than asked",
            HttpServer::start(hostile(
                files_with_multiranges(root.clone(), 10_000),
                |_, mut r| {
                    let at = find(&r.body, b"\r\n\r\n").unwrap() + 4;
                    r.body.splice(at..at, *b"EXTRA");
                    r
                },
            )),
        ),
        (
            "a body longer than all the ranges and their headers",
            HttpServer::start(hostile(files_with_multiranges(root, 10_000), |_, mut r| {
                r.body.extend(std::iter::repeat_n(b'x', 1 << 20));
                r
            })),
        ),
    ];
    for (name, server) in servers {
        let (doc, fetched) = run(&url_of(&server), FetchChoice::Parts);
        assert_eq!(similarities(&doc), similarities(&whole), "{name}");
        assert!(
            fetched < whole_bytes * 2,
            "{name}: {fetched} bytes read for {whole_bytes} of whole frames"
        );
    }
}

#[test]
fn a_trickling_multi_range_reply_costs_its_deadline_and_no_more() {
    let root = clips().path().to_path_buf();
    let _ = clip_path();
    let server = HttpServer::start(hostile(files_with_multiranges(root, 10_000), |_, mut r| {
        r.trickle = Some(Duration::from_millis(500));
        r
    }));
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_filter"))
        .args([
            "analyze",
            &url_of(&server),
            "--threads",
            "1",
            "--fetch",
            "parts",
        ])
        .args(["--http-deadline", "3", "--output", "/dev/null"])
        .env("GRID_LOG", "warn")
        .output()
        .expect("running filter analyze");
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(22), "{stderr}");
    assert!(stderr.contains("too slow"), "{stderr}");
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(60),
        "{took:?}"
    );
}

/// A server answering requests for several ranges as `serve` does, changed by `spoil`;
/// other requests as `serve` does.
fn hostile(
    serve: impl Fn(&Request) -> Response + Send + Sync + 'static,
    spoil: impl Fn(&Request, Response) -> Response + Send + Sync + 'static,
) -> impl Fn(&Request) -> Response + Send + Sync + 'static {
    move |req| {
        let r = serve(req);
        match req.header("range") {
            Some(range) if range.contains(',') => spoil(req, r),
            _ => r,
        }
    }
}

/// The first range asked for, as a `Content-Range` value.
fn first_range(req: &Request) -> String {
    let spec = req.header("range").unwrap().trim_start_matches("bytes=");
    let first = spec.split(',').next().unwrap();
    format!("bytes {first}/*")
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn frames_out_of_file_order_are_fetched_whole_over_http_too() {
    // A sample table whose chunks are not in file order (the first two swapped): frames
    // of one block then overlap or run backwards, which a multi-range request cannot
    // ask for. They are read whole, with the answer the whole-frame reading gives.
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(clip_path()).unwrap();
    let stco = bytes.windows(4).position(|w| w == b"stco").expect("stco") - 4;
    let entry = |i: usize| stco + 16 + 4 * i;
    let (a, b) = (entry(0), entry(1));
    let first: [u8; 4] = bytes[a..a + 4].try_into().unwrap();
    bytes.copy_within(b..b + 4, a);
    bytes[b..b + 4].copy_from_slice(&first);
    std::fs::write(dir.path().join("swapped.mov"), &bytes).unwrap();
    let local = dir.path().join("swapped.mov");
    let (whole, _) = run(local.to_str().unwrap(), FetchChoice::Whole);
    let server = HttpServer::start(files_with_multiranges(dir.path().to_path_buf(), 10_000));
    let (parts, _) = run(&format!("{}/swapped.mov", server.url()), FetchChoice::Parts);
    assert_eq!(similarities(&parts), similarities(&whole));
}

/// A video whose frames arrive in parts cut short (2% of each slice, so every frame needs
/// its slices completed), read from a local clip, with every completion asked of
/// `more`: a server that fails.
struct ShortParts {
    inner: Box<dyn FrameSource>,
    decoder: ReducedDecoder,
    more: String,
}

impl FrameSource for ShortParts {
    fn info(&self) -> &VideoInfo {
        self.inner.info()
    }

    fn fetch(&mut self, frames: &[u64]) -> Result<Vec<Fetched>, ReadError> {
        let whole = self.inner.fetch(frames)?;
        Ok(whole
            .into_iter()
            .map(|(n, payload)| match payload {
                Ok(Payload::Prores(bytes)) => (
                    n,
                    Ok(Payload::ProresParts(parts_of(
                        &bytes,
                        &self.decoder,
                        0.02,
                        1,
                    ))),
                ),
                other => (n, other),
            })
            .collect())
    }

    fn bytes_fetched(&self) -> u64 {
        self.inner.bytes_fetched()
    }

    fn fetch_parts(&mut self, _: std::sync::Arc<dyn PartsPlanner>) -> bool {
        true
    }

    fn stream(self: Box<Self>, frames: Vec<u64>, window: Window) -> FrameStream {
        let limits = HttpLimits {
            deadline: Duration::from_secs(5),
            ..HttpLimits::default()
        };
        let more = HttpBytes::open(&self.more, limits).expect("opening the failing server");
        FrameStream::by_blocks(self, frames, window).with_reader(Box::new(more))
    }
}

#[test]
fn a_failed_request_for_more_of_a_frame_fails_the_video_never_an_entry() {
    // The server answers the one-byte probe a reader opens with, then 503 to everything
    // (so every completion of a short slice fails), or drops the connection.
    let path = clip_path();
    for (name, fail) in [
        ("503", Response::new(503, "text/plain", "busy")),
        (
            "a dropped connection",
            Response::dropped("multipart/byteranges; boundary=b"),
        ),
    ] {
        let file = path.clone();
        let served = std::sync::atomic::AtomicU64::new(0);
        let server = HttpServer::start(move |req| {
            if served.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                files_with_ranges(file.parent().unwrap(), true)(req)
            } else {
                fail.clone()
            }
        });
        let inner = source::open(path.to_str().unwrap(), SourceKind::File, 0.25).unwrap();
        let info = inner.info().clone();
        let source = ShortParts {
            inner,
            decoder: ReducedDecoder::new(4, info.width, info.height).unwrap(),
            more: url_of(&server),
        };
        let settings = Settings {
            stride: 5,
            fetch: FetchChoice::Parts,
            ..Settings::default()
        };
        let err = match analyze(Box::new(source), &settings, &mut |_| {}) {
            Ok(a) => panic!(
                "{name}: the analysis finished with {} of {} entries valid",
                a.document.analysis.valid_entries,
                a.document.frame_stats.len()
            ),
            Err(e) => e,
        };
        assert!(err.is_transient(), "{name}: {err}");
        assert!(matches!(err, AnalysisError::Read(_)), "{name}: {err:?}");
    }
}

#[test]
fn a_distant_link_gives_the_answer_a_local_run_gives() {
    // A server 40 ms of round trip away through a 50 MB/s link: frames fetched ahead,
    // many requests in flight, in parts and whole; the document is the local one.
    let path = clip_path();
    let (local, _) = run(path.to_str().unwrap(), FetchChoice::Whole);
    let server = HttpServer::start(files_with_multiranges(clips().path(), 200));
    let link = testkit::Link {
        bytes_per_second: Some(50_000_000),
        round_trip: Duration::from_millis(40),
    };
    let upstream = server.url().trim_start_matches("http://").to_owned();
    let proxy = testkit::Proxy::start_link(&upstream, link).unwrap();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let url = format!("http://{}/{name}", proxy.addr());
    for fetch in [FetchChoice::Parts, FetchChoice::Whole] {
        let (far, _) = run(&url, fetch);
        assert_eq!(similarities(&far), similarities(&local), "{fetch:?}");
    }
}

/// The scripted clip with its middle third re-encoded interlaced (ProRes with `ildct`):
/// the reduced decoder's planner declines those frames' tables, so over HTTP they are
/// fetched whole among frames fetched in parts before and after them.
fn partly_interlaced_clip() -> std::path::PathBuf {
    let dir = clips().path();
    let mixed = dir.join("partly-interlaced-960.mov");
    if mixed.exists() {
        return mixed;
    }
    let source = clip_path();
    let ffmpeg = |args: &[&str]| {
        let status = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y"])
            .args(args)
            .current_dir(dir)
            .status()
            .expect("running ffmpeg");
        assert!(status.success(), "ffmpeg {args:?}");
    };
    let source = source.to_str().unwrap();
    let third = |n: u32, interlaced: bool| {
        let trim = format!(
            "trim=start_frame={}:end_frame={},setpts=PTS-STARTPTS",
            20 * n,
            20 * (n + 1)
        );
        let flags: &[&str] = if interlaced {
            &["-flags", "+ildct+ilme", "-top", "1"]
        } else {
            &[]
        };
        let out = format!("third-{n}.mov");
        let mut args = vec![
            "-i",
            source,
            "-vf",
            &trim,
            "-c:v",
            "prores_ks",
            "-profile:v",
            "2",
        ];
        args.extend_from_slice(flags);
        args.push(&out);
        ffmpeg(&args);
    };
    third(0, false);
    third(1, true);
    third(2, false);
    let list = "file third-0.mov\nfile third-1.mov\nfile third-2.mov\n";
    std::fs::write(dir.join("thirds.txt"), list).unwrap();
    ffmpeg(&[
        "-f",
        "concat",
        "-safe",
        "0",
        "-i",
        "thirds.txt",
        "-c",
        "copy",
        "thirds-partial.mov",
    ]);
    std::fs::rename(dir.join("thirds-partial.mov"), &mixed).unwrap();
    mixed
}

#[test]
fn interlaced_frames_among_progressive_ones_over_http_give_the_local_answer() {
    // A frame the planner declines was handed to the analysis with its head only, and
    // the read-ahead panicked when its whole bytes came (issue 33).
    let path = partly_interlaced_clip();
    let (local, _) = run(path.to_str().unwrap(), FetchChoice::Whole);
    assert_eq!(local.frame_stats.len(), 12, "60 frames at stride 5");
    let server = HttpServer::start(files_with_multiranges(clips().path(), 200));
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let url = format!("{}/{name}", server.url());
    let (far, far_bytes) = run(&url, FetchChoice::Auto);
    assert_eq!(similarities(&far), similarities(&local));
    let (_, whole_bytes) = run(&url, FetchChoice::Whole);
    assert!(
        far_bytes < whole_bytes,
        "the progressive thirds in parts: {far_bytes} of {whole_bytes} bytes"
    );
}
