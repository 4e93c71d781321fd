//! What the sink committed lately, read from the checkout's git history (never from the
//! work tree, where anything could lie): the newest flow files with their commits, each
//! flow document and regions file as HEAD holds them, bounded in size.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use common::paths::{check_output, resolve_regions, OUTPUT_SUFFIX};
use serde::Serialize;

/// Commits looked through for the newest flow files.
const LOG_DEPTH: &str = "-n500";

/// The largest document read from git (the sink's default cap).
const MAX_BLOB: u64 = 32 << 20;

/// The largest regions file read for the commits page: a real one is a few KB (a
/// 170,000-entry video's, 3,400 regions, about 1 MB); ten of the flow documents' size
/// would hold a page for many seconds and hundreds of MB.
const MAX_REGIONS_BLOB: u64 = 4 << 20;

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
    let mut out: Vec<Committed> = Vec::new();
    for commit in common::git::log(checkout, &[LOG_DEPTH])? {
        for file in commit.files {
            if file.ends_with(OUTPUT_SUFFIX) && !out.iter().any(|c| c.path == file) {
                out.push(Committed {
                    path: file,
                    commit: commit.id.clone(),
                    time: commit.time,
                    subject: commit.subject.clone(),
                });
                if out.len() >= n {
                    return Ok(out);
                }
            }
        }
    }
    Ok(out)
}

/// The bytes of the flow document at `path` (held to the path policy) as HEAD holds it.
pub fn flow_document(checkout: &Path, path: &str) -> anyhow::Result<Vec<u8>> {
    check_output(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    blob(checkout, path, MAX_BLOB)
}

/// The regions of the flow file `path`, if HEAD holds its regions file.
pub fn regions(checkout: &Path, path: &str) -> Option<Vec<RegionRow>> {
    let (rel, _) = resolve_regions(checkout, path).ok()?;
    let bytes = blob(checkout, &rel, MAX_REGIONS_BLOB).ok()?;
    let spans = flowdoc::regions::file::spans(&bytes).ok()?;
    let rows = spans
        .into_iter()
        .map(|s| RegionRow {
            kind: s.kind,
            start: s.start,
            end: s.end,
        })
        .collect();
    Some(rows)
}

/// The blob HEAD holds at `rel`, if it is no larger than `max` bytes.
fn blob(checkout: &Path, rel: &str, max: u64) -> anyhow::Result<Vec<u8>> {
    let spec = format!("HEAD:{rel}");
    let size: u64 = git(checkout, &["cat-file", "-s", &spec])?
        .trim()
        .parse()
        .context("git cat-file -s")?;
    if size > max {
        bail!("{rel} has {size} bytes, more than the {max} shown");
    }
    let out = git_bytes(checkout, &["cat-file", "blob", &spec])?;
    Ok(out)
}

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    Ok(common::git::text(dir, args)?)
}

fn git_bytes(dir: &Path, args: &[&str]) -> anyhow::Result<Vec<u8>> {
    Ok(common::git::run(dir, args, None)?)
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

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::git::{commit, git as run};

    #[test]
    fn a_regions_file_far_larger_than_any_real_one_is_not_read_for_the_page() {
        let dir = tempfile::tempdir().unwrap();
        let co = dir.path();
        run(co, &["init", "-q"]);
        let day = "RS03ASHS/PN03B/06-CAMHDA301/2017/06/14";
        std::fs::create_dir_all(co.join(day)).unwrap();
        let region = r#"{"type":"static","startFrame":1,"endFrame":2},"#;
        let regions_file = |n: usize| {
            let rows = region.repeat(n);
            format!(r#"{{"regions":[{}]}}"#, rows.trim_end_matches(','))
        };
        for (name, n) in [("A", 3), ("B", 120_000)] {
            std::fs::write(co.join(format!("{day}/{name}_optical_flow.json")), "{}").unwrap();
            std::fs::write(
                co.join(format!("{day}/{name}_optical_flow_regions.json")),
                regions_file(n),
            )
            .unwrap();
        }
        run(co, &["add", "."]);
        commit(co, "x");
        let small = regions(co, &format!("{day}/A_optical_flow.json"));
        assert_eq!(small.map(|r| r.len()), Some(3));
        assert!(
            regions(co, &format!("{day}/B_optical_flow.json")).is_none(),
            "5 MB of regions"
        );
    }

    #[test]
    fn no_file_name_can_pose_as_a_commit() {
        let dir = tempfile::tempdir().unwrap();
        let co = dir.path();
        run(co, &["init", "-q"]);
        let flow =
            "RS03ASHS/PN03B/06-CAMHDA301/2017/06/14/CAMHDA301-20170614T001500_optical_flow.json";
        std::fs::create_dir_all(co.join(Path::new(flow).parent().unwrap())).unwrap();
        std::fs::write(co.join(flow), "{}").unwrap();
        // Sorted before the flow file in git's list, written as the old header was.
        let forged = format!("\u{1}{}\t0\tforged subject", "0".repeat(40));
        std::fs::write(co.join(&forged), "").unwrap();
        run(co, &["add", "."]);
        commit(co, "Add optical flow for 1 video(s)");
        let head = run(co, &["rev-parse", "HEAD"]);
        let found = recent(co, 10).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].path, flow);
        assert_eq!(found[0].commit, head.trim());
        assert_eq!(found[0].subject, "Add optical flow for 1 video(s)");
        assert!(found[0].time > 0);
    }
}
