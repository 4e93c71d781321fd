//! Videos given up on for good (`gridctl discard --forever`): their outputs (the JSON
//! path below the checkout), one a line, in the checkout's git directory, where the
//! queuer looks before queuing, so a discarded video does not come straight back with
//! its next pass. A person may edit the file: `#` starts a comment, blank lines are
//! nothing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The file's name in the checkout's git directory.
pub const FILE: &str = "camhd-grid-skip";

/// The largest skip file read: a line per video of the whole archive is ~2 MB.
const MAX_BYTES: u64 = 16 << 20;

/// The outputs to skip.
#[derive(Debug, Default, Clone)]
pub struct SkipList {
    outputs: BTreeSet<String>,
    path: Option<PathBuf>,
}

/// Where `checkout`'s skip list is: in its git directory (not the work tree, so it is
/// never committed to the public record).
pub fn path(checkout: &Path) -> PathBuf {
    checkout.join(".git").join(FILE)
}

impl SkipList {
    /// The skip list of `checkout` (empty when there is none, or no git directory).
    pub fn read(checkout: &Path) -> std::io::Result<SkipList> {
        let path = path(checkout);
        let text = match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
            Ok(m) if m.len() > MAX_BYTES => {
                return Err(std::io::Error::other(format!(
                    "{} has {} bytes, more than the {MAX_BYTES} a skip list may",
                    path.display(),
                    m.len()
                )))
            }
            Ok(_) => std::fs::read_to_string(&path)?,
        };
        let outputs = text
            .lines()
            .map(|l| l.split('#').next().unwrap_or("").trim())
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        Ok(SkipList {
            outputs,
            path: Some(path),
        })
    }

    /// True when `output` is skipped.
    pub fn contains(&self, output: &str) -> bool {
        self.outputs.contains(output)
    }

    /// Outputs skipped.
    pub fn len(&self) -> usize {
        self.outputs.len()
    }

    /// The file it was read from.
    pub fn file(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// True when nothing is skipped.
    pub fn is_empty(&self) -> bool {
        self.outputs.is_empty()
    }

    /// Adds `outputs` to `checkout`'s skip list (those not in it yet, each with when and
    /// why as a comment); gives how many were new.
    pub fn add(checkout: &Path, outputs: &[String], why: &str) -> std::io::Result<usize> {
        let mut list = SkipList::read(checkout)?;
        let path = path(checkout);
        let mut text = std::fs::read_to_string(&path).unwrap_or_default();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        let mut added = 0;
        for output in outputs {
            let output = output.trim();
            if output.is_empty()
                || output.contains(['\n', '#'])
                || !list.outputs.insert(output.to_owned())
            {
                continue;
            }
            text.push_str(&format!("{output}  # {why}\n"));
            added += 1;
        }
        if added > 0 {
            crate::files::write_atomically(&path, text.as_bytes(), None)?;
        }
        Ok(added)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_added_are_skipped_and_comments_are_not_outputs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(".git")).unwrap();
        assert!(SkipList::read(dir.path()).unwrap().is_empty(), "none yet");
        let a = "RS03ASHS/x/a_optical_flow.json".to_owned();
        let added = SkipList::add(
            dir.path(),
            &[a.clone(), a.clone()],
            "gridctl discard --forever",
        )
        .unwrap();
        assert_eq!(added, 1);
        std::fs::write(
            path(dir.path()),
            format!("# kept by hand\n{a}  # why\n\nb_optical_flow.json\n"),
        )
        .unwrap();
        let list = SkipList::read(dir.path()).unwrap();
        assert!(list.contains(&a) && list.contains("b_optical_flow.json"));
        assert_eq!(list.len(), 2);
        assert_eq!(SkipList::add(dir.path(), &[a], "again").unwrap(), 0);
    }
}
