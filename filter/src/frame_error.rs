//! Why one frame could not be had, as a value with a kind: what the video itself holds
//! (a frame that does not decode) spoils only that frame's pairs, while a failed request
//! for more of a frame fails the whole video, as a failed first fetch does (one policy
//! for every request of a video).

use crate::source::ReadError;

/// Why one frame could not be decoded and prepared.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// A request for more of the frame failed (its source, not the frame): the analysis
    /// stops with this error, and a grid worker counts a failed attempt.
    #[error("fetching more of the frame failed: {0}")]
    Fetch(#[source] ReadError),
    /// Not fetched because another request for more of a frame of this video failed
    /// (that one's [`FrameError::Fetch`] is what the analysis reports).
    #[error("not fetched: another request for this video failed")]
    Abandoned,
    /// The source could not produce this one frame (lazycache's error for it, an image
    /// of another size).
    #[error("{0}")]
    Source(String),
    /// The frame's bytes do not decode.
    #[error("{0}")]
    Decode(String),
    /// OpenCV failed on the decoded frame.
    #[error("OpenCV: {0}")]
    Prepare(String),
}

impl FrameError {
    /// The kind, for counting failed frames of one video together.
    pub fn kind(&self) -> &'static str {
        match self {
            FrameError::Fetch(_) | FrameError::Abandoned => "fetch",
            FrameError::Source(_) => "source",
            FrameError::Decode(_) => "decode",
            FrameError::Prepare(_) => "opencv",
        }
    }

    /// True when fetching failed, which fails the video.
    pub fn is_fetch(&self) -> bool {
        self.kind() == "fetch"
    }
}
