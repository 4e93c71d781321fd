//! The sink's loop: reserve results, write each into the checkout, commit in batches, and
//! delete a batch's results only after the commit that holds them. Killed at any moment,
//! nothing is lost (undeleted results come back) and nothing is committed twice (a
//! result already in the checkout changes nothing).

use common::sign::Kind;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use common::backoff::Backoff;
use common::beanstalk::{Client, Error as BsError, Job, JobState, PutOptions};
use common::config::GridConfig;
use common::paths::resolve_output;
use common::shutdown::Shutdown;
use common::wire::Failure;

use crate::checkout::Checkout;
use crate::incoming;

/// What the sink does, checked.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Server and tubes.
    pub grid: GridConfig,
    /// Commit after this many results…
    pub batch: usize,
    /// …or this long after the first of a batch arrived.
    pub commit_every: Duration,
    /// Push to this remote after each commit.
    pub push: Option<String>,
    /// Exit after this long with nothing to do.
    pub exit_when_idle: Option<Duration>,
    /// This machine's name, for failure records.
    pub host: String,
    /// The largest document written, in bytes (after unpacking); larger ones are buried.
    pub max_document: usize,
    /// The grid keys: results must be signed with one; records are signed.
    pub keys: std::sync::Arc<common::sign::Keys>,
}

/// Counts for the final report.
#[derive(Debug, Default, Clone, Copy)]
pub struct Totals {
    /// Results whose document was written.
    pub written: u64,
    /// Results whose video already had a JSON that was kept.
    pub kept: u64,
    /// Results buried for a bad body or path.
    pub buried: u64,
    /// Commits made.
    pub commits: u64,
}

/// Pushes commits to the remote, retrying a failed push with backoff; never fatal.
#[derive(Debug)]
struct Pusher {
    remote: Option<String>,
    pending: bool,
    next_try: Instant,
    backoff: Backoff,
}

impl Pusher {
    fn new(remote: Option<String>) -> Pusher {
        Pusher {
            remote,
            pending: false,
            next_try: Instant::now(),
            backoff: Backoff::new(Duration::from_secs(5), Duration::from_secs(600)),
        }
    }

    /// Pushes if a commit is waiting and its backoff has passed (or `now_anyway`).
    fn push(&mut self, checkout: &Checkout, now_anyway: bool) {
        let Some(remote) = &self.remote else { return };
        if !self.pending || (!now_anyway && Instant::now() < self.next_try) {
            return;
        }
        match checkout.push(remote) {
            Ok(()) => {
                tracing::info!(remote = %remote, "pushed");
                self.pending = false;
                self.backoff.reset();
            }
            Err(e) => {
                let delay = self.backoff.next_delay();
                tracing::warn!(remote = %remote, retry_in = delay.as_secs(), error = %format!("{e:#}"), "push failed; will retry");
                self.next_try = Instant::now() + delay;
            }
        }
    }
}

/// The sink's Prometheus metrics (`sink --metrics ADDR`).
pub mod metrics {
    use common::metrics::Metric;

    /// Results committed (written or kept).
    pub static RESULTS: Metric = Metric::counter(
        "camhd_sink_results_committed_total",
        "Results committed and deleted from the tube.",
    );
    /// Results buried.
    pub static BURIED: Metric = Metric::counter(
        "camhd_sink_results_buried_total",
        "Results buried for a bad body or path.",
    );
    /// Seconds spent committing.
    pub static COMMIT_SECONDS: Metric = Metric::counter(
        "camhd_sink_commit_seconds_sum",
        "Seconds spent in git add and commit (divide by _count).",
    );
    /// Commits made.
    pub static COMMITS: Metric =
        Metric::counter("camhd_sink_commit_seconds_count", "Commits made.");

    /// All of them, in the text format.
    pub fn render() -> String {
        common::metrics::render(&[&RESULTS, &BURIED, &COMMIT_SECONDS, &COMMITS])
    }
}

/// After a failed commit, its results come back this many seconds later.
const COMMIT_RETRY_SECS: u32 = 10;

/// A result written (or kept) and waiting for its commit.
#[derive(Debug)]
struct Pending {
    id: u64,
    path: PathBuf,
    /// Its output path, relative to the checkout.
    rel: String,
    /// Bytes written, or `None` when the committed JSON was kept.
    written: Option<usize>,
    video: String,
    /// The job it answers, deleted from the jobs tube once the result is committed.
    job_id: Option<u64>,
    job: common::wire::Job,
}

/// Runs until shutdown or idle; returns the totals.
pub async fn run(
    config: &SinkConfig,
    checkout: &Checkout,
    mut shutdown: Shutdown,
) -> anyhow::Result<Totals> {
    let mut totals = Totals::default();
    let mut batch: Vec<Pending> = Vec::new();
    let mut batch_started = Instant::now();
    let mut idle_since = Instant::now();
    let mut conn: Option<Client> = None;
    let mut pusher = Pusher::new(config.push.clone());
    let mut backoff = Backoff::reconnect();
    loop {
        let client = match conn.as_mut() {
            Some(c) => c,
            None => match connect(config).await {
                Ok(c) => {
                    backoff.reset();
                    conn.insert(c)
                }
                Err(e) if shutdown.stopping() => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "reconnecting");
                    tokio::time::sleep(backoff.next_delay()).await;
                    continue;
                }
            },
        };
        let due = !batch.is_empty()
            && (batch.len() >= config.batch || batch_started.elapsed() >= config.commit_every);
        if due || (shutdown.stopping() && !batch.is_empty()) {
            flush(
                client,
                config,
                checkout,
                &mut batch,
                &mut totals,
                &mut pusher,
            )
            .await?;
            continue;
        }
        if shutdown.stopping() {
            pusher.push(checkout, true);
            return Ok(totals);
        }
        if let Some(idle) = config.exit_when_idle {
            if batch.is_empty()
                && idle_since.elapsed() >= idle
                && nothing_waiting(client, config).await
            {
                tracing::info!("idle; exiting");
                pusher.push(checkout, true);
                return Ok(totals);
            }
        }
        let reserve = client.reserve_with_timeout(1);
        let result = tokio::select! {
            r = reserve => r,
            _ = shutdown.changed() => { conn = None; continue; }
        };
        match result {
            Ok(job) => {
                idle_since = Instant::now();
                if batch.is_empty() {
                    batch_started = Instant::now();
                }
                if let Some(p) = take(client, config, checkout, job, &batch, &mut totals).await? {
                    batch.push(p);
                }
            }
            Err(BsError::TimedOut) => pusher.push(checkout, false),
            // A held result is about to time out: commit what we have now.
            Err(BsError::DeadlineSoon) => {
                flush(
                    client,
                    config,
                    checkout,
                    &mut batch,
                    &mut totals,
                    &mut pusher,
                )
                .await?
            }
            Err(e) => {
                // Our reservations went back to ready with the connection; what was
                // written stays and is committed when those results come back.
                tracing::warn!(error = %e, pending = batch.len(), "lost the server");
                batch.clear();
                conn = None;
            }
        }
    }
}

/// True when no result is ready or delayed (released after a failed commit).
async fn nothing_waiting(client: &mut Client, config: &SinkConfig) -> bool {
    match client.stats_tube(&config.grid.results_tube()).await {
        Ok(s) => s.current_jobs_ready + s.current_jobs_delayed == 0,
        Err(BsError::NotFound) => true,
        Err(_) => false,
    }
}

async fn connect(config: &SinkConfig) -> anyhow::Result<Client> {
    let mut c = config.grid.connect().await?;
    let tube = config.grid.results_tube();
    c.watch(&tube)
        .await
        .with_context(|| format!("watching {tube}"))?;
    c.ignore("default").await?;
    Ok(c)
}

/// Writes (or keeps) one result; buries what must never be written or cannot be.
/// Returns an error only for a fault of the whole checkout.
async fn take(
    client: &mut Client,
    config: &SinkConfig,
    checkout: &Checkout,
    job: Job,
    batch: &[Pending],
    totals: &mut Totals,
) -> anyhow::Result<Option<Pending>> {
    let body = match config.keys.verify(Kind::Result, &job.body) {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(job = job.id, error = %e, "burying a result whose signature is refused");
            let said = incoming::job_said(&common::sign::unwrap(&job.body), config.max_document);
            let error = format!("result refused: {e}");
            bury(client, config, job.id, said.as_ref(), error, totals).await;
            return Ok(None);
        }
    };
    let accepted = match incoming::accept(&body, config.max_document) {
        Ok(a) => a,
        Err((of, refusal)) => {
            tracing::error!(job = job.id, error = %refusal, "burying a result");
            bury(
                client,
                config,
                job.id,
                of.as_deref(),
                refusal.to_string(),
                totals,
            )
            .await;
            return Ok(None);
        }
    };
    let video = accepted.job.video.clone();
    let rel = accepted.job.output.clone();
    let path = match resolve_output(checkout.root(), &rel) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(job = job.id, video = %video, error = %e, "burying a result with a hostile path");
            let error = format!("not written: {e}");
            bury(client, config, job.id, Some(&accepted.job), error, totals).await;
            return Ok(None);
        }
    };
    let exists =
        path.is_file() && (batch.iter().any(|p| p.rel == rel) || checkout.tracked(&rel)?);
    let written = if exists && !accepted.job.force {
        tracing::info!(job = job.id, video = %video, "JSON exists; kept");
        totals.kept += 1;
        None
    } else {
        match checkout.write_atomically(&path, &accepted.text) {
            Ok(()) => {
                tracing::info!(job = job.id, video = %video, path = %path.display(), "written");
                totals.written += 1;
                Some(accepted.text.len())
            }
            Err(e) if checkout.healthy() => {
                let error = format!("cannot write {rel} in the checkout: {e}");
                tracing::error!(job = job.id, video = %video, error = %error, "burying a result");
                bury(client, config, job.id, Some(&accepted.job), error, totals).await;
                return Ok(None);
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "the checkout {} cannot be written (read-only, full, or its permissions changed)",
                        checkout.root().display()
                    )
                })
            }
        }
    };
    Ok(Some(Pending {
        id: job.id,
        path,
        rel,
        written,
        video,
        job_id: accepted.job_id,
        job: accepted.job,
    }))
}

/// Parks a result that must never be written, with a failure record saying why for
/// `gridctl failed`. A failure here leaves the result reserved: it comes back with the
/// connection or its TTR, and is judged again.
async fn bury(
    client: &mut Client,
    config: &SinkConfig,
    id: u64,
    job: Option<&common::wire::Job>,
    error: String,
    totals: &mut Totals,
) {
    let record = Failure::now(id, job, &error, &config.host);
    let tube = config.grid.failures_tube();
    let parked = async {
        client.use_tube(&tube).await?;
        client
            .put(
                &config.keys.seal(Kind::Failure, &record.encode()),
                PutOptions::default(),
            )
            .await?;
        client.bury(id, 0).await
    };
    match parked.await {
        Ok(()) => {
            totals.buried += 1;
            metrics::BURIED.inc();
        }
        Err(e) => tracing::warn!(job = id, error = %e, "could not bury the result"),
    }
}

/// Commits the batch, then deletes its results and their jobs. A batch git refuses is
/// split until the culprit is found; it is buried with git's message and the rest are
/// committed. A result whose file git did not take into the commit is buried, never
/// deleted as if committed. Only a fault of the whole checkout (or of git itself) leaves
/// the batch reserved, to come back and be tried again.
async fn flush(
    client: &mut Client,
    config: &SinkConfig,
    checkout: &Checkout,
    batch: &mut Vec<Pending>,
    totals: &mut Totals,
    pusher: &mut Pusher,
) -> anyhow::Result<()> {
    let items: Vec<Pending> = std::mem::take(batch);
    let started = Instant::now();
    let outcome = commit_split(checkout, items, totals, pusher);
    let (committed, refused) = match outcome {
        Ok(parts) => parts,
        Err((items, e)) => {
            tracing::error!(error = %format!("{e:#}"), results = items.len(), "commit failed and the checkout is not writable; releasing the results to retry");
            for p in items {
                if let Err(e) = client.release(p.id, 1024, COMMIT_RETRY_SECS).await {
                    tracing::warn!(job = p.id, error = %e, "could not release; it returns when the connection closes");
                }
            }
            return Err(e);
        }
    };
    metrics::COMMIT_SECONDS.add(started.elapsed().as_secs_f64());
    for (p, why) in refused {
        tracing::error!(job = p.id, video = %p.video, error = %why, "burying a result git refused");
        bury(client, config, p.id, Some(&p.job), why, totals).await;
    }
    metrics::RESULTS.add(committed.len() as f64);
    let jobs_tube = config.grid.jobs_tube();
    for p in committed {
        if let Err(e) = client.delete(p.id).await {
            tracing::warn!(job = p.id, error = %e, "could not delete a committed result");
        }
        if let Some(job_id) = p.job_id {
            delete_job(client, &jobs_tube, job_id, &p).await;
        }
    }
    pusher.push(checkout, true);
    Ok(())
}

type Split = (Vec<Pending>, Vec<(Pending, String)>);

/// Commits `items`, halving on failure; returns the committed ones and the refused ones
/// with the reason. Fails (handing the items back) when git fails while the checkout
/// itself is not writable: then no result is to blame.
fn commit_split(
    checkout: &Checkout,
    items: Vec<Pending>,
    totals: &mut Totals,
    pusher: &mut Pusher,
) -> Result<Split, (Vec<Pending>, anyhow::Error)> {
    let rels: Vec<String> = items
        .iter()
        .filter(|p| p.written.is_some())
        .map(|p| p.rel.clone())
        .collect();
    if rels.is_empty() {
        return Ok((items, Vec::new()));
    }
    match checkout.commit(&rels, |changed| message(&items, changed)) {
        Ok(commit) => {
            if let Some(id) = &commit {
                metrics::COMMITS.inc();
                totals.commits += 1;
                pusher.pending = true;
                tracing::info!(commit = %id, results = items.len(), "committed");
            }
            let written: Vec<(String, usize)> = items
                .iter()
                .filter_map(|p| p.written.map(|n| (p.rel.clone(), n)))
                .collect();
            let missing = match checkout.not_in_head(&written) {
                Ok(m) => m,
                Err(e) => return Err((items, e)),
            };
            let (mut ok, mut bad) = (Vec::new(), Vec::new());
            for p in items {
                if missing.contains(&p.rel) {
                    checkout.discard(&p.rel, &p.path);
                    let why = format!("git did not take {} into the commit", p.rel);
                    bad.push((p, why));
                } else {
                    ok.push(p);
                }
            }
            Ok((ok, bad))
        }
        Err(e) if !checkout.healthy() => Err((items, e)),
        Err(e) if rels.len() == 1 => {
            let (mut ok, mut bad) = (Vec::new(), Vec::new());
            for p in items {
                if p.written.is_some() {
                    checkout.discard(&p.rel, &p.path);
                    bad.push((p, format!("git refused it: {e:#}")));
                } else {
                    ok.push(p);
                }
            }
            Ok((ok, bad))
        }
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), results = items.len(), "commit failed; splitting the batch to find the result git refuses");
            checkout.unstage(&rels);
            let mut items = items;
            let second = items.split_off(items.len() / 2);
            let (mut ok, mut bad) = commit_split(checkout, items, totals, pusher)?;
            match commit_split(checkout, second, totals, pusher) {
                Ok((ok2, bad2)) => {
                    ok.extend(ok2);
                    bad.extend(bad2);
                    Ok((ok, bad))
                }
                Err((mut back, e)) => {
                    // The first half is committed; hand back only what is not.
                    bad.into_iter().for_each(|(p, _)| back.push(p));
                    drop(ok);
                    Err((back, e))
                }
            }
        }
    }
}

/// The commit message: a count, then one line per video (control characters dropped),
/// of the items whose file is among `changed`, the paths the commit holds.
fn message(items: &[Pending], changed: &[String]) -> String {
    let changed: std::collections::HashSet<&str> = changed.iter().map(String::as_str).collect();
    let shown: Vec<&Pending> = items
        .iter()
        .filter(|p| p.written.is_some() && changed.contains(p.rel.as_str()))
        .collect();
    let mut message = format!("Add optical flow for {} video(s)\n\n", shown.len());
    for p in shown {
        let video: String = p.video.chars().filter(|c| !c.is_control()).collect();
        message.push_str(&format!("- {video}\n"));
    }
    message
}

/// Deletes the job a committed result answers (the filter left it delayed, awaiting this
/// commit), but only if it is still that job: in this namespace's jobs tube, for the same
/// video and output. A job some filter holds again (its delay ran out) is left to it;
/// its second result will find the JSON committed and change nothing.
async fn delete_job(client: &mut Client, jobs_tube: &str, job_id: u64, p: &Pending) {
    let same = match client.stats_job(job_id).await {
        Ok(s) if s.tube == jobs_tube && s.state != JobState::Reserved => {
            match client.peek(job_id).await {
                Ok(j) => common::wire::Job::decode(&j.body)
                    .is_ok_and(|job| job.output == p.rel && job.video == p.video),
                Err(_) => false,
            }
        }
        Ok(s) => {
            tracing::debug!(job = job_id, tube = %s.tube, state = ?s.state, "the job is not ours to delete");
            false
        }
        Err(_) => false,
    };
    if same {
        match client.delete(job_id).await {
            Ok(()) | Err(BsError::NotFound) => {}
            Err(e) => tracing::warn!(job = job_id, error = %e, "could not delete a committed job"),
        }
    }
}
