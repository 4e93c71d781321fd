//! Why an analysis could not run, with the exit code `filter analyze` gives each reason
//! and whether a grid worker should retry it.

/// A failure of the whole analysis (a single bad frame is not one: it gives an invalid
/// entry instead).
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// A local video that does not exist.
    #[error("{path}: no such file")]
    NotFound {
        /// The path given.
        path: String,
    },
    /// A local file that could not be read.
    #[error("{path}: cannot read it: {source}")]
    Io {
        /// The path given.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An HTTP error status (404 and the like).
    #[error("{url}: the server answered HTTP {status}")]
    HttpStatus {
        /// The URL fetched.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The server could not be reached, or the connection failed.
    #[error("{url}: cannot reach the server: {detail}")]
    Unreachable {
        /// The URL fetched.
        url: String,
        /// The transport error.
        detail: String,
    },
    /// The server ignores Range requests; reading the whole file is not an option.
    #[error("{url}: the server does not support HTTP Range requests, which are needed to read only the frames analysed")]
    NoRangeSupport {
        /// The URL fetched.
        url: String,
    },
    /// lazycache answered with an `Error` key.
    #[error("{url}: lazycache says: {message}")]
    Lazycache {
        /// The URL fetched.
        url: String,
        /// lazycache's message.
        message: String,
    },
    /// The file is not a QuickTime movie at all.
    #[error("{what}: not a QuickTime (.mov) video file")]
    NotQuickTime {
        /// The video.
        what: String,
    },
    /// The movie's structure is damaged or cut short.
    #[error("{what}: corrupt or truncated video: {detail}")]
    Corrupt {
        /// The video.
        what: String,
        /// What is wrong.
        detail: String,
    },
    /// The movie has no video track, or one with no frames.
    #[error("{what}: the movie has no video frames")]
    NoFrames {
        /// The video.
        what: String,
    },
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
    /// A codec other than ProRes.
    #[error("{what}: video codec {codec:?} is not supported (only Apple ProRes)")]
    Unsupported {
        /// The video.
        what: String,
        /// The codec's FourCC.
        codec: String,
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
            AnalysisError::NotFound { .. } => 10,
            AnalysisError::Io { .. } => 11,
            AnalysisError::HttpStatus { .. } => 12,
            AnalysisError::Unreachable { .. } => 13,
            AnalysisError::NoRangeSupport { .. } => 14,
            AnalysisError::Lazycache { .. } => 15,
            AnalysisError::NotQuickTime { .. } => 16,
            AnalysisError::Corrupt { .. } => 17,
            AnalysisError::NoFrames { .. } => 18,
            AnalysisError::TooShort { .. } => 19,
            AnalysisError::Unsupported { .. } => 20,
            AnalysisError::NothingToDo(_) => 21,
            AnalysisError::Internal(_) => 1,
        }
    }

    /// True when trying again later may succeed (network trouble, server errors); false
    /// when the input itself is bad.
    pub fn is_transient(&self) -> bool {
        match self {
            AnalysisError::Unreachable { .. } | AnalysisError::Io { .. } => true,
            AnalysisError::HttpStatus { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}
