//! One job's life in a slot, once reserved and read, as an [`Attempt`]: the analysis,
//! run while the reservation and the heartbeat are kept alive; the result, delivered
//! (or spooled) and never dropped; and the outcome `decide` picks, applied with its
//! failure record. The slot lends an attempt what it keeps across jobs.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use common::backoff::Backoff;
use common::beanstalk::{Client, Error as BsError};
use common::shutdown::{Phase, Shutdown};
use common::sign::Kind;
use common::wire::{Action, ComputedBy, Failure, Job, JobResult};

use super::conn::{result_options, Conn};
use super::heartbeat::{Beat, Progress};
use super::outcome::{decide, JobError, Lease, Outcome};
use super::spool::Spool;
use super::{metrics, WorkerConfig};
use crate::source::{self, SourceKind};
use crate::{analyze, Analysis, AnalysisError, Settings};

/// How often a running job's heartbeat is renewed while its progress moves.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// One reserved job being worked: the lease it holds and the job it read, with what it
/// borrows of its slot (the connection, the heartbeat, the spool, the shutdown signal).
pub(super) struct Attempt<'s> {
    pub(super) lease: Lease,
    pub(super) job: &'s Job,
    pub(super) config: &'s WorkerConfig,
    pub(super) conn: &'s mut Conn,
    pub(super) beat: &'s mut Beat,
    pub(super) spool: &'s Spool,
    pub(super) shutdown: &'s mut Shutdown,
}

impl Attempt<'_> {
    /// Analyses the job, delivers its result and finishes it: its outcome, or `None`
    /// when it was given back unfinished (shutdown) or lost with the connection.
    pub(super) async fn run(mut self) -> Option<Outcome> {
        tracing::info!(video = %self.job.video, attempt = self.lease.attempt, "analysing");
        let started = Utc::now();
        let result = match self.analyse().await? {
            Ok(analysis) => self.deliver(analysis, started).await,
            Err(e) => Err(e),
        };
        self.finish(result).await
    }

    /// Runs the analysis while keeping the reservation and the heartbeat alive. `None`
    /// when the job was given back unfinished (shutdown).
    async fn analyse(&mut self) -> Option<Result<Analysis, JobError>> {
        let (lease, job) = (self.lease, self.job);
        let progress = Arc::new(Progress::default());
        if let Some(c) = self.conn.get() {
            self.beat
                .publish(c, Some((lease.id, &job.video)), Some(&progress))
                .await;
        }
        let analysis = spawn_analysis(self.config, job, Arc::clone(&progress));
        tokio::pin!(analysis);
        let mut ticker = tokio::time::interval(self.config.touch_every);
        ticker.tick().await;
        // Progress shows on the dashboard as it moves (the frame count once known, then
        // at most every PROGRESS_EVERY), not only at each touch: most videos take less
        // than one touch interval.
        let mut progress_ticker = tokio::time::interval(PROGRESS_EVERY);
        progress_ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        progress_ticker.tick().await;
        let mut shown = progress.seen();
        let grace = self.config.grace;
        let mut deadline = self.shutdown.stopping().then(|| Instant::now() + grace);
        let joined = loop {
            let grace_over = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = &mut analysis => break r,
                _ = ticker.tick() => {
                    self.touch(lease.id).await;
                    if let Some(c) = self.conn.get() {
                        self.beat.publish(c, Some((lease.id, &job.video)), Some(&progress)).await;
                        shown = progress.seen();
                    }
                }
                _ = progress_ticker.tick() => {
                    if progress.seen() != shown {
                        if let Some(c) = self.conn.get() {
                            self.beat.publish(c, Some((lease.id, &job.video)), Some(&progress)).await;
                            shown = progress.seen();
                        }
                    }
                }
                _ = self.shutdown.changed() => match self.shutdown.phase() {
                    Phase::Abort => return self.give_back("second signal").await,
                    Phase::Draining => deadline = deadline.or(Some(Instant::now() + grace)),
                    Phase::Running => {}
                },
                _ = grace_over => return self.give_back("grace period over").await,
            }
        };
        Some(match joined {
            Ok(r) => r.map_err(JobError::Analysis),
            Err(join) => Err(JobError::Internal(format!(
                "the analysis thread failed: {join}"
            ))),
        })
    }

    /// Keeps the reservation alive; a failure means the connection is gone, and with it
    /// the reservation (the job went back to ready). The analysis goes on: its result is
    /// still delivered.
    async fn touch(&mut self, id: u64) {
        let Some(c) = self.conn.get() else { return };
        if let Err(e) = c.touch(id).await {
            tracing::warn!(error = %e, "touch failed; the reservation is lost, the result will still be delivered");
            if e.is_connection_lost() {
                self.conn.lost();
            }
        }
    }

    /// Releases the job unfinished, at once, for another filter to take.
    pub(super) async fn give_back<T>(&mut self, why: &str) -> Option<T> {
        tracing::warn!(reason = why, "releasing an unfinished job");
        let lease = self.lease;
        if let Some(c) = self.conn.get() {
            if let Err(e) = c.release(lease.id, lease.priority, 0).await {
                tracing::warn!(error = %e, "release failed; the job returns when the connection closes");
            }
        }
        None
    }

    /// Puts the result into the results tube, reconnecting if the connection was lost
    /// meanwhile. A result too big for the server is spooled, and so is one the server
    /// cannot take while we shut down (after the grace period, or at once on a second
    /// signal): a result is never dropped.
    async fn deliver(
        &mut self,
        analysis: Analysis,
        started: chrono::DateTime<Utc>,
    ) -> Result<(), JobError> {
        let (lease, job) = (&self.lease, self.job);
        let grid = self.config.grid.clone();
        let sealed = grid.seal(
            Kind::Result,
            &result_of(&grid, lease, job, &analysis, started)?.encode(),
        );
        let results = grid.config().results_tube();
        let (mut backoff, failing_since) = (Backoff::reconnect(), Instant::now());
        loop {
            let given_up = self.shutdown.phase() == Phase::Abort
                || (self.shutdown.stopping() && failing_since.elapsed() >= self.config.grace);
            if given_up {
                return Err(match self.spool.keep(lease.id, &sealed) {
                    JobError::ResultTooBig { spool, .. } => JobError::Internal(format!(
                        "the server is unreachable and we are shutting down; the result is spooled in {spool}"
                    )),
                    other => other,
                });
            }
            if let Some(c) = self.conn.get_or_connect(self.config).await {
                match grid.put(c, &results, &sealed, result_options()).await {
                    Ok(rid) => {
                        tracing::info!(result = rid, video = %job.video, "result delivered");
                        return Ok(());
                    }
                    Err(BsError::JobTooBig) => return Err(self.spool.keep(lease.id, &sealed)),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not put the result; retrying");
                        self.conn.lost();
                    }
                }
            }
            // The result is never dropped: keep trying until the server is back.
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    /// Applies the outcome `decide` picks, recording any failure in the failures tube
    /// first.
    pub(super) async fn finish(&mut self, result: Result<(), JobError>) -> Option<Outcome> {
        let (lease, job) = (&self.lease, self.job);
        let outcome = decide(&result, lease.attempt, lease.id, &self.config.retry);
        let c = self.conn.get_or_connect(self.config).await?;
        if let Err(err) = &result {
            let action = match outcome {
                Outcome::Release { delay } => Action::released(delay),
                _ => Action::Buried,
            };
            tracing::warn!(error = %err, action = %action, "job failed");
            let failure = Failure {
                attempt: lease.attempt,
                action,
                ..Failure::now(
                    lease.id,
                    Some(job),
                    &err.to_string(),
                    self.config.grid.host(),
                )
            };
            if let Err(e) = self.config.grid.record_failure(c, &failure).await {
                tracing::warn!(error = %e, "could not record the failure");
            }
        }
        let applied = match outcome {
            Outcome::AwaitCommit { delay } => await_commit(c, lease, delay).await,
            Outcome::Release { delay } => {
                c.release(lease.id, lease.priority, delay.as_secs() as u32)
                    .await
            }
            Outcome::Bury => c.bury(lease.id, lease.priority).await,
        };
        match applied {
            Ok(()) => Some(outcome),
            // Lost the reservation (TTR ran out, or a reconnect): the job is someone
            // else's now; a delivered result is still in the results tube, and the sink
            // de-duplicates.
            Err(BsError::NotFound) => {
                tracing::warn!(?outcome, "the job was no longer ours to finish");
                Some(outcome)
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not finish the job; it returns to ready with the connection");
                self.conn.lost();
                None
            }
        }
    }
}

/// The analysis of `job` on a blocking thread, within its deadline, reporting its
/// progress.
fn spawn_analysis(
    config: &WorkerConfig,
    job: &Job,
    progress: Arc<Progress>,
) -> tokio::task::JoinHandle<Result<Analysis, AnalysisError>> {
    let deadline = source::Deadline::starting_now(config.video_deadline);
    let http = config.http.within(&deadline);
    let settings = Settings {
        stride: job.stride,
        start: job.start,
        stop: job.stop,
        img_scale: config.scale,
        threads: config.threads,
        decoder: config.decoder,
        fetch: config.fetch,
        deadline: Some(deadline),
    };
    let video = job.video.clone();
    tokio::task::spawn_blocking(move || {
        let source = source::open_with(&video, SourceKind::Auto, settings.img_scale, &http)?;
        analyze(source, &settings, &mut |p| {
            progress.done.store(p.pairs_done as u64, Ordering::Relaxed);
            progress
                .total
                .store(p.pairs_total as u64, Ordering::Relaxed);
        })
    })
}

/// The result body of a finished analysis.
fn result_of(
    grid: &common::grid::Grid,
    lease: &Lease,
    job: &Job,
    analysis: &Analysis,
    started: chrono::DateTime<Utc>,
) -> Result<JobResult, JobError> {
    metrics::FRAMES.add(analysis.document.frame_stats.len() as f64);
    metrics::VIDEO_SECONDS.add(analysis.stats.elapsed.as_secs_f64());
    metrics::VIDEOS.inc();
    let computed_by = ComputedBy {
        host: grid.host().to_owned(),
        software: format!("camhd-grid filter {}", env!("CARGO_PKG_VERSION")),
        started_at: started,
        finished_at: Utc::now(),
        elapsed_seconds: analysis.stats.elapsed.as_secs_f64(),
    };
    JobResult::new(job.clone(), Some(lease.id), &analysis.document, computed_by)
        .map_err(|e| JobError::Internal(format!("serialising the document: {e}")))
}

/// Delays a delivered job for the sink to delete after its commit. A job whose
/// reservation was lost (TTR, a server restart) but that nobody else holds is reserved
/// again by id, so it waits too rather than being analysed a second time.
async fn await_commit(c: &mut Client, lease: &Lease, delay: Duration) -> Result<(), BsError> {
    let secs = u32::try_from(delay.as_secs()).unwrap_or(u32::MAX);
    match c.release(lease.id, lease.priority, secs).await {
        Err(BsError::NotFound) => {
            c.reserve_job(lease.id).await?;
            c.release(lease.id, lease.priority, secs).await
        }
        other => other,
    }
}
