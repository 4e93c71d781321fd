//! The workspace's binaries, built on first use so that end-to-end tests never run a
//! stale copy, and commands run with their output kept for failure reports.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The path of the workspace binary `name` (`queuer`, `filter`, `sink`, `gridctl`), after
/// making sure every workspace binary is built and current.
///
/// `cargo test` builds only the binaries of the package under test, so the first call in
/// a test process runs `cargo build --workspace --bins` (a no-op when nothing changed).
pub fn path(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(build_workspace_bins);
    dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// A `Command` for the workspace binary `name`.
pub fn command(name: &str) -> Command {
    Command::new(path(name))
}

fn build_workspace_bins() -> PathBuf {
    // target/<profile>/deps/<test-exe> → target/<profile>
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test executable in target/<profile>/deps")
        .to_path_buf();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--workspace", "--bins", "--quiet"]);
    if dir.file_name().is_some_and(|p| p == "release") {
        cmd.arg("--release");
    }
    let status = cmd
        .status()
        .expect("running cargo build for the workspace binaries");
    assert!(status.success(), "cargo build --workspace --bins failed");
    dir
}
