//! A stand-in for a lazycache server, serving a folder under
//! `/v1/org/oceanobservatories/rawdata/files/` with lazycache's documented endpoints:
//! directory JSON, movie metadata JSON, and `/frame/N[.png]?width=&height=` decoded and
//! scaled by the ffmpeg command line. Failures answer HTTP 200 with an `Error` key, as
//! lazycache does.

use std::path::{Path, PathBuf};
use std::process::Command;

use testkit::http::{HttpServer, Request, Response};

/// The URL prefix lazycache mirrors the archive under.
pub const PREFIX: &str = "/v1/org/oceanobservatories/rawdata/files/";

/// Starts a lazycache stand-in over `root`.
pub fn start(root: PathBuf) -> HttpServer {
    HttpServer::start(move |req| handle(&root, req))
}

fn error(message: &str) -> Response {
    Response::new(
        200,
        "application/json",
        serde_json::json!({ "Error": message }).to_string(),
    )
}

fn handle(root: &Path, req: &Request) -> Response {
    let Some(rel) = req.path().strip_prefix(PREFIX) else {
        return Response::not_found();
    };
    if let Some((movie, frame)) = rel.split_once(".mov/frame/") {
        let n: u64 = match frame.trim_end_matches(".png").parse() {
            Ok(n) if n >= 1 => n,
            _ => return error("bad frame number"),
        };
        let size = req.query("width").zip(req.query("height"));
        return frame_png(&root.join(format!("{movie}.mov")), n, size);
    }
    let path = root.join(rel.trim_end_matches('/'));
    if path.is_dir() {
        return directory(&path, rel);
    }
    if !path.is_file() {
        return error(&format!("file not found: {rel}"));
    }
    metadata(&path, req.path())
}

fn directory(path: &Path, rel: &str) -> Response {
    let (mut files, mut dirs) = (Vec::new(), Vec::new());
    for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() {
            dirs.push(name);
        } else {
            files.push(name);
        }
    }
    let body = serde_json::json!({ "Path": rel, "Files": files, "Directories": dirs });
    Response::new(200, "application/json", body.to_string())
}

fn metadata(path: &Path, url: &str) -> Response {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_packets"])
        .args([
            "-show_entries",
            "stream=nb_read_packets,duration",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("ffprobe");
    let probe: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let stream = &probe["streams"][0];
    let frames: u64 = stream["nb_read_packets"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if !out.status.success() || frames == 0 {
        return error("could not read the movie");
    }
    let duration: f64 = stream["duration"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0);
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let body = serde_json::json!({ "URL": url, "NumFrames": frames, "Duration": duration, "FileSize": size });
    Response::new(200, "application/json", body.to_string())
}

fn frame_png(movie: &Path, n: u64, size: Option<(&str, &str)>) -> Response {
    let mut filter = format!("select=eq(n\\,{})", n - 1);
    if let Some((w, h)) = size {
        filter.push_str(&format!(",scale={w}:{h}:flags=area"));
    }
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(movie)
        .args([
            "-vf",
            &filter,
            "-frames:v",
            "1",
            "-f",
            "image2pipe",
            "-vcodec",
            "png",
            "-",
        ])
        .output()
        .expect("ffmpeg");
    if !out.status.success() || out.stdout.is_empty() {
        return error(&format!("could not extract frame {n}"));
    }
    Response::new(200, "image/png", out.stdout)
}
