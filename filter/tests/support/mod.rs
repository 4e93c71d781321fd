//! Test support for the analysis: ProRes clips rendered from a known camera path, so
//! every frame pair has an exact ground-truth similarity, cached per test process.
#![allow(dead_code)]

pub mod lazycache;
pub mod synth;

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use tempfile::TempDir;

/// Where rendered clips go: a temp dir, or under `KEEP_CLIPS` to look at them afterwards.
pub fn clips() -> &'static TempDir {
    static DIR: OnceLock<TempDir> = OnceLock::new();
    DIR.get_or_init(|| match std::env::var_os("KEEP_CLIPS") {
        Some(dir) => tempfile::Builder::new()
            .prefix("clips-")
            .disable_cleanup(true)
            .tempdir_in(dir)
            .expect("KEEP_CLIPS dir"),
        None => tempfile::tempdir().expect("temp dir"),
    })
}

/// The scripted clip `name` at `width` x `height`, rendered on first use.
pub fn clip(name: &str, width: u32, height: u32, frames: u64) -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let path = clips().path().join(name);
    if !path.exists() {
        let tmp = path.with_extension("partial.mov");
        synth::render(&tmp, width, height, frames, |n| synth::scripted(n, width));
        std::fs::rename(&tmp, &path).expect("rename clip");
    }
    path
}

/// The parts of `packet` a planner would fetch if every slice needed `share` of itself
/// (and at least `least` bytes): its head, and a prefix of each slice.
pub fn parts_of(
    packet: &[u8],
    d: &filter::prores::ReducedDecoder,
    share: f64,
    least: usize,
) -> filter::source::FrameParts {
    let head = d.head_bytes().min(packet.len());
    let mut spans = vec![(0, packet[..head].to_vec())];
    for (offset, size) in d.slice_layout(&packet[..head]).unwrap() {
        let want = ((size as f64 * share) as usize).max(least).min(size);
        spans.push((offset, packet[offset..offset + want].to_vec()));
    }
    let mut frame = filter::source::FrameParts {
        at: 0,
        len: packet.len(),
        fetched: Vec::new(),
    };
    frame.add(spans);
    frame
}
