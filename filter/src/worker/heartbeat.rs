//! A slot's heartbeat in its own status tube: exactly one job there at a time (the new
//! one is put, then the previous deleted), so `gridctl status` can peek every worker
//! and nothing accumulates. It is renewed every touch interval, busy or idle, and says
//! so, so a heartbeat left by a killed filter is known dead; a clean exit deletes it, and
//! a starting filter sweeps away heartbeats that have been dead for long.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use common::beanstalk::{Client, Error as BsError, PutOptions};
use common::grid::Grid;
use common::sign::Kind;
use common::wire::{Heartbeat, WIRE_VERSION};

/// Frame pairs done and total of the job in progress, shared with the analysis thread.
#[derive(Debug, Default)]
pub struct Progress {
    /// Pairs done.
    pub done: AtomicU64,
    /// Pairs in the plan.
    pub total: AtomicU64,
}

impl Progress {
    /// Pairs done and in the plan, as one value to compare.
    pub fn seen(&self) -> (u64, u64) {
        (
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        )
    }
}

/// One slot's heartbeat publisher.
#[derive(Debug)]
pub struct Beat {
    grid: Grid,
    tube: String,
    slot: usize,
    every: Duration,
    last: Option<u64>,
    published: Option<Instant>,
    /// Why the slot gives jobs back untouched, said in every heartbeat while it does.
    pub refusing: Option<String>,
}

impl Beat {
    /// The publisher of slot `slot`, renewed every `every`.
    pub fn new(grid: &Grid, slot: usize, every: Duration) -> Beat {
        let pid = std::process::id();
        Beat {
            tube: grid.config().status_tube(grid.host(), pid, slot),
            grid: grid.clone(),
            slot,
            every,
            last: None,
            published: None,
            refusing: None,
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
            host: self.grid.host().to_owned(),
            pid: std::process::id(),
            slot: self.slot,
            job_id: job.map(|j| j.0),
            video: job.map(|j| j.1.to_owned()),
            frames_done: progress.map_or(0, |p| p.done.load(Ordering::Relaxed)),
            frames_total: progress.map_or(0, |p| p.total.load(Ordering::Relaxed)),
            every_seconds: Some(self.every.as_secs().max(1)),
            refusing: self.refusing.clone(),
            at: Utc::now(),
        };
        self.published = Some(Instant::now());
        let put = async {
            let sealed = self.grid.seal(Kind::Heartbeat, &beat.encode());
            let id = (self.grid)
                .put(c, &self.tube, &sealed, PutOptions::default())
                .await?;
            match self.last.replace(id) {
                Some(prev) => match c.delete(prev).await {
                    Ok(()) | Err(BsError::NotFound) => Ok(()),
                    Err(e) => Err(e),
                },
                None => Ok(()),
            }
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
pub async fn sweep(c: &mut Client, grid: &Grid) -> Result<usize, BsError> {
    let mut swept = 0;
    for listed in grid.heartbeats(c).await? {
        let age = listed.age_seconds();
        if listed.beat.is_dead(age) && age > SWEEP_AFTER_SECS {
            match c.delete(listed.id).await {
                Ok(()) => swept += 1,
                Err(BsError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(swept)
}
