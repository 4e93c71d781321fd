//! The queuer's ledger: which job id each output was queued as, on which server and
//! namespace. With `stats-job` it tells a job still in the grid (ready, reserved,
//! delayed or buried) from one that is gone, so a video is never queued twice.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// Job ids by output path, for one server and namespace.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Ledger {
    #[serde(skip)]
    path: PathBuf,
    /// The server the ids belong to; ids from another server mean nothing here.
    server: String,
    /// Output path → job id.
    jobs: BTreeMap<String, u64>,
}

impl Ledger {
    /// Loads the ledger at `path` (empty if missing or kept for another server).
    pub fn load(path: &Path, server: &str) -> anyhow::Result<Ledger> {
        let mut ledger: Ledger = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "the ledger {} is not valid; delete it to start afresh",
                    path.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ledger::default(),
            Err(e) => {
                return Err(e).with_context(|| format!("reading the ledger {}", path.display()))
            }
        };
        if ledger.server != server {
            ledger.jobs.clear();
            ledger.server = server.to_owned();
        }
        ledger.path = path.to_owned();
        Ok(ledger)
    }

    /// The job id `output` was queued as.
    pub fn get(&self, output: &str) -> Option<u64> {
        self.jobs.get(output).copied()
    }

    /// Records that `output` was queued as job `id`.
    pub fn insert(&mut self, output: &str, id: u64) {
        self.jobs.insert(output.to_owned(), id);
    }

    /// Forgets `output` (its job is gone).
    pub fn remove(&mut self, output: &str) {
        self.jobs.remove(output);
    }

    /// Writes the ledger atomically.
    pub fn save(&self) -> anyhow::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("writing {}", self.path.display()))
    }
}
