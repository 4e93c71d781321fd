//! The queuer's ledger: which job id each output was queued as, on which server. With
//! `stats-job` it tells a job still in the grid from one that is gone, so a video is never
//! queued twice. It is an append-only journal written as the pass goes (a line before
//! each put, a line after), locked for one queuer at a time, and compacted at the end.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use common::cli::Busy;
use serde::{Deserialize, Serialize};

/// One line of the journal.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Line {
    /// The first line: the server the ids belong to.
    Server { server: String },
    /// About to put a job for `intent`; its id, if the put happened, is above `after`.
    Intent { intent: String, after: u64 },
    /// `put` was queued as job `id`.
    Put { put: String, id: u64 },
}

/// The ledger as the journals of earlier sessions wrote it (one JSON object).
#[derive(Debug, Deserialize)]
struct Legacy {
    server: String,
    jobs: BTreeMap<String, u64>,
}

/// A put that may or may not have happened: the queuer died between the intent and the
/// record of its id. [`Ledger::take_pending`] hands it to the caller to look for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The output the job was for.
    pub output: String,
    /// Every job id the put could have received is above this.
    pub after: u64,
}

/// Job ids by output path, for one server, journalled as they change.
#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    server: String,
    jobs: BTreeMap<String, u64>,
    pending: Option<Pending>,
    journal: File,
    /// Held while this ledger is open; the OS releases it when the process ends.
    _lock: File,
}

impl Ledger {
    /// Opens (or starts) the ledger at `path` for `server`, taking its lock; entries kept
    /// for another server are dropped. Fails with [`Busy`] if another queuer holds it.
    pub fn open(path: &Path, server: &str) -> anyhow::Result<Ledger> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let lock_path = path.with_extension("lock");
        let lock = File::create(&lock_path)
            .with_context(|| format!("creating the lock file {}", lock_path.display()))?;
        if lock.try_lock().is_err() {
            return Err(Busy(format!(
                "another queuer is using the ledger {} (one queuer per checkout and namespace); wait for it to finish, or stop it",
                path.display()
            ))
            .into());
        }
        let (mut jobs, mut pending, kept_server) = read(path)?;
        if kept_server.as_deref() != Some(server) {
            jobs.clear();
            pending = None;
        }
        let journal = compact(path, server, &jobs, pending.as_ref())?;
        Ok(Ledger {
            path: path.to_owned(),
            server: server.to_owned(),
            jobs,
            pending,
            journal,
            _lock: lock,
        })
    }

    /// The job id `output` was queued as.
    pub fn get(&self, output: &str) -> Option<u64> {
        self.jobs.get(output).copied()
    }

    /// A put an earlier queuer may have made before it died, to be looked for once.
    pub fn take_pending(&mut self) -> Option<Pending> {
        self.pending.take()
    }

    /// Records, before putting, that a job for `output` is about to be put and that its
    /// id will be above `after`.
    pub fn intend(&mut self, output: &str, after: u64) -> anyhow::Result<()> {
        self.append(&Line::Intent {
            intent: output.to_owned(),
            after,
        })
    }

    /// Records that `output` was queued as job `id`.
    pub fn insert(&mut self, output: &str, id: u64) -> anyhow::Result<()> {
        self.jobs.insert(output.to_owned(), id);
        self.append(&Line::Put {
            put: output.to_owned(),
            id,
        })
    }

    /// Forgets `output` (its job is gone); written at the next compaction.
    pub fn remove(&mut self, output: &str) {
        self.jobs.remove(output);
    }

    /// Rewrites the journal with only the live entries.
    pub fn compact(&mut self) -> anyhow::Result<()> {
        self.journal = compact(&self.path, &self.server, &self.jobs, self.pending.as_ref())?;
        Ok(())
    }

    /// One line, in one write: a queuer killed at any moment leaves whole lines and at
    /// most a torn last one, which the next reader skips.
    fn append(&mut self, line: &Line) -> anyhow::Result<()> {
        let mut bytes = serde_json::to_vec(line)?;
        bytes.push(b'\n');
        self.journal
            .write_all(&bytes)
            .with_context(|| format!("writing the ledger {}", self.path.display()))
    }
}

type Entries = (BTreeMap<String, u64>, Option<Pending>, Option<String>);

/// Replays the journal at `path` (or reads a ledger in the earlier one-object format).
fn read(path: &Path) -> anyhow::Result<Entries> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
        Err(e) => return Err(e).with_context(|| format!("reading the ledger {}", path.display())),
    };
    if let Ok(legacy) = serde_json::from_str::<Legacy>(&text) {
        return Ok((legacy.jobs, None, Some(legacy.server)));
    }
    let (mut jobs, mut pending, mut server) = (BTreeMap::new(), None, None);
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    for (n, raw) in lines.iter().enumerate() {
        let line = match serde_json::from_str::<Line>(raw.trim_end()) {
            Ok(l) => l,
            // A torn last line: the queuer died in the middle of writing it.
            Err(_) if n + 1 == lines.len() && !raw.ends_with('\n') => break,
            Err(e) => anyhow::bail!(
                "the ledger {} is damaged at line {}: {e}; delete it to start afresh (the next pass checks the checkout, not the grid, for what is in flight)",
                path.display(),
                n + 1
            ),
        };
        match line {
            Line::Server { server: s } => server = Some(s),
            Line::Intent { intent, after } => {
                pending = Some(Pending {
                    output: intent,
                    after,
                })
            }
            Line::Put { put, id } => {
                if pending.as_ref().is_some_and(|p| p.output == put) {
                    pending = None;
                }
                jobs.insert(put, id);
            }
        }
    }
    Ok((jobs, pending, server))
}

/// Writes the live entries to a new journal beside `path`, renames it over `path`, and
/// returns it open for appending.
fn compact(
    path: &Path,
    server: &str,
    jobs: &BTreeMap<String, u64>,
    pending: Option<&Pending>,
) -> anyhow::Result<File> {
    let mut text = serde_json::to_string(&Line::Server {
        server: server.to_owned(),
    })?;
    text.push('\n');
    if let Some(p) = pending {
        text.push_str(&serde_json::to_string(&Line::Intent {
            intent: p.output.clone(),
            after: p.after,
        })?);
        text.push('\n');
    }
    for (output, id) in jobs {
        text.push_str(&serde_json::to_string(&Line::Put {
            put: output.clone(),
            id: *id,
        })?);
        text.push('\n');
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .with_context(|| format!("opening the ledger {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_survives_a_torn_last_line_and_keeps_the_open_intent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.json");
        {
            let mut l = Ledger::open(&path, "s:1").unwrap();
            l.intend("a_optical_flow.json", 10).unwrap();
            l.insert("a_optical_flow.json", 11).unwrap();
            l.intend("b_optical_flow.json", 11).unwrap();
        }
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"{\"put\":\"b_opt").unwrap();
        let mut l = Ledger::open(&path, "s:1").unwrap();
        assert_eq!(l.get("a_optical_flow.json"), Some(11));
        assert_eq!(
            l.take_pending(),
            Some(Pending {
                output: "b_optical_flow.json".into(),
                after: 11
            })
        );
    }

    #[test]
    fn a_second_opener_is_refused_while_the_first_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.json");
        let _first = Ledger::open(&path, "s:1").unwrap();
        let second = Ledger::open(&path, "s:1").unwrap_err();
        assert!(second.downcast_ref::<Busy>().is_some(), "{second:#}");
    }

    #[test]
    fn ids_of_another_server_and_legacy_ledgers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.json");
        std::fs::write(&path, r#"{"server": "s:1", "jobs": {"a": 5}}"#).unwrap();
        assert_eq!(Ledger::open(&path, "s:1").unwrap().get("a"), Some(5));
        assert_eq!(Ledger::open(&path, "s:2").unwrap().get("a"), None);
    }
}
