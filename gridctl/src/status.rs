//! `gridctl status`: one snapshot of the namespace's tubes and the server.

use anyhow::Context;
use common::beanstalk::{Client, Error, ServerStats, TubeStats};
use common::config::GridConfig;
use serde::Serialize;

/// One tube's counts; a tube nobody has used yet counts as empty.
#[derive(Debug, Serialize)]
struct TubeCounts {
    tube: String,
    exists: bool,
    ready: u64,
    reserved: u64,
    delayed: u64,
    buried: u64,
    workers_watching: u64,
    workers_waiting: u64,
    total_jobs: u64,
    paused_seconds_left: u64,
}

#[derive(Debug, Serialize)]
struct Snapshot {
    server: String,
    namespace: String,
    version: String,
    uptime_seconds: u64,
    max_job_size: u64,
    binlog: bool,
    draining: bool,
    jobs: TubeCounts,
    results: TubeCounts,
}

/// Prints the snapshot as a table, or as one JSON object with `json`.
pub async fn run(config: &GridConfig, json: bool) -> anyhow::Result<()> {
    let mut client = config.connect().await?;
    let snapshot = snapshot(&mut client, config).await?;
    if json {
        println!("{}", serde_json::to_string(&snapshot)?);
    } else {
        print!("{}", render(&snapshot));
    }
    Ok(())
}

async fn snapshot(client: &mut Client, config: &GridConfig) -> anyhow::Result<Snapshot> {
    let server: ServerStats = client.stats().await.context("reading server stats")?;
    let jobs = tube_counts(client, &config.jobs_tube()).await?;
    let results = tube_counts(client, &config.results_tube()).await?;
    Ok(Snapshot {
        server: config.server.to_string(),
        namespace: config.namespace.to_string(),
        version: server.version,
        uptime_seconds: server.uptime,
        max_job_size: server.max_job_size,
        binlog: server.binlog_current_index > 0,
        draining: server.draining,
        jobs,
        results,
    })
}

async fn tube_counts(client: &mut Client, tube: &str) -> anyhow::Result<TubeCounts> {
    let stats = match client.stats_tube(tube).await {
        Ok(stats) => Some(stats),
        Err(Error::NotFound) => None,
        Err(e) => return Err(e).with_context(|| format!("reading stats of tube {tube}")),
    };
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
        paused_seconds_left: s.pause_time_left,
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
    out
}
