//! One job slot: its own connection, one job at a time, never dropping a reservation —
//! every job it reserves ends delayed awaiting its commit, released or buried, or goes
//! back to ready with the connection. A [`Slot`] holds what lives across jobs; a
//! [`Lease`] what one reserved job needs to be finished.

use std::time::{Duration, Instant};

use common::backoff::Backoff;
use common::beanstalk::{self, Error as BsError};
use common::grid::{ForeignJob, KeyMarker};
use common::shutdown::Shutdown;
use common::sign::{Kind, SignError};
use common::wire::{Job, UNREADABLE};
use tracing::Instrument;

use super::conn::Conn;
use super::heartbeat::{self, Beat};
use super::job::Attempt;
use super::outcome::{JobError, Lease, Outcome};
use super::spool::Spool;
use super::{metrics, Totals, WorkerConfig};

/// How often slot 0 offers spooled results to the server again while idle.
const SPOOL_RETRY: Duration = Duration::from_secs(60);

/// How long a slot reserves nothing after giving back a job signed with a key it cannot
/// verify (reserving it again at once would only spin).
const REFUSING_PAUSE: Duration = Duration::from_secs(30);

/// One slot and what it keeps across jobs.
pub struct Slot {
    index: usize,
    config: WorkerConfig,
    conn: Conn,
    beat: Beat,
    spool: Spool,
    shutdown: Shutdown,
    totals: Totals,
    /// Reserving nothing until then: it gave back a job it could not verify.
    refusing_until: Option<Instant>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("index", &self.index)
            .field("connected", &self.conn.is_up())
            .field("totals", &self.totals)
            .finish()
    }
}

impl Slot {
    /// Slot `index` of a worker.
    pub fn new(index: usize, config: WorkerConfig, shutdown: Shutdown) -> Slot {
        Slot {
            beat: Beat::new(&config.grid, index, config.touch_every),
            spool: Spool::new(config.spool.clone()),
            index,
            config,
            conn: Conn::new(index),
            shutdown,
            totals: Totals::default(),
            refusing_until: None,
        }
    }

    /// Reserves and finishes jobs until shutdown (or idle); returns what it did.
    pub async fn run(mut self) -> Totals {
        let mut backoff = Backoff::reconnect();
        let mut idle_since = Instant::now();
        let mut spool_offered: Option<Instant> = None;
        while !self.shutdown.stopping() && self.config.wrong_key.get().is_none() {
            if !self.conn.is_up() {
                if let Err(e) = self.reconnect().await {
                    tracing::warn!(slot = self.index, error = %format!("{e:#}"), "reconnecting");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff.next_delay()) => {}
                        _ = self.shutdown.changed() => {}
                    }
                    continue;
                }
                backoff.reset();
            }
            let Some(c) = self.conn.get() else {
                continue;
            };
            if self.index == 0 && spool_offered.is_none_or(|t| t.elapsed() >= SPOOL_RETRY) {
                spool_offered = Some(Instant::now());
                if let Err(e) = self.spool.offer(c, &self.config.grid).await {
                    tracing::warn!(error = %e, "could not offer spooled results");
                    self.conn.lost();
                    continue;
                }
            }
            if self
                .config
                .exit_when_idle
                .is_some_and(|idle| idle_since.elapsed() >= idle)
            {
                tracing::info!(slot = self.index, "idle; exiting");
                break;
            }
            if self.beat.due() {
                self.beat.publish(c, None, None).await;
            }
            if let Some(until) = self.refusing_until {
                let left = until.saturating_duration_since(Instant::now());
                if !left.is_zero() {
                    tokio::select! {
                        _ = tokio::time::sleep(left.min(Duration::from_secs(1))) => {}
                        _ = self.shutdown.changed() => {}
                    }
                    continue;
                }
                self.refusing_until = None;
            }
            // Not cancel-safe, so never raced against the signal: a 1 s timeout notices it.
            match c.reserve_with_timeout(1).await {
                Ok(job) => {
                    let span = tracing::info_span!("job", job = job.id, slot = self.index);
                    let outcome = self.process(job).instrument(span).await;
                    self.count(outcome);
                    idle_since = Instant::now();
                    if let Some(c) = self.conn.get() {
                        self.beat.publish(c, None, None).await;
                    }
                }
                Err(BsError::TimedOut | BsError::DeadlineSoon) => {}
                Err(e) => {
                    tracing::warn!(slot = self.index, error = %e, "lost the server");
                    self.conn.lost();
                }
            }
        }
        if let Some(c) = self.conn.get() {
            if self.config.wrong_key.get().is_some() {
                // Left for the operator to see why this filter stopped.
                self.beat.refusing = self.config.wrong_key.get().cloned();
                self.beat.publish(c, None, None).await;
            } else {
                self.beat.clear(c).await;
            }
        }
        self.totals
    }

    /// A new connection watching the jobs tube; slot 0 also sweeps dead heartbeats.
    async fn reconnect(&mut self) -> anyhow::Result<()> {
        let c = self.conn.connect(&self.config).await?;
        if self.index == 0 {
            match heartbeat::sweep(c, &self.config.grid).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    removed = n,
                    "removed heartbeats of filters dead for over ten minutes"
                ),
                Err(e) => tracing::debug!(error = %e, "could not sweep dead heartbeats"),
            }
        }
        self.beat.publish(c, None, None).await;
        Ok(())
    }

    fn count(&mut self, outcome: Option<Outcome>) {
        let (total, metric) = match outcome {
            Some(Outcome::AwaitCommit { .. }) => (&mut self.totals.done, &metrics::JOBS_DONE),
            Some(Outcome::Release { .. }) => (&mut self.totals.released, &metrics::JOBS_RELEASED),
            Some(Outcome::Bury) => (&mut self.totals.buried, &metrics::JOBS_FAILED),
            None => return,
        };
        *total += 1;
        metric.inc();
    }

    /// Handles one reserved job; returns its outcome, or `None` if it was given back
    /// unfinished (shutdown) or its reservation was lost with the connection.
    async fn process(&mut self, reserved: beanstalk::RawJob) -> Option<Outcome> {
        let c = self.conn.get()?;
        let lease = match c.stats_job(reserved.id).await {
            Ok(s) => Lease {
                id: reserved.id,
                priority: s.pri,
                attempt: s.reserves.max(1) as u32,
            },
            Err(_) => Lease {
                id: reserved.id,
                priority: 1024,
                attempt: 1,
            },
        };
        let job = match self.read(&reserved.body) {
            Ok(job) => job,
            Err(refused) => {
                let (job, err) = *refused;
                if let JobError::Signature(SignError::UnknownKey { kid }) = &err {
                    match self.foreign_job(kid).await {
                        ForeignJob::Junk => {}
                        ForeignJob::StaleKey => {
                            return self
                                .attempt(lease, &job)
                                .give_back("this filter holds a stale key")
                                .await;
                        }
                        ForeignJob::Unknown => {
                            self.refuse_for_a_while(kid);
                            return self
                                .attempt(lease, &job)
                                .give_back("signed with a key this filter cannot verify")
                                .await;
                        }
                    }
                }
                tracing::error!(error = %err, "burying a job that cannot be analysed");
                return self.attempt(lease, &job).finish(Err(err)).await;
            }
        };
        if lease.attempt > self.config.retry.max_attempts {
            let err = JobError::Died {
                reserves: lease.attempt,
            };
            tracing::error!(error = %err, video = %job.video, "burying a job that never finished");
            return self.attempt(lease, &job).finish(Err(err)).await;
        }
        self.attempt(lease, &job).run().await
    }

    /// Lends one reserved job what the slot keeps across jobs.
    fn attempt<'s>(&'s mut self, lease: Lease, job: &'s Job) -> Attempt<'s> {
        Attempt {
            lease,
            job,
            config: &self.config,
            conn: &mut self.conn,
            beat: &mut self.beat,
            spool: &self.spool,
            shutdown: &mut self.shutdown,
        }
    }

    /// What a job signed with key `kid`, which this filter does not hold, is: only a
    /// marker this filter can verify decides (issue 34). A marker proving the grid
    /// signs with another key stops every slot; one signed with this filter's key makes
    /// the job junk; anything else (no marker, a fake) leaves it unknown.
    async fn foreign_job(&mut self, kid: &str) -> ForeignJob {
        let Some(c) = self.conn.get() else {
            return ForeignJob::Unknown;
        };
        let grid = self.config.grid.clone();
        let marker = grid.key_marker(c).await;
        // Back on the jobs tube, where this connection puts nothing but releases.
        if let Err(e) = c.use_tube(&grid.config().jobs_tube()).await {
            tracing::warn!(error = %e, "lost the server");
            self.conn.lost();
        }
        let marker = marker.unwrap_or(KeyMarker::Unknown);
        if let KeyMarker::Succeeded { kid: grid_kid, by } = &marker {
            let why = super::stale_key(&grid, grid_kid, by);
            tracing::error!(job_key = kid, "{why}");
            self.beat.refusing = Some(why.clone());
            let _ = self.config.wrong_key.set(why);
        }
        marker.foreign_job()
    }

    /// Gives jobs back for a while after one signed with key `kid` that nothing proves
    /// to be the grid's or junk: a filter that can check it takes it meanwhile, and the
    /// heartbeat says why this slot is idle.
    fn refuse_for_a_while(&mut self, kid: &str) {
        let why = format!(
            "gives back jobs signed with key {kid}: this filter accepts {} (GRID_KEY_FILE, GRID_ALSO_ACCEPT_KEY_FILES), and the grid's key marker proves nothing it can check",
            self.config.grid.keys().accepted_ids().join(", ")
        );
        tracing::warn!(pause_s = REFUSING_PAUSE.as_secs(), "{why}");
        self.beat.refusing = Some(why);
        self.refusing_until = Some(Instant::now() + REFUSING_PAUSE);
    }

    /// The job in a reserved body, checked; else the job as far as it could be read (for
    /// the record) and why it cannot be analysed.
    fn read(&self, body: &[u8]) -> Result<Job, Box<(Job, JobError)>> {
        let unreadable = || Job::new(UNREADABLE, UNREADABLE);
        let opened = self
            .config
            .grid
            .keys()
            .verify(Kind::Job, body)
            .map_err(|e| {
                let said = Job::decode(body).unwrap_or_else(|_| unreadable());
                Box::new((said, JobError::Signature(e)))
            })?;
        Job::decode(&opened).map_err(|e| Box::new((unreadable(), JobError::Malformed(e))))
    }
}
