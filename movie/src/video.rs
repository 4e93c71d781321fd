//! What every frame source gives the analysis, and the limits every source keeps: a
//! video's facts, the payload of a frame, the `FrameSource` trait, and `movie.URL` as
//! the archive path of a video. Sources (`source`, `lazycache`) and the index reader
//! (`quicktime`) import from here, never from each other.

use common::paths::archive_relative;

use crate::ReadError;

/// The most frames a video may have: a 14-minute CamHD file has ~25,000; the largest
/// archive files (228 GB) a few hundred thousand. The index of this many costs 80 MB.
/// The document's own bound, so a video the filter reads is one a document may describe.
pub use flowdoc::limits::MAX_FRAMES;
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
    /// Parts of one ProRes frame: those a [`PartsPlanner`] asked for.
    ProresParts(FrameParts),
    /// An encoded image (PNG), already at the analysis size.
    Image(Vec<u8>),
}

/// A frame of which only some byte ranges were fetched; the rest was never read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameParts {
    /// Where the frame starts in the file, to fetch more of it.
    pub at: u64,
    /// The whole frame's bytes.
    pub len: usize,
    /// What was fetched: `(offset in the frame, bytes)`, sorted by offset, apart.
    pub fetched: Vec<(usize, Vec<u8>)>,
}

impl FrameParts {
    /// The fetched bytes from `offset` on, as far as they go unbroken (empty when that
    /// byte was not fetched).
    pub fn from(&self, offset: usize) -> &[u8] {
        let i = self.fetched.partition_point(|(o, _)| *o <= offset);
        match i.checked_sub(1).map(|i| &self.fetched[i]) {
            Some((o, bytes)) if offset - o < bytes.len() => &bytes[offset - o..],
            _ => &[],
        }
    }

    /// Adds `(offset, bytes)` pieces fetched later, merging those that touch or overlap.
    pub fn add(&mut self, more: Vec<(usize, Vec<u8>)>) {
        let mut all = std::mem::take(&mut self.fetched);
        all.extend(
            more.into_iter()
                .filter(|(o, b)| !b.is_empty() && o + b.len() <= self.len),
        );
        all.sort_by_key(|(o, _)| *o);
        for (o, bytes) in all {
            match self.fetched.last_mut() {
                Some((po, pb)) if o <= *po + pb.len() => {
                    let end = o + bytes.len();
                    if end > *po + pb.len() {
                        let skip = *po + pb.len() - o;
                        pb.extend_from_slice(&bytes[skip..]);
                    }
                }
                _ => self.fetched.push((o, bytes)),
            }
        }
    }

    /// Bytes held.
    pub fn fetched(&self) -> usize {
        self.fetched.iter().map(|(_, b)| b.len()).sum()
    }
}

/// Decides which bytes of each frame to fetch, having seen the frame's first bytes (a
/// decoder that reads little of each frame plans with it; see `filter::parts`).
pub trait PartsPlanner: Send + Sync {
    /// How many bytes at a frame's start [`PartsPlanner::plan`] needs to see.
    fn head_len(&self) -> usize;
    /// The `(offset, length)` ranges of a `len`-byte frame to fetch, sorted and apart,
    /// given its first bytes; `None` for the whole frame.
    fn plan(&self, head: &[u8], len: usize) -> Option<Vec<(usize, usize)>>;
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
    /// Have [`FrameSource::stream`] fetch ProRes frames as the parts `planner` asks for,
    /// when this source can (true): a file, or an HTTP server with multi-range requests.
    fn fetch_parts(&mut self, planner: std::sync::Arc<dyn PartsPlanner>) -> bool {
        let _ = planner;
        false
    }
    /// True when the video is read over a network.
    fn is_remote(&self) -> bool {
        true
    }
    /// Starts fetching `frames` (ascending, 1-based) ahead of their use, within
    /// `window`, and gives them in order. By default a thread calls
    /// [`FrameSource::fetch`] a few frames at a time; a movie read by its sample table
    /// keeps many requests in flight instead (`crate::ahead`).
    fn stream(self: Box<Self>, frames: Vec<u64>, window: crate::Window) -> crate::FrameStream;
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
    fn a_frame_in_parts_gives_what_it_holds_and_merges_what_comes_later() {
        let mut f = FrameParts {
            at: 1000,
            len: 100,
            fetched: vec![(0, vec![1; 10]), (50, vec![2; 10])],
        };
        assert_eq!(f.from(5), &[1; 5]);
        assert_eq!(f.from(10), &[] as &[u8]);
        assert_eq!(f.from(55), &[2; 5]);
        f.add(vec![(8, vec![3; 4]), (60, vec![4; 5]), (95, vec![5; 10])]);
        assert_eq!(f.fetched.len(), 2, "{:?}", f.fetched);
        assert_eq!(f.from(0), &[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3]);
        assert_eq!(f.from(50).len(), 15);
        assert_eq!(f.fetched(), 27, "the span past the frame's end is dropped");
    }

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
