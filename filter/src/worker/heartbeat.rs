//! A slot's heartbeat in its own status tube: exactly one job there at a time (the new
//! one is put, then the previous deleted), so `gridctl status` can peek every worker
//! and nothing accumulates. A clean exit deletes it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::Utc;
use common::beanstalk::{Client, Error as BsError, PutOptions};
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
    last: Option<u64>,
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
            last: None,
        }
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
            at: Utc::now(),
        };
        let put = async {
            c.use_tube(&self.tube).await?;
            let id = c.put(&beat.encode(), PutOptions::default()).await?;
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
