//! Git fixtures: a CamHD_motion_metadata-like checkout (a work tree with a README.md and
//! one commit), and running git in it with failures reported.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `git -C dir ARGS` and returns its stdout; panics with its stderr on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("running git");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Creates `parent/checkout`: a git work tree with a README.md, committed.
pub fn metadata_checkout(parent: &Path) -> PathBuf {
    let co = parent.join("checkout");
    std::fs::create_dir_all(&co).expect("creating the checkout");
    std::fs::write(co.join("README.md"), "# CamHD motion metadata\n").expect("README.md");
    git(&co, &["init", "-q"]);
    git(&co, &["add", "README.md"]);
    commit(&co, "init");
    co
}

/// Commits what is staged in `dir` as a test author.
pub fn commit(dir: &Path, message: &str) {
    let args = [
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t",
        "commit",
        "-qm",
        message,
    ];
    git(dir, &args);
}
