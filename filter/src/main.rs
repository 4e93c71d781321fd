//! `filter`: the grid worker, and `filter analyze`, the same analysis on one video with
//! no queue. `main` parses the command line into a checked configuration and hands it to
//! the worker loop or the command.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use common::cli::{init_logging, main_with};
use common::config::GridArgs;
use common::shutdown::Shutdown;
use filter::worker::{self, Retry, WorkerConfig};

mod analyze_cmd;
mod frame_args;
mod http_args;

/// camhd-grid filter: estimate camera motion in CamHD videos.
///
/// With no command, runs as a grid worker: reserves jobs from <namespace>.jobs, analyses
/// each video, puts the result into <namespace>.results. On SIGTERM or SIGINT it stops
/// reserving and lets running jobs finish within --grace; a second signal releases them
/// at once. `filter analyze VIDEO` runs the analysis on one video with no queue.
///
/// Exit codes of the worker: 0 stopped (a signal, or idle past --exit-when-idle), 1
/// failed, 2 bad arguments or settings (an unreadable key file, a bad --allow-source:
/// systemd does not restart it), 69 the server could not be reached. A video's failure
/// is never the worker's: it is released to retry, or buried with a failure record.
#[derive(Debug, Parser)]
#[command(version = common::cli::VERSION, about, long_about)]
struct Cli {
    #[command(flatten)]
    grid: GridArgs,

    /// Jobs analysed at once, each on its own connection.
    #[arg(long, env = "FILTER_JOBS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..256))]
    jobs: u32,

    /// Analysis threads per job [default: cores / jobs].
    #[arg(long, env = "FILTER_THREADS", value_parser = clap::value_parser!(u32).range(1..1024))]
    threads: Option<u32>,

    /// Touch a held job this often, so its TTR can stay short.
    #[arg(long, env = "FILTER_TTR_TOUCH", default_value_t = 10, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    ttr_touch: u64,

    /// After SIGTERM, let running jobs finish this long before releasing them.
    #[arg(long, env = "FILTER_GRACE", default_value_t = 60, value_name = "SECS")]
    grace: u64,

    /// Exit after this many seconds without a job.
    #[arg(long, env = "FILTER_EXIT_WHEN_IDLE", value_name = "SECS")]
    exit_when_idle: Option<u64>,

    /// Attempts before a transiently failing job is buried. A job reserved more often
    /// than this (its filters died or lost it mid-analysis each time) is buried unanalysed
    /// the next time it is reserved, so one poisonous video cannot kill filter after filter.
    #[arg(long, env = "FILTER_MAX_ATTEMPTS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    max_attempts: u32,

    /// After delivering a result, keep its job delayed this long for the sink to commit
    /// and delete it; if the result is lost, the job comes back by itself after this.
    #[arg(
        long,
        env = "FILTER_AWAIT_COMMIT",
        default_value_t = 86_400,
        value_name = "SECS",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    await_commit: u32,

    /// Delay before the first retry; doubles with each attempt (with jitter), up to an hour.
    #[arg(
        long,
        env = "FILTER_BACKOFF",
        default_value_t = 30,
        value_name = "SECS"
    )]
    backoff: u64,

    /// Analysis scale (0.25: 480x270 for 1080p).
    #[arg(long, env = "FILTER_SCALE", default_value_t = 0.25)]
    scale: f64,

    #[command(flatten)]
    frames: crate::frame_args::FrameArgs,

    /// Where results too big for the server's max job size are kept: in a folder of
    /// their own per server and namespace below this one, so that grids sharing a
    /// machine never see each other's.
    #[arg(
        long,
        env = "FILTER_SPOOL",
        default_value = "/var/tmp/camhd-grid-spool",
        value_name = "DIR"
    )]
    spool: PathBuf,

    #[command(flatten)]
    http: http_args::HttpArgs,

    /// Analyse only videos whose URL or path starts with PREFIX (repeatable; the
    /// environment takes a comma-separated list), redirect targets included; others are
    /// buried with a record. Without any, every http(s) host is allowed except those
    /// resolving to loopback, link-local (cloud metadata) or unspecified addresses.
    #[arg(
        long = "allow-source",
        env = "GRID_ALLOW_SOURCES",
        value_delimiter = ',',
        value_name = "PREFIX"
    )]
    allow_sources: Vec<String>,

    /// Serve Prometheus metrics at http://ADDR/metrics (jobs done, failed, released;
    /// frames analysed; seconds per video).
    #[arg(long, env = "FILTER_METRICS", value_name = "ADDR")]
    metrics: Option<String>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    Analyze(analyze_cmd::AnalyzeArgs),
}

/// Subcommands that never meet the grid: its flags are hidden there.
const OFFLINE: [&str; 1] = ["analyze"];

fn main() -> ExitCode {
    let cli: Cli = common::generate::parse(&OFFLINE);
    init_logging();
    // Before any thread that could use OpenCV starts.
    filter::analysis::single_threaded_opencv();
    match cli.command {
        Some(Command::Analyze(args)) => analyze_cmd::main(args),
        None => main_with(|| run_worker(&cli)),
    }
}

/// The spool subfolder of one grid: `HOST_PORT-NAMESPACE`, safe as a file name.
fn spool_key(grid: &common::config::GridConfig) -> String {
    format!("{}-{}", grid.server, grid.namespace)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn run_worker(cli: &Cli) -> anyhow::Result<ExitCode> {
    if !(cli.scale > 0.0 && cli.scale <= 1.0) {
        return Err(common::cli::usage(format!(
            "--scale {} is not in (0, 1] (FILTER_SCALE)",
            cli.scale
        ))
        .into());
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let config = WorkerConfig {
        grid: common::grid::Grid::from_args(&cli.grid, filter::document::hostname())?,
        jobs: cli.jobs as usize,
        threads: cli
            .threads
            .map_or((cores / cli.jobs as usize).max(1), |t| t as usize),
        scale: cli.scale,
        decoder: cli.frames.decoder,
        fetch: cli.frames.fetch,
        touch_every: Duration::from_secs(cli.ttr_touch),
        grace: Duration::from_secs(cli.grace),
        exit_when_idle: cli.exit_when_idle.map(Duration::from_secs),
        retry: Retry {
            max_attempts: cli.max_attempts,
            base: Duration::from_secs(cli.backoff),
            await_commit: Duration::from_secs(cli.await_commit.into()),
        },
        spool: cli.spool.join(spool_key(&cli.grid.config()?)),
        http: filter::source::HttpLimits {
            reach: std::sync::Arc::new(
                filter::source::Reach::allowing(&cli.allow_sources)
                    .map_err(|e| common::cli::usage(format!("--allow-source: {e}")))?,
            ),
            ..cli.http.limits()?
        },
        video_deadline: cli.http.video_budget(),
        archive_budget: cli.grid.archive_connections.is_some(),
        wrong_key: Default::default(),
    };
    if !config.grid.keys().enabled() {
        tracing::warn!("no grid key (--key-file, GRID_KEY_FILE): jobs are not checked and results not signed; see docs/security.md");
    }
    let runtime = tokio::runtime::Runtime::new()?;
    let totals = runtime.block_on(async {
        let shutdown = Shutdown::on_signals()?;
        if let Some(addr) = &cli.metrics {
            common::metrics::serve(addr, std::sync::Arc::new(worker::metrics::render)).await?;
        }
        tracing::info!(server = %config.grid.config().server, tube = %config.grid.config().jobs_tube(), jobs = config.jobs, threads = config.threads, "filter worker started");
        anyhow::Ok(worker::run(config, shutdown).await)
    })?
    .map_err(|e| common::cli::usage(e.0))?;
    // An analysis abandoned on a second signal may still be running; do not wait for it.
    runtime.shutdown_background();
    tracing::info!(
        done = totals.done,
        released = totals.released,
        buried = totals.buried,
        "filter worker stopped"
    );
    Ok(ExitCode::SUCCESS)
}
