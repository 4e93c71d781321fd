//! The grid worker: N job slots, each on its own beanstalkd connection (a reservation
//! belongs to its connection), each reserving a job, analysing it while keeping it alive
//! with `touch`, and finishing it by the one outcome `outcome::decide` picks.

mod conn;
mod heartbeat;
mod job;
mod outcome;
mod slot;
mod spool;

use std::path::PathBuf;
use std::time::Duration;

use common::grid::{Grid, KeyMarker};
use common::shutdown::Shutdown;

pub use outcome::{decide, JobError, Lease, Outcome, Retry};
pub use slot::Slot;

/// The worker's checked configuration.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Server, tubes, keys (what is put is signed, jobs must be) and this machine's name.
    pub grid: Grid,
    /// Job slots (jobs analysed at once).
    pub jobs: usize,
    /// Analysis threads per job.
    pub threads: usize,
    /// The analysis scale.
    pub scale: f64,
    /// Which ProRes decoder to use.
    pub decoder: crate::decode::DecoderChoice,
    /// Whether frames are fetched in parts.
    pub fetch: crate::decode::FetchChoice,
    /// How often a held job is touched.
    pub touch_every: Duration,
    /// How long running jobs may finish after SIGTERM before they are released.
    pub grace: Duration,
    /// Exit after this long with no job.
    pub exit_when_idle: Option<Duration>,
    /// Retry policy for transient failures.
    pub retry: Retry,
    /// Where results too big for the server are kept.
    pub spool: PathBuf,
    /// Bounds on HTTP requests.
    pub http: crate::source::HttpLimits,
    /// Each video's time budget (`--video-deadline`); `None`: derived from the video.
    pub video_deadline: Option<Duration>,
    /// The grid has an archive budget (`GRID_ARCHIVE_CONNECTIONS`): requests to the
    /// archive wait for its tokens.
    pub archive_budget: bool,
    /// Set by the slot that learns this filter holds a stale key (from a key marker
    /// one of its keys vouches for): every slot then stops reserving, and the worker
    /// exits with a usage code naming the keys.
    pub wrong_key: std::sync::Arc<std::sync::OnceLock<String>>,
}

/// The worker's Prometheus metrics (`filter --metrics ADDR`).
pub mod metrics {
    use common::metrics::Metric;

    /// Jobs whose result was delivered.
    pub static JOBS_DONE: Metric = Metric::counter(
        "camhd_filter_jobs_done_total",
        "Jobs whose result was delivered.",
    );
    /// Jobs released to be retried.
    pub static JOBS_RELEASED: Metric = Metric::counter(
        "camhd_filter_jobs_released_total",
        "Jobs released after a transient failure.",
    );
    /// Jobs buried.
    pub static JOBS_FAILED: Metric = Metric::counter(
        "camhd_filter_jobs_failed_total",
        "Jobs buried after a permanent failure.",
    );
    /// Frame pairs analysed.
    pub static FRAMES: Metric = Metric::counter(
        "camhd_filter_frames_analysed_total",
        "Frame pairs analysed.",
    );
    /// Seconds spent analysing videos.
    pub static VIDEO_SECONDS: Metric = Metric::counter(
        "camhd_filter_video_seconds_sum",
        "Seconds spent analysing videos (divide by _count).",
    );
    /// Videos analysed.
    pub static VIDEOS: Metric =
        Metric::counter("camhd_filter_video_seconds_count", "Videos analysed.");

    /// All of them, in the text format.
    pub fn render() -> String {
        common::metrics::render(&[
            &JOBS_DONE,
            &JOBS_RELEASED,
            &JOBS_FAILED,
            &FRAMES,
            &VIDEO_SECONDS,
            &VIDEOS,
        ])
    }
}

/// Counts for the final report.
#[derive(Debug, Default, Clone, Copy)]
pub struct Totals {
    /// Jobs whose result was delivered.
    pub done: u64,
    /// Jobs released to be retried.
    pub released: u64,
    /// Jobs buried.
    pub buried: u64,
}

/// Runs the slots until shutdown (or idle) and returns what they did.
pub async fn run(config: WorkerConfig, shutdown: Shutdown) -> Result<Totals, WrongKey> {
    if let Some(why) = key_check(&config).await {
        return Err(WrongKey(why));
    }
    if config.archive_budget {
        let share = config.http.hosts.share_grid_budget();
        tokio::spawn(crate::source::hosts::lease::keep(
            config.grid.clone(),
            share,
            shutdown.clone(),
        ));
    }
    let mut handles = Vec::new();
    for index in 0..config.jobs.max(1) {
        let (config, shutdown) = (config.clone(), shutdown.clone());
        handles.push(tokio::spawn(slot::Slot::new(index, config, shutdown).run()));
    }
    let mut totals = Totals::default();
    for h in handles {
        if let Ok(t) = h.await {
            totals.done += t.done;
            totals.released += t.released;
            totals.buried += t.buried;
        }
    }
    match config.wrong_key.get() {
        Some(why) => Err(WrongKey(why.clone())),
        None => Ok(totals),
    }
}

/// This filter's keys are not the grid's: a setting to fix (a usage error; systemd
/// does not restart it).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct WrongKey(pub String);

/// Why this filter holds a stale key, when a key marker it can verify says so (read once
/// at start; a server not reached yet is asked again by the first job signed with a key
/// it does not hold). A marker it cannot verify is logged and ignored.
async fn key_check(config: &WorkerConfig) -> Option<String> {
    let grid = &config.grid;
    if !grid.keys().enabled() {
        return None;
    }
    let mut c = grid.connect().await.ok()?;
    match grid.key_marker(&mut c).await {
        Ok(KeyMarker::Succeeded { kid, by }) => {
            let why = stale_key(grid, &kid, &by);
            // A heartbeat left behind says, where the operator looks, why it stopped.
            let mut beat = heartbeat::Beat::new(grid, 0, config.touch_every);
            beat.refusing = Some(why.clone());
            beat.publish(&mut c, None, None).await;
            Some(why)
        }
        Ok(KeyMarker::Unverified { kid }) => {
            tracing::warn!(tube = %grid.config().key_tube(), marker_key = %kid,
                "ignoring a key marker this filter cannot verify (signed with a key it does not hold, vouched for by none it holds): anyone who reaches the server could have put it");
            None
        }
        _ => None,
    }
}

/// What a filter whose key the grid rotated away from is told: the grid signs with key
/// `kid`, as key `by` (one of this filter's) vouches.
pub(crate) fn stale_key(grid: &Grid, kid: &str, by: &str) -> String {
    format!(
        "this filter holds a stale key: the grid's key marker (in {}) is signed with key {kid}, as key {by} of this filter's vouches; this filter accepts {} (GRID_KEY_FILE, GRID_ALSO_ACCEPT_KEY_FILES); jobs it reserved were released untouched",
        grid.config().key_tube(),
        grid.keys().accepted_ids().join(", ")
    )
}
