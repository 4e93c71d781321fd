//! Records the commit a build was made from, for every binary's `--version`:
//! `CAMHD_GRID_COMMIT` from the environment (a package built from a source tarball sets
//! it), else `git rev-parse` of the checkout, else "unknown".

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn main() {
    println!("cargo:rerun-if-env-changed=CAMHD_GRID_COMMIT");
    let commit = std::env::var("CAMHD_GRID_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    // Build again when HEAD moves (a commit, a checkout); only files that exist, since a
    // missing one would make every build run this again. Paths as git names them, so a
    // worktree's branch (kept in the main repository) is watched too.
    let mut names = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    names.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    for name in names {
        if let Some(file) = git(&["rev-parse", "--git-path", &name]) {
            if Path::new(&file).exists() {
                println!("cargo:rerun-if-changed={file}");
            }
        }
    }
    println!("cargo:rustc-env=CAMHD_GRID_COMMIT={commit}");
}
