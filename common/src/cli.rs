//! Process glue shared by the binaries: logging to stderr, and `main` that runs `run()`,
//! prints the error chain once and exits with a code scripts can rely on.

use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

use crate::beanstalk;

/// What every binary's `--version` says after its name: the version and the commit it
/// was built from (see `common/build.rs`), so an operator knows which build runs where.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("CAMHD_GRID_COMMIT"),
    ")"
);

pub use crate::exit;
pub use crate::exit::{usage, Busy, Usage};
pub use crate::files::{lock_exclusively, not_root_over, private_file, unwritable};

/// Sends `tracing` output to stderr, filtered by `GRID_LOG` (or `RUST_LOG`), default `info`.
pub fn init_logging() {
    let filter = EnvFilter::try_from_env("GRID_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

/// Runs a binary's `run()`: on error prints `error: <chain>` once to stderr and picks the
/// exit code from the error's cause.
pub fn main_with(run: impl FnOnce() -> anyhow::Result<ExitCode>) -> ExitCode {
    match run() {
        Ok(code) => code,
        // A reader that stopped reading (`queuer --dry-run | head`) got what it wanted.
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(exit_code_for(&err))
        }
    }
}

/// True when the error is stdout's reader having gone away.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Writes one line of data to stdout: an error (a closed pipe too) is returned, where
/// `println!` would panic.
pub fn out_line(line: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_fmt(line)?;
    out.write_all(b"\n")
}

/// The exit code for an error: [`exit::UNAVAILABLE`] when the server could not be
/// reached or went away, [`exit::BUSY`] when a lock is held, else [`exit::FAILURE`].
pub fn exit_code_for(err: &anyhow::Error) -> u8 {
    if err.chain().any(|cause| cause.is::<Busy>()) {
        return exit::BUSY;
    }
    if err.chain().any(|cause| cause.is::<Usage>()) {
        return exit::USAGE;
    }
    let unreachable = err.chain().any(|cause| {
        cause
            .downcast_ref::<beanstalk::Error>()
            .is_some_and(beanstalk::Error::is_connection_lost)
    });
    if unreachable {
        exit::UNAVAILABLE
    } else {
        exit::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unwritable_checkout_is_a_setting_to_fix_and_says_how() {
        let path = std::path::Path::new("/srv/co/.git/camhd-grid-sink.lock");
        for kind in [
            std::io::ErrorKind::ReadOnlyFilesystem,
            std::io::ErrorKind::PermissionDenied,
        ] {
            let err = unwritable(path, std::io::Error::from(kind));
            assert_eq!(exit_code_for(&err), exit::USAGE, "{kind:?}");
            let text = format!("{err:#}");
            assert!(
                text.contains("ReadWritePaths=") && text.contains("/srv/co"),
                "{text}"
            );
        }
        let other = unwritable(path, std::io::Error::from(std::io::ErrorKind::StorageFull));
        assert_eq!(exit_code_for(&other), exit::FAILURE, "a full disk may pass");
    }
}
