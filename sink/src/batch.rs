//! What a batch holds between writing and committing: each result written (or kept),
//! with what its commit, its regions file and its deletion need.

use std::path::PathBuf;
use std::sync::Arc;

use common::wire::Job;
use flowdoc::regions::{self, NoRegions};

/// A result written (or kept) and waiting for its commit.
#[derive(Debug)]
pub struct Written {
    /// The result's id in the results tube.
    pub id: u64,
    /// Where it was written.
    pub path: PathBuf,
    /// Its output path, relative to the checkout.
    pub rel: String,
    /// Bytes written, or `None` when the committed JSON was kept.
    pub written: Option<usize>,
    /// Its video.
    pub video: String,
    /// The job it answers, deleted from the jobs tube once the result is committed.
    pub job_id: Option<u64>,
    /// That job, as the result carries it.
    pub job: Job,
    /// What the regions file is derived from, when the document was written (a kept
    /// one's regions come from the committed file).
    pub regions: Option<Arc<Result<regions::Input, NoRegions>>>,
}
