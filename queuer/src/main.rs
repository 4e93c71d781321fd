//! `queuer`: finds videos whose `_optical_flow.json` is missing and queues a job for each.
//! `main` parses the flags into a checked configuration and runs one pass.

mod found;
mod grid_id;
mod ledger;
mod listing;
mod run;
mod sources;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::NaiveDate;
use clap::Parser;
use common::cli::{init_logging, main_with};
use common::config::GridArgs;

/// Exit code when some entries were rejected but the rest were handled.
const PARTIAL: u8 = 3;

/// camhd-grid queuer: queue a job for every video whose JSON is missing.
///
/// SOURCE is a local folder (walked for .mov files), an http(s) directory index (as the
/// raw archive serves; followed into subfolders), a lazycache directory URL, or a text
/// file (or - for stdin) with one video path or URL per line. A video is skipped when its
/// JSON is in the checkout (unless --force) or its job is still in the grid, so running
/// the queuer again queues nothing twice.
///
/// Exit codes: 0 all entries handled, 3 some entries rejected (listed on stderr),
/// 1 failure, 2 bad arguments, 69 server unreachable.
#[derive(Debug, Parser)]
#[command(version = common::cli::VERSION, about, long_about)]
struct Cli {
    #[command(flatten)]
    grid: GridArgs,

    /// The CamHD_motion_metadata checkout whose JSON files count as done.
    #[arg(long, env = "QUEUER_CHECKOUT", value_name = "DIR")]
    checkout: PathBuf,

    /// Where the ids of queued jobs are kept [default: CHECKOUT/.git/camhd-grid-queued-NAMESPACE.json].
    #[arg(long, env = "QUEUER_LEDGER", value_name = "FILE")]
    ledger: Option<PathBuf>,

    /// Analyse every N-th frame.
    #[arg(long, env = "QUEUER_STRIDE", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    stride: u32,

    /// First sampled frame (from 1).
    #[arg(long, env = "QUEUER_START", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    start: u64,

    /// One past the last sampled frame; -1 means all frames.
    #[arg(long, env = "QUEUER_STOP", default_value_t = -1, allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(-1..))]
    stop: i64,

    /// Job priority (0 is most urgent).
    #[arg(long, env = "QUEUER_PRIORITY", default_value_t = 1024)]
    priority: u32,

    /// Seconds a filter may hold a job without touching it (filters touch every 10 s).
    #[arg(long, env = "QUEUER_TTR", default_value_t = 300, value_parser = clap::value_parser!(u32).range(2..))]
    ttr: u32,

    /// Queue videos whose JSON exists, and have the sink replace it.
    #[arg(long, env = "QUEUER_FORCE")]
    force: bool,

    /// Show what would be queued; queue nothing.
    #[arg(long, env = "QUEUER_DRY_RUN")]
    dry_run: bool,

    /// Queue at most N jobs.
    #[arg(long, env = "QUEUER_LIMIT", value_name = "N")]
    limit: Option<usize>,

    /// Only videos recorded on or after this date (YYYY-MM-DD, from the archive path).
    #[arg(long, env = "QUEUER_SINCE", value_name = "DATE")]
    since: Option<NaiveDate>,

    /// Only videos recorded on or before this date (YYYY-MM-DD).
    #[arg(long, env = "QUEUER_UNTIL", value_name = "DATE")]
    until: Option<NaiveDate>,

    /// Only videos recorded in the last N days, today (UTC) included: what a daily run
    /// over a growing archive needs (the original injector looked back 5 days).
    #[arg(long, env = "QUEUER_RECENT_DAYS", value_name = "N", conflicts_with = "since", value_parser = clap::value_parser!(u32).range(1..))]
    recent_days: Option<u32>,

    /// Open each video's index before queuing it; reject those that fail.
    #[arg(long, env = "QUEUER_VERIFY")]
    verify: bool,

    /// Trust only the CAs in this PEM file for https:// sources (an archive mirror with a
    /// private CA), for listings and --verify alike. [default: the public web's CAs]
    #[arg(long, env = "QUEUER_HTTP_CA_FILE", value_name = "PEM")]
    http_ca_file: Option<std::path::PathBuf>,

    /// The most requests in flight to one host at once: listing pages fetched together
    /// (a walk far from the archive waits a round trip per this many folders), and
    /// --verify's index reads. The archive is one server the whole grid shares; a host
    /// that refuses (503, 429) gets half as many, and its `Retry-After` is honoured. With
    /// the grid's archive budget (GRID_ARCHIVE_CONNECTIONS) every request also waits for
    /// one of the grid's tokens, as a filter's do.
    #[arg(long, env = "QUEUER_HTTP_CONNECTIONS", default_value_t = movie::HttpLimits::CONNECTIONS, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=256))]
    http_connections: usize,

    /// Folders, URLs or list files (- for stdin); the environment takes a
    /// comma-separated list.
    #[arg(
        required = true,
        env = "QUEUER_SOURCES",
        value_delimiter = ',',
        value_name = "SOURCE"
    )]
    sources: Vec<String>,
}

/// The first day of the last `days` days, today (UTC) included.
fn recent_since(days: u32) -> NaiveDate {
    chrono::Utc::now().date_naive() - chrono::Days::new(u64::from(days) - 1)
}

fn main() -> ExitCode {
    let cli: Cli = common::generate::parse(&[]);
    init_logging();
    main_with(|| {
        let grid = common::grid::Grid::from_args(&cli.grid, common::host::hostname())?;
        if !cli.checkout.is_dir() {
            return Err(common::cli::usage(format!(
                "--checkout {} is not a folder (QUEUER_CHECKOUT): give the clone of CamHD_motion_metadata whose missing JSON to queue",
                cli.checkout.display()
            ))
            .into());
        }
        let ledger = match &cli.ledger {
            Some(l) => l.clone(),
            None => {
                let git = cli.checkout.join(".git");
                if !git.is_dir() {
                    return Err(common::cli::usage(format!(
                        "{} has no .git folder for the ledger; give --ledger FILE",
                        cli.checkout.display()
                    ))
                    .into());
                }
                git.join(format!(
                    "camhd-grid-queued-{}.json",
                    grid.config().namespace
                ))
            }
        };
        let config = run::QueuerConfig {
            grid,
            checkout: cli.checkout.clone(),
            ledger,
            sources: cli.sources.clone(),
            stride: cli.stride,
            start: cli.start,
            stop: cli.stop,
            priority: cli.priority,
            ttr: cli.ttr,
            force: cli.force,
            dry_run: cli.dry_run,
            limit: cli.limit,
            since: cli.since.or_else(|| cli.recent_days.map(recent_since)),
            until: cli.until,
            verify: cli.verify,
            archive: std::sync::Arc::new(
                movie::Hosts::new(cli.http_connections).trusting(match &cli.http_ca_file {
                    Some(ca) => movie::tls::ArchiveTls::from_ca_file(ca)
                        .map_err(|e| common::cli::usage(format!("--http-ca-file: {e}")))?,
                    None => movie::tls::ArchiveTls::public(),
                }),
            ),
            archive_budget: cli.grid.archive_connections.is_some(),
            skip: common::skip::SkipList::read(&cli.checkout).with_context(|| {
                format!(
                    "reading the skip list {}",
                    common::skip::path(&cli.checkout).display()
                )
            })?,
        };
        if !config.dry_run {
            common::cli::not_root_over(&config.checkout, "queuer …")?;
        }
        if !config.grid.keys().enabled() && !config.dry_run {
            tracing::warn!("no grid key (--key-file, GRID_KEY_FILE): jobs are queued unsigned; see docs/security.md");
        }
        let runtime = tokio::runtime::Runtime::new()?;
        let summary = runtime.block_on(async {
            let mut client = config.grid.connect().await?;
            run::run(&config, &mut client).await.context("queuing")
        })?;
        for r in &summary.rejected {
            eprintln!("rejected: {}: {}", r.entry, r.reason);
        }
        let skipped = if summary.skipped > 0 {
            format!(", skipped for good {}", summary.skipped)
        } else {
            String::new()
        };
        common::cli::out_line(format_args!(
            "{} {}, already done {}, in flight {}, out of date range {}, rejected {}{skipped}",
            if config.dry_run {
                "would queue"
            } else {
                "queued"
            },
            summary.queued,
            summary.done,
            summary.in_flight,
            summary.out_of_range,
            summary.rejected.len()
        ))?;
        Ok(if summary.rejected.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(PARTIAL)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn recent_days_count_today_as_the_first() {
        let today = chrono::Utc::now().date_naive();
        assert_eq!(recent_since(1), today);
        assert_eq!(recent_since(5), today - chrono::Days::new(4));
    }

    #[test]
    fn a_daily_run_is_configured_from_the_environment_alone() {
        let vars = [
            ("QUEUER_CHECKOUT", "/srv/checkout"),
            ("QUEUER_SOURCES", "/srv/a,https://example.org/files/"),
            ("QUEUER_RECENT_DAYS", "5"),
            ("QUEUER_FORCE", "true"),
        ];
        let matches = Cli::command()
            .try_get_matches_from_mut(["queuer"])
            .map(|_| ())
            .unwrap_err();
        assert_eq!(
            matches.kind(),
            clap::error::ErrorKind::MissingRequiredArgument
        );
        for (k, v) in vars {
            std::env::set_var(k, v);
        }
        let cli = Cli::try_parse_from(["queuer"]).unwrap();
        for (k, _) in vars {
            std::env::remove_var(k);
        }
        assert_eq!(cli.sources, ["/srv/a", "https://example.org/files/"]);
        assert_eq!(cli.recent_days, Some(5));
        assert!(cli.force);
        assert_eq!(cli.checkout, PathBuf::from("/srv/checkout"));
    }
}
