//! Where frames come from: a QuickTime file read locally or over HTTP Range requests
//! (we decode), or a lazycache server (it decodes and scales). Each gives the analysis
//! the same thing: the payloads of the frames it asks for, in order.

use std::str::FromStr;

pub use crate::bytes::{ByteSource, FileBytes, HttpBytes};
pub use crate::http::HttpLimits;
pub use crate::lazycache::LazycacheSource;
use crate::quicktime::{read_index, MovieIndex};
pub use crate::reach::{Allowed, Reach};

use crate::is_prores;
use crate::AnalysisError;

/// Reads separated by at most this many bytes are merged into one, which is cheaper than
/// a second request or syscall and keeps the bytes fetched close to those needed.
const MERGE_GAP: u64 = 64 << 10;
/// The largest single read.
const MAX_READ: u64 = 32 << 20;

/// The most frames a video may have: a 14-minute CamHD file has ~25,000; the largest
/// archive files (228 GB) a few hundred thousand. The index of this many costs 80 MB.
pub const MAX_FRAMES: u64 = 5_000_000;
/// The largest frame accepted: a 1080p ProRes 4444 XQ frame is under 2 MB, a 4K one
/// under 8 MB. Also the largest single read, so one frame always fits one.
pub const MAX_FRAME_BYTES: u64 = MAX_READ;

/// The path of CamHD videos below the raw archive's root, as it appears in archive and
/// lazycache URLs.
const ARCHIVE_MARKER: &str = "/files/";
/// The path by which lazycache URLs are recognised.
const LAZYCACHE_MARKER: &str = "/v1/org/oceanobservatories/rawdata/files/";

/// What the analysis knows of a video before reading frames.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    /// `movie.URL`: the path below the archive root for archive and lazycache videos,
    /// else the path or URL given.
    pub url: String,
    /// `movie.cacheURL`: where frames are read from.
    pub cache_url: String,
    /// Frames in the video.
    pub num_frames: u64,
    /// Seconds.
    pub duration: f64,
    /// Full-resolution width.
    pub width: u32,
    /// Full-resolution height.
    pub height: u32,
    /// The codec's FourCC (for container sources).
    pub codec: [u8; 4],
    /// The largest frame's size in bytes as fetched, so the analysis can bound what it
    /// holds in memory at once.
    pub max_frame_bytes: u64,
    /// The whole video's size in bytes, when the source tells (0 when it does not), so
    /// the analysis can fit its deadline to it.
    pub bytes: u64,
}

/// One frame as fetched: compressed video to decode, or an image lazycache decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// One ProRes frame.
    Prores(Vec<u8>),
    /// An encoded image (PNG), already at the analysis size.
    Image(Vec<u8>),
}

/// A frame number with its payload, or why this one frame could not be had.
pub type Fetched = (u64, Result<Payload, String>);

/// A video from which frames can be fetched.
pub trait FrameSource: Send {
    /// The video's facts.
    fn info(&self) -> &VideoInfo;
    /// Fetches `frames` (ascending, 1-based). An `Err` means the source failed as a
    /// whole (network down, file gone); a per-frame `Err` only spoils that frame.
    fn fetch(&mut self, frames: &[u64]) -> Result<Vec<Fetched>, AnalysisError>;
    /// Bytes fetched so far.
    fn bytes_fetched(&self) -> u64;
}

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
) -> Result<Box<dyn FrameSource>, AnalysisError> {
    open_with(video, kind, img_scale, &HttpLimits::default())
}

/// Opens VIDEO for analysis at `img_scale`, HTTP requests within `limits`.
pub fn open_with(
    video: &str,
    kind: SourceKind,
    img_scale: f64,
    limits: &HttpLimits,
) -> Result<Box<dyn FrameSource>, AnalysisError> {
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

/// `movie.URL` for a VIDEO string: the part from the archive root on (with its leading
/// slash) when the string has one, else the string itself.
pub fn archive_path(video: &str) -> String {
    let no_query = video.split(['?', '#']).next().unwrap_or(video);
    match no_query.find(LAZYCACHE_MARKER) {
        Some(i) => no_query[i + LAZYCACHE_MARKER.len() - 1..].to_owned(),
        None if no_query.contains("://") => match no_query.find(ARCHIVE_MARKER) {
            Some(i) => no_query[i + ARCHIVE_MARKER.len() - 1..].to_owned(),
            None => video.to_owned(),
        },
        None => video.to_owned(),
    }
}

/// A QuickTime movie whose frames we read by their sample table and decode ourselves.
pub struct MovSource {
    bytes: Box<dyn ByteSource>,
    index: MovieIndex,
    info: VideoInfo,
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
    pub fn open(mut bytes: Box<dyn ByteSource>, video: &str) -> Result<MovSource, AnalysisError> {
        let index = read_index(bytes.as_mut())?;
        if !is_prores(&index.codec) {
            return Err(AnalysisError::Unsupported {
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
        Ok(MovSource { bytes, index, info })
    }
}

/// The first frame's own ProRes header must give the picture size the sample description
/// claims: a lying `stsd` would otherwise yield a "valid" document with a wrong centre.
fn check_first_frame(
    bytes: &mut dyn ByteSource,
    index: &MovieIndex,
    video: &str,
) -> Result<(), AnalysisError> {
    let first = index.samples[0];
    if first.size < 20 {
        return Err(AnalysisError::Corrupt {
            what: video.into(),
            detail: format!("frame 1 is only {} bytes", first.size),
        });
    }
    let mut head = [0u8; 20];
    bytes.read_at(first.offset, &mut head)?;
    if &head[4..8] != b"icpf" {
        return Err(AnalysisError::Corrupt {
            what: video.into(),
            detail: "frame 1 is not a ProRes frame (no icpf)".into(),
        });
    }
    let fw = u32::from(u16::from_be_bytes([head[16], head[17]]));
    let fh = u32::from(u16::from_be_bytes([head[18], head[19]]));
    // Interlaced frames give the full height too; allow a field-height header as well.
    if fw != index.width || (fh != index.height && fh * 2 != index.height) {
        return Err(AnalysisError::SizeMismatch {
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

    fn fetch(&mut self, frames: &[u64]) -> Result<Vec<Fetched>, AnalysisError> {
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

    fn bytes_fetched(&self) -> u64 {
        self.bytes.bytes_fetched()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_paths_are_found_in_archive_and_lazycache_urls() {
        let tail = "/RS03ASHS/PN03B/06-CAMHDA301/2017/06/14/CAMHDA301-20170614T231900.mov";
        assert_eq!(
            archive_path(&format!(
                "https://rawdata.oceanobservatories.org/files{tail}"
            )),
            tail
        );
        assert_eq!(
            archive_path(&format!(
                "http://cache:8080/v1/org/oceanobservatories/rawdata/files{tail}?x=1"
            )),
            tail
        );
        assert_eq!(archive_path("/data/files/a.mov"), "/data/files/a.mov");
        assert_eq!(archive_path("http://h/a.mov"), "http://h/a.mov");
    }

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
