//! The grid's plumbing in one process, for `scripts/demo` until the real processes exist:
//! a job goes into `<ns>.jobs`, is reserved as a filter would, a result goes into
//! `<ns>.results`, and is reserved and deleted as the sink would.
//!
//! `GRID_SERVER=127.0.0.1:11300 cargo run -p common --example plumbing`

use std::process::ExitCode;

use anyhow::Context;
use chrono::Utc;
use clap::Parser;
use common::beanstalk::PutOptions;
use common::cli::main_with;
use common::config::GridArgs;
use common::wire::{ComputedBy, Job, JobResult};

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    grid: GridArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    main_with(|| {
        let runtime = tokio::runtime::Runtime::new()?;
        runtime.block_on(run(cli))?;
        Ok(ExitCode::SUCCESS)
    })
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.grid.config()?;
    let (jobs, results) = (config.jobs_tube(), config.results_tube());

    let mut queuer = config.connect().await?;
    queuer.use_tube(&jobs).await?;
    let job = Job::new(
        "/data/CAMHDA301-20170614T231900.mov",
        "RS03ASHS/PN03B/06-CAMHDA301/2017/06/14/CAMHDA301-20170614T231900_optical_flow.json",
    );
    let id = queuer.put(&job.encode(), PutOptions::default()).await?;
    println!(
        "queuer: put job {id} into {jobs}:\n  {}",
        String::from_utf8_lossy(&job.encode())
    );

    let mut filter = config.connect().await?;
    filter.watch(&jobs).await?;
    filter.ignore("default").await?;
    let reserved = filter
        .reserve_with_timeout(5)
        .await
        .context("reserving the job")?;
    let job = Job::decode(&reserved.body)?;
    println!("filter: reserved job {} for {}", reserved.id, job.video);
    let now = Utc::now();
    let computed_by = ComputedBy {
        host: "demo".into(),
        software: "camhd-grid plumbing example".into(),
        started_at: now,
        finished_at: now,
        elapsed_seconds: 0.0,
    };
    let document = serde_json::json!({"contents": {}, "frameStats": []});
    let result = JobResult::new(job, Some(reserved.id), &document, computed_by)?;
    filter.use_tube(&results).await?;
    let result_id = filter.put(&result.encode(), PutOptions::default()).await?;
    filter.delete(reserved.id).await?;
    println!(
        "filter: put result {result_id} into {results}, deleted job {}",
        reserved.id
    );

    let mut sink = config.connect().await?;
    sink.watch(&results).await?;
    sink.ignore("default").await?;
    let reserved = sink
        .reserve_with_timeout(5)
        .await
        .context("reserving the result")?;
    let result = JobResult::decode(&reserved.body)?;
    sink.delete(reserved.id).await?;
    println!(
        "sink: took result {} for {}",
        reserved.id, result.job.output
    );
    Ok(())
}
