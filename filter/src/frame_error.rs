//! Why one frame could not be had, as a value with a kind: what the video itself holds
//! (a frame that does not decode) spoils only that frame's pairs, while a failed request
//! for more of a frame fails the whole video, as a failed first fetch does (one policy
//! for every request of a video). Failed frames are counted by kind for the log.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::source::ReadError;
use crate::AnalysisError;

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

/// A frame's outcome, shared by the pairs that use it.
pub type Shared<T> = Arc<Result<T, FrameError>>;

/// The error of the first frame whose fetching failed (the others gave up after it).
pub(crate) fn first_fetch_error<T>(
    frames: impl Iterator<Item = Result<T, FrameError>>,
) -> AnalysisError {
    let mut fetch_errors = frames.filter_map(Result::err).filter(FrameError::is_fetch);
    match fetch_errors.find(|e| matches!(e, FrameError::Fetch(_))) {
        Some(FrameError::Fetch(e)) => e.into(),
        _ => AnalysisError::Internal("frames abandoned without a failed request".into()),
    }
}

/// The frames of a video that could not be had, counted by kind with the first message
/// of each kind, for one log line per kind.
#[derive(Debug, Default)]
pub(crate) struct FrameErrors(BTreeMap<&'static str, (u64, String)>);

impl FrameErrors {
    /// Counts the failed frames of a decoded block and wraps each frame for sharing; a
    /// frame whose source failed fails the video (a failed attempt, as when the first
    /// fetch fails), never an invalid entry.
    pub(crate) fn count<T>(
        &mut self,
        decoded: Vec<(u64, Result<T, FrameError>)>,
    ) -> Result<Vec<(u64, Shared<T>)>, AnalysisError> {
        if decoded
            .iter()
            .any(|(_, f)| f.as_ref().is_err_and(FrameError::is_fetch))
        {
            return Err(first_fetch_error(decoded.into_iter().map(|(_, f)| f)));
        }
        let mut out = Vec::with_capacity(decoded.len());
        for (n, frame) in decoded {
            if let Err(e) = &frame {
                let (count, first) = self.0.entry(e.kind()).or_default();
                if *count == 0 {
                    *first = format!("frame {n}: {e}");
                }
                *count += 1;
            }
            out.push((n, Arc::new(frame)));
        }
        Ok(out)
    }

    /// One warning per kind of failed frame, with how many and the first.
    pub(crate) fn log(&self, video: &str) {
        for (kind, (count, first)) in &self.0 {
            tracing::warn!(video, count, kind, first = %first, "frames that could not be had");
        }
    }
}
