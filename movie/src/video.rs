//! What every frame source gives the analysis, and the limits every source keeps: a
//! video's facts, the payload of a frame, the `FrameSource` trait, and `movie.URL` as
//! the archive path of a video. Sources (`source`, `lazycache`) and the index reader
//! (`quicktime`) import from here, never from each other.

use common::paths::archive_relative;

use crate::ReadError;

/// The most frames a video may have: a 14-minute CamHD file has ~25,000; the largest
/// archive files (228 GB) a few hundred thousand. The index of this many costs 80 MB.
pub const MAX_FRAMES: u64 = 5_000_000;
/// The largest frame accepted: a 1080p ProRes 4444 XQ frame is under 2 MB, a 4K one
/// under 8 MB. Also the largest single read, so one frame always fits one.
pub const MAX_FRAME_BYTES: u64 = 32 << 20;

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
    fn fetch(&mut self, frames: &[u64]) -> Result<Vec<Fetched>, ReadError>;
    /// Bytes fetched so far.
    fn bytes_fetched(&self) -> u64;
}

/// `movie.URL` for a VIDEO string: for an archive or lazycache URL, its path below the
/// archive root with a leading slash (the grid's one archive-path rule,
/// [`common::paths::archive_relative`]); a local path or any other URL as given.
pub fn archive_path(video: &str) -> String {
    if !video.contains("://") {
        return video.to_owned();
    }
    archive_relative(video).map_or_else(|| video.to_owned(), |rel| format!("/{rel}"))
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
}
