//! What a walk of a source yields, whichever the source: the videos found (each with
//! its path below the archive root) and the entries refused, with why.

/// A video found in a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The path or URL a filter will read.
    pub video: String,
    /// Its path below the archive root (ends in `.mov`).
    pub rel: String,
}

/// An entry that could not become a job, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The entry.
    pub entry: String,
    /// Why.
    pub reason: String,
}

/// Everything a source yields.
#[derive(Debug, Default)]
pub struct Found {
    /// Videos.
    pub videos: Vec<Candidate>,
    /// Entries refused.
    pub rejected: Vec<Rejected>,
}
