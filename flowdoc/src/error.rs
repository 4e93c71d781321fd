//! Why bytes are not an optical-flow document: what no reader can read, and what the
//! sink's check finds wrong, each a value that says where.

/// Why a document cannot be read, or is not one the sink may write.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DocError {
    /// Not JSON, not an object, an entries field that is not an array, more entries than
    /// a video has, or an object with a key twice (the parser's message says where).
    #[error("{0}")]
    Unreadable(String),
    /// `contents.frameStats.opticalFlow` is not declared.
    #[error("contents.frameStats.opticalFlow is missing")]
    NotDeclared,
    /// `movie` is missing, unreadable or says what no video is.
    #[error("movie: {0}")]
    Movie(#[from] MovieError),
    /// Neither spelling's entries, or only 1.0's (`frame_stats`).
    #[error("there is no frameStats array")]
    NoFrameStats,
    /// One entry is wrong.
    #[error("frameStats[{index}]{problem}")]
    Entry {
        /// The entry's place in `frameStats`.
        index: usize,
        /// What is wrong with it.
        problem: EntryProblem,
    },
}

/// What is wrong with a document's `movie`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MovieError {
    /// The document has no `movie`.
    #[error("there is no movie")]
    Missing,
    /// `movie` is not an object with a numeric `NumFrames` (the parser's message).
    #[error("{0}")]
    Unreadable(String),
    /// Its frame count or duration is not a video's (`limits::implausible_movie`).
    #[error("{0}")]
    Implausible(String),
}

/// What is wrong with one entry of `frameStats` (its text follows `frameStats[i]`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EntryProblem {
    /// A frame number no video has.
    #[error(".frameNumber {0} is not a frame of a video")]
    NotAFrame(i64),
    /// No whole `frameNumber`.
    #[error(".frameNumber is missing or not a whole number")]
    NoFrame,
    /// No `opticalFlow` object.
    #[error(" has no opticalFlow object")]
    NoFlow,
    /// No four numbers of `similarity`.
    #[error(".opticalFlow.similarity is missing or not four numbers")]
    NoSimilarity,
    /// No boolean `valid`.
    #[error(".opticalFlow.valid is missing or not true or false")]
    NoValid,
    /// A similarity no camera makes (`limits::implausible_similarity`).
    #[error(".opticalFlow.similarity: {0}")]
    Implausible(String),
}
