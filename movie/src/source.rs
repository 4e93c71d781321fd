//! Where frames come from: a QuickTime file read locally or over HTTP Range requests
//! (we decode), or a lazycache server (it decodes and scales). Each gives the analysis
//! the same thing: the payloads of the frames it asks for, in order.

use std::str::FromStr;
use std::sync::Arc;

use common::paths::LAZYCACHE_MARKER;

pub use crate::ahead::{FrameStream, Window};
pub use crate::bytes::{ByteSource, FileBytes, HttpBytes};
pub use crate::hosts::{GridShare, Hosts};
pub use crate::http::{Http2, HttpLimits};
pub use crate::lazycache::LazycacheSource;
use crate::quicktime::{read_index, MovieIndex};
pub use crate::reach::{Allowed, Reach};
pub use crate::tls::{ArchiveTls, TlsError};
pub use crate::video::{
    archive_path, Fetched, FrameParts, FrameSource, PartsPlanner, Payload, VideoInfo, MAX_FRAMES,
    MAX_FRAME_BYTES,
};

use crate::is_prores;
use crate::ReadError;

/// Reads separated by at most this many bytes are merged into one, which is cheaper than
/// a second request or syscall and keeps the bytes fetched close to those needed.
const MERGE_GAP: u64 = 64 << 10;
/// The largest single read: the largest frame, so one frame always fits one.
const MAX_READ: u64 = MAX_FRAME_BYTES;

/// How to read VIDEO (`--source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceKind {
    /// Decide from the VIDEO string.
    #[default]
    Auto,
    /// A local path or `file://` URL.
    File,
    /// An `http(s)://` URL of a `.mov`, read with Range requests.
    Http,
    /// A lazycache URL.
    Lazycache,
}

impl FromStr for SourceKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(SourceKind::Auto),
            "file" => Ok(SourceKind::File),
            "http" => Ok(SourceKind::Http),
            "lazycache" => Ok(SourceKind::Lazycache),
            _ => Err(format!("{s:?} is not one of auto, file, http, lazycache")),
        }
    }
}

impl SourceKind {
    /// The kind a VIDEO string means under `auto`.
    pub fn detect(video: &str) -> SourceKind {
        let lower = video.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            if video.contains(LAZYCACHE_MARKER) {
                SourceKind::Lazycache
            } else {
                SourceKind::Http
            }
        } else {
            SourceKind::File
        }
    }
}

/// Opens VIDEO for analysis at `img_scale`, with the default HTTP limits.
pub fn open(
    video: &str,
    kind: SourceKind,
    img_scale: f64,
) -> Result<Box<dyn FrameSource>, ReadError> {
    open_with(video, kind, img_scale, &HttpLimits::default())
}

/// Opens VIDEO for analysis at `img_scale`, HTTP requests within `limits`.
pub fn open_with(
    video: &str,
    kind: SourceKind,
    img_scale: f64,
    limits: &HttpLimits,
) -> Result<Box<dyn FrameSource>, ReadError> {
    let kind = match kind {
        SourceKind::Auto => SourceKind::detect(video),
        k => k,
    };
    Ok(match kind {
        SourceKind::Lazycache => Box::new(LazycacheSource::open(video, img_scale, limits.clone())?),
        SourceKind::Http => Box::new(MovSource::open(
            Box::new(HttpBytes::open(video, limits.clone())?),
            video,
        )?),
        SourceKind::File | SourceKind::Auto => {
            let path = video.strip_prefix("file://").unwrap_or(video);
            let file = FileBytes::open_within(path, &limits.reach)?;
            Box::new(MovSource::open(Box::new(file), video)?)
        }
    })
}

/// A QuickTime movie whose frames we read by their sample table and decode ourselves.
pub struct MovSource {
    bytes: Box<dyn ByteSource>,
    index: MovieIndex,
    info: VideoInfo,
    /// Set: ProRes frames are fetched as the parts it plans (see [`FrameSource::fetch_parts`]).
    planner: Option<Arc<dyn PartsPlanner>>,
}

impl std::fmt::Debug for MovSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MovSource")
            .field("info", &self.info)
            .finish()
    }
}

impl MovSource {
    /// Reads the index of the movie behind `bytes`.
    pub fn open(mut bytes: Box<dyn ByteSource>, video: &str) -> Result<MovSource, ReadError> {
        let index = read_index(bytes.as_mut())?;
        if !is_prores(&index.codec) {
            return Err(ReadError::Unsupported {
                what: video.into(),
                codec: index.codec_name(),
            });
        }
        check_first_frame(bytes.as_mut(), &index, video)?;
        let info = VideoInfo {
            bytes: bytes.size(),
            url: archive_path(video),
            cache_url: video.to_owned(),
            num_frames: index.num_frames(),
            duration: index.duration,
            width: index.width,
            height: index.height,
            codec: index.codec,
            max_frame_bytes: index
                .samples
                .iter()
                .map(|s| u64::from(s.size))
                .max()
                .unwrap_or(0),
        };
        Ok(MovSource {
            bytes,
            index,
            info,
            planner: None,
        })
    }
}

/// The first frame's own ProRes header must give the picture size the sample description
/// claims: a lying `stsd` would otherwise yield a "valid" document with a wrong centre.
fn check_first_frame(
    bytes: &mut dyn ByteSource,
    index: &MovieIndex,
    video: &str,
) -> Result<(), ReadError> {
    let first = index.samples[0];
    if first.size < 20 {
        return Err(ReadError::Corrupt {
            what: video.into(),
            detail: format!("frame 1 is only {} bytes", first.size),
        });
    }
    let mut head = [0u8; 20];
    bytes.read_at(first.offset, &mut head)?;
    if &head[4..8] != b"icpf" {
        return Err(ReadError::Corrupt {
            what: video.into(),
            detail: "frame 1 is not a ProRes frame (no icpf)".into(),
        });
    }
    let fw = u32::from(u16::from_be_bytes([head[16], head[17]]));
    let fh = u32::from(u16::from_be_bytes([head[18], head[19]]));
    // Interlaced frames give the full height too; allow a field-height header as well.
    if fw != index.width || (fh != index.height && fh * 2 != index.height) {
        return Err(ReadError::SizeMismatch {
            what: video.into(),
            index_width: index.width,
            index_height: index.height,
            frame_width: fw,
            frame_height: fh,
        });
    }
    Ok(())
}

impl FrameSource for MovSource {
    fn info(&self) -> &VideoInfo {
        &self.info
    }

    fn fetch(&mut self, frames: &[u64]) -> Result<Vec<Fetched>, ReadError> {
        self.fetch_whole(frames)
    }

    fn fetch_parts(&mut self, planner: Arc<dyn PartsPlanner>) -> bool {
        self.planner = Some(planner);
        true
    }

    fn is_remote(&self) -> bool {
        self.bytes.is_remote()
    }

    fn bytes_fetched(&self) -> u64 {
        self.bytes.bytes_fetched()
    }

    fn stream(self: Box<Self>, frames: Vec<u64>, window: Window) -> FrameStream {
        let name = self.info.cache_url.clone();
        let frames = frames
            .into_iter()
            .map(|f| {
                let s = self.index.samples[(f - 1) as usize];
                (f, (s.offset, s.size as usize))
            })
            .collect();
        crate::ahead::start(
            crate::ahead::Video {
                bytes: self.bytes,
                frames,
                planner: self.planner,
                name,
            },
            window,
        )
    }
}

impl MovSource {
    /// Whole frames, reads of frames close together merged.
    fn fetch_whole(&mut self, frames: &[u64]) -> Result<Vec<Fetched>, ReadError> {
        let samples: Vec<_> = frames
            .iter()
            .map(|&f| self.index.samples[(f - 1) as usize])
            .collect();
        let mut out = Vec::with_capacity(frames.len());
        let mut i = 0;
        while i < frames.len() {
            // Merge the following frames into this read while they sit close behind it.
            let start = samples[i].offset;
            let mut end = start + samples[i].size as u64;
            let mut j = i + 1;
            while j < frames.len() {
                let s = samples[j];
                let s_end = s.offset + s.size as u64;
                if s.offset < end || s.offset - end > MERGE_GAP || s_end - start > MAX_READ {
                    break;
                }
                end = s_end;
                j += 1;
            }
            let mut buf = vec![0; (end - start) as usize];
            self.bytes.read_at(start, &mut buf)?;
            for k in i..j {
                let at = (samples[k].offset - start) as usize;
                let data = buf[at..at + samples[k].size as usize].to_vec();
                out.push((frames[k], Ok(Payload::Prores(data))));
            }
            i = j;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_detects_the_source_kind() {
        assert_eq!(SourceKind::detect("/x/a.mov"), SourceKind::File);
        assert_eq!(SourceKind::detect("HTTPS://h/a.mov"), SourceKind::Http);
        assert_eq!(
            SourceKind::detect("http://h:8080/v1/org/oceanobservatories/rawdata/files/a.mov"),
            SourceKind::Lazycache
        );
    }
}
