//! One job slot: its own connection, one job at a time, never dropping a reservation —
//! every job it reserves ends deleted (result delivered), released or buried, or goes
//! back to ready with the connection.

use common::sign::Kind;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use common::backoff::Backoff;
use common::beanstalk::{Client, Error as BsError, Job as Reserved, PutOptions};
use common::shutdown::{Phase, Shutdown};
use common::wire::{ComputedBy, Failure, Job, JobResult, UNREADABLE, WIRE_VERSION};
use tracing::Instrument;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::heartbeat::{self, Beat, Progress};
use super::outcome::{decide, JobError, Outcome};
use super::{metrics, Totals, WorkerConfig};
use crate::source::{self, SourceKind};
use crate::{analyze, Settings};

/// Results may sit in the results tube while the sink batches them.
const RESULT_TTR: u32 = 600;

/// How often slot 0 offers spooled results to the server again while idle.
const SPOOL_RETRY: Duration = Duration::from_secs(60);

/// A slot's loop.
pub async fn run(index: usize, config: WorkerConfig, mut shutdown: Shutdown) -> Totals {
    let mut totals = Totals::default();
    let mut conn: Option<Client> = None;
    let mut backoff = Backoff::reconnect();
    let mut idle_since = Instant::now();
    let mut spool_checked: Option<Instant> = None;
    let mut beat = Beat::new(&config, index);
    while !shutdown.stopping() {
        let client = match conn.as_mut() {
            Some(c) => c,
            None => match connect(&config).await {
                Ok(c) => {
                    backoff.reset();
                    let c = conn.insert(c);
                    if index == 0 {
                        match heartbeat::sweep(c, &config.grid).await {
                            Ok(0) => {}
                            Ok(n) => tracing::info!(
                                removed = n,
                                "removed heartbeats of filters dead for over ten minutes"
                            ),
                            Err(e) => {
                                tracing::debug!(error = %e, "could not sweep dead heartbeats")
                            }
                        }
                    }
                    beat.publish(c, None, None).await;
                    c
                }
                Err(e) => {
                    tracing::warn!(slot = index, error = %format!("{e:#}"), "reconnecting");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff.next_delay()) => {}
                        _ = shutdown.changed() => {}
                    }
                    continue;
                }
            },
        };
        if index == 0 && spool_checked.is_none_or(|t| t.elapsed() >= SPOOL_RETRY) {
            spool_checked = Some(Instant::now());
            if let Err(e) = retry_spool(client, &config).await {
                tracing::warn!(error = %e, "could not offer spooled results");
                conn = None;
                continue;
            }
        }
        if let Some(idle) = config.exit_when_idle {
            if idle_since.elapsed() >= idle {
                tracing::info!(slot = index, "idle; exiting");
                break;
            }
        }
        if beat.due() {
            beat.publish(client, None, None).await;
        }
        // Not cancel-safe, so never raced against the signal: a 1 s timeout notices it.
        match client.reserve_with_timeout(1).await {
            Ok(job) => {
                let span = tracing::info_span!("job", job = job.id, slot = index);
                match process(&mut conn, job, &config, &mut shutdown, &mut beat)
                    .instrument(span)
                    .await
                {
                    Some(Outcome::AwaitCommit { .. }) => {
                        totals.done += 1;
                        metrics::JOBS_DONE.inc();
                    }
                    Some(Outcome::Release { .. }) => {
                        totals.released += 1;
                        metrics::JOBS_RELEASED.inc();
                    }
                    Some(Outcome::Bury) => {
                        totals.buried += 1;
                        metrics::JOBS_FAILED.inc();
                    }
                    None => {}
                }
                idle_since = Instant::now();
                if let Some(c) = conn.as_mut() {
                    beat.publish(c, None, None).await;
                }
            }
            Err(BsError::TimedOut | BsError::DeadlineSoon) => {}
            Err(e) => {
                tracing::warn!(slot = index, error = %e, "lost the server");
                conn = None;
            }
        }
    }
    if let Some(c) = conn.as_mut() {
        beat.clear(c).await;
    }
    totals
}

async fn connect(config: &WorkerConfig) -> anyhow::Result<Client> {
    let mut c = config.grid.connect().await?;
    let jobs = config.grid.jobs_tube();
    c.watch(&jobs)
        .await
        .with_context(|| format!("watching {jobs}"))?;
    c.ignore("default").await?;
    c.use_tube(&config.grid.results_tube()).await?;
    Ok(c)
}

/// Handles one reserved job; returns its outcome, or `None` if it was given back
/// unfinished (shutdown) or its reservation was lost with the connection.
async fn process(
    conn: &mut Option<Client>,
    reserved: Reserved,
    config: &WorkerConfig,
    shutdown: &mut Shutdown,
    beat: &mut Beat,
) -> Option<Outcome> {
    let id = reserved.id;
    let client = conn.as_mut()?;
    let (priority, attempt) = match client.stats_job(id).await {
        Ok(s) => (s.pri, s.reserves.max(1) as u32),
        Err(_) => (1024, 1),
    };
    let body = match config.keys.verify(Kind::Job, &reserved.body) {
        Ok(body) => body,
        Err(e) => {
            let err = JobError::Signature(e);
            tracing::error!(error = %err, "burying a job whose signature is refused");
            let said = Job::decode(&reserved.body).ok();
            let failed = said.unwrap_or_else(|| Job::new(UNREADABLE, UNREADABLE));
            return finish(conn, id, priority, attempt, &failed, Err(err), config).await;
        }
    };
    let job = match Job::decode(&body) {
        Ok(job) => job,
        Err(e) => {
            let err = JobError::Malformed(e);
            tracing::error!(error = %err, "burying a malformed job");
            let failed = Job::new(UNREADABLE, UNREADABLE);
            return finish(conn, id, priority, attempt, &failed, Err(err), config).await;
        }
    };
    if attempt > config.retry.max_attempts {
        let err = JobError::Died { reserves: attempt };
        tracing::error!(error = %err, video = %job.video, "burying a job that never finished");
        return finish(conn, id, priority, attempt, &job, Err(err), config).await;
    }
    tracing::info!(video = %job.video, attempt, "analysing");
    let started = Utc::now();
    let progress = Arc::new(Progress::default());
    if let Some(c) = conn.as_mut() {
        beat.publish(c, Some((id, &job.video)), Some(&progress))
            .await;
    }
    let analysis = {
        let (job, scale, threads) = (job.clone(), config.scale, config.threads);
        let deadline = source::Deadline::starting_now(config.video_deadline);
        let http = config.http.within(&deadline);
        let decoder = config.decoder;
        let progress = Arc::clone(&progress);
        tokio::task::spawn_blocking(move || {
            let settings = Settings {
                stride: job.stride,
                start: job.start,
                stop: job.stop,
                img_scale: scale,
                threads,
                decoder,
                deadline: Some(deadline),
            };
            let source = source::open_with(&job.video, SourceKind::Auto, scale, &http)?;
            analyze(source, &settings, &mut |p| {
                progress.done.store(p.pairs_done as u64, Ordering::Relaxed);
                progress
                    .total
                    .store(p.pairs_total as u64, Ordering::Relaxed);
            })
        })
    };
    tokio::pin!(analysis);
    let mut ticker = tokio::time::interval(config.touch_every);
    ticker.tick().await;
    let mut deadline = shutdown.stopping().then(|| Instant::now() + config.grace);
    let outcome = loop {
        let grace = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = &mut analysis => break r,
            _ = ticker.tick() => {
                touch(conn, id).await;
                if let Some(c) = conn.as_mut() {
                    beat.publish(c, Some((id, &job.video)), Some(&progress)).await;
                }
            }
            _ = shutdown.changed() => match shutdown.phase() {
                Phase::Abort => return give_back(conn, id, priority, "second signal").await,
                Phase::Draining => deadline = deadline.or(Some(Instant::now() + config.grace)),
                Phase::Running => {}
            },
            _ = grace => return give_back(conn, id, priority, "grace period over").await,
        }
    };
    let result = match outcome {
        Ok(Ok(analysis)) => deliver(conn, id, &job, analysis, started, config, shutdown).await,
        Ok(Err(e)) => Err(JobError::Analysis(e)),
        Err(join) => Err(JobError::Internal(format!(
            "the analysis thread failed: {join}"
        ))),
    };
    finish(conn, id, priority, attempt, &job, result, config).await
}

/// Keeps the reservation alive; a failure means the connection is gone, and with it the
/// reservation (the job went back to ready). The analysis goes on: its result is still
/// delivered.
async fn touch(conn: &mut Option<Client>, id: u64) {
    if let Some(c) = conn.as_mut() {
        if let Err(e) = c.touch(id).await {
            tracing::warn!(error = %e, "touch failed; the reservation is lost, the result will still be delivered");
            if e.is_connection_lost() {
                *conn = None;
            }
        }
    }
}

async fn give_back(
    conn: &mut Option<Client>,
    id: u64,
    priority: u32,
    why: &str,
) -> Option<Outcome> {
    tracing::warn!(reason = why, "releasing an unfinished job");
    if let Some(c) = conn.as_mut() {
        if let Err(e) = c.release(id, priority, 0).await {
            tracing::warn!(error = %e, "release failed; the job returns when the connection closes");
        }
    }
    None
}

/// Puts the result into the results tube, reconnecting if the connection was lost
/// meanwhile. A result too big for the server is spooled, and so is one the server cannot
/// take while we shut down (after the grace period, or at once on a second signal): a
/// result is never dropped.
async fn deliver(
    conn: &mut Option<Client>,
    id: u64,
    job: &Job,
    analysis: crate::Analysis,
    started: chrono::DateTime<Utc>,
    config: &WorkerConfig,
    shutdown: &Shutdown,
) -> Result<(), JobError> {
    metrics::FRAMES.add(analysis.document.frame_stats.len() as f64);
    metrics::VIDEO_SECONDS.add(analysis.stats.elapsed.as_secs_f64());
    metrics::VIDEOS.inc();
    let result = JobResult {
        version: WIRE_VERSION,
        job: job.clone(),
        job_id: Some(id),
        document: serde_json::to_value(&analysis.document)
            .map_err(|e| JobError::Internal(format!("serialising the document: {e}")))?,
        document_gzip: None,
        computed_by: ComputedBy {
            host: config.host.clone(),
            software: format!("camhd-grid filter {}", env!("CARGO_PKG_VERSION")),
            started_at: started,
            finished_at: Utc::now(),
            elapsed_seconds: analysis.stats.elapsed.as_secs_f64(),
        },
    };
    let body = config.keys.seal(Kind::Result, &result.encode());
    let options = PutOptions {
        priority: 1024,
        delay: 0,
        ttr: RESULT_TTR,
    };
    let mut wait = Duration::from_millis(200);
    let failing_since = Instant::now();
    loop {
        let given_up = shutdown.phase() == Phase::Abort
            || (shutdown.stopping() && failing_since.elapsed() >= config.grace);
        if given_up {
            return Err(match spool(config, id, &body) {
                JobError::ResultTooBig { spool, .. } => JobError::Internal(format!(
                    "the server is unreachable and we are shutting down; the result is spooled in {spool}"
                )),
                other => other,
            });
        }
        if conn.is_none() {
            *conn = connect(config).await.ok();
        }
        if let Some(c) = conn.as_mut() {
            match c.put(&body, options).await {
                Ok(rid) => {
                    tracing::info!(result = rid, video = %job.video, "result delivered");
                    return Ok(());
                }
                Err(BsError::JobTooBig) => return Err(spool(config, id, &body)),
                Err(e) => {
                    tracing::warn!(error = %e, "could not put the result; retrying");
                    *conn = None;
                }
            }
        }
        // The result is never dropped: keep trying until the server is back.
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(30));
    }
}

/// Offers each spooled result to the server again; one that is taken is removed from the
/// spool. The job that was buried for it stays until the sink commits the result and
/// deletes it, like every delivered job. The spool folder is this grid's own (server and
/// namespace), and a result is offered only while its job is still there and still the
/// same video and output; any other is moved aside, with a warning, and never offered.
async fn retry_spool(client: &mut Client, config: &WorkerConfig) -> Result<(), BsError> {
    let Ok(entries) = std::fs::read_dir(&config.spool) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(id) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".result.json"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        let Ok(body) = std::fs::read(&path) else {
            continue;
        };
        if let Some(why) = not_its_job(client, config, id, &body).await? {
            set_aside(config, &path, &why);
            continue;
        }
        let options = PutOptions {
            priority: 1024,
            delay: 0,
            ttr: RESULT_TTR,
        };
        match client.put(&body, options).await {
            Ok(rid) => {
                tracing::info!(job = id, result = rid, spool = %path.display(), "spooled result delivered");
                let _ = std::fs::remove_file(&path);
            }
            Err(BsError::JobTooBig) => {
                tracing::warn!(
                    job = id,
                    size = body.len(),
                    "a spooled result is still too big; raise beanstalkd -z"
                );
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Why the spooled result `body` no longer answers job `id` on this server, if it does not.
async fn not_its_job(
    client: &mut Client,
    config: &WorkerConfig,
    id: u64,
    body: &[u8],
) -> Result<Option<String>, BsError> {
    let Ok(result) = JobResult::decode(body) else {
        return Ok(Some("the spooled result cannot be read".into()));
    };
    let jobs = config.grid.jobs_tube();
    match client.stats_job(id).await {
        Ok(s) if s.tube == jobs => {}
        Ok(s) => {
            return Ok(Some(format!(
                "job {id} is in {} on this server, not {jobs}",
                s.tube
            )))
        }
        Err(BsError::NotFound) => return Ok(Some(format!("job {id} is gone from this server"))),
        Err(e) => return Err(e),
    }
    let job = match client.peek(id).await {
        Ok(j) => Job::decode(&j.body).ok(),
        Err(BsError::NotFound) => None,
        Err(e) => return Err(e),
    };
    Ok(match job {
        Some(j) if j.video == result.job.video && j.output == result.job.output => None,
        _ => Some(format!("job {id} on this server is another video now")),
    })
}

/// Moves a spooled result that must not be delivered into `aside/`, never deleting it.
fn set_aside(config: &WorkerConfig, path: &std::path::Path, why: &str) {
    let aside = config.spool.join("aside");
    let target = aside.join(path.file_name().unwrap_or_default());
    let moved = std::fs::create_dir_all(&aside).and_then(|()| std::fs::rename(path, &target));
    match moved {
        Ok(()) => {
            tracing::warn!(reason = why, kept = %target.display(), "a spooled result no longer matches its job; kept aside, not delivered")
        }
        Err(e) => {
            tracing::warn!(reason = why, error = %e, "a spooled result no longer matches its job and could not be moved aside")
        }
    }
}

/// Keeps a result the server refused for its size, named by its job id.
fn spool(config: &WorkerConfig, id: u64, body: &[u8]) -> JobError {
    let path = config.spool.join(format!("{id}.result.json"));
    let written = std::fs::create_dir_all(&config.spool).and_then(|()| std::fs::write(&path, body));
    match written {
        Ok(()) => JobError::ResultTooBig {
            size: body.len(),
            spool: path.display().to_string(),
        },
        Err(e) => JobError::Internal(format!(
            "the result is too big for the server (raise beanstalkd -z) and could not be spooled to {}: {e}",
            path.display()
        )),
    }
}

/// Applies the outcome `decide` picks, recording any failure in the failures tube first.
async fn finish(
    conn: &mut Option<Client>,
    id: u64,
    priority: u32,
    attempt: u32,
    job: &Job,
    result: Result<(), JobError>,
    config: &WorkerConfig,
) -> Option<Outcome> {
    let outcome = decide(&result, attempt, id, &config.retry);
    if conn.is_none() {
        *conn = connect(config).await.ok();
    }
    let c = conn.as_mut()?;
    if let Err(err) = &result {
        let action = match outcome {
            Outcome::Release { delay } => format!("released; retry in {}s", delay.as_secs()),
            _ => "buried".into(),
        };
        tracing::warn!(error = %err, action = %action, "job failed");
        record(c, config, id, attempt, job, err, &action).await;
    }
    let applied = match outcome {
        Outcome::AwaitCommit { delay } => await_commit(c, id, priority, delay).await,
        Outcome::Release { delay } => c.release(id, priority, delay.as_secs() as u32).await,
        Outcome::Bury => c.bury(id, priority).await,
    };
    match applied {
        Ok(()) => Some(outcome),
        // Lost the reservation (TTR ran out, or a reconnect): the job is someone else's
        // now; a delivered result is still in the results tube, and the sink de-duplicates.
        Err(BsError::NotFound) => {
            tracing::warn!(?outcome, "the job was no longer ours to finish");
            Some(outcome)
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not finish the job; it returns to ready with the connection");
            *conn = None;
            None
        }
    }
}

/// Delays a delivered job for the sink to delete after its commit. A job whose
/// reservation was lost (TTR, a server restart) but that nobody else holds is reserved
/// again by id, so it waits too rather than being analysed a second time.
async fn await_commit(
    c: &mut Client,
    id: u64,
    priority: u32,
    delay: Duration,
) -> Result<(), BsError> {
    let secs = u32::try_from(delay.as_secs()).unwrap_or(u32::MAX);
    match c.release(id, priority, secs).await {
        Err(BsError::NotFound) => {
            c.reserve_job(id).await?;
            c.release(id, priority, secs).await
        }
        other => other,
    }
}

async fn record(
    c: &mut Client,
    config: &WorkerConfig,
    id: u64,
    attempt: u32,
    job: &Job,
    err: &JobError,
    action: &str,
) {
    let failure = Failure {
        attempt,
        action: action.to_owned(),
        ..Failure::now(id, Some(job), &err.to_string(), &config.host)
    };
    let tube = config.grid.failures_tube();
    let put = async {
        c.use_tube(&tube).await?;
        c.put(
            &config.keys.seal(Kind::Failure, &failure.encode()),
            PutOptions::default(),
        )
        .await?;
        c.use_tube(&config.grid.results_tube()).await
    };
    if let Err(e) = put.await {
        tracing::warn!(error = %e, "could not record the failure in {tube}");
    }
}
