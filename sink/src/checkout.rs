//! The metadata checkout the sink writes into: checked to be a git work tree with a
//! README.md at its root, locked so only one sink writes it, written atomically, and
//! committed (and pushed) through the git command line.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use common::process;

/// An open, locked checkout.
#[derive(Debug)]
pub struct Checkout {
    root: PathBuf,
    /// Held for the sink's life; the OS drops the lock when the process ends.
    _lock: File,
    /// Temporary files are written here, inside the git directory, so that a sink killed
    /// mid-write leaves nothing in the work tree.
    tmp_dir: PathBuf,
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
        let lock = File::create(&lock_path)
            .with_context(|| format!("creating the lock file {}", lock_path.display()))?;
        if lock.try_lock().is_err() {
            bail!(
                "another sink holds {} (one sink per checkout)",
                lock_path.display()
            );
        }
        let (name, email) = parse_author(author)?;
        let tmp_dir = Path::new(git_dir.trim()).join("camhd-grid-tmp");
        std::fs::create_dir_all(&tmp_dir)
            .with_context(|| format!("creating {}", tmp_dir.display()))?;
        Ok(Checkout {
            root,
            _lock: lock,
            tmp_dir,
            author_name: name,
            author_email: email,
        })
    }

    /// The work tree's root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes `bytes` to `path` (inside the checkout) via a temporary file and a rename.
    /// The temporary file lives in the git directory, so a sink killed mid-write leaves
    /// nothing in the work tree; where that is on another file system (the rename
    /// fails), beside the target instead.
    pub fn write_atomically(&self, path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
        let dir = path.parent().context("an output path has no folder")?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let name = path
            .file_name()
            .context("an output path has no file name")?;
        let tmp_name = format!(".{}.sink-{}", name.to_string_lossy(), std::process::id());
        for tmp in [self.tmp_dir.join(&tmp_name), dir.join(&tmp_name)] {
            std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
            match std::fs::rename(&tmp, path) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
                    let _ = std::fs::remove_file(&tmp);
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("renaming onto {}", path.display()))
                }
            }
        }
        anyhow::bail!("could not write {} atomically", path.display())
    }

    /// Stages `paths` and commits them if anything changed; returns the new commit's id,
    /// or `None` when the batch changed nothing (duplicates, kept files).
    pub fn commit(&self, paths: &[PathBuf], message: &str) -> anyhow::Result<Option<String>> {
        for chunk in paths.chunks(500) {
            let mut args: Vec<&str> = vec!["add", "--"];
            let rels: Vec<String> = chunk
                .iter()
                .map(|p| {
                    p.strip_prefix(&self.root)
                        .unwrap_or(p)
                        .to_string_lossy()
                        .into_owned()
                })
                .collect();
            args.extend(rels.iter().map(String::as_str));
            git(&self.root, &args)?;
        }
        if git(&self.root, &["diff", "--cached", "--name-only"])?
            .trim()
            .is_empty()
        {
            return Ok(None);
        }
        let name = format!("user.name={}", self.author_name);
        let email = format!("user.email={}", self.author_email);
        git(
            &self.root,
            &[
                "-c",
                &name,
                "-c",
                &email,
                "commit",
                "-q",
                "--no-verify",
                "-m",
                message,
            ],
        )?;
        Ok(Some(
            git(&self.root, &["rev-parse", "HEAD"])?.trim().to_owned(),
        ))
    }

    /// Pushes HEAD to `remote`.
    pub fn push(&self, remote: &str) -> anyhow::Result<()> {
        git(&self.root, &["push", "-q", remote, "HEAD"]).map(drop)
    }
}

/// Runs git in `dir` and returns its stdout.
fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(dir).args(args);
    let out = process::run(&mut cmd)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
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
