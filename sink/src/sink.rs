//! The sink: reserve results, write each into the checkout, commit in batches, commit
//! the regions derived from them, and delete a batch's results (and their jobs) only
//! after the commit that holds them. Killed at
//! any moment, nothing is lost (undeleted results come back) and nothing is committed
//! twice (a result already in the checkout changes nothing).

use std::time::{Duration, Instant};

use common::backoff::Backoff;
use common::beanstalk::{Client, Error as BsError, RawJob};
use common::grid::Grid;
use common::shutdown::Shutdown;
use common::wire::{Action, Failure, Job};

use crate::batch::Written;
use crate::checkout::Checkout;
use crate::commit::Committer;
use crate::fate::{decide, Event, Fate};
use crate::metrics;
use crate::push::Pusher;
use crate::write::{write_result, Wrote};

/// What the sink does, checked.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Server, tubes, keys (results must be signed with one; records are signed) and
    /// this machine's name.
    pub grid: Grid,
    /// Commit after this many results…
    pub batch: usize,
    /// …or this long after the first of a batch arrived.
    pub commit_every: Duration,
    /// Push to this remote after each commit.
    pub push: Option<String>,
    /// Exit after this long with nothing to do.
    pub exit_when_idle: Option<Duration>,
    /// With `exit_when_idle`: how long to keep trying to push before exiting anyway.
    pub push_wait: Duration,
    /// The largest document written, in bytes (after unpacking); larger ones are buried.
    pub max_document: usize,
    /// How long a batch waits for its regions files; one not derived by then is left
    /// for `sink regions`.
    pub regions_budget: Duration,
    /// The grid's archive budget, whose tokens the sink keeps (`common::archive`).
    pub archive_connections: Option<u32>,
}

/// How often the sink puts back the archive tokens missing (a server restarted without
/// its binlog) and deletes extra ones.
const TOKENS_EVERY: Duration = Duration::from_secs(60);

/// Counts for the final report.
#[derive(Debug, Default, Clone)]
pub struct Totals {
    /// Results whose document was written.
    pub written: u64,
    /// Results whose video already had a JSON that was kept.
    pub kept: u64,
    /// Results buried for a bad body or path.
    pub buried: u64,
    /// Commits made.
    pub commits: u64,
    /// Commits the remote does not have at exit, and the newest of them (`<short id>
    /// <subject>`).
    pub unpushed: (usize, Vec<String>),
    /// Why the last push failed, if commits wait.
    pub push_error: Option<String>,
}

/// The sink over one checkout, and the batch it is filling.
#[derive(Debug)]
pub struct Sink<'a> {
    config: SinkConfig,
    checkout: &'a Checkout,
    batch: Vec<Written>,
    totals: Totals,
    pusher: Pusher,
    /// The job holding this sink's state of the record, in `<namespace>.sink`.
    state_job: Option<u64>,
}

impl<'a> Sink<'a> {
    /// A sink writing into `checkout`.
    pub fn new(config: SinkConfig, checkout: &'a Checkout) -> Sink<'a> {
        Sink {
            pusher: Pusher::new(config.push.clone()),
            state_job: None,
            config,
            checkout,
            batch: Vec::new(),
            totals: Totals::default(),
        }
    }

    /// Runs until shutdown or idle; returns the totals.
    pub async fn run(mut self, mut shutdown: Shutdown) -> anyhow::Result<Totals> {
        let mut batch_started = Instant::now();
        let mut idle_since = Instant::now();
        let mut conn: Option<Client> = None;
        let mut backoff = Backoff::reconnect();
        let mut lost = false;
        let mut tokens_kept: Option<Instant> = None;
        let grid = self.config.grid.config();
        let server = grid.server.to_string();
        tracing::info!(server = %server, tube = %grid.results_tube(), checkout = %self.checkout.root().display(),
            push = self.config.push.as_deref().unwrap_or("(none)"), batch = self.config.batch,
            signed = self.config.grid.keys().enabled(), "sink started");
        loop {
            let c = match conn.as_mut() {
                Some(c) => c,
                None => match connect(&self.config).await {
                    Ok(c) => {
                        if std::mem::take(&mut lost) {
                            tracing::info!(server = %server, "reconnected to the server");
                        }
                        backoff.reset();
                        conn.insert(c)
                    }
                    Err(e) if shutdown.stopping() => return Err(e),
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "reconnecting");
                        lost = true;
                        tokio::time::sleep(backoff.next_delay()).await;
                        continue;
                    }
                },
            };
            let due = self.batch.len() >= self.config.batch
                || batch_started.elapsed() >= self.config.commit_every
                || shutdown.stopping();
            if !self.batch.is_empty() && due {
                self.flush(c).await?;
                continue;
            }
            if shutdown.stopping() || self.idle_long_enough(c, idle_since).await {
                if !shutdown.stopping() {
                    tracing::info!("idle; exiting");
                }
                let waiting = !shutdown.stopping();
                self.push_before_exit(c, waiting).await;
                return Ok(self.totals);
            }
            if tokens_kept.is_none_or(|t| t.elapsed() >= TOKENS_EVERY) {
                tokens_kept = Some(Instant::now());
                self.keep_tokens(c).await;
            }
            let reserved = tokio::select! {
                r = c.reserve_with_timeout(1) => r,
                _ = shutdown.changed() => { conn = None; continue; }
            };
            match reserved {
                Ok(result) => {
                    idle_since = Instant::now();
                    if self.batch.is_empty() {
                        batch_started = Instant::now();
                    }
                    self.take(c, result).await?;
                }
                // Only between batches: a merge must never meet written, uncommitted files.
                Err(BsError::TimedOut) if self.batch.is_empty() => self.push(c, false).await,
                Err(BsError::TimedOut) => {}
                // A held result is about to time out: commit what we have now.
                Err(BsError::DeadlineSoon) => self.flush(c).await?,
                Err(e) => {
                    // Our reservations went back to ready with the connection; what was
                    // written stays and is committed when those results come back.
                    tracing::warn!(error = %e, pending = self.batch.len(), "lost the server");
                    self.batch.clear();
                    conn = None;
                }
            }
        }
    }

    /// Makes the archive tube hold the grid's budget of tokens, when it has one.
    async fn keep_tokens(&self, c: &mut Client) {
        let Some(budget) = self.config.archive_connections else {
            return;
        };
        match common::archive::keep_tokens(&self.config.grid, c, budget).await {
            Ok(t) => tracing::debug!(budget, in_use = t.in_use, free = t.free, "archive tokens"),
            Err(e) => tracing::warn!(error = %e, "could not keep the archive tokens"),
        }
    }

    /// True when `--exit-when-idle` has passed with an empty batch and nothing waiting
    /// (ready, or delayed after a failed commit).
    async fn idle_long_enough(&self, c: &mut Client, idle_since: Instant) -> bool {
        let Some(idle) = self.config.exit_when_idle else {
            return false;
        };
        if !self.batch.is_empty() || idle_since.elapsed() < idle {
            return false;
        }
        match c
            .stats_tube_if_any(&self.config.grid.config().results_tube())
            .await
        {
            Ok(s) => s.is_none_or(|s| s.current_jobs_ready + s.current_jobs_delayed == 0),
            Err(_) => false,
        }
    }

    /// Writes (or keeps) one reserved result into the batch, or settles it at once when
    /// it must never be written. Fails only for a fault of the whole checkout.
    async fn take(&mut self, c: &mut Client, result: RawJob) -> anyhow::Result<()> {
        let (keys, max) = (self.config.grid.keys(), self.config.max_document);
        match write_result(keys, max, self.checkout, &self.batch, &result)? {
            Wrote::Written(w) => {
                match w.written {
                    Some(_) => self.totals.written += 1,
                    None => self.totals.kept += 1,
                }
                self.batch.push(*w);
            }
            Wrote::Refused { job, event } => {
                self.settle(c, result.id, job.as_deref(), decide(event))
                    .await
            }
        }
        Ok(())
    }

    /// Commits the batch, then deletes its results and their jobs. A result whose file
    /// git did not take into the commit, or that git refuses, is buried, never deleted
    /// as if committed. Only a fault of the whole checkout (or of git itself) leaves the
    /// batch reserved, to come back and be tried again.
    async fn flush(&mut self, c: &mut Client) -> anyhow::Result<()> {
        let items = std::mem::take(&mut self.batch);
        let started = Instant::now();
        let mut committer = Committer::new(self.checkout);
        let outcome = committer.commit(items);
        self.totals.commits += committer.commits;
        if committer.commits > 0 {
            self.pusher.committed();
        }
        let (committed, refused) = match outcome {
            Ok(parts) => parts,
            Err((items, e)) => {
                tracing::error!(error = %format!("{e:#}"), results = items.len(), "commit failed and the checkout is not writable; releasing the results to retry");
                for w in items {
                    self.settle(c, w.id, Some(&w.job), decide(Event::CheckoutFault))
                        .await;
                }
                return Err(e);
            }
        };
        metrics::COMMIT_SECONDS.add(started.elapsed().as_secs_f64());
        for (w, why) in refused {
            self.settle(c, w.id, Some(&w.job), decide(Event::GitRefused(why)))
                .await;
        }
        metrics::RESULTS.add(committed.len() as f64);
        // Before the results go: a sink killed here derives them again when they return.
        crate::regions::commit_regions(
            self.checkout,
            &committed,
            committer.commits,
            self.config.max_document,
            self.config.regions_budget,
        );
        for w in committed {
            self.settle_committed(c, &w).await;
        }
        self.push(c, true).await;
        Ok(())
    }

    /// Pushes what waits (now, or when its backoff has passed); a file edited on the
    /// remote as well keeps the remote's version, and a record says so.
    async fn push(&mut self, c: &mut Client, now_anyway: bool) {
        let tried = self.pusher.due(now_anyway);
        let kept = self.pusher.push(self.checkout, now_anyway);
        if tried || self.state_job.is_none() {
            self.publish_state(c).await;
        }
        for path in kept {
            metrics::KEPT_REMOTE.inc();
            let remote = self.config.push.as_deref().unwrap_or("the remote");
            // Not "after": only that both changed it since the two last agreed is known.
            let error = format!("{path} was also edited on {remote} (both changed it since the two last agreed): the remote's version was kept, the grid's stays in the history, and any regions file derived from the grid's version was removed");
            tracing::warn!(path = %path, "{error}");
            let mut record = common::wire::Failure::now(0, None, &error, self.config.grid.host());
            record.output = path;
            record.action = Action::Superseded;
            if let Err(e) = self.config.grid.record_failure(c, &record).await {
                tracing::warn!(error = %e, "could not record a file kept as the remote has it");
            }
        }
    }

    /// Replaces this sink's state of the record in `<namespace>.sink` (what is not pushed
    /// yet, and why), for `gridctl status` and the dashboard. Another sink's is left
    /// from before (this one holds the checkout's lock): it goes too.
    async fn publish_state(&mut self, c: &mut Client) {
        let grid = self.config.grid.clone();
        let tube = grid.config().sink_tube();
        let (unpushed_count, unpushed) = self.pusher.unpushed(self.checkout);
        let state = common::wire::SinkState {
            version: common::wire::WIRE_VERSION,
            host: grid.host().to_owned(),
            remote: self.config.push.clone(),
            unpushed_count: unpushed_count as u64,
            unpushed,
            push_error: self.pusher.failure().map(str::to_owned),
            at: chrono::Utc::now(),
        };
        let sealed = grid.seal(common::sign::Kind::Sink, &state.encode());
        let published = async {
            let id = grid
                .put(c, &tube, &sealed, common::beanstalk::PutOptions::default())
                .await?;
            match self.state_job.replace(id) {
                Some(prev) => match c.delete(prev).await {
                    Ok(()) | Err(BsError::NotFound) => Ok(()),
                    Err(e) => Err(e),
                },
                None => grid.clear_but(c, &tube, id, 16).await,
            }
        };
        if let Err(e) = published.await {
            tracing::warn!(error = %e, tube = %tube, "could not publish the sink's state");
        }
    }

    /// The last push before exiting: when idle (`waiting`), tried again within
    /// `--push-wait`; what is still not pushed is in the totals.
    async fn push_before_exit(&mut self, c: &mut Client, waiting: bool) {
        let started = Instant::now();
        loop {
            self.push(c, true).await;
            let left = self.config.push_wait.saturating_sub(started.elapsed());
            if !self.pusher.pending() || !waiting || left.is_zero() {
                break;
            }
            tokio::time::sleep(left.min(Duration::from_secs(5))).await;
        }
        self.totals.unpushed = self.pusher.unpushed(self.checkout);
        self.totals.push_error = self.pusher.failure().map(str::to_owned);
    }

    /// Applies a result's fate: the one place a result leaves the tube or is parked. A
    /// result deleted takes the job it answers with it ([`Sink::settle_committed`]).
    async fn settle(&mut self, c: &mut Client, id: u64, job: Option<&Job>, fate: Fate) {
        let video = job.map_or(common::wire::UNREADABLE, |j| j.video.as_str());
        match fate {
            Fate::Delete => {
                if let Err(e) = c.delete(id).await {
                    tracing::warn!(job = id, error = %e, "could not delete a committed result");
                }
            }
            Fate::Release { delay_secs } => {
                if let Err(e) = c.release(id, 1024, delay_secs).await {
                    tracing::warn!(job = id, error = %e, "could not release; it returns when the connection closes");
                }
            }
            Fate::Bury { error } => {
                tracing::error!(job = id, video = %video, error = %error, "burying a result");
                let record = Failure::now(id, job, &error, self.config.grid.host());
                let parked = async {
                    self.config.grid.record_failure(c, &record).await?;
                    c.bury(id, 0).await
                };
                // A failure here leaves the result reserved: it comes back with the
                // connection or its TTR, and is judged again.
                match parked.await {
                    Ok(()) => {
                        self.totals.buried += 1;
                        metrics::BURIED.inc();
                    }
                    Err(e) => tracing::warn!(job = id, error = %e, "could not bury the result"),
                }
            }
        }
    }

    /// Deletes a committed result, then the job it answers (the filter left it delayed,
    /// awaiting this commit), but only if it is still that job and nobody holds it. A
    /// job some filter holds again (its delay ran out) is left to it; its second result
    /// will find the JSON committed and change nothing.
    async fn settle_committed(&mut self, c: &mut Client, w: &Written) {
        self.settle(c, w.id, Some(&w.job), decide(Event::Committed))
            .await;
        let Some(job_id) = w.job_id else { return };
        let grid = &self.config.grid;
        if let Ok(true) = grid.idle_job_for(c, job_id, &w.video, &w.rel).await {
            match c.delete(job_id).await {
                Ok(()) | Err(BsError::NotFound) => {}
                Err(e) => {
                    tracing::warn!(job = job_id, error = %e, "could not delete a committed job")
                }
            }
        }
    }
}

async fn connect(config: &SinkConfig) -> anyhow::Result<Client> {
    let grid = &config.grid;
    grid.connect_watching(&grid.config().results_tube()).await
}
