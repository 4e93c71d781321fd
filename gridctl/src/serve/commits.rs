//! What the sink committed lately, read from the checkout's git history (never from the
//! work tree, where anything could lie): the newest flow files with their commits, each
//! flow document and regions file as HEAD holds them, bounded in size.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use common::paths::{check_output, resolve_regions, OUTPUT_SUFFIX};
use serde::Serialize;

/// Commits looked through for the newest flow files.
const LOG_DEPTH: &str = "-n500";

/// The largest document read from git (the sink's default cap).
const MAX_BLOB: u64 = 32 << 20;

/// One flow file the sink committed.
#[derive(Debug, Clone, Serialize)]
pub struct Committed {
    /// Its path relative to the checkout.
    pub path: String,
    /// The commit that added or changed it.
    pub commit: String,
    /// When, as seconds since 1970.
    pub time: i64,
    /// The commit's subject line.
    pub subject: String,
}

/// One region of a regions file, for the table under a plot.
#[derive(Debug, Clone, Serialize)]
pub struct RegionRow {
    /// Its type.
    pub kind: String,
    /// First frame.
    pub start: i64,
    /// End frame.
    pub end: i64,
}

/// The newest `n` flow files committed in `checkout`, newest first.
pub fn recent(checkout: &Path, n: usize) -> anyhow::Result<Vec<Committed>> {
    let log = git(
        checkout,
        &[
            "log",
            LOG_DEPTH,
            "-z",
            "--format=%x01%H%x09%ct%x09%s",
            "--name-only",
        ],
    )?;
    let mut out = Vec::new();
    let mut current: Option<(String, i64, String)> = None;
    for token in log.split('\0') {
        let token = token.strip_prefix('\n').unwrap_or(token);
        if let Some(header) = token.strip_prefix('\u{1}') {
            let mut parts = header.splitn(3, '\t');
            let commit = parts.next().unwrap_or_default().to_owned();
            let time = parts.next().and_then(|t| t.parse().ok()).unwrap_or(0);
            let subject = parts.next().unwrap_or_default().trim().to_owned();
            current = Some((commit, time, subject));
        } else if let Some((commit, time, subject)) = &current {
            if token.ends_with(OUTPUT_SUFFIX) && !out.iter().any(|c: &Committed| c.path == token) {
                out.push(Committed {
                    path: token.to_owned(),
                    commit: commit.clone(),
                    time: *time,
                    subject: subject.clone(),
                });
                if out.len() >= n {
                    break;
                }
            }
        }
    }
    Ok(out)
}

/// The bytes of the flow document at `path` (held to the path policy) as HEAD holds it.
pub fn flow_document(checkout: &Path, path: &str) -> anyhow::Result<Vec<u8>> {
    check_output(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    blob(checkout, path)
}

/// The regions of the flow file `path`, if HEAD holds its regions file.
pub fn regions(checkout: &Path, path: &str) -> Option<Vec<RegionRow>> {
    let (rel, _) = resolve_regions(checkout, path).ok()?;
    let doc: serde_json::Value = serde_json::from_slice(&blob(checkout, &rel).ok()?).ok()?;
    let rows = doc["regions"]
        .as_array()?
        .iter()
        .map(|r| RegionRow {
            kind: r["type"].as_str().unwrap_or("?").to_owned(),
            start: r["startFrame"].as_i64().unwrap_or(0),
            end: r["endFrame"].as_i64().unwrap_or(0),
        })
        .collect();
    Some(rows)
}

/// The blob HEAD holds at `rel`, if it is no larger than [`MAX_BLOB`].
fn blob(checkout: &Path, rel: &str) -> anyhow::Result<Vec<u8>> {
    let spec = format!("HEAD:{rel}");
    let size: u64 = git(checkout, &["cat-file", "-s", &spec])?
        .trim()
        .parse()
        .context("git cat-file -s")?;
    if size > MAX_BLOB {
        bail!("{rel} has {size} bytes, more than the {MAX_BLOB} shown");
    }
    let out = git_bytes(checkout, &["cat-file", "blob", &spec])?;
    Ok(out)
}

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    Ok(String::from_utf8_lossy(&git_bytes(dir, args)?).into_owned())
}

/// Runs git in `dir` with literal pathspecs; its stderr in the error.
fn git_bytes(dir: &Path, args: &[&str]) -> anyhow::Result<Vec<u8>> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_LITERAL_PATHSPECS", "1")
        .output()
        .with_context(|| format!("running git {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

/// The checkout's root, checked to be a git work tree.
pub fn open(dir: &Path) -> anyhow::Result<PathBuf> {
    let root = dir
        .canonicalize()
        .with_context(|| format!("--checkout {}", dir.display()))?;
    git(&root, &["rev-parse", "--git-dir"])
        .with_context(|| format!("--checkout {} is not a git work tree", root.display()))?;
    Ok(root)
}
