//! `gridctl`: the operator's view of the grid. `main` only parses the command line and
//! hands the checked configuration to the command.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use common::cli::{init_logging, main_with};
use common::config::GridArgs;
use flowdoc::plot::{plot_file, Axis};

mod control;
mod failures;
mod serve;
mod status;

/// Look at and steer a camhd-grid: tube counts, server facts, failures.
///
/// Every command talks only to the beanstalkd server; nothing else is shared.
///
/// Exit codes: 0 done, 1 failed, 2 bad arguments, 3 `status` of a namespace the server
/// has no tubes for, 69 server unreachable.
#[derive(Debug, Parser)]
#[command(version = common::cli::VERSION, about, long_about)]
struct Cli {
    #[command(flatten)]
    grid: GridArgs,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Jobs and results: ready, reserved, delayed, buried; workers; server facts.
    Status {
        /// Print one JSON object instead of the table (one per refresh with --watch).
        #[arg(long)]
        json: bool,
        /// Refresh every SECS seconds, redrawing in place like `top` (Ctrl-C to stop).
        #[arg(long, value_name = "SECS")]
        watch: Option<u64>,
    },
    /// Every job that failed permanently, and every result the sink would not write:
    /// attempts, last error, host, when.
    Failed {
        /// Print a JSON array instead of text.
        #[arg(long)]
        json: bool,
        /// Also delete the failure records of jobs that no longer exist (done or discarded).
        #[arg(long)]
        prune: bool,
    },
    /// Put failed jobs (and parked results) back to be tried again.
    Retry {
        /// Every failed job and result.
        #[arg(long, conflicts_with = "videos")]
        all: bool,
        /// The videos (as in `gridctl failed`) whose jobs to retry.
        #[arg(required_unless_present = "all", value_name = "VIDEO")]
        videos: Vec<String>,
    },
    /// Delete failed jobs or parked results for good, with their failure records.
    ///
    /// Only buried jobs of this namespace are deleted. A discarded job's video is queued
    /// again by the next queuer run if its JSON is still missing, unless --forever puts
    /// it on the checkout's skip list (`.git/camhd-grid-skip`, which the queuer honours;
    /// delete its line there to have it queued again).
    Discard {
        /// The ids, as `gridctl failed` shows them.
        #[arg(required = true, value_name = "JOB-ID")]
        ids: Vec<u64>,
        /// Never queue these videos again: add them to the skip list of --checkout.
        #[arg(long, requires = "checkout")]
        forever: bool,
        /// The metadata checkout whose skip list --forever writes (the queuer's).
        #[arg(long, env = "GRIDCTL_CHECKOUT", value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
        checkout: Option<std::path::PathBuf>,
    },
    /// Show one job or result, decoded.
    Peek {
        /// The job's id.
        #[arg(value_name = "JOB-ID")]
        id: u64,
    },
    /// Hand out no job for SECS seconds (default: until resume).
    Pause {
        /// Seconds.
        secs: Option<u32>,
    },
    /// Hand out jobs again.
    Resume,
    /// Hand out no new job and wait until none is in progress (maintenance).
    Drain,
    /// Remove the heartbeats of dead filters (status lists them under "dead"): a filter
    /// starting removes those dead for over ten minutes, this removes them now.
    ForgetDead,
    /// Write a new grid key: 32 random bytes, readable only by you (mode 0600). Give it to
    /// every process with --key-file (GRID_KEY_FILE).
    Keygen {
        /// The key file to create (it must not exist).
        file: std::path::PathBuf,
    },
    /// Serve the grid as web pages: progress and throughput, workers, failures, and the
    /// videos committed lately with their motion plots (and JSON under /api/).
    ///
    /// Read-only unless --allow-control: then pause, resume, drain, retry and discard
    /// buttons appear for whoever logs in with the token in --token-file.
    Serve {
        /// Where to listen (HOST:PORT); keep it on a private address or behind a proxy.
        #[arg(
            long,
            env = "GRIDCTL_LISTEN",
            default_value = "127.0.0.1:8800",
            value_name = "ADDR"
        )]
        listen: String,
        /// The sink's checkout, for the recent commits page.
        #[arg(long, env = "GRIDCTL_CHECKOUT", value_name = "DIR")]
        checkout: Option<std::path::PathBuf>,
        /// Flow files shown on the recent commits page.
        #[arg(long, env = "GRIDCTL_RECENT", default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=200))]
        recent: u16,
        /// Show control buttons to whoever logs in with the token in --token-file.
        #[arg(long, env = "GRIDCTL_ALLOW_CONTROL", requires = "token_file")]
        allow_control: bool,
        /// A file holding the control token (one line, at least 16 characters, mode 600).
        #[arg(
            long,
            env = "GRIDCTL_TOKEN_FILE",
            value_name = "FILE",
            requires = "allow_control"
        )]
        token_file: Option<std::path::PathBuf>,
        /// Host names (or NAME:PORT) the dashboard answers to besides loopback and
        /// --listen (a proxy's name, the machine's): any other Host header is refused,
        /// so a page on another site cannot read this one through DNS rebinding.
        #[arg(
            long,
            env = "GRIDCTL_ALLOW_HOSTS",
            value_delimiter = ',',
            value_name = "NAME"
        )]
        allow_host: Vec<String>,
        /// Allow control over plain HTTP on an address other than loopback (the token
        /// and the session then cross the network in clear): only on a network of your own.
        #[arg(long, env = "GRIDCTL_INSECURE_CONTROL", requires = "allow_control")]
        insecure_control: bool,
        /// Keep the throughput history (the rate and the chart) in FILE across restarts:
        /// read at start, written every minute and on exit (the package's unit keeps it in
        /// /var/lib/camhd-grid). Without it a restart starts the chart anew.
        #[arg(long, env = "GRIDCTL_HISTORY", value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
        history: Option<std::path::PathBuf>,
    },
    /// Plot scale, theta, tx and ty of an _optical_flow.json (SVG or PNG; invalid entries in red).
    Plot {
        /// The _optical_flow.json file.
        #[arg(value_hint = clap::ValueHint::FilePath)]
        file: std::path::PathBuf,
        /// The SVG or PNG file to write [default: FILE with .svg instead of .json].
        #[arg(long, short, value_hint = clap::ValueHint::FilePath)]
        output: Option<std::path::PathBuf>,
        /// Plot against frame number instead of seconds.
        #[arg(long)]
        by_frame: bool,
    },
}

/// Subcommands that never meet the grid: its flags are hidden there.
const OFFLINE: [&str; 2] = ["keygen", "plot"];

fn main() -> ExitCode {
    let cli: Cli = common::generate::parse(&OFFLINE);
    init_logging();
    main_with(|| run(cli))
}

/// Exit code of `status` for a namespace the server has no tubes for.
const NO_SUCH_NAMESPACE: u8 = 3;

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let code = runtime.block_on(command(&cli.grid, cli.command));
    // A blocking task still running (a plot `serve` gave up on) must not hold the
    // process: dropping the runtime would wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    code
}

/// Runs one command. The grid is made (its key read, its settings checked) only for the
/// commands that talk to it: `keygen` and `plot` work without one.
async fn command(args: &GridArgs, command: Command) -> anyhow::Result<ExitCode> {
    let grid = || common::grid::Grid::from_args(args, common::host::hostname());
    let done = |()| ExitCode::SUCCESS;
    let out = &mut std::io::stdout();
    match command {
        Command::Keygen { file } => {
            let key = common::sign::keygen(&file)?;
            println!("wrote grid key {} to {}", key.id(), file.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Plot {
            file,
            output,
            by_frame,
        } => {
            let output = output.unwrap_or_else(|| file.with_extension("svg"));
            let axis = if by_frame { Axis::Frame } else { Axis::Time };
            let n = plot_file(&file, &output, axis)?;
            println!("plotted {n} entries to {}", output.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { json, watch } => match status::run(&grid()?, json, watch).await? {
            status::Found::Namespace => Ok(ExitCode::SUCCESS),
            status::Found::NoSuchNamespace => Ok(ExitCode::from(NO_SUCH_NAMESPACE)),
        },
        Command::Failed { json, prune } => failures::list(&grid()?, json, prune).await.map(done),
        Command::Retry { all, videos } => failures::retry(&grid()?, all, &videos, out)
            .await
            .map(|_| ExitCode::SUCCESS),
        Command::Discard {
            ids,
            forever,
            checkout,
        } => {
            let skip_in = checkout.filter(|_| forever);
            failures::discard(&grid()?, &ids, skip_in.as_deref(), out)
                .await
                .map(done)
        }
        Command::Peek { id } => control::peek(grid()?.config(), id).await.map(done),
        Command::Pause { secs } => control::pause(grid()?.config(), secs, out)
            .await
            .map(|_| ExitCode::SUCCESS),
        Command::Resume => control::resume(grid()?.config(), out).await.map(done),
        Command::Drain => control::drain(grid()?.config()).await.map(done),
        Command::ForgetDead => control::forget_dead(&grid()?, out).await.map(done),
        Command::Serve {
            listen,
            checkout,
            recent,
            allow_control,
            token_file,
            allow_host,
            insecure_control,
            history,
        } => {
            let control = match (allow_control, token_file) {
                (true, Some(file)) => Some(serve::Auth::load(&file)?),
                _ => None,
            };
            let config = serve::ServeConfig {
                listen,
                checkout,
                recent: recent.into(),
                control,
                allowed_hosts: allow_host,
                insecure_control,
                history,
            };
            serve::run(grid()?, config).await.map(done)
        }
    }
}
