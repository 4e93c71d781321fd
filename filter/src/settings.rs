//! What an analysis is asked to do (stride, range, scale, threads, decoder, what to
//! fetch, its deadline), and the gap between a pair's frames: a leaf every part of the
//! analysis reads (the engine, its pipeline, the document) and none of them owns.

use crate::decode::{DecoderChoice, FetchChoice};
use crate::source::Deadline;

/// Frames between `fromFrame` and `toFrame`, as the original.
pub const PAIR_GAP: u64 = 10;

/// What to analyse and how.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Sample every `stride`-th frame.
    pub stride: u32,
    /// First sampled frame (1-based).
    pub start: u64,
    /// One past the last sampled frame; -1: the number of frames.
    pub stop: i64,
    /// The analysis scale (0.25: 480x270 for 1080p).
    pub img_scale: f64,
    /// Worker threads.
    pub threads: usize,
    /// Which ProRes decoder to use.
    pub decoder: DecoderChoice,
    /// Whether to fetch only the parts of frames the reduced decoder reads.
    pub fetch: FetchChoice,
    /// The video's time budget, fetching included (`--video-deadline`); an automatic
    /// one is fitted to the video by [`crate::analysis::auto_budget`] once its plan is known.
    pub deadline: Option<Deadline>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            stride: 10,
            start: 1,
            stop: -1,
            img_scale: 0.25,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            decoder: DecoderChoice::Auto,
            fetch: FetchChoice::Auto,
            deadline: None,
        }
    }
}
