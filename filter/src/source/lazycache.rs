//! A lazycache server: movie metadata from its JSON endpoint, frames from `/frame/N`
//! scaled on the server to the analysis size. lazycache answers HTTP 200 with an
//! `Error` key when it fails, so every JSON reply is checked for one.

use std::io::Read;
use std::time::Duration;

use serde_json::Value;

use super::{archive_path, Fetched, FrameSource, Payload, VideoInfo};
use crate::decode::analysis_size;
use crate::AnalysisError;

/// The largest frame image accepted (a full-size 1080p PNG is about 3-4 MB).
const MAX_FRAME_BYTES: u64 = 64 << 20;

/// Frames from a lazycache server.
#[derive(Debug)]
pub struct LazycacheSource {
    agent: ureq::Agent,
    url: String,
    info: VideoInfo,
    target: (usize, usize),
    fetched: u64,
}

impl LazycacheSource {
    /// Reads the movie's metadata, and the size of its frames from frame 1.
    pub fn open(url: &str, img_scale: f64) -> Result<LazycacheSource, AnalysisError> {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(15))
            .timeout_read(Duration::from_secs(120))
            .build();
        let url = url.trim_end_matches('/').to_owned();
        let mut this = LazycacheSource {
            agent,
            url: url.clone(),
            info: VideoInfo {
                url: archive_path(&url),
                cache_url: url.clone(),
                num_frames: 0,
                duration: 0.0,
                width: 0,
                height: 0,
                codec: *b"png ",
            },
            target: (0, 0),
            fetched: 0,
        };
        let meta = this.get_json(&url)?;
        this.info.num_frames = meta.get("NumFrames").and_then(Value::as_u64).unwrap_or(0);
        this.info.duration = meta.get("Duration").and_then(Value::as_f64).unwrap_or(0.0);
        if this.info.num_frames == 0 {
            return Err(AnalysisError::NoFrames { what: url });
        }
        // lazycache's metadata has no frame size; frame 1's PNG header has it.
        let first = this.get_bytes(&format!("{url}/frame/1"))?;
        let (w, h) = png_size(&first).ok_or_else(|| AnalysisError::Lazycache {
            url: url.clone(),
            message: "frame 1 is not a PNG image".into(),
        })?;
        (this.info.width, this.info.height) = (w, h);
        this.target = analysis_size(w, h, img_scale);
        Ok(this)
    }

    fn get(&self, url: &str) -> Result<ureq::Response, AnalysisError> {
        match self.agent.get(url).call() {
            Ok(r) => Ok(r),
            Err(ureq::Error::Status(status, _)) => Err(AnalysisError::HttpStatus {
                url: url.into(),
                status,
            }),
            Err(ureq::Error::Transport(t)) => Err(AnalysisError::Unreachable {
                url: url.into(),
                detail: t.to_string(),
            }),
        }
    }

    /// Reads a response's body (bounded) and counts it.
    fn read_body(&mut self, url: &str, response: ureq::Response) -> Result<Vec<u8>, AnalysisError> {
        let mut body = Vec::new();
        response
            .into_reader()
            .take(MAX_FRAME_BYTES)
            .read_to_end(&mut body)
            .map_err(|e| AnalysisError::Unreachable {
                url: url.into(),
                detail: e.to_string(),
            })?;
        self.fetched += body.len() as u64;
        Ok(body)
    }

    fn get_bytes(&mut self, url: &str) -> Result<Vec<u8>, AnalysisError> {
        let response = self.get(url)?;
        let json = response.content_type().contains("json");
        let body = self.read_body(url, response)?;
        if json || body.first() == Some(&b'{') {
            return Err(lazycache_error(url, &body));
        }
        Ok(body)
    }

    fn get_json(&mut self, url: &str) -> Result<Value, AnalysisError> {
        let response = self.get(url)?;
        let body = self.read_body(url, response)?;
        let value: Value = serde_json::from_slice(&body).map_err(|_| AnalysisError::Lazycache {
            url: url.into(),
            message: "the reply is not JSON (is this a lazycache URL?)".into(),
        })?;
        match value.get("Error") {
            Some(e) => Err(AnalysisError::Lazycache {
                url: url.into(),
                message: e.as_str().map_or_else(|| e.to_string(), str::to_owned),
            }),
            None => Ok(value),
        }
    }
}

/// The error in a JSON reply where an image was expected.
fn lazycache_error(url: &str, body: &[u8]) -> AnalysisError {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.get("Error")
                .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_owned))
        })
        .unwrap_or_else(|| "a JSON reply where a frame image was expected".into());
    AnalysisError::Lazycache {
        url: url.into(),
        message,
    }
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(png: &[u8]) -> Option<(u32, u32)> {
    if png.len() < 24 || &png[..8] != b"\x89PNG\r\n\x1a\n" || &png[12..16] != b"IHDR" {
        return None;
    }
    let w = u32::from_be_bytes(png[16..20].try_into().ok()?);
    let h = u32::from_be_bytes(png[20..24].try_into().ok()?);
    Some((w, h))
}

impl FrameSource for LazycacheSource {
    fn info(&self) -> &VideoInfo {
        &self.info
    }

    fn fetch(&mut self, frames: &[u64]) -> Result<Vec<Fetched>, AnalysisError> {
        let (w, h) = self.target;
        let mut out = Vec::with_capacity(frames.len());
        for &f in frames {
            let url = format!("{}/frame/{f}?width={w}&height={h}", self.url);
            match self.get_bytes(&url) {
                Ok(png) => out.push((f, Ok(Payload::Image(png)))),
                // One frame lazycache could not produce spoils only that frame.
                Err(e @ AnalysisError::Lazycache { .. }) => out.push((f, Err(e.to_string()))),
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    fn bytes_fetched(&self) -> u64 {
        self.fetched
    }
}
