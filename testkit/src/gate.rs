//! A gate that holds a video's frame bytes until the test lets them go, so a test knows
//! a filter is in the middle of a job (and for exactly as long as it likes) without
//! betting on how fast the analysis runs. [`files_with_gate`] serves a folder like
//! [`crate::http::files_with_ranges`], passing index reads and holding frame reads.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::http::{files_with_ranges, Request, Response};

#[derive(Debug, Default)]
struct State {
    open: bool,
    /// Frame reads still allowed through before the gate holds again.
    passes: u64,
    /// Frame reads waiting at the gate now.
    held: usize,
    /// Frame reads that have come to the gate so far.
    arrived: u64,
    /// Reads starting before this share of the frames' bytes pass (0: none do).
    from: f64,
}

/// Holds frame reads until opened; cheap to clone (all clones are the same gate).
#[derive(Debug, Clone, Default)]
pub struct Gate {
    inner: Arc<(Mutex<State>, Condvar)>,
}

impl Gate {
    /// A closed gate: every frame read waits.
    pub fn closed() -> Gate {
        Gate::default()
    }

    /// A gate closed to reads that start `share` (0 to 1) or more into the frames'
    /// bytes: the frames before pass, so a test knows the analysis got that far and
    /// holds there, however the filter groups its reads.
    pub fn closed_from(share: f64) -> Gate {
        let gate = Gate::default();
        gate.update(|s| s.from = share);
        gate
    }

    /// Lets every waiting and future frame read through.
    pub fn open(&self) {
        self.update(|s| s.open = true);
    }

    /// Lets the next `n` frame reads through, then holds again.
    pub fn pass(&self, n: u64) {
        self.update(|s| s.passes += n);
    }

    /// Closes the gate again (reads already through are not called back).
    pub fn close(&self) {
        self.update(|s| s.open = false);
    }

    /// Frame reads waiting at the gate now.
    pub fn held(&self) -> usize {
        self.inner.0.lock().unwrap().held
    }

    /// Frame reads that have reached the gate so far (held or let through).
    pub fn arrived(&self) -> u64 {
        self.inner.0.lock().unwrap().arrived
    }

    /// Waits until at least `n` frame reads are held; panics after `limit`, which only
    /// bounds a broken test (nothing here depends on speed).
    pub fn wait_held(&self, n: usize, limit: Duration) {
        let (lock, cv) = &*self.inner;
        let end = Instant::now() + limit;
        let mut s = lock.lock().unwrap();
        while s.held < n {
            let left = end.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no frame read reached the gate in {limit:?}"
            );
            s = cv.wait_timeout(s, left).unwrap().0;
        }
    }

    /// Blocks the calling server thread until the gate lets this read (starting `at`
    /// that share of the frames' bytes) through.
    fn enter(&self, at: f64) {
        let (lock, cv) = &*self.inner;
        let mut s = lock.lock().unwrap();
        if at < s.from {
            return;
        }
        s.arrived += 1;
        if s.open || s.passes > 0 {
            s.passes = s.passes.saturating_sub(u64::from(!s.open));
            return;
        }
        s.held += 1;
        cv.notify_all();
        while !(s.open || s.passes > 0) {
            s = cv.wait(s).unwrap();
        }
        s.passes = s.passes.saturating_sub(u64::from(!s.open));
        s.held -= 1;
        cv.notify_all();
    }

    fn update(&self, f: impl FnOnce(&mut State)) {
        let (lock, cv) = &*self.inner;
        f(&mut lock.lock().unwrap());
        cv.notify_all();
    }
}

/// Serves the files below `root` with Range support; a read of more than 64 bytes that
/// reaches into the payload of a QuickTime file's `mdat` atom (its frames) waits at `gate`
/// first. Index reads (atom headers, `moov`, a frame header) always pass.
pub fn files_with_gate(root: impl Into<PathBuf>, gate: Gate) -> impl Fn(&Request) -> Response {
    let root = root.into();
    let files = files_with_ranges(root.clone(), true);
    move |req| {
        let rel = req.path().trim_start_matches('/');
        if let (Some(mdat), Some(range)) = (mdat_payload(&root.join(rel)), requested(req)) {
            // An index walk reads 16 bytes at each atom, 8 of them into mdat's payload, a
            // source checks the first frame's 20-byte header, and opening a file reads its
            // first bytes: small reads and reads from byte 0 pass.
            let small = range.1.saturating_sub(range.0) < 64;
            if range.0 > 0 && range.0 < mdat.1 && range.1 >= mdat.0 + 8 && !small {
                gate.enter(range.0.saturating_sub(mdat.0) as f64 / (mdat.1 - mdat.0).max(1) as f64);
            }
        }
        files(req)
    }
}

/// The first and last byte asked for by a `Range: bytes=A-B` header.
fn requested(req: &Request) -> Option<(u64, u64)> {
    let (a, b) = req
        .header("range")?
        .strip_prefix("bytes=")?
        .split_once('-')?;
    Some((a.parse().ok()?, b.parse().unwrap_or(u64::MAX)))
}

/// `[start, end)` of the payload of the file's top-level `mdat` atom.
fn mdat_payload(path: &Path) -> Option<(u64, u64)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let mut at = 0u64;
    while at + 8 <= len {
        let mut head = [0u8; 16];
        f.seek(SeekFrom::Start(at)).ok()?;
        f.read_exact(&mut head[..8]).ok()?;
        let mut size = u64::from(u32::from_be_bytes(head[..4].try_into().ok()?));
        let mut header = 8;
        if size == 1 {
            f.read_exact(&mut head[8..]).ok()?;
            size = u64::from_be_bytes(head[8..].try_into().ok()?);
            header = 16;
        } else if size == 0 {
            size = len - at;
        }
        if &head[4..8] == b"mdat" {
            return Some((at + header, at + size));
        }
        if size < 8 {
            return None;
        }
        at += size;
    }
    None
}
