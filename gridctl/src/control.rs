//! `gridctl peek`, `pause`, `resume` and `drain`: look at one job, and stop or restart
//! the handing out of jobs.

use std::time::Duration;

use anyhow::Context;
use common::beanstalk::Error as BsError;
use common::config::GridConfig;
use common::text::{printable, safe_json};
use common::wire::{Failure, Job, JobResult};

/// The longest pause beanstalkd takes, used for "until resumed" (about 136 years).
const FOREVER: u32 = u32::MAX;

/// `gridctl peek JOB-ID`: the job's state and its body decoded.
pub async fn peek(config: &GridConfig, id: u64) -> anyhow::Result<()> {
    let mut client = config.connect().await?;
    let job = match client.peek(id).await {
        Err(BsError::NotFound) => anyhow::bail!("no job {id} on {}", config.server),
        other => other.context("peeking")?,
    };
    let stats = client.stats_job(id).await?;
    println!(
        "job {id} in {}: {} (priority {}, age {}s, reserves {}, releases {}, buries {}, timeouts {})",
        stats.tube, stats.state, stats.pri, stats.age, stats.reserves, stats.releases, stats.buries, stats.timeouts
    );
    let decoded = if let Ok(j) = Job::decode(&job.body) {
        safe_json(serde_json::to_string_pretty(&j)?)
    } else if let Ok(r) = JobResult::decode(&job.body) {
        safe_json(serde_json::to_string_pretty(&r)?)
    } else if let Ok(f) = Failure::decode(&job.body) {
        safe_json(serde_json::to_string_pretty(&f)?)
    } else {
        let err = Job::decode(&job.body)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        format!(
            "(not a camhd-grid body: {})\n{}",
            printable(&err),
            printable(&String::from_utf8_lossy(&job.body))
        )
    };
    common::cli::out_line(format_args!("{decoded}"))?;
    Ok(())
}

/// `gridctl pause [SECS]`: no job is handed out for SECS (or until `resume`). A jobs
/// tube with no jobs does not exist (beanstalkd forgets an empty tube), so there is
/// nothing to pause: said so, and not an error. True when something was paused.
pub async fn pause(
    config: &GridConfig,
    secs: Option<u32>,
    out: &mut (dyn std::io::Write + Send),
) -> anyhow::Result<bool> {
    let mut client = config.connect().await?;
    let tube = config.jobs_tube();
    match client.pause_tube(&tube, secs.unwrap_or(FOREVER)).await {
        Err(BsError::NotFound) => {
            let _ = writeln!(
                out,
                "{tube} has no jobs (the server forgets an empty tube): nothing to hold back; jobs a queuer puts later are handed out unless you pause again then"
            );
            return Ok(false);
        }
        other => other.with_context(|| format!("pausing {tube}"))?,
    }
    let _ = match secs {
        Some(s) => writeln!(out, "{tube} paused for {s}s"),
        None => writeln!(out, "{tube} paused until `gridctl resume`"),
    };
    Ok(true)
}

/// `gridctl resume`: jobs are handed out again (a tube with no jobs is not paused).
pub async fn resume(
    config: &GridConfig,
    out: &mut (dyn std::io::Write + Send),
) -> anyhow::Result<()> {
    let mut client = config.connect().await?;
    let tube = config.jobs_tube();
    match client.pause_tube(&tube, 0).await {
        Err(BsError::NotFound) => {
            let _ = writeln!(out, "{tube} has no jobs: nothing is paused");
            return Ok(());
        }
        other => other.with_context(|| format!("resuming {tube}"))?,
    }
    let _ = writeln!(out, "{tube} resumed");
    Ok(())
}

/// `gridctl drain`: pauses the jobs tube and waits until no job is in progress, so the
/// filters can be stopped for maintenance without releasing work. A grid with no jobs
/// is drained already.
pub async fn drain(config: &GridConfig) -> anyhow::Result<()> {
    if !pause(config, None, &mut std::io::stdout()).await? {
        // Nothing paused: saying "resume hands jobs out again" would be untrue.
        println!("drained: the grid has no jobs, so none is in progress");
        return Ok(());
    }
    let mut client = config.connect().await?;
    let tube = config.jobs_tube();
    loop {
        let reserved = client
            .stats_tube_if_any(&tube)
            .await
            .with_context(|| format!("reading {tube}"))?
            .map_or(0, |s| s.current_jobs_reserved);
        if reserved == 0 {
            println!("drained: no job in progress; `gridctl resume` hands jobs out again");
            return Ok(());
        }
        eprintln!("waiting for {reserved} job(s) in progress");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// `gridctl forget-dead`: deletes every heartbeat not renewed in time (its filter died,
/// hangs or lost the server), whatever its age; a filter that only lost the server for
/// a while puts a new one when it is back.
pub async fn forget_dead(
    grid: &common::grid::Grid,
    out: &mut (dyn std::io::Write + Send),
) -> anyhow::Result<()> {
    let mut client = grid.connect().await?;
    let mut forgotten = 0;
    for listed in grid
        .heartbeats(&mut client)
        .await
        .context("reading heartbeats")?
    {
        if listed.beat.is_dead(listed.age_seconds()) {
            match client.delete(listed.id).await {
                Ok(()) => forgotten += 1,
                Err(BsError::NotFound) => {}
                Err(e) => return Err(e).context("deleting a dead heartbeat"),
            }
        }
    }
    let _ = writeln!(out, "forgot {forgotten} dead worker(s)");
    Ok(())
}
