//! `gridctl failed`, `retry` and `discard`: the jobs and results parked as buried, joined
//! with the failure records filters and the sink put into `<namespace>.failures` (every
//! bury writes one). Records are read by reserving and releasing them, so they stay.

use std::collections::hash_map::RandomState;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use anyhow::Context;
use common::beanstalk::{Client, Error as BsError, JobState};
use common::grid::Grid;
use common::text::one_line;
use common::wire::Failure;
use serde::Serialize;

/// What was parked: a job (the filters gave up on it) or a result (the sink would not
/// write it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// In the jobs tube.
    Job,
    /// In the results tube.
    Result,
}

/// One buried job or result with its history.
#[derive(Debug, Serialize)]
pub struct Failed {
    /// The id of the buried job (or result).
    pub job_id: u64,
    /// Job or result.
    pub kind: Kind,
    /// The video.
    pub video: String,
    /// Attempts recorded.
    pub attempts: usize,
    /// The last error.
    pub last_error: String,
    /// The filter (or sink) that failed last.
    pub host: String,
    /// When it failed last.
    pub at: String,
    /// What the last record's signature says: `signed` (checked with a grid key),
    /// `unchecked` (signed, but gridctl has no key), `unsigned`, `other key` (one gridctl
    /// does not accept), or `forged`.
    pub record: &'static str,
}

/// Buried jobs a tube holds that no failure record explains (buried by hand, or their
/// record was lost).
#[derive(Debug)]
pub struct Unrecorded {
    /// The tube.
    pub tube: String,
    /// How many.
    pub count: u64,
    /// The first of them, for `gridctl peek`.
    pub first: Option<u64>,
}

/// What `failed` found.
#[derive(Debug, Default)]
pub struct Findings {
    /// Buried jobs and results with records, jobs first, oldest id first.
    pub failed: Vec<Failed>,
    /// Buried jobs without a record, per tube.
    pub unrecorded: Vec<Unrecorded>,
    /// False when another reader held records throughout, or more than the limit were
    /// there, so some may be missing.
    pub complete: bool,
    /// True when no other reader held records while they were read: what was read is
    /// all that can be, as it stood (complete, or the first `limit`).
    pub settled: bool,
    /// Ids of records whose job no longer exists (done, or discarded).
    pub stale_records: Vec<u64>,
    /// Ids of the records of each listed job.
    records_of: BTreeMap<u64, Vec<u64>>,
}

/// How many times to read again when another reader holds records.
const READ_ROUNDS: u32 = 20;

/// Every failure record, by the job it is about, each with its own id.
struct Records {
    by_job: BTreeMap<u64, Vec<(u64, Failure)>>,
    /// Each record's signature, by its id.
    marks: BTreeMap<u64, &'static str>,
    complete: bool,
    /// No other reader held records (see [`Findings::settled`]).
    settled: bool,
}

/// Reserves every record and releases it straight back. Another `gridctl` reading at the
/// same moment holds some of them; then both let go and try again after a random pause,
/// so one of them soon reads them all.
async fn read_records(client: &mut Client, grid: &Grid, limit: usize) -> anyhow::Result<Records> {
    let tube = &grid.config().failures_tube();
    client.watch(tube).await?;
    client.ignore("default").await?;
    let mut by_job = BTreeMap::new();
    let mut marks = BTreeMap::new();
    for _ in 0..READ_ROUNDS {
        by_job.clear();
        let mut held = Vec::new();
        let mut capped = false;
        loop {
            if held.len() >= limit {
                capped = true;
                break;
            }
            match client.reserve_with_timeout(0).await {
                Ok(job) => {
                    if let Ok(f) = Failure::decode(&job.body) {
                        let trust = grid.trust(common::sign::Kind::Failure, &job.body);
                        marks.insert(job.id, trust.as_str());
                        by_job
                            .entry(f.job_id)
                            .or_insert_with(Vec::new)
                            .push((job.id, f));
                    }
                    held.push(job.id);
                }
                Err(BsError::TimedOut) => break,
                Err(e) => return Err(e).context("reading failure records"),
            }
        }
        let reserved = client
            .stats_tube_if_any(tube)
            .await
            .context("reading failure records")?
            .map_or(0, |s| s.current_jobs_reserved);
        for &id in &held {
            client
                .release(id, 1024, 0)
                .await
                .context("returning a failure record")?;
        }
        if capped || reserved <= held.len() as u64 {
            return Ok(Records {
                by_job,
                marks,
                complete: !capped,
                settled: true,
            });
        }
        tokio::time::sleep(jitter()).await;
    }
    Ok(Records {
        by_job,
        marks,
        complete: false,
        settled: false,
    })
}

/// A pause of 20–200 ms, different in every process.
fn jitter() -> Duration {
    let random = RandomState::new().build_hasher().finish();
    Duration::from_millis(20 + random % 180)
}

/// The buried jobs and results of the namespace, with their histories.
pub async fn find(client: &mut Client, grid: &Grid) -> anyhow::Result<Findings> {
    find_at_most(client, grid, usize::MAX).await
}

/// The most failure records one view of the dashboard reads (`find_at_most`).
pub const MAX_PER_VIEW: usize = 1000;

/// [`find`], reading at most `limit` failure records (then `complete` is false): what a
/// web page can afford per request whatever the server holds.
pub async fn find_at_most(
    client: &mut Client,
    grid: &Grid,
    limit: usize,
) -> anyhow::Result<Findings> {
    let config = grid.config();
    let records = read_records(client, grid, limit).await?;
    let (jobs, results) = (config.jobs_tube(), config.results_tube());
    let mut found = Findings {
        complete: records.complete,
        settled: records.settled,
        ..Findings::default()
    };
    let records_marks = records.marks;
    for (job_id, mut records) in records.by_job {
        let kind = match client.stats_job(job_id).await {
            Ok(s) if s.state == JobState::Buried && s.tube == jobs => Kind::Job,
            Ok(s) if s.state == JobState::Buried && s.tube == results => Kind::Result,
            // Being retried: its records stay, they count its attempts.
            Ok(_) => continue,
            Err(BsError::NotFound) => {
                found.stale_records.extend(records.iter().map(|(id, _)| id));
                continue;
            }
            Err(e) => return Err(e).context("looking up a failed job"),
        };
        records.sort_by_key(|(_, r)| r.at);
        found
            .records_of
            .insert(job_id, records.iter().map(|(id, _)| *id).collect());
        let attempts = records.len();
        if let Some((record_id, last)) = records.pop() {
            let record = records_marks.get(&record_id).copied().unwrap_or("unsigned");
            found.failed.push(Failed {
                job_id,
                kind,
                video: last.video,
                attempts,
                last_error: last.error,
                host: last.host,
                at: last.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                record,
            });
        }
    }
    found
        .failed
        .sort_by_key(|f| (f.kind == Kind::Result, f.job_id));
    for (tube, kind) in [(jobs, Kind::Job), (results, Kind::Result)] {
        let listed = found.failed.iter().filter(|f| f.kind == kind).count() as u64;
        if let Some(u) = unrecorded(client, tube, listed).await? {
            found.unrecorded.push(u);
        }
    }
    Ok(found)
}

/// The buried jobs of `tube` beyond the `listed` ones that have records.
async fn unrecorded(
    client: &mut Client,
    tube: String,
    listed: u64,
) -> anyhow::Result<Option<Unrecorded>> {
    let buried = client
        .stats_tube_if_any(&tube)
        .await
        .with_context(|| format!("reading the stats of {tube}"))?
        .map_or(0, |s| s.current_jobs_buried);
    if buried <= listed {
        return Ok(None);
    }
    client.use_tube(&tube).await?;
    let first = client.peek_buried().await.ok().map(|j| j.id);
    Ok(Some(Unrecorded {
        tube,
        count: buried - listed,
        first,
    }))
}

/// `gridctl failed`: lists them; with `prune`, deletes the records of jobs that are gone.
pub async fn list(grid: &Grid, json: bool, prune: bool) -> anyhow::Result<()> {
    let mut client = grid.connect().await?;
    let found = find(&mut client, grid).await?;
    if json {
        common::cli::out_line(format_args!(
            "{}",
            common::text::safe_json(serde_json::to_string(&found.failed)?)
        ))?;
    } else {
        print_failed(grid, &found.failed)?;
    }
    warn_incomplete(&found);
    if prune {
        let pruned = delete_records(&mut client, &found.stale_records).await?;
        eprintln!("pruned {pruned} record(s) of jobs that no longer exist");
    } else if !found.stale_records.is_empty() && !json {
        eprintln!(
            "({} record(s) of jobs that no longer exist; `gridctl failed --prune` deletes them)",
            found.stale_records.len()
        );
    }
    Ok(())
}

fn print_failed(grid: &Grid, failed: &[Failed]) -> std::io::Result<()> {
    let config = grid.config();
    if failed.is_empty() {
        common::cli::out_line(format_args!(
            "no failed jobs in {} or results in {}",
            config.jobs_tube(),
            config.results_tube()
        ))?;
    }
    for f in failed {
        let (kind, attempts) = match f.kind {
            Kind::Job => ("job", format!("{} attempt(s), last", f.attempts)),
            Kind::Result => ("result", "not written by the sink".to_owned()),
        };
        let keyed = grid.keys().enabled();
        let mark = if keyed && f.record != "signed" {
            format!("  [{} record: not from this grid]", f.record.to_uppercase())
        } else {
            String::new()
        };
        common::cli::out_line(format_args!(
            "{kind} {}  {}{mark}\n  {attempts} at {} on {}: {}",
            f.job_id,
            one_line(&f.video),
            f.at,
            one_line(&f.host),
            one_line(&f.last_error)
        ))?;
    }
    Ok(())
}

/// Says on stderr what the list may be missing.
fn warn_incomplete(found: &Findings) {
    for u in &found.unrecorded {
        let first = u
            .first
            .map(|id| format!(" (`gridctl peek {id}` shows the first)"))
            .unwrap_or_default();
        eprintln!(
            "{} more buried in {} without a failure record{first}",
            u.count, u.tube
        );
    }
    if !found.complete {
        eprintln!("another gridctl held some failure records the whole time; the list may be incomplete — run it again");
    }
}

/// Deletes failure records; returns how many were deleted (another reader may hold some).
async fn delete_records(client: &mut Client, ids: &[u64]) -> anyhow::Result<usize> {
    let mut deleted = 0;
    for &id in ids {
        match client.delete(id).await {
            Ok(()) => deleted += 1,
            Err(BsError::NotFound) => {}
            Err(e) => return Err(e).context("deleting a failure record"),
        }
    }
    Ok(deleted)
}

/// `gridctl retry`: kicks the failed jobs and results whose video is in `videos` (all
/// with `all`).
pub async fn retry(
    grid: &Grid,
    all: bool,
    videos: &[String],
    out: &mut (dyn std::io::Write + Send),
) -> anyhow::Result<usize> {
    let config = grid.config();
    let mut client = config.connect().await?;
    let found = find(&mut client, grid).await?;
    let mut kicked = 0;
    for f in found
        .failed
        .iter()
        .filter(|f| all || videos.contains(&f.video))
    {
        client
            .kick_job(f.job_id)
            .await
            .with_context(|| format!("kicking job {}", f.job_id))?;
        let kind = match f.kind {
            Kind::Job => "job",
            Kind::Result => "result",
        };
        let _ = writeln!(out, "retrying {kind} {} {}", f.job_id, one_line(&f.video));
        kicked += 1;
    }
    let missing: Vec<&String> = videos
        .iter()
        .filter(|v| !found.failed.iter().any(|f| &f.video == *v))
        .collect();
    for v in &missing {
        eprintln!("not a failed job: {}", one_line(v));
    }
    let _ = writeln!(out, "{kicked} job(s) put back");
    anyhow::ensure!(
        missing.is_empty(),
        "{} video(s) had no failed job",
        missing.len()
    );
    Ok(kicked)
}

/// `gridctl discard JOB-ID...`: deletes buried jobs or results of this namespace and
/// their failure records. Anything not buried is refused, so a running job is never
/// deleted by a typo.
pub async fn discard(
    grid: &Grid,
    ids: &[u64],
    skip_in: Option<&std::path::Path>,
    out: &mut (dyn std::io::Write + Send),
) -> anyhow::Result<()> {
    let config = grid.config();
    let mut client = config.connect().await?;
    let found = find(&mut client, grid).await?;
    let (jobs, results) = (config.jobs_tube(), config.results_tube());
    let mut refused = 0;
    let mut outputs = Vec::new();
    let mut jobs_discarded = 0;
    for &id in ids {
        let stats = match client.stats_job(id).await {
            Ok(s) => s,
            Err(BsError::NotFound) => {
                eprintln!("no job {id} on {}", config.server);
                refused += 1;
                continue;
            }
            Err(e) => return Err(e).with_context(|| format!("looking up job {id}")),
        };
        if stats.state != JobState::Buried || (stats.tube != jobs && stats.tube != results) {
            eprintln!(
                "job {id} is {} in {}; only buried jobs of {jobs} and {results} are discarded",
                stats.state, stats.tube
            );
            refused += 1;
            continue;
        }
        if skip_in.is_some() {
            let body = client
                .peek(id)
                .await
                .with_context(|| format!("reading job {id}"))?
                .body;
            let body = common::sign::unwrap(&body);
            let job = common::wire::Job::decode(&body)
                .ok()
                .or_else(|| common::wire::job_said(&body));
            match job {
                Some(job) => outputs.push(job.output),
                None => eprintln!("job {id}: no video to skip in its body; discarded only"),
            }
        }
        client
            .delete(id)
            .await
            .with_context(|| format!("deleting job {id}"))?;
        if stats.tube == jobs {
            jobs_discarded += 1;
        }
        let records = found.records_of.get(&id).map_or(&[][..], Vec::as_slice);
        delete_records(&mut client, records).await?;
        let video = found
            .failed
            .iter()
            .find(|f| f.job_id == id)
            .map_or("", |f| f.video.as_str());
        let _ = writeln!(out, "discarded job {id} {}", one_line(video));
    }
    // Counted apart, so that the jobs tube's deletes minus these are the jobs finished.
    grid.count_discards(&mut client, jobs_discarded)
        .await
        .context("counting the jobs discarded")?;
    if let Some(checkout) = skip_in {
        let why = format!(
            "gridctl discard --forever, {}",
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        let added = common::skip::SkipList::add(checkout, &outputs, &why)
            .with_context(|| format!("writing {}", common::skip::path(checkout).display()))?;
        let _ = writeln!(
            out,
            "skipped for good: {added} video(s) more in {} (the queuer never queues them again)",
            common::skip::path(checkout).display()
        );
    }
    anyhow::ensure!(refused == 0, "{refused} job(s) not discarded");
    Ok(())
}
