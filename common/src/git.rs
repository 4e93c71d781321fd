//! git, run one way by every process that reads or writes the record: through the
//! wrapped child (`process`), in a directory, with literal pathspecs and never a
//! prompt; and the one reader of `git log` with the files each commit changed, whose
//! commits are told from file names by a marker drawn afresh for each read.

use std::path::Path;
use std::process::Command;

use crate::process::{self, ProcessError};

/// Why git could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// git failed to start or exited unsuccessfully (its command line and stderr).
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// No marker could be drawn to read a log by.
    #[error("drawing a marker for git log: {0}")]
    Marker(#[source] std::io::Error),
}

/// Runs git in `dir` with `args` (and `input` on its standard input, if any); returns
/// its stdout. Pathspecs are literal: no `:(magic)`, no globs, whatever a path looks
/// like.
pub fn run(dir: &Path, args: &[&str], input: Option<Vec<u8>>) -> Result<Vec<u8>, GitError> {
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_LITERAL_PATHSPECS", "1")
        .env("GIT_TERMINAL_PROMPT", "0");
    Ok(process::run_with_input(&mut cmd, input)?.stdout)
}

/// [`run`] without input, its stdout as text (invalid UTF-8 replaced).
pub fn text(dir: &Path, args: &[&str]) -> Result<String, GitError> {
    Ok(String::from_utf8_lossy(&run(dir, args, None)?).into_owned())
}

/// One commit of a log, with the files it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// The full commit id.
    pub id: String,
    /// The committer's time, seconds since 1970.
    pub time: i64,
    /// The subject line.
    pub subject: String,
    /// The paths it changed, as git names them.
    pub files: Vec<String>,
}

/// The commits of `git log` in `dir` (newest first), narrowed by `args` (`-n500`, a
/// range), each with the files it changed.
pub fn log(dir: &Path, args: &[&str]) -> Result<Vec<Commit>, GitError> {
    // A file name may hold any byte but NUL, so a commit's header is told from a name by
    // a marker drawn afresh for each read: no committed name can know it.
    let marker = crate::random::hex(16).map_err(GitError::Marker)?;
    let format = format!("--format=%x01{marker}%x09%H%x09%ct%x09%s");
    let fixed = ["log", "-z", &format, "--name-only"];
    let out = text(dir, &[&fixed[..], args].concat())?;
    Ok(parse_log(&out, &marker))
}

/// Commits from `git log -z --format=%x01<marker>%x09%H%x09%ct%x09%s --name-only`.
fn parse_log(log: &str, marker: &str) -> Vec<Commit> {
    let header_start = format!("\u{1}{marker}\t");
    let mut commits: Vec<Commit> = Vec::new();
    // Files after a header git would not write are skipped, never given to the commit
    // before.
    let mut current_ok = false;
    for token in log.split('\0') {
        let token = token.strip_prefix('\n').unwrap_or(token);
        if let Some(header) = token.strip_prefix(&header_start) {
            let parsed = parse_header(header);
            current_ok = parsed.is_some();
            commits.extend(parsed);
        } else if current_ok && !token.is_empty() {
            if let Some(c) = commits.last_mut() {
                c.files.push(token.to_owned());
            }
        }
    }
    commits
}

/// A commit's id, time and subject from its header; `None` for anything git would not
/// write there.
fn parse_header(header: &str) -> Option<Commit> {
    let mut parts = header.splitn(3, '\t');
    let id = parts.next()?;
    let time = parts.next()?.parse().ok()?;
    let subject = parts.next()?.trim().to_owned();
    let hash = id.len() >= 40 && id.bytes().all(|b| b.is_ascii_hexdigit());
    hash.then(|| Commit {
        id: id.to_owned(),
        time,
        subject,
        files: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::git::{commit, git};

    #[test]
    fn no_file_name_can_pose_as_a_commit() {
        let dir = tempfile::tempdir().unwrap();
        let co = dir.path();
        git(co, &["init", "-q"]);
        let posing = format!("\u{1}x\t{}\t0\tforged", "f".repeat(40));
        for (name, subject) in [("a.json", "first"), (posing.as_str(), "second")] {
            std::fs::write(co.join(name), "x").unwrap();
            git(co, &["add", "--", name]);
            commit(co, subject);
        }
        let commits = log(co, &[]).unwrap();
        let subjects: Vec<&str> = commits.iter().map(|c| c.subject.as_str()).collect();
        assert_eq!(subjects, ["second", "first"]);
        assert_eq!(commits[0].files, [posing]);
        assert_eq!(commits[1].files, ["a.json"]);
        assert!(commits.iter().all(|c| c.id.len() == 40 && c.time > 0));
    }

    #[test]
    fn a_failing_git_names_its_command_line_and_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let err = text(dir.path(), &["log"]).unwrap_err().to_string();
        assert!(err.contains("git -C") && err.contains("log"), "{err}");
        assert!(err.to_lowercase().contains("not a git repository"), "{err}");
    }
}
