//! `filter`: the grid worker (issue 4) and `filter analyze`, the same analysis on one
//! video with no queue. `main` parses the command line and hands a checked configuration
//! to the command.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use common::cli::{init_logging, main_with};
use common::config::GridArgs;

mod analyze_cmd;

/// camhd-grid filter: estimate camera motion in CamHD videos.
///
/// With no command, runs as a grid worker (not built yet). `filter analyze VIDEO` runs the
/// analysis on one video and writes its _optical_flow.json.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(flatten)]
    grid: GridArgs,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    Analyze(analyze_cmd::AnalyzeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Some(Command::Analyze(args)) => analyze_cmd::main(args),
        None => main_with(|| {
            let config = cli.grid.config();
            anyhow::bail!(
                "the filter worker is not built yet (server {}, namespace {}); use `filter analyze VIDEO`",
                config.server,
                config.namespace
            )
        }),
    }
}
