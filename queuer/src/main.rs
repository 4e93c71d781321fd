//! `queuer`: for now only its shared flags (`--server`, `--namespace`); its work —
//! find videos whose JSON is missing and queue a job for each (issue 4) — is not built yet, and it says so rather than pretend.

use std::process::ExitCode;

use clap::Parser;
use common::cli::main_with;
use common::config::GridArgs;

/// camhd-grid queuer: find videos whose JSON is missing and queue a job for each (issue 4).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    grid: GridArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    main_with(|| {
        let config = cli.grid.config();
        anyhow::bail!(
            "queuer is not built yet (server {}, namespace {})",
            config.server,
            config.namespace
        )
    })
}
