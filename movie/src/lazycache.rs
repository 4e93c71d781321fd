//! A lazycache server: movie metadata from its JSON endpoint, frames from `/frame/N`
//! scaled on the server to the analysis size. lazycache answers HTTP 200 with an
//! `Error` key when it fails, so every JSON reply is checked for one.

use serde_json::Value;

use crate::analysis_size;
use crate::http::{Http, HttpLimits};
use crate::video::{archive_path, Fetched, FrameSource, Payload, VideoInfo, MAX_FRAMES};
use crate::ReadError;

/// The largest frame image accepted (a full-size 1080p PNG is about 3-4 MB); an image,
/// not a movie frame, so not [`crate::MAX_FRAME_BYTES`].
const MAX_IMAGE_BYTES: u64 = 64 << 20;
/// The largest metadata reply accepted.
const MAX_META_BYTES: u64 = 1 << 20;
/// The most pixels a frame image may claim in its header (8K by 8K).
const MAX_IMAGE_PIXELS: u64 = 8192 * 8192;
/// Fewer bytes per frame than this in lazycache's FileSize means its NumFrames lies (a
/// CamHD ProRes frame is ~580 KB; even a black frame takes kilobytes).
const MIN_BYTES_PER_FRAME: u64 = 1024;

/// Frames from a lazycache server.
#[derive(Debug)]
pub struct LazycacheSource {
    http: Http,
    url: String,
    info: VideoInfo,
    target: (usize, usize),
    fetched: u64,
}

impl LazycacheSource {
    /// Reads the movie's metadata, and the size of its frames from frame 1.
    pub fn open(
        url: &str,
        img_scale: f64,
        limits: HttpLimits,
    ) -> Result<LazycacheSource, ReadError> {
        let url = url.trim_end_matches('/').to_owned();
        let mut this = LazycacheSource {
            http: Http::new(limits),
            url: url.clone(),
            info: VideoInfo {
                url: archive_path(&url),
                cache_url: url.clone(),
                num_frames: 0,
                duration: 0.0,
                width: 0,
                height: 0,
                codec: *b"png ",
                max_frame_bytes: MAX_IMAGE_BYTES,
                bytes: 0,
            },
            target: (0, 0),
            fetched: 0,
        };
        let meta = this.get_json(&url)?;
        this.info.num_frames = meta.get("NumFrames").and_then(Value::as_u64).unwrap_or(0);
        this.info.duration = meta.get("Duration").and_then(Value::as_f64).unwrap_or(0.0);
        if this.info.num_frames == 0 {
            return Err(ReadError::NoFrames { what: url });
        }
        if this.info.num_frames > MAX_FRAMES {
            return Err(ReadError::TooManyFrames {
                what: url,
                frames: this.info.num_frames,
                max: MAX_FRAMES,
            });
        }
        match meta.get("FileSize").and_then(Value::as_u64) {
            Some(size) if this.info.num_frames.saturating_mul(MIN_BYTES_PER_FRAME) > size => {
                return Err(ReadError::Implausible {
                    what: url,
                    detail: format!(
                        "NumFrames {} in a file of {size} bytes",
                        this.info.num_frames
                    ),
                });
            }
            Some(size) => this.info.bytes = size,
            None => {
                // Nothing to check the count against: it must at least fit the deadline.
                let fit = this
                    .http
                    .limits()
                    .video
                    .as_ref()
                    .map_or(MAX_FRAMES, |d| d.frames_that_fit());
                if this.info.num_frames > fit {
                    return Err(ReadError::Implausible {
                        what: url,
                        detail: format!(
                            "NumFrames {} without a FileSize to check it against, more than the {fit} that fit the video's deadline of {} s at {} frames/s (raise --video-deadline if it is real)",
                            this.info.num_frames,
                            this.http.limits().video.as_ref().map_or(0, |d| d.budget().as_secs()),
                            crate::FRAMES_PER_SECOND
                        ),
                    });
                }
            }
        }
        // lazycache's metadata has no frame size; frame 1's PNG header has it.
        let first = this.get_bytes(&format!("{url}/frame/1"))?;
        let (w, h) = png_size(&first).ok_or_else(|| ReadError::Lazycache {
            url: url.clone(),
            message: "frame 1 is not a PNG image".into(),
        })?;
        if u64::from(w) * u64::from(h) > MAX_IMAGE_PIXELS || w == 0 || h == 0 {
            return Err(ReadError::ImageTooLarge {
                what: url,
                width: w,
                height: h,
            });
        }
        (this.info.width, this.info.height) = (w, h);
        this.target = analysis_size(w, h, img_scale);
        // A PNG of the analysis size, even stored uncompressed, is about 4 bytes a pixel.
        let (tw, th) = this.target;
        this.info.max_frame_bytes = ((tw * th * 4) as u64 + (1 << 20)).min(MAX_IMAGE_BYTES);
        Ok(this)
    }

    /// A bounded GET whose body is counted.
    fn fetch_body(&mut self, url: &str, max: u64) -> Result<(Vec<u8>, bool), ReadError> {
        let (body, json) = fetch_body(&self.http, url, max)?;
        self.fetched += body.len() as u64;
        Ok((body, json))
    }

    fn get_bytes(&mut self, url: &str) -> Result<Vec<u8>, ReadError> {
        let (body, json) = self.fetch_body(url, self.info.max_frame_bytes)?;
        image_or_error(url, body, json)
    }

    /// A frame's image as the analysis takes it: one of the size asked for, or why this
    /// one frame could not be had; an error of the source fails the video.
    fn frame(
        &self,
        image: Result<Vec<u8>, ReadError>,
    ) -> Result<Result<Payload, String>, ReadError> {
        let (w, h) = self.target;
        match image {
            // The header says the size before anything is decoded.
            Ok(png) => Ok(match png_size(&png) {
                Some((pw, ph)) if (pw as usize, ph as usize) == (w, h) => Ok(Payload::Image(png)),
                Some((pw, ph)) => Err(format!(
                    "lazycache sent a {pw}x{ph} image; {w}x{h} was asked for"
                )),
                None => Err("lazycache sent something not a PNG".into()),
            }),
            // One frame lazycache could not produce spoils only that frame.
            Err(e @ ReadError::Lazycache { .. }) => Ok(Err(e.to_string())),
            Err(e) => Err(e),
        }
    }

    fn get_json(&mut self, url: &str) -> Result<Value, ReadError> {
        let (body, _) = self.fetch_body(url, MAX_META_BYTES)?;
        let value: Value = serde_json::from_slice(&body).map_err(|_| ReadError::Lazycache {
            url: url.into(),
            message: "the reply is not JSON (is this a lazycache URL?)".into(),
        })?;
        match value.get("Error") {
            Some(e) => Err(ReadError::Lazycache {
                url: url.into(),
                message: e.as_str().map_or_else(|| e.to_string(), str::to_owned),
            }),
            None => Ok(value),
        }
    }
}

/// Frames asked of lazycache at once: it decodes and scales each, so a few keep it
/// busy, and far from it they hide each other's round trips.
const PARALLEL_FRAMES: usize = 8;

/// A reply's body, and whether it is JSON.
type Body = (Vec<u8>, bool);

/// A bounded GET: the body (at most `max` bytes) and whether it is JSON.
fn fetch_body(http: &Http, url: &str, max: u64) -> Result<Body, ReadError> {
    // Frames come scaled down; a full-size 1080p PNG is ~4 MB, so expect that much.
    let reply = http.get(url, None, 4 << 20)?;
    let json = reply.content_type().contains("json");
    Ok((reply.body(max)?, json))
}

/// An image body, or lazycache's error where it sent JSON instead.
fn image_or_error(url: &str, body: Vec<u8>, json: bool) -> Result<Vec<u8>, ReadError> {
    if json || body.first() == Some(&b'{') {
        return Err(lazycache_error(url, &body));
    }
    Ok(body)
}

/// The error in a JSON reply where an image was expected.
fn lazycache_error(url: &str, body: &[u8]) -> ReadError {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.get("Error")
                .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_owned))
        })
        .unwrap_or_else(|| "a JSON reply where a frame image was expected".into());
    ReadError::Lazycache {
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

    /// Each frame a request of its own, [`PARALLEL_FRAMES`] at once: lazycache decodes
    /// and scales every frame, and far from it each request would otherwise wait for
    /// its round trip before the next is asked.
    fn fetch(&mut self, frames: &[u64]) -> Result<Vec<Fetched>, ReadError> {
        let (w, h) = self.target;
        let mut out = Vec::with_capacity(frames.len());
        for group in frames.chunks(PARALLEL_FRAMES) {
            let replies: Vec<(u64, Result<Body, ReadError>)> = std::thread::scope(|scope| {
                let handles: Vec<_> = group
                    .iter()
                    .map(|&f| {
                        let url = format!("{}/frame/{f}?width={w}&height={h}", self.url);
                        let http = &self.http;
                        let max = self.info.max_frame_bytes;
                        (f, scope.spawn(move || fetch_body(http, &url, max)))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|(f, h)| {
                        let reply = h.join().unwrap_or_else(|_| {
                            Err(ReadError::Lazycache {
                                url: self.url.clone(),
                                message: "a frame request thread failed".into(),
                            })
                        });
                        (f, reply)
                    })
                    .collect()
            });
            for (f, reply) in replies {
                let url = format!("{}/frame/{f}", self.url);
                let image = reply.and_then(|(body, json)| {
                    self.fetched += body.len() as u64;
                    image_or_error(&url, body, json)
                });
                out.push((f, self.frame(image)?));
            }
        }
        Ok(out)
    }

    fn bytes_fetched(&self) -> u64 {
        self.fetched
    }

    fn stream(self: Box<Self>, frames: Vec<u64>, window: crate::Window) -> crate::FrameStream {
        crate::FrameStream::by_blocks(self, frames, window)
    }
}
