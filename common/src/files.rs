//! Rules for the files a process is given: a secret others may read is refused, a
//! checkout that cannot be written says how to fix it, a lock makes a process one of a
//! kind, root never writes over what the services own, and a file is written whole or
//! not at all.

use anyhow::Context;

use crate::exit::{usage, Busy, Usage};

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

/// Writes `bytes` to `path` through a temporary file and a rename, so no reader ever
/// sees half of it; `path`'s folder is made if missing. The temporary file goes in
/// `scratch` when given (a folder of the same file system, as a checkout's git
/// directory, so a process killed mid-write leaves nothing beside the target), else, or
/// where the rename would cross file systems, beside `path`. The error is the file
/// system's, for the caller to tell whose fault it is.
pub fn write_atomically(
    path: &std::path::Path,
    bytes: &[u8],
    scratch: Option<&std::path::Path>,
) -> std::io::Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir)?;
    path.file_name().ok_or(std::io::ErrorKind::InvalidInput)?;
    // Short, so that a name near the file system's limit still has room beside it.
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp_name = format!(".camhd-{}-{n}.tmp", std::process::id());
    let places = scratch.into_iter().chain(std::iter::once(dir));
    for tmp in places.map(|d| d.join(&tmp_name)) {
        std::fs::write(&tmp, bytes)?;
        match std::fs::rename(&tmp, path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
                let _ = std::fs::remove_file(&tmp);
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        }
    }
    Err(std::io::Error::other("could not write atomically"))
}
