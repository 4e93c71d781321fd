//! Why a movie could not be read: missing, unreachable, refused, too slow, or lying about
//! itself; and whether trying again later may help. (What the analysis makes of these,
//! with `filter analyze`'s exit codes, is the filter's business.)

/// A failure to read a movie as a whole (a single bad frame is not one: the analysis
/// gives an invalid entry for it instead).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
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
    /// The server answered a request for several ranges with something other than
    /// exactly those ranges (the whole file, one range, others): only whole frames are
    /// asked of it from then on.
    #[error("{url}: the server does not answer multi-range requests as asked: {detail}")]
    NoMultiRange {
        /// The URL fetched.
        url: String,
        /// What it answered.
        detail: String,
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
    /// A codec other than ProRes.
    #[error("{what}: video codec {codec:?} is not supported (only Apple ProRes)")]
    Unsupported {
        /// The video.
        what: String,
        /// The codec's FourCC.
        codec: String,
    },
    /// A server too slow: a request ran past its time (`--http-deadline`, `--http-min-rate`).
    #[error("{url}: the server is too slow: a request ran past its time (see --http-min-rate and --http-deadline)")]
    TooSlow {
        /// The URL fetched.
        url: String,
    },
    /// No token of the grid's archive budget (`GRID_ARCHIVE_CONNECTIONS`) came free for a
    /// request within its time: the budget is in use, or nobody keeps its tokens.
    #[error("{url}: no token of the grid's archive budget came free in time: the budget (GRID_ARCHIVE_CONNECTIONS) is all in use (gridctl status shows it), or nobody keeps its tokens (the sink does, with the same setting)")]
    NoArchiveToken {
        /// The URL fetched.
        url: String,
    },
    /// A redirect the filter will not follow (not http(s), or too many).
    #[error("{url}: {detail}")]
    Redirect {
        /// The URL fetched.
        url: String,
        /// Why.
        detail: String,
    },
    /// A source this filter may not fetch (`--allow-source`, or a loopback, link-local or
    /// unspecified address).
    #[error("{url}: refused: {reason}")]
    Forbidden {
        /// The URL or path.
        url: String,
        /// Why.
        reason: String,
    },
    /// A local path that is not a regular file (a FIFO, device, socket or folder).
    #[error("{path}: not a regular file (FIFOs, devices, sockets and folders are refused)")]
    NotRegular {
        /// The path given.
        path: String,
    },
    /// More frames than any real video has.
    #[error("{what}: the index claims {frames} frames, more than the {max} accepted")]
    TooManyFrames {
        /// The video.
        what: String,
        /// Frames claimed.
        frames: u64,
        /// The cap.
        max: u64,
    },
    /// A frame larger than any ProRes frame can be.
    #[error("{what}: the index claims {size} bytes for frame {frame}, more than the {max} accepted per frame")]
    FrameTooLarge {
        /// The video.
        what: String,
        /// The frame (1-based).
        frame: u64,
        /// Its claimed size.
        size: u64,
        /// The cap.
        max: u64,
    },
    /// Facts of the video that contradict each other (frame sizes against the file,
    /// lazycache's frame count against its file size).
    #[error("{what}: implausible index: {detail}")]
    Implausible {
        /// The video.
        what: String,
        /// What contradicts what.
        detail: String,
    },
    /// The sample description and the frames disagree on the picture size.
    #[error("{what}: the index says {index_width}x{index_height} but the first frame is {frame_width}x{frame_height}")]
    SizeMismatch {
        /// The video.
        what: String,
        /// Width in the sample description.
        index_width: u32,
        /// Height in the sample description.
        index_height: u32,
        /// Width in the first frame's own header.
        frame_width: u32,
        /// Height in the first frame's own header.
        frame_height: u32,
    },
    /// A frame image whose header claims more pixels than accepted.
    #[error("{what}: a frame image claims {width}x{height} pixels, more than accepted")]
    ImageTooLarge {
        /// The video.
        what: String,
        /// Claimed width.
        width: u32,
        /// Claimed height.
        height: u32,
    },
    /// The read-ahead failed in itself (a thread that could not start, a reply that fits
    /// no frame): a fault of this filter, reported with its reason.
    #[error("{what}: internal error while fetching frames ahead: {detail}")]
    ReadAhead {
        /// The video.
        what: String,
        /// What went wrong.
        detail: String,
    },
    /// The video's analysis ran past its time budget (`--video-deadline`).
    #[error("{what}: the analysis ran past the video's deadline of {seconds} s (--video-deadline, FILTER_VIDEO_DEADLINE)")]
    DeadlineExceeded {
        /// The video or URL.
        what: String,
        /// The budget, in seconds.
        seconds: u64,
    },
}

impl ReadError {
    /// True when trying again later may succeed (network trouble, server errors); false
    /// when the input itself is bad.
    pub fn is_transient(&self) -> bool {
        match self {
            ReadError::Unreachable { .. }
            | ReadError::Io { .. }
            | ReadError::TooSlow { .. }
            | ReadError::NoArchiveToken { .. }
            | ReadError::DeadlineExceeded { .. } => true,
            ReadError::HttpStatus { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}
