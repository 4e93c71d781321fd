//! The dashboard's throughput history kept in a small file (`--history`,
//! `GRIDCTL_HISTORY`), as Sidekiq and Flower keep theirs, so a restart forgets neither
//! the rate nor the chart: written whole every minute and on exit, read back at start.
//! A file that is missing, damaged, too large or of another version is set aside with a
//! warning; the dashboard starts empty then, as it did before.

use std::collections::VecDeque;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::throughput::{Finished, Sample, SAMPLES_KEPT};

/// The format this build writes and reads.
const VERSION: u32 = 1;

/// The largest history file read: 1,800 samples take ~45 KB.
const MAX_BYTES: u64 = 1 << 20;

#[derive(Serialize, Deserialize)]
struct Saved {
    version: u32,
    /// The jobs tube's deletes since the server started, across tubes that vanished.
    finished: u64,
    /// The jobs tube's `cmd-delete` last seen, to go on counting from.
    last_seen: u64,
    /// When the server counted for started (unix seconds).
    #[serde(default)]
    server_started: i64,
    /// `[unix seconds, jobs finished]`, oldest first.
    samples: Vec<(i64, u64)>,
}

/// The history in `path`, if it can be read.
pub(super) fn load(path: &Path) -> Option<(Finished, VecDeque<Sample>)> {
    let read = || -> Result<Saved, String> {
        let size = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
        if size > MAX_BYTES {
            return Err(format!("{size} bytes, more than {MAX_BYTES}"));
        }
        let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
        let saved: Saved = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        if saved.version != VERSION {
            return Err(format!("version {}, not {VERSION}", saved.version));
        }
        Ok(saved)
    };
    match read() {
        Ok(saved) => {
            let samples: VecDeque<Sample> = saved
                .samples
                .iter()
                .rev()
                .take(SAMPLES_KEPT)
                .rev()
                .map(|&(at, finished)| Sample { at, finished })
                .collect();
            tracing::info!(file = %path.display(), samples = samples.len(), "throughput history read");
            let finished = Finished {
                total: saved.finished,
                last_seen: saved.last_seen,
                server_started: saved.server_started,
            };
            Some((finished, samples))
        }
        Err(e) if !path.exists() => {
            tracing::debug!(file = %path.display(), error = %e, "no throughput history yet");
            None
        }
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "throughput history not read; starting a new one");
            None
        }
    }
}

/// Writes the history to `path`, whole or not at all.
pub(super) fn save(path: &Path, finished: &Finished, samples: &VecDeque<Sample>) {
    let saved = Saved {
        version: VERSION,
        finished: finished.total,
        last_seen: finished.last_seen,
        server_started: finished.server_started,
        samples: samples.iter().map(|s| (s.at, s.finished)).collect(),
    };
    let written = serde_json::to_vec(&saved)
        .map_err(std::io::Error::other)
        .and_then(|bytes| common::files::write_atomically(path, &bytes, None));
    if let Err(e) = written {
        tracing::warn!(file = %path.display(), error = %e, "could not keep the throughput history");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_history_comes_back_as_it_was_saved() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.json");
        let samples: VecDeque<Sample> = (0..3)
            .map(|i| Sample {
                at: 1_700_000_000 + 2 * i,
                finished: 10 + i as u64,
            })
            .collect();
        let finished = Finished {
            total: 12,
            last_seen: 40,
            server_started: 1_700_000_000,
        };
        save(&path, &finished, &samples);
        let (back, again) = load(&path).unwrap();
        assert_eq!((back.total, back.last_seen), (12, 40));
        assert_eq!(
            again.iter().map(|s| (s.at, s.finished)).collect::<Vec<_>>(),
            samples
                .iter()
                .map(|s| (s.at, s.finished))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_damaged_or_foreign_history_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.json");
        assert!(load(&path).is_none(), "none yet");
        for junk in [
            &b"not json"[..],
            br#"{"version":9,"finished":1,"last_seen":1,"samples":[]}"#,
        ] {
            std::fs::write(&path, junk).unwrap();
            assert!(load(&path).is_none());
        }
        std::fs::write(&path, vec![b' '; (MAX_BYTES + 1) as usize]).unwrap();
        assert!(load(&path).is_none(), "too large");
    }
}
