//! The queuer's pass: walk the sources, skip videos whose JSON is in the checkout or whose
//! job is still in the grid, and put a job for each of the rest.

use common::sign::Kind;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use chrono::{NaiveDate, Utc};
use common::beanstalk::{Client, Error as BsError, PutOptions};
use common::grid::{Grid, JobNow, KeyMarker};
use common::paths::{archive_date, check_output, output_for};
use common::shutdown::{Phase, Shutdown};
use common::wire::{Job, QueuedBy, WIRE_VERSION};
use movie::Hosts;

use crate::found::{Candidate, Rejected};
use crate::grid_id::{grid_id, GridId};
use crate::ledger::{Ledger, Pending};
use crate::sources::walk;

/// The queuer's checked configuration.
#[derive(Debug, Clone)]
pub struct QueuerConfig {
    /// Server, tubes and keys: jobs are signed with them.
    pub grid: Grid,
    /// The metadata checkout (for the completeness check).
    pub checkout: PathBuf,
    /// The ledger file.
    pub ledger: PathBuf,
    /// SOURCEs.
    pub sources: Vec<String>,
    /// Job parameters.
    pub stride: u32,
    /// First sampled frame.
    pub start: u64,
    /// One past the last sampled frame (-1: all).
    pub stop: i64,
    /// Job priority.
    pub priority: u32,
    /// Job time-to-run.
    pub ttr: u32,
    /// Queue even if the JSON exists (and let the sink replace it).
    pub force: bool,
    /// Show, do not queue.
    pub dry_run: bool,
    /// Queue at most this many.
    pub limit: Option<usize>,
    /// Only videos recorded on or after this date.
    pub since: Option<NaiveDate>,
    /// Only videos recorded on or before this date.
    pub until: Option<NaiveDate>,
    /// Open each video's index before queuing it.
    pub verify: bool,
    /// Every request to an archive host (listings, --verify) goes through this one pool
    /// and budget per host, trusting whom `https://` sources must prove themselves to.
    pub archive: Arc<Hosts>,
    /// The grid has an archive budget (`GRID_ARCHIVE_CONNECTIONS`): those requests also
    /// wait for its tokens, held for the pass.
    pub archive_budget: bool,
    /// Videos given up on for good, read from the checkout at start.
    pub skip: common::skip::SkipList,
}

/// What a pass did.
#[derive(Debug, Default)]
pub struct Summary {
    /// Jobs put (or, with --dry-run, that would be).
    pub queued: usize,
    /// Videos whose JSON is in the checkout.
    pub done: usize,
    /// Videos whose job is still in the grid.
    pub in_flight: usize,
    /// Videos outside --since/--until.
    pub out_of_range: usize,
    /// Videos given up on for good (`gridctl discard --forever`, the checkout's skip list).
    pub skipped: usize,
    /// Entries that could not become jobs.
    pub rejected: Vec<Rejected>,
}

/// A queuer without a key on a grid whose key marker is signed cannot tell whether the
/// marker is the grid's (then every filter with the key buries what it queues, each with
/// the reason) or a fake that anyone who reaches the server could put: a marker it
/// cannot verify never stops it (issue 34). It says so, naming the key, and queues.
async fn warn_unsigned_on_a_signed_grid(
    config: &QueuerConfig,
    client: &mut Client,
) -> anyhow::Result<()> {
    if config.grid.keys().enabled() {
        return Ok(());
    }
    let marker = config
        .grid
        .key_marker(client)
        .await
        .context("reading the grid's key marker")?;
    if let KeyMarker::Unverified { kid } = marker {
        tracing::warn!(
            "the grid's key marker (in {}) claims key {kid}, and this queuer has no key to check it: if the grid signs with that key, every filter with it buries the unsigned jobs this queues; give the grid's key (--key-file, GRID_KEY_FILE; the services read /etc/camhd-grid/grid.env). Queuing anyway: a marker nobody here can verify proves nothing",
            config.grid.config().key_tube()
        );
    }
    Ok(())
}

/// How long the end of a pass waits for its lease to give the grid's tokens back.
const LEASE_END: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs one pass, within the grid's archive budget when it has one: a lease holds this
/// process's share of the tokens for the pass and gives every one back at its end.
pub async fn run(config: &QueuerConfig, client: &mut Client) -> anyhow::Result<Summary> {
    if !config.archive_budget {
        return pass(config, client).await;
    }
    let (stop, shutdown) = Shutdown::new();
    let share = config.archive.share_grid_budget();
    let lease = tokio::spawn(movie::hosts::lease::keep(
        config.grid.clone(),
        share,
        shutdown,
    ));
    let summary = pass(config, client).await;
    let _ = stop.send(Phase::Draining);
    // It releases its tokens within a second; one that cannot reach the server (waiting
    // to reconnect) holds none: the server took them back with its connection.
    let _ = tokio::time::timeout(LEASE_END, lease).await;
    summary
}

/// One pass: the ledger made current, then every source walked and its videos queued.
async fn pass(config: &QueuerConfig, client: &mut Client) -> anyhow::Result<Summary> {
    let mut summary = Summary::default();
    let GridId {
        id: grid,
        floor: grid_floor,
    } = grid_id(client, config.grid.config()).await?;
    if !config.dry_run {
        warn_unsigned_on_a_signed_grid(config, client).await?;
        config
            .grid
            .keep_key_marker(client)
            .await
            .context("keeping the grid's key marker")?;
    }
    let mut ledger = Ledger::open(&config.ledger, &grid)?;
    // Every id the server hands out from now on is above `floor`.
    let mut floor = newest_id(client, config).await?;
    if let Some(reason) = ledger.rebuild_reason().map(str::to_owned) {
        tracing::info!(reason = %reason, "rebuilding the ledger from the server's jobs");
        let found = rebuild(client, config, &mut ledger, floor, grid_floor).await?;
        ledger.compact()?;
        tracing::info!(jobs = found, "ledger rebuilt");
    }
    if let Some(pending) = ledger.take_pending() {
        if let Some(id) = find_pending(client, config, &pending, floor).await? {
            tracing::info!(job = id, output = %pending.output, "a put of the previous pass went through before it was killed");
            ledger.insert(&pending.output, id)?;
        }
    }
    let jobs_tube = config.grid.config().jobs_tube();
    client.use_tube(&jobs_tube).await?;
    let host = config.grid.host().to_owned();
    for source in &config.sources {
        let found = walk(source, &config.archive);
        summary.rejected.extend(found.rejected);
        for candidate in found.videos {
            if config.limit.is_some_and(|l| summary.queued >= l) {
                break;
            }
            if let Some(job) =
                consider(config, client, &mut ledger, &mut summary, &candidate).await?
            {
                let job = Job {
                    queued_by: Some(QueuedBy {
                        at: Utc::now(),
                        host: host.clone(),
                        source: source.clone(),
                        software: format!("camhd-grid queuer {}", env!("CARGO_PKG_VERSION")),
                    }),
                    ..job
                };
                if config.dry_run {
                    common::cli::out_line(format_args!("would queue {}", job.video))?;
                } else {
                    let options = PutOptions {
                        priority: config.priority,
                        delay: 0,
                        ttr: config.ttr,
                    };
                    ledger.intend(&job.output, floor)?;
                    let sealed = config.grid.seal(Kind::Job, &job.encode());
                    let id = config
                        .grid
                        .put(client, &jobs_tube, &sealed, options)
                        .await?;
                    ledger.insert(&job.output, id)?;
                    floor = floor.max(id);
                    common::cli::out_line(format_args!("queued {id} {}", job.video))?;
                }
                summary.queued += 1;
            }
        }
    }
    ledger.compact()?;
    Ok(summary)
}

/// The most ids a killed pass's last put is looked for among; past that, the video may be
/// queued twice (the sink keeps the first result), which is said in a warning.
const PENDING_SCAN: u64 = 100_000;

/// The newest job id on the server, learnt by putting (and at once deleting) a probe in
/// the queuer's own tube, which no filter watches.
async fn newest_id(client: &mut Client, config: &QueuerConfig) -> anyhow::Result<u64> {
    let tube = config.grid.config().queuer_tube();
    client.use_tube(&tube).await?;
    let options = PutOptions {
        priority: 0,
        delay: 0,
        ttr: 60,
    };
    let id = client.put(b"{\"probe\": true}", options).await?;
    client.delete(id).await?;
    Ok(id)
}

/// Looks for the job a killed pass may have put for `pending.output` just before it died:
/// among the ids between the last one it knew and now, one in the jobs tube for that output.
async fn find_pending(
    client: &mut Client,
    config: &QueuerConfig,
    pending: &Pending,
    newest: u64,
) -> anyhow::Result<Option<u64>> {
    let first = pending.after + 1;
    let last = newest.min(pending.after.saturating_add(PENDING_SCAN));
    if newest > last {
        tracing::warn!(output = %pending.output, "the previous pass was killed while queuing this video, too long ago to find its job; it may be queued twice (the sink keeps the first result)");
    }
    for id in first..=last {
        let now = config.grid.job(client, id).await?;
        if now.for_output(id, None, &pending.output).is_ok() {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// Ids asked about in one round trip while rebuilding.
const REBUILD_BATCH: u64 = 500;

/// How long a rebuild may walk before it gives up (saying so): far from the server, a
/// walk over millions of ids takes minutes even 500 ids a round trip.
const REBUILD_TIME: std::time::Duration = std::time::Duration::from_secs(3600);

/// Fills a fresh ledger from the server: every job of this grid in the jobs tube, found
/// by walking ids down from the newest, 500 a round trip, until every job the tube holds
/// was seen (the grid's or not: junk there counts too, or one junk job would make the
/// walk go on to the floor) or the walk reaches `floor`, the lowest id the grid's jobs
/// can have.
async fn rebuild(
    client: &mut Client,
    config: &QueuerConfig,
    ledger: &mut Ledger,
    newest: u64,
    floor: u64,
) -> anyhow::Result<u64> {
    let tube = config.grid.config().jobs_tube();
    let started = std::time::Instant::now();
    let mut held = jobs_held(client, &tube).await?;
    let (mut seen, mut found, mut top) = (0u64, 0u64, newest);
    while top > floor && seen < held {
        if started.elapsed() > REBUILD_TIME {
            tracing::warn!(seen, held, lowest_id = top, "the rebuild ran out of time before it saw every job in the tube; videos of the others may be queued again (the sink keeps the first JSON committed)");
            break;
        }
        let bottom = top.saturating_sub(REBUILD_BATCH).max(floor);
        let ids: Vec<u64> = (bottom + 1..=top).rev().collect();
        let answers = client
            .stats_jobs(&ids)
            .await
            .context("rebuilding the ledger")?;
        for (id, answer) in ids.iter().zip(answers) {
            match answer {
                Ok(stats) if stats.tube == tube => {
                    seen += 1;
                    if let JobNow::Ours { job, .. } =
                        config.grid.job_with(client, *id, stats).await?
                    {
                        ledger.insert(&job.output, *id)?;
                        found += 1;
                    }
                }
                Ok(_) | Err(BsError::NotFound) => {}
                Err(e) => return Err(e).context("rebuilding the ledger"),
            }
        }
        top = bottom;
        if (newest - top).is_multiple_of(100 * REBUILD_BATCH) {
            // Jobs come and go while we look; count them again now and then.
            held = jobs_held(client, &tube).await?;
            tracing::info!(
                looked_at = newest - top,
                seen,
                found,
                of = held,
                "rebuilding the ledger"
            );
        }
    }
    Ok(found)
}

/// Jobs in `tube`, in every state.
async fn jobs_held(client: &mut Client, tube: &str) -> anyhow::Result<u64> {
    Ok(client.stats_tube_if_any(tube).await?.map_or(0, |s| {
        s.current_jobs_ready
            + s.current_jobs_reserved
            + s.current_jobs_delayed
            + s.current_jobs_buried
    }))
}

/// The job for `candidate`, or `None` (counted in `summary`) if it must not be queued.
async fn consider(
    config: &QueuerConfig,
    client: &mut Client,
    ledger: &mut Ledger,
    summary: &mut Summary,
    c: &Candidate,
) -> anyhow::Result<Option<Job>> {
    let Some(output) = output_for(&c.rel) else {
        summary.rejected.push(Rejected {
            entry: c.video.clone(),
            reason: "not a .mov".into(),
        });
        return Ok(None);
    };
    if let Err(e) = check_output(&output) {
        summary.rejected.push(Rejected {
            entry: c.video.clone(),
            reason: e.to_string(),
        });
        return Ok(None);
    }
    if config.skip.contains(&output) {
        summary.skipped += 1;
        return Ok(None);
    }
    if config.since.is_some() || config.until.is_some() {
        match archive_date(&c.rel) {
            Some(d)
                if config.since.is_none_or(|s| d >= s) && config.until.is_none_or(|u| d <= u) => {}
            Some(_) => {
                summary.out_of_range += 1;
                return Ok(None);
            }
            None => {
                summary.rejected.push(Rejected {
                    entry: c.video.clone(),
                    reason: "no YYYY/MM/DD in its path to compare with --since/--until".into(),
                });
                return Ok(None);
            }
        }
    }
    if !config.force && config.checkout.join(&output).exists() {
        summary.done += 1;
        return Ok(None);
    }
    if let Some(id) = ledger.get(&output) {
        let now = config.grid.job(client, id).await?;
        if now.for_output(id, None, &output).is_ok() {
            summary.in_flight += 1;
            return Ok(None);
        }
        ledger.remove(&output);
    }
    if config.verify {
        let limits = movie::HttpLimits {
            hosts: Arc::clone(&config.archive),
            ..movie::HttpLimits::default()
        };
        if let Err(e) = movie::open_with(&c.video, movie::SourceKind::Auto, 0.25, &limits) {
            summary.rejected.push(Rejected {
                entry: c.video.clone(),
                reason: e.to_string(),
            });
            return Ok(None);
        }
    }
    Ok(Some(Job {
        version: WIRE_VERSION,
        video: c.video.clone(),
        output,
        stride: config.stride,
        start: config.start,
        stop: config.stop,
        force: config.force,
        queued_by: None,
        attempts: Vec::new(),
    }))
}
