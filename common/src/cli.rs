//! Process glue shared by the binaries: logging to stderr, and `main` that runs `run()`,
//! prints the error chain once and exits with a code scripts can rely on.

use std::process::ExitCode;

use anyhow::Context;

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

/// Exit codes, the same in every binary (after BSD's sysexits where one fits).
pub mod exit {
    /// Everything asked for was done.
    pub const OK: u8 = 0;
    /// Something failed; the message says what.
    pub const FAILURE: u8 = 1;
    /// Bad arguments (clap's own code).
    pub const USAGE: u8 = 2;
    /// The beanstalkd server could not be reached (EX_UNAVAILABLE).
    pub const UNAVAILABLE: u8 = 69;
    /// Another process holds what this one needs (a lock); try again later (EX_TEMPFAIL).
    pub const BUSY: u8 = 75;
}

/// An error meaning "another process holds this; try again later" (exit code
/// [`exit::BUSY`]), for locks that make a process one of a kind.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Busy(pub String);

/// A configuration that cannot work (exit code [`exit::USAGE`], like clap's own
/// refusals): found after parsing, e.g. a file that is not safe to use as given.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// A [`Usage`] error.
pub fn usage(message: impl Into<String>) -> Usage {
    Usage(message.into())
}

/// The error for a checkout file that cannot be created: a read-only file system or a
/// denied permission is a setting to fix, not a failure to retry (a [`Usage`] error, so
/// systemd does not restart into it), and says how; anything else is `error` as it is.
pub fn unwritable(path: &std::path::Path, error: std::io::Error) -> anyhow::Error {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::ReadOnlyFilesystem | ErrorKind::PermissionDenied => usage(format!(
            "cannot write {}: {error}. Under the package's systemd units (ProtectSystem=strict) a checkout outside /var/lib/camhd-grid needs `ReadWritePaths=` naming it in a drop-in for the sink and the queuer (docs/deploy.md, \"A checkout elsewhere\"); otherwise give the service user write access",
            path.display()
        ))
        .into(),
        _ => anyhow::Error::new(error).context(format!("creating {}", path.display())),
    }
}

/// Refuses to run as root over a checkout the services own: every file written now
/// (the ledger, a lock, a commit's objects) would be root's, and the services could no
/// longer write them. `what` names the command to run instead, as the owner.
pub fn not_root_over(dir: &std::path::Path, what: &str) -> Result<(), Usage> {
    use std::os::unix::fs::MetadataExt;
    if !rustix::process::geteuid().is_root() {
        return Ok(());
    }
    let Ok(meta) = std::fs::metadata(dir) else {
        return Ok(());
    };
    if meta.uid() == 0 {
        return Ok(());
    }
    let owner = user_name(meta.uid()).unwrap_or_else(|| format!("uid {}", meta.uid()));
    Err(usage(format!(
        "running as root over {}, which {owner} owns: what this run writes there would be root's and the services could no longer write it. Run it as {owner}: runuser -u {owner} -- {what} (with the settings the services read: set -a; . /etc/camhd-grid/grid.env; set +a)",
        dir.display()
    )))
}

/// The name /etc/passwd gives a uid, if any.
fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id: u32 = fields.nth(1)?.parse().ok()?;
        (id == uid).then(|| name.to_owned())
    })
}

/// Takes the lock file `path` that makes this process one of a kind: a [`Busy`] error
/// saying `held` when another process holds it, [`unwritable`] when it cannot be made.
/// The lock lasts as long as the returned file (the OS lets go when the process ends).
pub fn lock_exclusively(path: &std::path::Path, held: String) -> anyhow::Result<std::fs::File> {
    let lock = std::fs::File::create(path).map_err(|e| unwritable(path, e))?;
    if lock.try_lock().is_err() {
        return Err(Busy(held).into());
    }
    Ok(lock)
}

/// Refuses a secret file (`what`: "the grid key", "the control token") that other users
/// may read or write, as ssh refuses such a private key, saying the chmod that fixes it.
pub fn private_file(path: &std::path::Path, what: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .with_context(|| format!("reading {what} {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o007 != 0 {
        return Err(usage(format!(
            "{what} {} is open to other users (mode {:04o}); whoever reads it can act for the grid: chmod 600 {} (or 640 for a service group)",
            path.display(),
            mode & 0o7777,
            path.display()
        ))
        .into());
    }
    Ok(())
}

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
