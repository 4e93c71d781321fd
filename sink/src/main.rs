//! `sink`: drains the results tube into the CamHD_motion_metadata checkout and commits.
//! `main` parses the flags into a checked configuration and runs the loop.

mod backfill;
mod batch;
mod checkout;
mod commit;
mod fate;
mod incoming;
mod metrics;
mod push;
mod regions;
mod sink;
mod write;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use common::cli::{init_logging, main_with};
use common::config::GridArgs;
use common::shutdown::Shutdown;

/// camhd-grid sink: write results into the metadata checkout and commit them.
///
/// Only one sink may write a checkout. Results are deleted from the tube only after the
/// commit that holds them, so a sink killed at any moment loses nothing.
///
/// Exit codes: 0 done, 1 failed, 2 bad arguments or settings (an unwritable checkout),
/// 4 commits left unpushed (--exit-when-idle with --push: after --push-wait), 69 the
/// server could not be reached, 75 another sink holds the checkout.
#[derive(Debug, Parser)]
#[command(version = common::cli::VERSION, about, long_about, subcommand_negates_reqs = true)]
struct Cli {
    #[command(flatten)]
    grid: GridArgs,

    /// The CamHD_motion_metadata checkout (a git work tree with README.md at its root).
    #[arg(long, required = true, env = "SINK_CHECKOUT", value_name = "DIR")]
    checkout: Option<PathBuf>,

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

    /// Push to this git remote after each commit (failures are retried, never fatal). A
    /// remote that has moved on (someone pushed there) is merged first; a file edited
    /// there too keeps the remote's version, with a failure record saying so (and its
    /// regions file goes). A remote whose history was rewritten is not merged: "RECORD
    /// DIVERGED" until a person reconciles them. Nothing is ever force-pushed.
    #[arg(long, env = "SINK_PUSH", value_name = "REMOTE")]
    push: Option<String>,

    /// Exit after this many seconds with nothing to do: once every commit is pushed, or
    /// --push-wait later with exit code 4, naming the commits not pushed.
    #[arg(long, env = "SINK_EXIT_WHEN_IDLE", value_name = "SECS")]
    exit_when_idle: Option<u64>,

    /// With --exit-when-idle and --push: how long to keep trying to push before exiting.
    #[arg(
        long,
        env = "SINK_PUSH_WAIT",
        default_value_t = 120,
        value_name = "SECS"
    )]
    push_wait: u64,

    /// Serve Prometheus metrics at http://ADDR/metrics (results committed, commit latency).
    #[arg(long, env = "SINK_METRICS", value_name = "ADDR")]
    metrics: Option<String>,

    /// The largest document written, in bytes after unpacking (a stride-1 CamHD document
    /// is about 9 MB); a larger result is buried. Bounds the sink's memory: about four
    /// times this at most.
    #[arg(long, env = "SINK_MAX_DOCUMENT_BYTES", default_value_t = 32 << 20, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1024..=(1 << 30)))]
    max_document_bytes: u64,

    /// Seconds a batch waits for its regions files (derived across the cores); one not
    /// derived by then is left out of the regions commit, logged, for `sink regions`
    /// to make later (0: the sink makes none). The largest document accepted takes
    /// well under a second.
    #[arg(
        long,
        env = "SINK_REGIONS_BUDGET",
        default_value_t = 60,
        value_name = "SECS"
    )]
    regions_budget: u64,

    /// Author of the commits.
    #[arg(
        long,
        env = "SINK_AUTHOR",
        default_value = DEFAULT_AUTHOR
    )]
    author: String,

    #[command(subcommand)]
    command: Option<Command>,
}

/// Exit code when commits could not be pushed before exiting.
const UNPUSHED: u8 = 4;

/// Who the sink's commits are by, unless told.
const DEFAULT_AUTHOR: &str = "camhd-grid sink <camhd-grid@localhost>";

#[derive(Debug, Subcommand)]
enum Command {
    /// Derive the regions file of every committed flow file that lacks one, as the sink
    /// does after each commit, and commit them in batches: for a checkout filled before
    /// the sink made regions, or after a sink stopped between its two commits.
    ///
    /// Takes the checkout's lock, so it waits for no sink: stop the sink first (exit 75
    /// while one runs). Lists each flow file left without regions, and why, on stderr.
    Regions {
        /// The CamHD_motion_metadata checkout.
        #[arg(long, env = "SINK_CHECKOUT", value_name = "DIR")]
        checkout: PathBuf,
        /// Author of the commits.
        #[arg(long, env = "SINK_AUTHOR", default_value = DEFAULT_AUTHOR)]
        author: String,
        /// Remake every regions file, also those committed already.
        #[arg(long)]
        force: bool,
        /// List the regions files it would write (stdout); write and commit nothing.
        #[arg(long)]
        dry_run: bool,
        /// Regions files per commit.
        #[arg(long, env = "SINK_REGIONS_PER_COMMIT", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
        per_commit: u32,
        /// Folders or flow files, relative to the checkout, to cover [default: all].
        #[arg(value_name = "PATH")]
        paths: Vec<String>,
    },
}

/// Subcommands that never meet the grid: its flags are hidden there.
const OFFLINE: [&str; 1] = ["regions"];

fn main() -> ExitCode {
    let cli: Cli = common::generate::parse(&OFFLINE);
    init_logging();
    if let Some(Command::Regions {
        checkout,
        author,
        force,
        dry_run,
        per_commit,
        paths,
    }) = &cli.command
    {
        let config = backfill::BackfillConfig {
            force: *force,
            dry_run: *dry_run,
            per_commit: *per_commit as usize,
            paths: paths.clone(),
            max_document: cli.max_document_bytes as usize,
        };
        return main_with(|| backfill_regions(checkout, author, &config));
    }
    main_with(|| {
        let config = sink::SinkConfig {
            grid: common::grid::Grid::from_args(&cli.grid, common::host::hostname())?,
            batch: cli.batch as usize,
            commit_every: Duration::from_secs(cli.commit_every),
            push: cli.push.clone(),
            exit_when_idle: cli.exit_when_idle.map(Duration::from_secs),
            push_wait: Duration::from_secs(cli.push_wait),
            max_document: cli.max_document_bytes as usize,
            regions_budget: Duration::from_secs(cli.regions_budget),
            archive_connections: cli.grid.archive_connections,
        };
        if !config.grid.keys().enabled() {
            tracing::warn!("no grid key (--key-file, GRID_KEY_FILE): results are not checked for a signature; see docs/security.md");
        }
        if config.push.is_some() && cli.author == DEFAULT_AUTHOR {
            tracing::warn!(author = DEFAULT_AUTHOR, "the commits pushed to the public record are authored by the default; set --author (SINK_AUTHOR) to a name and address people can reach");
        }
        let dir = cli
            .checkout
            .as_deref()
            .ok_or_else(|| common::cli::usage("--checkout (SINK_CHECKOUT) is required"))?;
        common::cli::not_root_over(dir, "sink …")?;
        let checkout = checkout::Checkout::open(dir, &cli.author)?;
        let runtime = tokio::runtime::Runtime::new()?;
        let totals = runtime.block_on(async {
            let shutdown = Shutdown::on_signals()?;
            if let Some(addr) = &cli.metrics {
                common::metrics::serve(addr, std::sync::Arc::new(metrics::render)).await?;
            }
            sink::Sink::new(config, &checkout).run(shutdown).await
        })?;
        tracing::info!(
            written = totals.written,
            kept = totals.kept,
            buried = totals.buried,
            commits = totals.commits,
            peak_rss_mb = common::host::peak_rss_mb().unwrap_or(0.0),
            "sink stopped"
        );
        let (count, newest) = &totals.unpushed;
        if *count > 0 {
            eprintln!(
                "error: {count} commit(s) not pushed to {}{}: {} (last push error: {})",
                cli.push.as_deref().unwrap_or("the remote"),
                if *count > newest.len() {
                    ", the newest"
                } else {
                    ""
                },
                newest.join("; "),
                totals.push_error.as_deref().unwrap_or("none")
            );
            return Ok(ExitCode::from(UNPUSHED));
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `sink regions`: fills in the checkout's regions files and prints what it did.
fn backfill_regions(
    checkout: &std::path::Path,
    author: &str,
    config: &backfill::BackfillConfig,
) -> anyhow::Result<ExitCode> {
    if !config.dry_run {
        common::cli::not_root_over(checkout, "sink regions …")?;
    }
    let checkout = checkout::Checkout::open(checkout, author)?;
    let s = backfill::run(&checkout, config)?;
    let verb = if config.dry_run {
        "would write"
    } else {
        "wrote"
    };
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    println!(
        "{verb} {} in {} ({}, {} left without regions) in {:.1} s",
        plural(s.derived, "regions file", "regions files"),
        plural(s.commits, "commit", "commits"),
        plural(s.flow_files, "flow file", "flow files"),
        s.skipped,
        s.seconds
    );
    Ok(ExitCode::SUCCESS)
}
