//! `sink`: drains the results tube into the CamHD_motion_metadata checkout and commits.
//! `main` parses the flags into a checked configuration and runs the loop.

mod checkout;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use common::cli::{init_logging, main_with};
use common::config::GridArgs;
use common::shutdown::Shutdown;

/// camhd-grid sink: write results into the metadata checkout and commit them.
///
/// Only one sink may write a checkout. Results are deleted from the tube only after the
/// commit that holds them, so a sink killed at any moment loses nothing.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(flatten)]
    grid: GridArgs,

    /// The CamHD_motion_metadata checkout (a git work tree with README.md at its root).
    #[arg(long, env = "SINK_CHECKOUT", value_name = "DIR")]
    checkout: PathBuf,

    /// Commit after this many results.
    #[arg(long, env = "SINK_BATCH", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    batch: u32,

    /// Commit at most this many seconds after the first result of a batch arrived.
    #[arg(
        long,
        env = "SINK_COMMIT_EVERY",
        default_value_t = 5,
        value_name = "SECS"
    )]
    commit_every: u64,

    /// Push to this git remote after each commit (failures are retried, never fatal).
    #[arg(long, env = "SINK_PUSH", value_name = "REMOTE")]
    push: Option<String>,

    /// Exit after this many seconds with nothing to do.
    #[arg(long, env = "SINK_EXIT_WHEN_IDLE", value_name = "SECS")]
    exit_when_idle: Option<u64>,

    /// Serve Prometheus metrics at http://ADDR/metrics (results committed, commit latency).
    #[arg(long, env = "SINK_METRICS", value_name = "ADDR")]
    metrics: Option<String>,

    /// Author of the commits.
    #[arg(
        long,
        env = "SINK_AUTHOR",
        default_value = "camhd-grid sink <camhd-grid@localhost>"
    )]
    author: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    main_with(|| {
        let config = run::SinkConfig {
            grid: cli.grid.config(),
            batch: cli.batch as usize,
            commit_every: Duration::from_secs(cli.commit_every),
            push: cli.push.clone(),
            exit_when_idle: cli.exit_when_idle.map(Duration::from_secs),
            host: common::host::hostname(),
        };
        let checkout = checkout::Checkout::open(&cli.checkout, &cli.author)?;
        let runtime = tokio::runtime::Runtime::new()?;
        let totals = runtime.block_on(async {
            let shutdown = Shutdown::on_signals()?;
            if let Some(addr) = &cli.metrics {
                common::metrics::serve(addr, std::sync::Arc::new(run::metrics::render)).await?;
            }
            run::run(&config, &checkout, shutdown).await
        })?;
        tracing::info!(
            written = totals.written,
            kept = totals.kept,
            buried = totals.buried,
            commits = totals.commits,
            "sink stopped"
        );
        Ok(ExitCode::SUCCESS)
    })
}
