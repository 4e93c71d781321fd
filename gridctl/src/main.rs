//! `gridctl`: the operator's view of the grid. `main` only parses the command line and
//! hands the checked configuration to the command.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use common::cli::{init_logging, main_with};
use common::config::GridArgs;

mod status;

/// Look at and steer a camhd-grid: tube counts, server facts, failures.
///
/// Every command talks only to the beanstalkd server; nothing else is shared.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
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
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    main_with(|| run(cli))
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = cli.grid.config();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Status { json } => status::run(&config, json).await,
        }
    })?;
    Ok(ExitCode::SUCCESS)
}
