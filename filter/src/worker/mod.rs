//! The grid worker: N job slots, each on its own beanstalkd connection (a reservation
//! belongs to its connection), each reserving a job, analysing it while keeping it alive
//! with `touch`, and finishing it by the one outcome `outcome::decide` picks.

mod heartbeat;
mod outcome;
mod slot;

use std::path::PathBuf;
use std::time::Duration;

use common::config::GridConfig;
use common::shutdown::Shutdown;

pub use outcome::{decide, JobError, Outcome, Retry};

/// The worker's checked configuration.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Server and tubes.
    pub grid: GridConfig,
    /// Job slots (jobs analysed at once).
    pub jobs: usize,
    /// Analysis threads per job.
    pub threads: usize,
    /// The analysis scale.
    pub scale: f64,
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
    /// This machine's name, for records.
    pub host: String,
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
pub async fn run(config: WorkerConfig, shutdown: Shutdown) -> Totals {
    let mut handles = Vec::new();
    for index in 0..config.jobs.max(1) {
        let (config, shutdown) = (config.clone(), shutdown.clone());
        handles.push(tokio::spawn(slot::run(index, config, shutdown)));
    }
    let mut totals = Totals::default();
    for h in handles {
        if let Ok(t) = h.await {
            totals.done += t.done;
            totals.released += t.released;
            totals.buried += t.buried;
        }
    }
    totals
}
