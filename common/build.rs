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
    // missing one would make every build run this again.
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        let mut watched = vec![format!("{dir}/HEAD"), format!("{dir}/packed-refs")];
        if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watched.push(format!("{dir}/{head_ref}"));
        }
        for file in watched.iter().filter(|f| Path::new(f).exists()) {
            println!("cargo:rerun-if-changed={file}");
        }
    }
    println!("cargo:rustc-env=CAMHD_GRID_COMMIT={commit}");
}
