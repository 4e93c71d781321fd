//! A slot's heartbeat in its own status tube: exactly one job there at a time (the new
//! one is put, then the previous deleted), so `gridctl status` can peek every worker
//! and nothing accumulates. It is renewed every touch interval, busy or idle, and says
//! so, so a heartbeat left by a killed filter is known dead; a clean exit deletes it, and
//! a starting filter sweeps away heartbeats that have been dead for long.

use common::sign::Kind;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use common::beanstalk::{Client, Error as BsError, PutOptions};
use common::config::GridConfig;
use common::wire::{Heartbeat, WIRE_VERSION};

use super::WorkerConfig;

/// Frame pairs done and total of the job in progress, shared with the analysis thread.
#[derive(Debug, Default)]
pub struct Progress {
    /// Pairs done.
    pub done: AtomicU64,
    /// Pairs in the plan.
    pub total: AtomicU64,
}

/// One slot's heartbeat publisher.
#[derive(Debug)]
pub struct Beat {
    tube: String,
    results_tube: String,
    host: String,
    slot: usize,
    every: Duration,
    keys: Arc<common::sign::Keys>,
    last: Option<u64>,
    published: Option<Instant>,
}

impl Beat {
    /// The publisher of slot `slot`.
    pub fn new(config: &WorkerConfig, slot: usize) -> Beat {
        let pid = std::process::id();
        Beat {
            tube: config.grid.status_tube(&config.host, pid, slot),
            results_tube: config.grid.results_tube(),
            host: config.host.clone(),
            slot,
            every: config.touch_every,
            keys: Arc::clone(&config.keys),
            last: None,
            published: None,
        }
    }

    /// True when the heartbeat is due for renewal.
    pub fn due(&self) -> bool {
        self.published.is_none_or(|t| t.elapsed() >= self.every)
    }

    /// Replaces the slot's heartbeat: idle with `job` None, else the job and its progress.
    pub async fn publish(
        &mut self,
        c: &mut Client,
        job: Option<(u64, &str)>,
        progress: Option<&Arc<Progress>>,
    ) {
        let beat = Heartbeat {
            version: WIRE_VERSION,
            host: self.host.clone(),
            pid: std::process::id(),
            slot: self.slot,
            job_id: job.map(|j| j.0),
            video: job.map(|j| j.1.to_owned()),
            frames_done: progress.map_or(0, |p| p.done.load(Ordering::Relaxed)),
            frames_total: progress.map_or(0, |p| p.total.load(Ordering::Relaxed)),
            every_seconds: Some(self.every.as_secs().max(1)),
            at: Utc::now(),
        };
        self.published = Some(Instant::now());
        let put = async {
            c.use_tube(&self.tube).await?;
            let id = c
                .put(
                    &self.keys.seal(Kind::Heartbeat, &beat.encode()),
                    PutOptions::default(),
                )
                .await?;
            if let Some(prev) = self.last.replace(id) {
                match c.delete(prev).await {
                    Ok(()) | Err(BsError::NotFound) => {}
                    Err(e) => return Err(e),
                }
            }
            c.use_tube(&self.results_tube).await
        };
        if let Err(e) = put.await {
            tracing::debug!(error = %e, "could not publish a heartbeat");
        }
    }

    /// Deletes the slot's heartbeat (on a clean exit).
    pub async fn clear(&mut self, c: &mut Client) {
        if let Some(id) = self.last.take() {
            let _ = c.delete(id).await;
        }
    }
}

/// A heartbeat dead for this long is removed by the next filter that starts.
const SWEEP_AFTER_SECS: i64 = 600;

/// Deletes heartbeats of this namespace that have been dead for over ten minutes (their
/// filters were killed and never came back), so status tubes do not pile up.
pub async fn sweep(c: &mut Client, grid: &GridConfig) -> Result<usize, BsError> {
    let prefix = grid.status_prefix();
    let mut swept = 0;
    for tube in c.list_tubes().await? {
        if !tube.starts_with(&prefix) {
            continue;
        }
        c.use_tube(&tube).await?;
        let job = match c.peek_ready().await {
            Ok(job) => job,
            Err(BsError::NotFound) => continue,
            Err(e) => return Err(e),
        };
        let Ok(beat) = Heartbeat::decode(&job.body) else {
            continue;
        };
        let age = (Utc::now() - beat.at).num_seconds();
        if beat.is_dead(age) && age > SWEEP_AFTER_SECS {
            match c.delete(job.id).await {
                Ok(()) => swept += 1,
                Err(BsError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
    }
    c.use_tube(&grid.results_tube()).await?;
    Ok(swept)
}
