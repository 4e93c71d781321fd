//! The queuer's ledger: which job id each output was queued as, in which grid. It is a
//! cache of what the server's jobs tube holds, keyed by the grid's own identity (a
//! marker kept in the server, see `grid_id`), never by how the server was addressed; a
//! ledger that is missing, damaged or of another grid is rebuilt from the server's jobs.
//! It is an append-only journal written as the pass goes (a line before each put, a line
//! after), locked for one queuer at a time, compacted at the end, and read line by line
//! with a bound on each line.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// The longest ledger line read: an output path is at most 1,024 bytes (the path
/// policy), which JSON escaping can make at most six times longer.
pub const MAX_LINE: usize = 8 << 10;

/// One line of the journal.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Line {
    /// The first line: the grid the ids belong to.
    Grid { grid: String },
    /// The first line of journals that named the server by its address; their ids
    /// cannot be tied to a grid, so such a ledger is rebuilt.
    Server {
        #[allow(dead_code)]
        server: String,
    },
    /// About to put a job for `intent`; its id, if the put happened, is above `after`.
    Intent { intent: String, after: u64 },
    /// `put` was queued as job `id`.
    Put { put: String, id: u64 },
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

/// Job ids by output path, for one grid, journalled as they change.
#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    grid: String,
    jobs: BTreeMap<String, u64>,
    pending: Option<Pending>,
    /// Why the entries cannot be trusted and must be rebuilt from the server, if so.
    rebuild: Option<String>,
    journal: File,
    /// Held while this ledger is open; the OS releases it when the process ends.
    _lock: File,
}

impl Ledger {
    /// Opens (or starts) the ledger at `path` for the grid `grid`, taking its lock.
    /// Entries of another grid, or of a damaged or missing ledger, are dropped and
    /// [`Ledger::rebuild_reason`] says why. Fails with [`Busy`] if another queuer holds it.
    pub fn open(path: &Path, grid: &str) -> anyhow::Result<Ledger> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let lock_path = path.with_extension("lock");
        let held = format!(
            "another queuer is using the ledger {} (one queuer per checkout and namespace); wait for it to finish, or stop it",
            path.display()
        );
        let lock = common::cli::lock_exclusively(&lock_path, held)?;
        let read = read(path)?;
        let rebuild = match (&read.grid, &read.damage) {
            (_, Some(damage)) => Some(damage.clone()),
            (None, None) if read.empty => Some("there is no ledger yet".into()),
            (Some(kept), None) if kept == grid => None,
            _ => Some("the ledger belongs to another grid (or to an older queuer)".into()),
        };
        let (jobs, pending) = match rebuild {
            None => (read.jobs, read.pending),
            Some(_) => (BTreeMap::new(), None),
        };
        // Until the rebuild is done and compacted, the journal names no grid: a queuer
        // killed half-way leaves a ledger the next one rebuilds again, never a partial
        // one it would trust.
        let header = if rebuild.is_some() { "" } else { grid };
        let journal = compact(path, header, &jobs, pending.as_ref())?;
        Ok(Ledger {
            path: path.to_owned(),
            grid: grid.to_owned(),
            jobs,
            pending,
            rebuild,
            journal,
            _lock: lock,
        })
    }

    /// Why the ledger must be rebuilt from the server's jobs, if it must.
    pub fn rebuild_reason(&self) -> Option<&str> {
        self.rebuild.as_deref()
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

    /// Rewrites the journal with only the live entries, as this grid's (after a
    /// rebuild: from now on it is trusted).
    pub fn compact(&mut self) -> anyhow::Result<()> {
        self.journal = compact(&self.path, &self.grid, &self.jobs, self.pending.as_ref())?;
        self.rebuild = None;
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

/// What a journal held.
#[derive(Debug, Default)]
struct Read {
    jobs: BTreeMap<String, u64>,
    pending: Option<Pending>,
    grid: Option<String>,
    /// Why it cannot be used, if it cannot.
    damage: Option<String>,
    /// No file, or an empty one.
    empty: bool,
}

/// Replays the journal at `path`, one bounded line at a time.
fn read(path: &Path) -> anyhow::Result<Read> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Read {
                empty: true,
                ..Read::default()
            })
        }
        Err(e) => return Err(e).with_context(|| format!("reading the ledger {}", path.display())),
    };
    let mut reader = BufReader::new(file);
    let mut out = Read {
        empty: true,
        ..Read::default()
    };
    let mut line = Vec::new();
    for n in 1.. {
        let (complete, too_long) = read_line(&mut reader, &mut line, MAX_LINE)
            .with_context(|| format!("reading the ledger {}", path.display()))?;
        if line.is_empty() && !too_long && !complete {
            break;
        }
        out.empty = false;
        if too_long {
            out.damage = Some(format!(
                "line {n} of the ledger {} is longer than {MAX_LINE} bytes",
                path.display()
            ));
            break;
        }
        let parsed = match serde_json::from_slice::<Line>(&line) {
            Ok(l) => l,
            // A torn last line: the queuer died in the middle of writing it.
            Err(_) if !complete => break,
            Err(e) => {
                out.damage = Some(format!(
                    "the ledger {} is damaged at line {n}: {e}",
                    path.display()
                ));
                break;
            }
        };
        apply(&mut out, parsed);
    }
    Ok(out)
}

fn apply(out: &mut Read, line: Line) {
    match line {
        Line::Grid { grid } => out.grid = Some(grid),
        Line::Server { .. } => out.grid = None,
        Line::Intent { intent, after } => {
            out.pending = Some(Pending {
                output: intent,
                after,
            })
        }
        Line::Put { put, id } => {
            if out.pending.as_ref().is_some_and(|p| p.output == put) {
                out.pending = None;
            }
            out.jobs.insert(put, id);
        }
    }
}

/// Reads one line into `buf` (without its newline), keeping at most `max` bytes: the
/// rest of a longer line is skipped, never held. Returns (ended by a newline, too long).
fn read_line(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<(bool, bool)> {
    buf.clear();
    let mut too_long = false;
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok((false, too_long));
        }
        let (take, found) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (chunk.len(), false),
        };
        if !too_long {
            if buf.len() + take > max {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(&chunk[..take]);
            }
        }
        reader.consume(take + usize::from(found));
        if found {
            return Ok((true, too_long));
        }
    }
}

/// Writes the live entries to a new journal beside `path`, renames it over `path`, and
/// returns it open for appending.
fn compact(
    path: &Path,
    grid: &str,
    jobs: &BTreeMap<String, u64>,
    pending: Option<&Pending>,
) -> anyhow::Result<File> {
    let mut text = serde_json::to_string(&Line::Grid {
        grid: grid.to_owned(),
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
            let mut l = Ledger::open(&path, "g1").unwrap();
            assert!(
                l.rebuild_reason().is_some(),
                "a new ledger is built from the server"
            );
            l.compact().unwrap(); // the rebuild is done
            l.intend("a_optical_flow.json", 10).unwrap();
            l.insert("a_optical_flow.json", 11).unwrap();
            l.intend("b_optical_flow.json", 11).unwrap();
        }
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"{\"put\":\"b_opt").unwrap();
        let mut l = Ledger::open(&path, "g1").unwrap();
        assert_eq!(l.rebuild_reason(), None);
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
    fn a_rebuild_cut_short_is_done_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.json");
        {
            let mut l = Ledger::open(&path, "g1").unwrap();
            l.insert("a", 1).unwrap(); // killed before the rebuild was compacted
        }
        assert!(Ledger::open(&path, "g1")
            .unwrap()
            .rebuild_reason()
            .is_some());
    }

    #[test]
    fn a_second_opener_is_refused_while_the_first_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.json");
        let _first = Ledger::open(&path, "g1").unwrap();
        let second = Ledger::open(&path, "g1").unwrap_err();
        assert!(
            second.downcast_ref::<common::cli::Busy>().is_some(),
            "{second:#}"
        );
    }

    #[test]
    fn ids_of_another_grid_or_an_address_keyed_ledger_are_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.json");
        std::fs::write(&path, "{\"grid\":\"g1\"}\n{\"put\":\"a\",\"id\":5}\n").unwrap();
        assert_eq!(Ledger::open(&path, "g1").unwrap().get("a"), Some(5));
        let other = Ledger::open(&path, "g2").unwrap();
        assert_eq!(other.get("a"), None);
        assert!(other.rebuild_reason().unwrap().contains("another grid"));
        drop(other);
        std::fs::write(&path, "{\"server\":\"s:1\"}\n{\"put\":\"a\",\"id\":5}\n").unwrap();
        assert!(Ledger::open(&path, "g2")
            .unwrap()
            .rebuild_reason()
            .is_some());
    }

    #[test]
    fn an_overlong_line_is_skipped_unread_and_the_ledger_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.json");
        let mut text = b"{\"grid\":\"g1\"}\n{\"put\":\"".to_vec();
        text.extend(std::iter::repeat_n(b'a', 4 << 20));
        text.extend_from_slice(b"\",\"id\":1}\n");
        std::fs::write(&path, text).unwrap();
        let l = Ledger::open(&path, "g1").unwrap();
        assert!(l.rebuild_reason().unwrap().contains("longer than"));
        drop(l);
        assert!(
            std::fs::metadata(&path).unwrap().len() < 100,
            "compaction dropped the line"
        );
        let mut buf = Vec::new();
        let mut reader = BufReader::with_capacity(16, &b"abcdefgh\nxy"[..]);
        assert_eq!(read_line(&mut reader, &mut buf, 4).unwrap(), (true, true));
        assert!(buf.is_empty());
        assert_eq!(read_line(&mut reader, &mut buf, 4).unwrap(), (false, false));
        assert_eq!(buf, b"xy");
    }
}
