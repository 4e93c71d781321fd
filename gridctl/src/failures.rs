//! `gridctl failed` and `gridctl retry`: the jobs that failed permanently, found through
//! the failure records filters put into `<namespace>.failures` (every bury writes one),
//! kept only while `stats-job` still finds the job buried.

use std::collections::BTreeMap;

use anyhow::Context;
use common::beanstalk::{Client, Error as BsError, JobState};
use common::config::GridConfig;
use common::wire::Failure;
use serde::Serialize;

/// One failed job with its history.
#[derive(Debug, Serialize)]
pub struct Failed {
    /// The job's id.
    pub job_id: u64,
    /// The video.
    pub video: String,
    /// Attempts recorded.
    pub attempts: usize,
    /// The last error.
    pub last_error: String,
    /// The filter that failed last.
    pub host: String,
    /// When it failed last.
    pub at: String,
}

/// Reads every failure record (reserving each and releasing it straight back, so the
/// records stay for the next reader) and returns the jobs still buried.
pub async fn buried_jobs(client: &mut Client, config: &GridConfig) -> anyhow::Result<Vec<Failed>> {
    let tube = config.failures_tube();
    client.watch(&tube).await?;
    client.ignore("default").await?;
    let mut held = Vec::new();
    let mut by_job: BTreeMap<u64, Vec<Failure>> = BTreeMap::new();
    loop {
        match client.reserve_with_timeout(0).await {
            Ok(job) => {
                if let Ok(f) = Failure::decode(&job.body) {
                    by_job.entry(f.job_id).or_default().push(f);
                }
                held.push(job.id);
            }
            Err(BsError::TimedOut) => break,
            Err(e) => return Err(e).context("reading failure records"),
        }
    }
    for id in held {
        client
            .release(id, 1024, 0)
            .await
            .context("returning a failure record")?;
    }
    let mut failed = Vec::new();
    for (job_id, mut records) in by_job {
        match client.stats_job(job_id).await {
            Ok(s) if s.state == JobState::Buried && s.tube == config.jobs_tube() => {}
            Ok(_) | Err(BsError::NotFound) => continue,
            Err(e) => return Err(e.into()),
        }
        records.sort_by_key(|r| r.at);
        let attempts = records.len();
        if let Some(last) = records.pop() {
            failed.push(Failed {
                job_id,
                video: last.video,
                attempts,
                last_error: last.error,
                host: last.host,
                at: last.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            });
        }
    }
    Ok(failed)
}

/// `gridctl failed`.
pub async fn list(config: &GridConfig, json: bool) -> anyhow::Result<()> {
    let mut client = config.connect().await?;
    let failed = buried_jobs(&mut client, config).await?;
    if json {
        println!("{}", serde_json::to_string(&failed)?);
        return Ok(());
    }
    if failed.is_empty() {
        println!("no failed jobs in {}", config.jobs_tube());
    }
    for f in &failed {
        println!(
            "job {}  {}\n  {} attempt(s), last at {} on {}: {}",
            f.job_id, f.video, f.attempts, f.at, f.host, f.last_error
        );
    }
    Ok(())
}

/// `gridctl retry`: kicks the failed jobs whose video is in `videos` (all with `all`).
pub async fn retry(config: &GridConfig, all: bool, videos: &[String]) -> anyhow::Result<usize> {
    let mut client = config.connect().await?;
    let failed = buried_jobs(&mut client, config).await?;
    let mut kicked = 0;
    for f in failed.iter().filter(|f| all || videos.contains(&f.video)) {
        client
            .kick_job(f.job_id)
            .await
            .with_context(|| format!("kicking job {}", f.job_id))?;
        println!("retrying job {} {}", f.job_id, f.video);
        kicked += 1;
    }
    let missing: Vec<&String> = videos
        .iter()
        .filter(|v| !failed.iter().any(|f| &f.video == *v))
        .collect();
    for v in &missing {
        eprintln!("not a failed job: {v}");
    }
    println!("{kicked} job(s) put back");
    anyhow::ensure!(
        missing.is_empty(),
        "{} video(s) had no failed job",
        missing.len()
    );
    Ok(kicked)
}
