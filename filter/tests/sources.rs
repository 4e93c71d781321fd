//! The three ways to read a video — a local file, HTTP with Range requests, lazycache —
//! against real servers started by the tests, and the errors each gives.

mod support;

use std::path::Path;

use filter::document::OpticalFlowDocument;
use filter::source::quicktime::read_index;
use filter::source::ReadError;
use filter::source::{self, FileBytes, SourceKind};
use filter::{analyze, AnalysisError, Settings};
use support::synth::{scripted, truth};
use support::{clip, clips, lazycache};
use testkit::http::{files_with_ranges, HttpServer};

const ARCHIVE_DIR: &str = "files/RS03ASHS/PN03B/06-CAMHDA301/2017/06/14";
const MOVIE: &str = "CAMHDA301-20170614T231900.mov";

/// The scripted 640x360 clip, placed where the archive would keep it.
fn archived_clip() -> &'static Path {
    static PATH: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let src = clip("scripted-640-120.mov", 640, 360, 120);
        let dir = clips().path().join(ARCHIVE_DIR);
        std::fs::create_dir_all(&dir).expect("archive dir");
        let dst = dir.join(MOVIE);
        std::fs::copy(src, &dst).expect("copy clip");
        dst
    })
}

fn run(
    video: &str,
    kind: SourceKind,
    stride: u32,
) -> Result<(OpticalFlowDocument, u64), AnalysisError> {
    let source = source::open(video, kind, 0.5)?;
    let settings = Settings {
        stride,
        img_scale: 0.5,
        ..Settings::default()
    };
    let analysis = analyze(source, &settings, &mut |_| {})?;
    Ok((analysis.document, analysis.stats.bytes_fetched))
}

/// Sum of the sizes of the frames a run at `stride` needs.
fn needed_bytes(path: &Path, stride: u32) -> u64 {
    let mut bytes = FileBytes::open(path.to_str().expect("utf-8")).expect("open");
    let index = read_index(&mut bytes).expect("index");
    let plan = filter::plan::plan(index.num_frames(), 1, -1, stride, 10).expect("plan");
    plan.needed
        .iter()
        .map(|&f| index.samples[(f - 1) as usize].size as u64)
        .sum()
}

fn similarities(doc: &OpticalFlowDocument) -> Vec<(u64, [f64; 4], bool)> {
    doc.frame_stats
        .iter()
        .map(|s| {
            (
                s.frame_number,
                s.optical_flow.similarity,
                s.optical_flow.valid,
            )
        })
        .collect()
}

#[test]
fn http_reads_only_the_bytes_of_the_frames_needed() {
    let path = archived_clip();
    let server = HttpServer::start(files_with_ranges(clips().path(), true));
    let url = format!("{}/{ARCHIVE_DIR}/{MOVIE}", server.url());

    let (doc, fetched) = run(&url, SourceKind::Auto, 10).expect("analysis over HTTP");
    let needed = needed_bytes(path, 10);
    let served = server.body_bytes_sent();
    let file_size = std::fs::metadata(path).expect("size").len();
    eprintln!("needed {needed}, fetched {fetched}, served {served}, file {file_size}");
    assert_eq!(fetched, served, "the client counts what the server sent");
    assert!(
        served as f64 <= 1.2 * needed as f64,
        "served {served} for {needed} needed"
    );
    assert!(
        served < file_size / 5,
        "at stride 10 most of the file is never read"
    );

    let (local, _) = run(path.to_str().expect("utf-8"), SourceKind::File, 10).expect("local");
    assert_eq!(
        similarities(&doc),
        similarities(&local),
        "same bytes, same answer"
    );
    let tail = format!("/RS03ASHS/PN03B/06-CAMHDA301/2017/06/14/{MOVIE}");
    assert_eq!(
        doc.movie.url, tail,
        "movie.URL is the path below the archive root"
    );
    assert_eq!(doc.movie.cache_url, url);
}

#[test]
fn http_at_stride_one_reads_the_file_about_once() {
    let path = archived_clip();
    let server = HttpServer::start(files_with_ranges(clips().path(), true));
    let url = format!("{}/{ARCHIVE_DIR}/{MOVIE}", server.url());
    run(&url, SourceKind::Http, 1).expect("analysis over HTTP");
    let file_size = std::fs::metadata(path).expect("size").len();
    let served = server.body_bytes_sent();
    assert!(
        served <= file_size + file_size / 10,
        "served {served} of a {file_size}-byte file"
    );
    assert!(
        server.requests() < 20,
        "contiguous frames are merged: {} requests",
        server.requests()
    );
}

#[test]
fn http_errors_are_typed() {
    let server = HttpServer::start(files_with_ranges(clips().path(), true));
    let missing = format!("{}/files/nope.mov", server.url());
    let err = run(&missing, SourceKind::Auto, 10).unwrap_err();
    assert!(
        matches!(
            err,
            AnalysisError::Read(ReadError::HttpStatus { status: 404, .. })
        ),
        "{err}"
    );
    assert!(!err.is_transient());

    archived_clip();
    let no_ranges = HttpServer::start(files_with_ranges(clips().path(), false));
    let url = format!("{}/{ARCHIVE_DIR}/{MOVIE}", no_ranges.url());
    let err = run(&url, SourceKind::Auto, 10).unwrap_err();
    assert!(
        matches!(err, AnalysisError::Read(ReadError::NoRangeSupport { .. })),
        "{err}"
    );

    let port = testkit::free_port().expect("port");
    let err = run(
        &format!("http://127.0.0.1:{port}/a.mov"),
        SourceKind::Auto,
        10,
    )
    .unwrap_err();
    assert!(
        matches!(err, AnalysisError::Read(ReadError::Unreachable { .. })),
        "{err}"
    );
    assert!(err.is_transient(), "a network failure is worth retrying");
}

#[test]
fn lazycache_frames_scaled_on_the_server_give_the_same_motion() {
    archived_clip();
    let server = lazycache::start(clips().path().join("files"));
    let url = format!(
        "{}{}RS03ASHS/PN03B/06-CAMHDA301/2017/06/14/{MOVIE}",
        server.url(),
        lazycache::PREFIX
    );
    assert_eq!(SourceKind::detect(&url), SourceKind::Lazycache);
    let (doc, _) = run(&url, SourceKind::Auto, 10).expect("analysis through lazycache");
    assert_eq!(doc.movie.num_frames, 120);
    assert_eq!(
        doc.movie.url,
        format!("/RS03ASHS/PN03B/06-CAMHDA301/2017/06/14/{MOVIE}")
    );
    assert_eq!(doc.movie.cache_url, url);
    assert_eq!(doc.frame_stats.len(), 12);
    for stat in &doc.frame_stats {
        let of = &stat.optical_flow;
        assert!(of.valid, "frame {}", stat.frame_number);
        let t = truth(&scripted(of.from_frame, 640), &scripted(of.to_frame, 640));
        let err = (of.similarity[2] - t[2]).hypot(of.similarity[3] - t[3]);
        // ffmpeg's scaler on the server, not ours: a little looser than the file path.
        assert!(
            err < 1.0,
            "frame {}: {:?} vs {t:?}",
            stat.frame_number,
            of.similarity
        );
    }
}

#[test]
fn lazycache_error_replies_are_reported() {
    let server = lazycache::start(clips().path().join("files"));
    let url = format!("{}{}RS03ASHS/missing.mov", server.url(), lazycache::PREFIX);
    let err = run(&url, SourceKind::Lazycache, 10).unwrap_err();
    match &err {
        AnalysisError::Read(ReadError::Lazycache { message, .. }) => {
            assert!(message.contains("not found"), "{err}")
        }
        other => panic!("expected a lazycache error, got {other}"),
    }
    assert_eq!(err.exit_code(), 15);
}
