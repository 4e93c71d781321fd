//! `gridctl status`: the namespace's tubes, the server, and what every filter is working
//! on (from their heartbeats); `--watch` redraws it like `top`, with jobs finished per
//! minute and an ETA.

use std::collections::VecDeque;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context;
use common::beanstalk::{Client, ServerStats, TubeStats};
use common::grid::{Grid, KeyMarker};
use common::text::{one_line, safe_json};
use serde::Serialize;

/// The window the finishing rate is measured over.
const RATE_WINDOW: Duration = Duration::from_secs(300);

/// One tube's counts; a tube nobody has used yet counts as empty.
#[derive(Debug, Default, Serialize)]
pub(crate) struct TubeCounts {
    pub(crate) tube: String,
    pub(crate) exists: bool,
    pub(crate) ready: u64,
    pub(crate) reserved: u64,
    pub(crate) delayed: u64,
    pub(crate) buried: u64,
    pub(crate) workers_watching: u64,
    pub(crate) workers_waiting: u64,
    pub(crate) total_jobs: u64,
    pub(crate) deleted: u64,
    pub(crate) paused_seconds_left: u64,
    /// Of `delayed` in the jobs tube: jobs whose result waits in the results tube for the
    /// sink's commit (one result per such job, so at most the results pending).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) awaiting_commit: Option<u64>,
    /// Of `delayed` in the jobs tube: the rest, released after a failure to retry later.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) retrying: Option<u64>,
}

/// The sink's state of the record, as it wrote it.
#[derive(Debug, Serialize)]
pub(crate) struct SinkView {
    pub(crate) host: String,
    pub(crate) remote: Option<String>,
    /// How many commits the remote does not have yet.
    pub(crate) unpushed_count: u64,
    /// The newest of them (`<short id> <subject>`).
    pub(crate) unpushed: Vec<String>,
    pub(crate) push_error: Option<String>,
    pub(crate) seconds_since: i64,
    /// What its signature says (see [`Worker::signature`]).
    pub(crate) signature: &'static str,
}

/// One filter slot, from its heartbeat.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Worker {
    pub(crate) host: String,
    pub(crate) pid: u32,
    pub(crate) slot: usize,
    pub(crate) job_id: Option<u64>,
    pub(crate) video: Option<String>,
    pub(crate) frames_done: u64,
    pub(crate) frames_total: u64,
    pub(crate) seconds_since_heartbeat: i64,
    /// Not renewed for several of its intervals: the filter died, hangs or lost the server.
    pub(crate) stale: bool,
    /// What its signature says: `signed`, `unchecked` (gridctl has no key), `unsigned`,
    /// `other key` (one gridctl does not accept: retired, or another grid's) or `forged`.
    pub(crate) signature: &'static str,
    /// Why it gives jobs back untouched (a key it cannot verify them with, a stale key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) refusing: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Snapshot {
    pub(crate) server: String,
    pub(crate) namespace: String,
    pub(crate) version: String,
    pub(crate) uptime_seconds: u64,
    pub(crate) max_job_size: u64,
    pub(crate) binlog: bool,
    pub(crate) draining: bool,
    pub(crate) jobs: TubeCounts,
    pub(crate) results: TubeCounts,
    /// Jobs finished (committed, then deleted by the sink) since the server started:
    /// the jobs tube's deletes less the jobs discarded. `gridctl serve` counts on across
    /// the jobs tube vanishing (an empty tube forgets its deletes); both count from the
    /// server's start.
    pub(crate) finished: u64,
    /// Jobs discarded (`gridctl discard`) since the server started.
    pub(crate) discarded: u64,
    /// When the server started (unix seconds): the totals count from then.
    pub(crate) server_started: i64,
    /// Filter slots whose heartbeat is current.
    pub(crate) workers: Vec<Worker>,
    /// Heartbeats not renewed in time: never counted as working.
    pub(crate) dead_workers: Vec<Worker>,
    /// Heartbeats unsigned or forged while gridctl has the grid's key: never counted
    /// as working, whoever put them.
    pub(crate) untrusted_workers: Vec<Worker>,
    /// What the grid's key marker says, checked with gridctl's keys; `None` on a grid
    /// with no marker.
    pub(crate) key_marker: Option<String>,
    /// The grid's archive budget: its tokens, free and in use (filters, queuers); `None` on a grid
    /// without one.
    pub(crate) archive: Option<common::archive::Tokens>,
    /// What the sink says of the record: commits not pushed yet, and why.
    pub(crate) sink: Option<SinkView>,
    /// Jobs finished per minute (only with --watch, once two refreshes are in).
    pub(crate) finished_per_minute: Option<f64>,
    /// Seconds until the jobs tube is empty at that rate.
    pub(crate) eta_seconds: Option<f64>,
    /// The newest failure record `gridctl serve` has read (its banner); never filled by
    /// `status`, which reads no records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) newest_failure: Option<NewestFailure>,
}

/// The newest failure: which video, why, when.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct NewestFailure {
    pub(crate) video: String,
    pub(crate) error: String,
    pub(crate) at: String,
}

impl Snapshot {
    /// The rate at which jobs finish (`finished` over the last `seconds`) and when the
    /// jobs left (ready, reserved, delayed: not the failed) are done at that rate.
    pub(crate) fn set_rate(&mut self, finished: u64, seconds: f64) {
        if seconds <= 0.0 {
            return;
        }
        let rate = finished as f64 / seconds * 60.0;
        let left = self.jobs.ready + self.jobs.reserved + self.jobs.delayed;
        self.finished_per_minute = Some(rate);
        self.eta_seconds = (rate > 0.0).then(|| left as f64 / rate * 60.0);
    }
}

/// What a one-shot `status` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// The namespace has tubes or workers.
    Namespace,
    /// The server knows nothing of the namespace (exit code 3).
    NoSuchNamespace,
}

/// Prints the snapshot as a table, or as one JSON object with `json`; with `watch`,
/// again every so many seconds (redrawn in place, or one JSON object per refresh).
/// A one-shot status of a namespace the server has no tubes for says so on stderr,
/// naming the namespaces it does have.
pub async fn run(grid: &Grid, json: bool, watch: Option<u64>) -> anyhow::Result<Found> {
    let config = grid.config();
    let mut client = grid.connect().await?;
    let mut history: VecDeque<(Instant, u64)> = VecDeque::new();
    loop {
        let mut snap = snapshot(&mut client, grid).await?;
        let now = Instant::now();
        history.push_back((now, snap.finished));
        while history.len() > 2 && history.front().is_some_and(|(t, _)| now - *t > RATE_WINDOW) {
            history.pop_front();
        }
        if let (Some(first), Some(last)) = (history.front(), history.back()) {
            let span = (last.0 - first.0).as_secs_f64();
            snap.set_rate(last.1.saturating_sub(first.1), span);
        }
        // One write per frame, so a terminal never shows half a redraw.
        let frame = match (json, watch.is_some()) {
            (true, _) => format!("{}\n", safe_json(serde_json::to_string(&snap)?)),
            (false, true) => format!("\x1b[H\x1b[2J{}", render(&snap)),
            (false, false) => render(&snap),
        };
        let mut out = std::io::stdout().lock();
        out.write_all(frame.as_bytes())?;
        out.flush()?;
        match watch {
            Some(secs) => tokio::time::sleep(Duration::from_secs(secs.max(1))).await,
            None if snap.jobs.exists
                || snap.results.exists
                || !snap.workers.is_empty()
                || !snap.dead_workers.is_empty()
                || !snap.untrusted_workers.is_empty() =>
            {
                return Ok(Found::Namespace)
            }
            // A grid that finished has no jobs or results tube, but its marker (and
            // failure records, if any) remain.
            None if has_tubes(&mut client, &config.namespace.to_string()).await? => {
                if !json {
                    println!("no job left: everything queued under {:?} was committed or given up (`gridctl failed` lists what failed)", config.namespace.to_string());
                }
                return Ok(Found::Namespace);
            }
            None => {
                let others = namespaces(&mut client).await?;
                eprintln!(
                    "error: namespace {:?} has no tubes on {}: nothing was queued under it yet, or --namespace (GRID_NAMESPACE) is wrong; namespaces there: {}",
                    config.namespace.to_string(),
                    config.server,
                    if others.is_empty() { "none".to_owned() } else { others.join(", ") }
                );
                return Ok(Found::NoSuchNamespace);
            }
        }
    }
}

/// The grid as it is now: server, tubes, workers (no rate: that needs a history).
pub(crate) async fn snapshot(client: &mut Client, grid: &Grid) -> anyhow::Result<Snapshot> {
    let config = grid.config();
    let server: ServerStats = client.stats().await.context("reading server stats")?;
    let mut jobs = tube_counts(client, &config.jobs_tube()).await?;
    let results = tube_counts(client, &config.results_tube()).await?;
    let pending = results.ready + results.reserved + results.delayed;
    let awaiting = pending.min(jobs.delayed);
    jobs.awaiting_commit = Some(awaiting);
    jobs.retrying = Some(jobs.delayed - awaiting);
    // With the grid's key, an unsigned or forged heartbeat is no worker: anyone who
    // reaches the server could have put it.
    let keyed = grid.keys().enabled();
    let (untrusted_workers, trusted): (Vec<Worker>, Vec<Worker>) = workers(client, grid)
        .await?
        .into_iter()
        .partition(|w| keyed && matches!(w.signature, "unsigned" | "other key" | "forged"));
    let (workers, dead_workers): (Vec<Worker>, Vec<Worker>) =
        trusted.into_iter().partition(|w| !w.stale);
    let sink = grid
        .sink_state(client)
        .await
        .context("reading the sink's state")?
        .map(|(state, trust)| SinkView {
            host: state.host,
            remote: state.remote,
            unpushed_count: state.unpushed_count,
            unpushed: state.unpushed,
            push_error: state.push_error,
            seconds_since: (chrono::Utc::now() - state.at).num_seconds(),
            signature: trust.as_str(),
        });
    let key_marker = match grid.key_marker(client).await {
        Ok(KeyMarker::Unknown) => None,
        Ok(marker) => Some(marker.to_string()),
        Err(e) => Some(format!("cannot be read: {e}")),
    };
    let archive = common::archive::tokens(grid, client)
        .await
        .context("reading the archive budget")?;
    let discarded = grid
        .discarded(client)
        .await
        .context("reading the jobs discarded")?;
    Ok(Snapshot {
        finished: jobs.deleted.saturating_sub(discarded),
        discarded,
        server_started: chrono::Utc::now().timestamp() - server.uptime as i64,
        key_marker,
        archive,
        server: config.server.to_string(),
        namespace: config.namespace.to_string(),
        version: server.version,
        uptime_seconds: server.uptime,
        max_job_size: server.max_job_size,
        binlog: server.binlog_current_index > 0,
        draining: server.draining,
        jobs,
        results,
        workers,
        dead_workers,
        untrusted_workers,
        sink,
        finished_per_minute: None,
        eta_seconds: None,
        newest_failure: None,
    })
}

/// True when the server has any tube of `namespace` (`<namespace>.` anything).
async fn has_tubes(client: &mut Client, namespace: &str) -> anyhow::Result<bool> {
    let prefix = format!("{namespace}.");
    Ok(client
        .list_tubes()
        .await?
        .iter()
        .any(|t| t.starts_with(&prefix)))
}

/// The namespaces the server has jobs or results tubes for.
async fn namespaces(client: &mut Client) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = client
        .list_tubes()
        .await?
        .iter()
        .filter_map(|t| {
            t.strip_suffix(".jobs")
                .or_else(|| t.strip_suffix(".results"))
        })
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// Every filter slot's heartbeat, from the status tubes, with its signature checked.
async fn workers(client: &mut Client, grid: &Grid) -> anyhow::Result<Vec<Worker>> {
    let listed = grid
        .heartbeats(client)
        .await
        .context("reading heartbeats")?;
    let mut out: Vec<Worker> = listed
        .into_iter()
        .map(|l| {
            let age = l.age_seconds();
            let b = l.beat;
            Worker {
                stale: b.is_dead(age),
                host: common::text::cut(&b.host, common::text::MAX_NAME),
                pid: b.pid,
                slot: b.slot,
                job_id: b.job_id,
                video: b
                    .video
                    .map(|v| common::text::cut(&v, common::text::MAX_NAME)),
                frames_done: b.frames_done,
                frames_total: b.frames_total,
                seconds_since_heartbeat: age,
                signature: l.trust.as_str(),
                refusing: b
                    .refusing
                    .map(|r| common::text::cut(&r, common::text::MAX_NAME)),
            }
        })
        .collect();
    out.sort_by(|a, b| (&a.host, a.pid, a.slot).cmp(&(&b.host, b.pid, b.slot)));
    Ok(out)
}

async fn tube_counts(client: &mut Client, tube: &str) -> anyhow::Result<TubeCounts> {
    let stats = client
        .stats_tube_if_any(tube)
        .await
        .with_context(|| format!("reading stats of tube {tube}"))?;
    let exists = stats.is_some();
    let s = stats.unwrap_or_else(TubeStats::default);
    Ok(TubeCounts {
        tube: tube.to_owned(),
        exists,
        ready: s.current_jobs_ready,
        reserved: s.current_jobs_reserved,
        delayed: s.current_jobs_delayed,
        buried: s.current_jobs_buried,
        workers_watching: s.current_watching,
        workers_waiting: s.current_waiting,
        total_jobs: s.total_jobs,
        deleted: s.cmd_delete,
        paused_seconds_left: s.pause_time_left,
        awaiting_commit: None,
        retrying: None,
    })
}

/// The sink's line: where the record stands against its remote.
fn render_sink(sink: &SinkView) -> String {
    let who = format!("{} ({}s ago", one_line(&sink.host), sink.seconds_since);
    let trust = match sink.signature {
        "signed" | "unchecked" => String::new(),
        other => format!(", {other}: not the grid's sink's word"),
    };
    let line = match (&sink.remote, sink.unpushed_count) {
        (None, _) => format!("\nsink {who}{trust}): commits stay in the checkout (no --push)\n"),
        (Some(remote), 0) => format!(
            "\nsink {who}{trust}): every commit pushed to {}\n",
            one_line(remote)
        ),
        (Some(remote), n) => format!(
            "\nsink {who}{trust}): {}: {n} commit(s) not pushed to {}; last push error: {}\n",
            if diverged(sink) {
                "RECORD DIVERGED"
            } else {
                "RECORD BEHIND"
            },
            one_line(remote),
            one_line(sink.push_error.as_deref().unwrap_or("none yet"))
        ),
    };
    line
}

/// True when the sink found the remote's history rewritten: it pushes nothing until a
/// person reconciles them.
pub(crate) fn diverged(sink: &SinkView) -> bool {
    sink.push_error
        .as_deref()
        .is_some_and(|e| e.contains("RECORD DIVERGED"))
}

/// How long a pause lasts, as said: `gridctl pause` without SECS pauses for ever (a
/// pause of decades).
fn paused_for(seconds: u64) -> String {
    if seconds > 365 * 24 * 3600 {
        "until `gridctl resume`".into()
    } else {
        format!("for another {seconds}s (or until `gridctl resume`)")
    }
}

/// What a slot's heartbeat says of jobs it gives back untouched, if anything.
fn refusing(w: &Worker) -> String {
    w.refusing.as_deref().map_or(String::new(), |why| {
        format!("; REFUSING: {}", one_line(why))
    })
}

fn render(s: &Snapshot) -> String {
    let mut out = format!(
        "beanstalkd {} at {} (up {}s, max job {} bytes, binlog {}{})\n\n",
        s.version,
        s.server,
        s.uptime_seconds,
        s.max_job_size,
        if s.binlog { "on" } else { "OFF" },
        if s.draining { ", DRAINING" } else { "" },
    );
    out.push_str(&format!(
        "{:<24} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}\n",
        "tube", "ready", "reserved", "delayed", "buried", "watching", "total"
    ));
    for t in [&s.jobs, &s.results] {
        let note = if t.exists {
            ""
        } else {
            "  (no such tube: empty and unused)"
        };
        out.push_str(&format!(
            "{:<24} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}{note}\n",
            t.tube, t.ready, t.reserved, t.delayed, t.buried, t.workers_watching, t.total_jobs
        ));
    }
    if s.jobs.paused_seconds_left > 0 {
        out.push_str(&format!(
            "{} PAUSED: no job is handed out {}; {} in progress{}\n",
            s.jobs.tube,
            paused_for(s.jobs.paused_seconds_left),
            s.jobs.reserved,
            if s.jobs.reserved == 0 {
                ", drained"
            } else {
                ", draining"
            }
        ));
    }
    out.push_str(&format!(
        "finished {} since the server started{}\n",
        s.finished,
        if s.discarded > 0 {
            format!(" ({} discarded apart)", s.discarded)
        } else {
            String::new()
        }
    ));
    if let Some(marker) = &s.key_marker {
        out.push_str(&format!("key marker: {}\n", one_line(marker)));
    }
    if let Some(a) = &s.archive {
        out.push_str(&format!(
            "archive budget: {} connections, {} in use, {} free\n",
            a.total, a.in_use, a.free
        ));
    }
    if let (Some(awaiting), Some(retrying)) = (s.jobs.awaiting_commit, s.jobs.retrying) {
        out.push_str(&format!(
            "jobs delayed: {awaiting} awaiting commit (result in {}), {retrying} retrying later\n",
            s.results.tube
        ));
    }
    if let Some(rate) = s.finished_per_minute {
        let eta = s.eta_seconds.map_or("-".to_owned(), |e| {
            let e = e as u64;
            format!("{}:{:02}:{:02}", e / 3600, e / 60 % 60, e % 60)
        });
        out.push_str(&format!(
            "\nfinished {rate:.1} jobs/min; ETA to empty {eta}\n"
        ));
    }
    if let Some(sink) = &s.sink {
        out.push_str(&render_sink(sink));
    }
    out.push_str(&format!("\nworkers ({}):\n", s.workers.len()));
    for w in &s.workers {
        let what = match (&w.job_id, &w.video) {
            (Some(id), Some(video)) => {
                let name = one_line(video.rsplit('/').next().unwrap_or(video));
                let progress = if w.frames_total == 0 {
                    "starting (frames not counted yet)".to_owned()
                } else if w.frames_done > w.frames_total {
                    format!(
                        "{}/{} frames (implausible progress)",
                        w.frames_done, w.frames_total
                    )
                } else {
                    let pct = 100.0 * w.frames_done as f64 / w.frames_total.max(1) as f64;
                    format!("{}/{} frames ({pct:.0}%)", w.frames_done, w.frames_total)
                };
                format!("job {id} {name}: {progress}")
            }
            _ => "idle".to_owned(),
        };
        out.push_str(&format!(
            "  {}/{} slot {}: {what} (heartbeat {}s ago){}\n",
            one_line(&w.host),
            w.pid,
            w.slot,
            w.seconds_since_heartbeat,
            refusing(w)
        ));
    }
    if !s.untrusted_workers.is_empty() {
        out.push_str(&format!(
            "\nuntrusted ({}): heartbeats not signed with the grid's key, not counted as workers (anyone who reaches the server could have put them)\n",
            s.untrusted_workers.len()
        ));
        for w in &s.untrusted_workers {
            out.push_str(&format!(
                "  {} claims {}/{} slot {}\n",
                w.signature,
                one_line(&w.host),
                w.pid,
                w.slot
            ));
        }
    }
    if !s.dead_workers.is_empty() {
        out.push_str(&format!(
            "\ndead ({}): heartbeat not renewed; the filter died, hangs or lost the server\n",
            s.dead_workers.len()
        ));
        for w in &s.dead_workers {
            let last = match w.seconds_since_heartbeat {
                age if age < 0 => format!("heartbeat dated {}s in the future", -age),
                age => format!("last heartbeat {age}s ago"),
            };
            let job = w
                .job_id
                .map_or(String::new(), |id| format!(", was on job {id}"));
            out.push_str(&format!(
                "  {}/{} slot {}: {last}{job}{}\n",
                one_line(&w.host),
                w.pid,
                w.slot,
                refusing(w)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(workers: Vec<Worker>) -> Snapshot {
        Snapshot {
            finished: 0,
            discarded: 0,
            server_started: 0,
            key_marker: None,
            archive: None,
            server: "127.0.0.1:11300".into(),
            namespace: "camhd".into(),
            version: "1.12".into(),
            uptime_seconds: 1,
            max_job_size: 65535,
            binlog: true,
            draining: false,
            jobs: TubeCounts::default(),
            results: TubeCounts::default(),
            workers,
            dead_workers: Vec::new(),
            untrusted_workers: Vec::new(),
            sink: None,
            finished_per_minute: None,
            eta_seconds: None,
            newest_failure: None,
        }
    }

    #[test]
    fn the_eta_counts_the_jobs_left_not_the_failed() {
        let mut snap = snapshot(Vec::new());
        snap.jobs.ready = 8;
        snap.jobs.buried = 100;
        snap.set_rate(4, 60.0);
        assert_eq!(snap.finished_per_minute, Some(4.0));
        assert_eq!(snap.eta_seconds, Some(120.0), "8 left at 4 a minute");
        let mut idle = snapshot(Vec::new());
        idle.set_rate(0, 0.0);
        assert_eq!(idle.finished_per_minute, None, "no time measured yet");
    }

    #[test]
    fn a_job_whose_frames_are_not_counted_yet_reads_as_starting() {
        let starting = Worker {
            host: "desk".into(),
            job_id: Some(7),
            video: Some("/a/CAMHDA301-20170614T001500.mov".into()),
            signature: "signed",
            ..Worker::default()
        };
        let running = Worker {
            frames_done: 30,
            frames_total: 60,
            ..starting.clone()
        };
        let table = render(&snapshot(vec![starting, running]));
        assert!(
            table.contains("T001500.mov: starting (frames not counted yet)"),
            "{table}"
        );
        assert!(table.contains("30/60 frames (50%)"), "{table}");
        assert!(!table.contains("0/0"), "{table}");
    }
}
