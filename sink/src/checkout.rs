//! The metadata checkout the sink writes into: checked to be a git work tree with a
//! README.md at its root, locked so only one sink writes it, written atomically, and
//! committed (and pushed) through the git command line.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// An open, locked checkout.
#[derive(Debug)]
pub struct Checkout {
    root: PathBuf,
    /// Held for the sink's life; the OS drops the lock when the process ends.
    _lock: File,
    /// Temporary files are written here, inside the git directory, so that a sink killed
    /// mid-write leaves nothing in the work tree.
    tmp_dir: PathBuf,
    git_dir: PathBuf,
    author_name: String,
    author_email: String,
}

impl Checkout {
    /// Opens `dir`, refusing anything but the root of a git work tree with a README.md,
    /// and takes the single-sink lock.
    pub fn open(dir: &Path, author: &str) -> anyhow::Result<Checkout> {
        let root = dir
            .canonicalize()
            .with_context(|| format!("checkout {}", dir.display()))?;
        let top = git(&root, &["rev-parse", "--show-toplevel"])
            .with_context(|| format!("{} is not a git work tree", root.display()))?;
        if Path::new(top.trim()) != root {
            bail!(
                "{} is inside the work tree {}, not its root",
                root.display(),
                top.trim()
            );
        }
        if !root.join("README.md").is_file() {
            bail!(
                "{} has no README.md at its root: is it really a CamHD_motion_metadata checkout?",
                root.display()
            );
        }
        let git_dir = git(&root, &["rev-parse", "--absolute-git-dir"])?;
        let lock_path = Path::new(git_dir.trim()).join("camhd-grid-sink.lock");
        let held = format!(
            "another sink holds {} (one sink per checkout)",
            lock_path.display()
        );
        let lock = common::cli::lock_exclusively(&lock_path, held)?;
        let (name, email) = parse_author(author)?;
        let tmp_dir = Path::new(git_dir.trim()).join("camhd-grid-tmp");
        std::fs::create_dir_all(&tmp_dir)
            .with_context(|| format!("creating {}", tmp_dir.display()))?;
        Ok(Checkout {
            root,
            _lock: lock,
            tmp_dir,
            git_dir: PathBuf::from(git_dir.trim()),
            author_name: name,
            author_email: email,
        })
    }

    /// The work tree's root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes `bytes` to `path` (inside the checkout) whole or not at all, the temporary
    /// file in the git directory, so a sink killed mid-write leaves nothing in the work
    /// tree (`common::files::write_atomically`).
    pub fn write(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        common::files::write_atomically(path, bytes, Some(&self.tmp_dir))
    }

    /// True when the checkout itself can be written: a file can be made (and removed) in
    /// its root and in the git directory. A write error while this holds belongs to the
    /// one result; while it fails, to the whole checkout.
    pub fn healthy(&self) -> bool {
        let probe = |dir: &Path| {
            let p = dir.join(format!(".camhd-grid-probe-{}", std::process::id()));
            let ok = std::fs::write(&p, b"probe").is_ok();
            let _ = std::fs::remove_file(&p);
            ok
        };
        probe(&self.root) && probe(&self.tmp_dir)
    }

    /// True when `rel` is tracked in HEAD.
    pub fn tracked(&self, rel: &str) -> anyhow::Result<bool> {
        let out = git(
            &self.root,
            &["ls-tree", "--name-only", "-z", "HEAD", "--", rel],
        )?;
        Ok(!out.is_empty())
    }

    /// Stages `rels` and commits exactly them (never anything else staged or lying in
    /// the work tree) if any changed, with the message `message` makes of the paths that
    /// changed; returns the new commit's id, or `None` when nothing changed (duplicates).
    /// Paths travel NUL-separated on standard input and the message through a file, so
    /// neither their number nor their length is limited.
    pub fn commit(
        &self,
        rels: &[String],
        message: impl FnOnce(&[String]) -> String,
    ) -> anyhow::Result<Option<String>> {
        self.clear_stale_index_lock();
        git_input(
            &self.root,
            &["add", "--pathspec-from-file=-", "--pathspec-file-nul"],
            nul_list(rels),
        )?;
        let staged = git(&self.root, &["diff", "--cached", "--name-only", "-z"])?;
        let staged: std::collections::HashSet<&str> = staged.split('\0').collect();
        let changed: Vec<String> = rels
            .iter()
            .filter(|r| staged.contains(r.as_str()))
            .cloned()
            .collect();
        if changed.is_empty() {
            return Ok(None);
        }
        self.commit_only(&changed, &message(&changed))?;
        Ok(Some(
            git(&self.root, &["rev-parse", "HEAD"])?.trim().to_owned(),
        ))
    }

    /// Of `written` (path, bytes written), those HEAD does not hold with that size: git
    /// skipped them, and their results must not be deleted as if committed.
    pub fn not_in_head(&self, written: &[(String, usize)]) -> anyhow::Result<Vec<String>> {
        if written.is_empty() {
            return Ok(Vec::new());
        }
        let input: String = written.iter().map(|(r, _)| format!("HEAD:{r}\n")).collect();
        let out = git_input(
            &self.root,
            &["cat-file", "--batch-check"],
            input.into_bytes(),
        )?;
        let lines: Vec<&str> = out.lines().collect();
        Ok(written
            .iter()
            .enumerate()
            .filter(|(i, (_, size))| {
                let line = lines.get(*i).copied().unwrap_or("");
                let mut parts = line.split(' ');
                let (kind, got) = (parts.nth(1), parts.next());
                !(kind == Some("blob") && got == Some(size.to_string().as_str()))
            })
            .map(|(_, (r, _))| r.clone())
            .collect())
    }

    /// Undoes a write that will not be committed: unstages it, and restores HEAD's
    /// version or removes the file.
    pub fn discard(&self, rel: &str, path: &Path) {
        let _ = git(&self.root, &["reset", "-q", "--", rel]);
        match self.tracked(rel) {
            Ok(true) => {
                let _ = git(&self.root, &["checkout", "-q", "HEAD", "--", rel]);
            }
            _ => {
                if path.is_file() {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
    }

    /// Unstages `rels` (after a failed commit, before trying parts of the batch).
    pub fn unstage(&self, rels: &[String]) {
        let _ = git_input(
            &self.root,
            &[
                "reset",
                "-q",
                "--pathspec-from-file=-",
                "--pathspec-file-nul",
            ],
            nul_list(rels),
        );
    }

    /// A `.git/index.lock` left by a killed git would fail every commit; no other sink
    /// can be running (we hold the sink lock), so it is removed, with a warning.
    fn clear_stale_index_lock(&self) {
        let lock = self.git_dir.join("index.lock");
        if lock.exists() {
            tracing::warn!(lock = %lock.display(), "removing a stale git index lock left by a killed git");
            let _ = std::fs::remove_file(&lock);
        }
    }

    /// Every file tracked in the index, as paths relative to the root.
    pub fn tracked_files(&self) -> anyhow::Result<Vec<String>> {
        let out = git(&self.root, &["ls-files", "-z"])?;
        Ok(out
            .split('\0')
            .filter(|f| !f.is_empty())
            .map(str::to_owned)
            .collect())
    }

    /// The commit that last changed each of `rels` that any did, looking back `depth`
    /// commits from HEAD (all of history when `None`), in one pass of `git log`.
    pub fn last_commits(
        &self,
        rels: &[String],
        depth: Option<u64>,
    ) -> anyhow::Result<std::collections::HashMap<String, String>> {
        let n = depth.map(|d| format!("-n{d}"));
        let args: Vec<&str> = n.iter().map(String::as_str).collect();
        let log = common::git::log(&self.root, &args)?;
        Ok(newest_commit_of(&log, rels))
    }

    /// Pushes HEAD to `remote`.
    pub fn push(&self, remote: &str) -> anyhow::Result<Vec<String>> {
        let refused = match git(&self.root, &["push", "-q", remote, "HEAD"]) {
            Ok(_) => return Ok(Vec::new()),
            Err(e) => e,
        };
        if !moved_on(&refused) {
            return Err(refused);
        }
        tracing::info!(
            remote,
            "the remote has commits the checkout lacks; merging them"
        );
        let kept = self.catch_up(remote)?;
        git(&self.root, &["push", "-q", remote, "HEAD"])?;
        Ok(kept)
    }

    /// Merges what `remote` holds now into the checkout (a merge, not a rebase: regions
    /// files name the commits of their flow files, which must stay in the history). A
    /// file that both the remote and the checkout changed since they parted (someone
    /// edited a file the grid wrote) is left as the remote has it, and its regions file
    /// (derived from the grid's version) goes; those paths are returned. Nothing is ever
    /// forced, and no edit of the remote is undone. A remote whose history no longer
    /// holds what the checkout last saw of it (rewritten: a force-push) is not merged at
    /// all: that would bring back what someone removed on purpose.
    fn catch_up(&self, remote: &str) -> anyhow::Result<Vec<String>> {
        let branch = git(&self.root, &["symbolic-ref", "--short", "HEAD"])?;
        let branch = branch.trim();
        // What the checkout last saw of the remote (a push or a fetch moves it).
        let tracking = format!("refs/remotes/{remote}/{branch}");
        let seen = git(&self.root, &["rev-parse", "--verify", "-q", &tracking])
            .ok()
            .map(|s| s.trim().to_owned());
        git(&self.root, &["fetch", "-q", remote, branch])?;
        let theirs = git(&self.root, &["rev-parse", "FETCH_HEAD"])?
            .trim()
            .to_owned();
        if let Some(seen) = seen {
            let kept = git(&self.root, &["merge-base", "--is-ancestor", &seen, &theirs]);
            if kept.is_err() {
                // Back to what it was, so this is found again until a person settles it.
                let _ = git(&self.root, &["update-ref", &tracking, &seen]);
                anyhow::bail!(
                    "RECORD DIVERGED: {remote}'s history no longer holds commit {}, which this checkout had pushed or fetched: it was rewritten (a force-push). Nothing is merged or pushed, so nothing removed there comes back; a person must reconcile the checkout with {remote} (docs/deploy.md, \"When the record moves\")",
                    &seen[..12.min(seen.len())]
                );
            }
        }
        let base = git(&self.root, &["merge-base", "HEAD", &theirs])?
            .trim()
            .to_owned();
        let changed = |tip: &str| -> anyhow::Result<std::collections::BTreeSet<String>> {
            let out = git(&self.root, &["diff", "--name-only", "-z", &base, tip])?;
            Ok(out
                .split('\0')
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect())
        };
        let ours = changed("HEAD")?;
        let kept: Vec<String> = changed(&theirs)?.intersection(&ours).cloned().collect();
        let (name, email) = self.identity();
        let message =
            format!("Merge what {remote} holds: the record moved while the grid committed");
        let merged = git(
            &self.root,
            &[
                "-c",
                &name,
                "-c",
                &email,
                "merge",
                "-q",
                "--no-edit",
                "--no-verify",
                "--autostash",
                "-X",
                "theirs",
                "-m",
                &message,
                &theirs,
            ],
        );
        if let Err(e) = merged {
            let _ = git(&self.root, &["merge", "--abort"]);
            return Err(e.context(format!("merging what {remote} holds")));
        }
        if kept.is_empty() {
            return Ok(kept);
        }
        // The merge took the remote's side only where the edits collided: the whole file
        // is the remote's.
        for path in &kept {
            let spec = format!("{theirs}:{path}");
            if git(&self.root, &["cat-file", "-e", &spec]).is_ok() {
                git(&self.root, &["checkout", &theirs, "--", path])?;
            } else {
                git(&self.root, &["rm", "-q", "--", path])?;
            }
        }
        // A regions file names the commit of the flow file it was derived from: beside a
        // flow file kept as the remote has it, it no longer matches and goes (`sink
        // regions` derives one anew from the kept file, when it can).
        let regions: Vec<String> = kept
            .iter()
            .filter_map(|p| p.strip_suffix("_optical_flow.json"))
            .map(|stem| format!("{stem}_optical_flow_regions.json"))
            .filter(|r| !kept.contains(r) && self.root.join(r).is_file())
            .collect();
        for path in &regions {
            git(&self.root, &["rm", "-q", "--", path])?;
        }
        let mut text = format!(
            "Keep {} file(s) as {remote} has them\n\nChanged there and by the grid since the two last agreed:\n",
            kept.len()
        );
        for path in &kept {
            text.push_str(&format!("  {path}\n"));
        }
        if !regions.is_empty() {
            text.push_str("\nRegions files removed, derived from the grid's versions:\n");
            for path in &regions {
                text.push_str(&format!("  {path}\n"));
            }
        }
        let staged = git(&self.root, &["diff", "--cached", "--name-only"])?;
        if !staged.trim().is_empty() {
            let paths: Vec<String> = kept.iter().chain(&regions).cloned().collect();
            self.commit_only(&paths, &text)?;
        }
        Ok(kept)
    }

    /// Commits exactly `paths` (literal, NUL-separated on standard input, so neither
    /// their number nor their length meets an argument limit) as the sink, with
    /// `message` passed through a file.
    fn commit_only(&self, paths: &[String], message: &str) -> anyhow::Result<()> {
        let msg_file = self.tmp_dir.join("COMMIT_MSG");
        std::fs::write(&msg_file, message)
            .with_context(|| format!("writing {}", msg_file.display()))?;
        let (name, email) = self.identity();
        let msg = msg_file.to_string_lossy();
        git_input(
            &self.root,
            &[
                "-c",
                &name,
                "-c",
                &email,
                "commit",
                "-q",
                "--no-verify",
                "--only",
                "-F",
                &msg,
                "--pathspec-from-file=-",
                "--pathspec-file-nul",
            ],
            nul_list(paths),
        )
        .map(drop)
    }

    /// The `-c user.name=…` and `-c user.email=…` of the sink's commits.
    fn identity(&self) -> (String, String) {
        (
            format!("user.name={}", self.author_name),
            format!("user.email={}", self.author_email),
        )
    }

    /// HEAD's commit id.
    pub fn head(&self) -> anyhow::Result<String> {
        Ok(git(&self.root, &["rev-parse", "HEAD"])?.trim().to_owned())
    }

    /// How many commits come after `since` (else how many no ref of `remote` holds),
    /// and the newest [`SHOWN`] of them as `<short id> <subject>`, oldest first.
    pub fn commits_since(&self, since: Option<&str>, remote: &str) -> (usize, Vec<String>) {
        let not_remote = format!("--remotes={remote}");
        let range = since.map(|s| format!("{s}..HEAD"));
        let which: Vec<&str> = match &range {
            Some(r) => vec![r],
            None => vec!["HEAD", "--not", &not_remote],
        };
        let count = git(&self.root, &[&["rev-list", "--count"][..], &which].concat())
            .ok()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        let shown = format!("-n{SHOWN}");
        let mut newest: Vec<String> = git(
            &self.root,
            &[&["log", &shown, "--format=%h %s"][..], &which].concat(),
        )
        .map(|out| out.lines().map(str::to_owned).collect())
        .unwrap_or_default();
        newest.reverse();
        (count, newest)
    }
}

/// Commits named at most where unpushed ones are listed.
pub const SHOWN: usize = 20;

/// Of a log (newest first), the first commit naming each of `rels`.
fn newest_commit_of(
    log: &[common::git::Commit],
    rels: &[String],
) -> std::collections::HashMap<String, String> {
    let wanted: std::collections::HashSet<&str> = rels.iter().map(String::as_str).collect();
    let mut found = std::collections::HashMap::new();
    for commit in log {
        for file in &commit.files {
            if wanted.contains(file.as_str()) && !found.contains_key(file) {
                found.insert(file.clone(), commit.id.clone());
            }
        }
    }
    found
}

fn nul_list(rels: &[String]) -> Vec<u8> {
    let mut list = Vec::new();
    for r in rels {
        list.extend_from_slice(r.as_bytes());
        list.push(0);
    }
    list
}

/// Runs git in `dir` and returns its stdout (`common::git`: literal pathspecs, no
/// prompt, the command line and stderr in any error).
fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    Ok(common::git::text(dir, args)?)
}

/// Runs git in `dir` with `input` on its standard input.
fn git_input(dir: &Path, args: &[&str], input: Vec<u8>) -> anyhow::Result<String> {
    let out = common::git::run(dir, args, Some(input))?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// True when a push was refused because the remote has commits the checkout lacks.
fn moved_on(refused: &anyhow::Error) -> bool {
    let text = format!("{refused:#}");
    ["non-fast-forward", "fetch first", "[rejected]"]
        .iter()
        .any(|m| text.contains(m))
        && !text.contains("protected branch")
}

/// `Name <email>`.
fn parse_author(author: &str) -> anyhow::Result<(String, String)> {
    let (name, rest) = author
        .split_once('<')
        .with_context(|| format!("--author {author:?} is not of the form 'Name <email>'"))?;
    let email = rest
        .strip_suffix('>')
        .with_context(|| format!("--author {author:?} is not of the form 'Name <email>'"))?;
    Ok((name.trim().to_owned(), email.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_commit_naming_a_path_is_found() {
        let commit = |id: &str, files: &[&str]| common::git::Commit {
            id: id.into(),
            time: 0,
            subject: String::new(),
            files: files.iter().map(|f| f.to_string()).collect(),
        };
        let log = [commit("bbb", &["a/x"]), commit("aaa", &["a/x", "b c"])];
        let rels = ["a/x".to_owned(), "b c".to_owned(), "gone".to_owned()];
        let found = newest_commit_of(&log, &rels);
        assert_eq!(found["a/x"], "bbb");
        assert_eq!(found["b c"], "aaa");
        assert!(!found.contains_key("gone"));
    }
}
