//! Why an analysis could not run: the movie could not be read (`movie::ReadError`), or
//! the analysis itself refused or failed; with the exit code `filter analyze` gives each
//! reason and whether a grid worker should retry it.

use crate::source::ReadError;

/// A failure of the whole analysis (a single bad frame is not one: it gives an invalid
/// entry instead).
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// The movie could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// Too few frames for even one frame pair.
    #[error("{what}: the video has {frames} frames; a frame pair needs at least {needed}")]
    TooShort {
        /// The video.
        what: String,
        /// Frames in it.
        frames: u64,
        /// Frames one pair spans.
        needed: u64,
    },
    /// The job would produce more entries than accepted.
    #[error("the plan has {pairs} frame pairs, more than the {max} one document may hold; use a larger stride")]
    PlanTooLarge {
        /// Pairs planned.
        pairs: u64,
        /// The cap.
        max: u64,
    },
    /// The analysis parameters make no sense for this video.
    #[error("nothing to analyse: {0}")]
    NothingToDo(String),
    /// A failure inside libav or OpenCV that is not about the input.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AnalysisError {
    /// The exit code of `filter analyze` for this error; each kind of bad input has its
    /// own, so scripts can tell them apart. Documented in `filter analyze --help`.
    pub fn exit_code(&self) -> u8 {
        match self {
            AnalysisError::Read(e) => read_exit_code(e),
            AnalysisError::TooShort { .. } => 19,
            AnalysisError::NothingToDo(_) => 21,
            AnalysisError::PlanTooLarge { .. } => 30,
            AnalysisError::Internal(_) => 1,
        }
    }

    /// True when trying again later may succeed (network trouble, server errors, a
    /// deadline); false when the input itself is bad.
    pub fn is_transient(&self) -> bool {
        match self {
            AnalysisError::Read(e) => e.is_transient(),
            _ => false,
        }
    }
}

fn read_exit_code(e: &ReadError) -> u8 {
    match e {
        ReadError::NotFound { .. } => 10,
        ReadError::Io { .. } => 11,
        ReadError::HttpStatus { .. } => 12,
        ReadError::Unreachable { .. } => 13,
        ReadError::NoRangeSupport { .. } | ReadError::NoMultiRange { .. } => 14,
        ReadError::Lazycache { .. } => 15,
        ReadError::NotQuickTime { .. } => 16,
        ReadError::Corrupt { .. } => 17,
        ReadError::NoFrames { .. } => 18,
        ReadError::Unsupported { .. } => 20,
        ReadError::TooSlow { .. } => 22,
        ReadError::Redirect { .. } => 23,
        ReadError::NotRegular { .. } => 24,
        ReadError::TooManyFrames { .. } => 25,
        ReadError::FrameTooLarge { .. } => 26,
        ReadError::Implausible { .. } => 27,
        ReadError::SizeMismatch { .. } => 28,
        ReadError::ImageTooLarge { .. } => 29,
        ReadError::Forbidden { .. } => 31,
        ReadError::DeadlineExceeded { .. } => 32,
        ReadError::NoArchiveToken { .. } => 33,
        // A fault of this filter, as an internal error is.
        ReadError::ReadAhead { .. } => 1,
    }
}
