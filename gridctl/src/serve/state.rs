//! What every request of `gridctl serve` shares ([`App`]): the grid, the settings, the
//! throughput samples and the failure records as last read, and the sampler task that
//! keeps both current without a page asking.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context;
use common::grid::Grid;

use super::auth::Auth;
use super::commits;
use super::history;
use super::reply::{within_budget, Failure};
use super::throughput::{Finished, Sample, HISTORY_EVERY, SAMPLES_KEPT, SAMPLE_EVERY};

/// Plots drawn at once: each parses a document of up to 32 MiB into a tree (about 450 MB
/// for a 33 MB document, 1 s), so one at a time; more wait their turn within the request
/// budget. A streaming reader of the document (issue 26) would lift this.
const PLOTS_AT_ONCE: usize = 1;

/// What `gridctl serve` was asked for.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where to listen.
    pub listen: String,
    /// The metadata checkout, for the recent commits page.
    pub checkout: Option<PathBuf>,
    /// How many recent flow files to show.
    pub recent: usize,
    /// The control token, when the buttons are allowed.
    pub control: Option<Auth>,
    /// Host names (or name:port) the dashboard answers to besides loopback and `listen`.
    pub allowed_hosts: Vec<String>,
    /// Control allowed over plain HTTP on an address other than loopback.
    pub insecure_control: bool,
    /// Where the throughput history is kept across restarts, if anywhere.
    pub history: Option<PathBuf>,
}

/// The failure records as last read, and what the tubes said when they were: pages are
/// served from here, and the records (which can only be read by reserving them for an
/// instant) are read again, by one reader at a time, only when a tube says something
/// changed. So however many pages poll, reading holds no record another reader wants.
#[derive(Debug, Default)]
struct FailureCache {
    key: Option<FailureKey>,
    found: Option<Arc<crate::failures::Findings>>,
}

/// What changes when a job or result is buried, kicked or discarded, or a record put or
/// deleted: buried counts and the records tube's puts and deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FailureKey {
    jobs_buried: u64,
    results_buried: u64,
    records_put: u64,
    records_deleted: u64,
}

/// Shared by every request.
#[derive(Debug)]
pub struct App {
    /// The grid watched.
    pub grid: Grid,
    /// The settings, with the checkout opened and the address as bound.
    pub config: ServeConfig,
    /// Plots being drawn (at most [`PLOTS_AT_ONCE`]).
    pub plots: tokio::sync::Semaphore,
    samples: Mutex<VecDeque<Sample>>,
    finished: Mutex<Finished>,
    failures: tokio::sync::Mutex<FailureCache>,
}

/// A lock, also when a thread panicked holding it (the values stay consistent).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl App {
    /// The shared state, with the throughput history read back when it is kept.
    pub fn new(grid: Grid, config: ServeConfig) -> App {
        let (finished, samples) = config
            .history
            .as_deref()
            .and_then(history::load)
            .unwrap_or_default();
        App {
            grid,
            config,
            samples: Mutex::new(samples),
            finished: Mutex::new(finished),
            plots: tokio::sync::Semaphore::new(PLOTS_AT_ONCE),
            failures: tokio::sync::Mutex::new(FailureCache::default()),
        }
    }

    /// Writes the throughput history, when it is kept.
    pub fn save_history(&self) {
        if let Some(path) = &self.config.history {
            history::save(path, &lock(&self.finished), &lock(&self.samples));
        }
    }

    fn push_sample(&self, deleted: u64, discarded: u64, server_started: i64) {
        let finished = lock(&self.finished)
            .saw(deleted, server_started)
            .saturating_sub(discarded);
        let mut samples = lock(&self.samples);
        samples.push_back(Sample {
            at: chrono::Utc::now().timestamp(),
            finished,
        });
        while samples.len() > SAMPLES_KEPT {
            samples.pop_front();
        }
    }

    /// The throughput samples kept.
    pub fn samples(&self) -> Vec<Sample> {
        lock(&self.samples).iter().copied().collect()
    }

    /// The grid now, with the rate and ETA from the samples.
    pub async fn status(&self) -> Result<crate::status::Snapshot, Failure> {
        let work = async {
            let mut client = self.grid.connect().await?;
            crate::status::snapshot(&mut client, &self.grid).await
        };
        let mut snap = within_budget(work).await?;
        snap.newest_failure = self.newest_failure();
        // What the jobs tube says now, counted with what it said before it vanished.
        let deleted = lock(&self.finished).peek(snap.jobs.deleted, snap.server_started);
        snap.finished = deleted.saturating_sub(snap.discarded);
        let samples = self.samples();
        if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
            snap.set_rate(
                last.finished.saturating_sub(first.finished),
                (last.at - first.at) as f64,
            );
        }
        Ok(snap)
    }

    /// The failure records, within the request budget.
    pub async fn failures(&self) -> Result<Arc<crate::failures::Findings>, Failure> {
        within_budget(async {
            let mut client = self.grid.connect().await?;
            self.findings(&mut client).await
        })
        .await
    }

    /// The failure records, read again only when the tubes say they changed (or the last
    /// read was incomplete), one reader at a time.
    async fn findings(
        &self,
        client: &mut common::beanstalk::Client,
    ) -> anyhow::Result<Arc<crate::failures::Findings>> {
        let key = self.failure_key(client).await?;
        let mut cache = self.failures.lock().await;
        match &cache.found {
            Some(found) if cache.key == Some(key) => Ok(Arc::clone(found)),
            _ => {
                let found = Arc::new(
                    crate::failures::find_at_most(
                        client,
                        &self.grid,
                        crate::failures::MAX_PER_VIEW,
                    )
                    .await?,
                );
                // Kept until something changes, also when capped at MAX_PER_VIEW (with
                // 1,000 records and more it was read again for every view: 20 views,
                // 23,000 reserves); read again only when another reader held records.
                cache.key = found.settled.then_some(key);
                cache.found = Some(Arc::clone(&found));
                Ok(found)
            }
        }
    }

    async fn failure_key(
        &self,
        client: &mut common::beanstalk::Client,
    ) -> anyhow::Result<FailureKey> {
        let config = self.grid.config();
        let mut stats = Vec::new();
        for tube in [
            config.jobs_tube(),
            config.results_tube(),
            config.failures_tube(),
        ] {
            stats.push(
                client
                    .stats_tube_if_any(&tube)
                    .await
                    .context("reading the tubes' counts")?,
            );
        }
        let get =
            |i: usize, f: fn(&common::beanstalk::TubeStats) -> u64| stats[i].as_ref().map_or(0, f);
        Ok(FailureKey {
            jobs_buried: get(0, |s| s.current_jobs_buried),
            results_buried: get(1, |s| s.current_jobs_buried),
            records_put: get(2, |s| s.total_jobs),
            records_deleted: get(2, |s| s.cmd_delete),
        })
    }

    /// The newest failure as last read (no read now), for the banner on every page.
    fn newest_failure(&self) -> Option<crate::status::NewestFailure> {
        let cache = self.failures.try_lock().ok()?;
        let found = cache.found.as_ref()?;
        found
            .failed
            .iter()
            .max_by(|a, b| a.at.cmp(&b.at))
            .map(|f| crate::status::NewestFailure {
                video: f.video.clone(),
                error: f.last_error.clone(),
                at: f.at.clone(),
            })
    }

    /// The flow files committed lately, or `None` without a checkout.
    pub async fn recent(&self) -> Result<Option<Vec<commits::Committed>>, Failure> {
        let Some(dir) = self.config.checkout.clone() else {
            return Ok(None);
        };
        let n = self.config.recent;
        within_budget(async move {
            tokio::task::spawn_blocking(move || commits::recent(&dir, n))
                .await
                .context("reading the git log")?
        })
        .await
        .map(Some)
    }
}

/// Samples the jobs finished every [`SAMPLE_EVERY`], for the throughput chart, and keeps
/// the failure banner's newest reason current; runs until the process ends.
pub async fn sample(app: Arc<App>) {
    let tube = app.grid.config().jobs_tube();
    let mut client = None;
    for round in 1usize.. {
        if round % HISTORY_EVERY == 0 {
            app.save_history();
        }
        if client.is_none() {
            client = app.grid.connect().await.ok();
        }
        if let Some(c) = client.as_mut() {
            match counts(c, &app.grid, &tube).await {
                Ok((deleted, discarded, started)) => app.push_sample(deleted, discarded, started),
                Err(_) => client = None,
            }
        }
        if let Some(c) = client.as_mut() {
            if app.findings(c).await.is_err() {
                client = None;
            }
        }
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
}

/// What the sampler reads: the jobs tube's deletes (0 for a tube that is gone), the jobs
/// discarded, and when the server started.
async fn counts(
    c: &mut common::beanstalk::Client,
    grid: &Grid,
    tube: &str,
) -> Result<(u64, u64, i64), common::beanstalk::Error> {
    let deleted = c.stats_tube_if_any(tube).await?.map_or(0, |s| s.cmd_delete);
    let discarded = grid.discarded(c).await?;
    let uptime = c.stats().await?.uptime;
    Ok((
        deleted,
        discarded,
        chrono::Utc::now().timestamp() - uptime as i64,
    ))
}
