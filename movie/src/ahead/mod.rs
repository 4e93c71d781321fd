//! Frames fetched ahead of their decoding, many requests in flight, so that a filter far
//! from the archive waits for the link's bandwidth rather than for round trips: the
//! heads of the frames a few hundred at a time in large multi-range requests, then the
//! parts each head plans (the ranges of several frames packed into one request) or
//! whole frames, on as many connections as the round trip asks for, within a window of
//! frames and bytes the analysis has not taken yet. Frames come out in order.
//!
//! `engine` decides what to ask for (`asks`) and hands frames over, `frames` holds each
//! frame's state, `stream` is the analysis's end; the threads that make requests are here.

mod asks;
mod engine;
mod frames;
#[cfg(test)]
mod paced;
mod stream;
#[cfg(test)]
mod tests;

use std::sync::{mpsc, Arc, Mutex};

use crate::bytes::ByteSource;
use crate::video::PartsPlanner;
use crate::ReadError;
use asks::Request;
use engine::ReadAhead;
use stream::Event;
pub use stream::FrameStream;

/// How far ahead of the analysis frames are fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Frames asked for beyond those the analysis has taken: a few blocks of decoding,
    /// so that parts are planned from what the frames decoded just before needed.
    pub frames: usize,
    /// Bytes asked for or held and not yet taken (heads, parts and whole frames).
    pub bytes: u64,
}

impl Window {
    /// The most bytes fetched and not yet taken by the analysis.
    pub const BYTES: u64 = 64 << 20;

    /// A window of `frames` frames and at most [`Window::BYTES`].
    pub fn frames(frames: usize) -> Window {
        Window {
            frames: frames.max(1),
            bytes: Window::BYTES,
        }
    }
}

/// Heads asked for beyond the frame the analysis takes next: a head is ~2 KB (a 1080p
/// frame's headers and slice table), so a few hundred cost little and are fetched in
/// one or two requests long before their frames are planned.
const HEADS_AHEAD: usize = 600;

/// The most bytes and frames one request for whole frames asks for: adjacent frames
/// (stride 1) share a request up to these, and no more, so several stay in flight and
/// the first frames of a block need not wait for the last.
const MAX_WHOLE_REQUEST: u64 = 8 << 20;
const MAX_WHOLE_FRAMES: usize = 16;

/// What the read-ahead fetches of a video: where each frame it wants lies, and how.
pub struct Video {
    /// A reader of the video, cloned for every connection.
    pub bytes: Box<dyn ByteSource>,
    /// The frames wanted, in order, with `(offset, size)` of each in the file.
    pub frames: Vec<(u64, (u64, usize))>,
    /// Plans the parts of each frame to fetch; `None`: whole frames.
    pub planner: Option<Arc<dyn PartsPlanner>>,
    /// The video, for messages.
    pub name: String,
}

/// Starts fetching `video`'s frames ahead of their use, within `window`, with as many
/// requests in flight as its reader asks for. A thread that cannot start, or a
/// read-ahead that fails, gives the stream an error with the reason.
pub fn start(video: Video, window: Window) -> FrameStream {
    let connections = video.bytes.requests_in_flight().max(1);
    tracing::debug!(video = %video.name, connections, round_trip = ?video.bytes.round_trip(),
        parts = video.planner.is_some(), "fetching ahead");
    let name = video.name.clone();
    let (events_tx, events) = mpsc::channel();
    let (jobs_tx, jobs) = mpsc::channel::<Request>();
    let jobs = Arc::new(Mutex::new(jobs));
    let readers: Vec<_> = (0..connections)
        .map_while(|_| video.bytes.try_clone())
        .collect();
    let counter = video.bytes.try_clone();
    let reader = video.bytes.try_clone();
    let (items_tx, items) = mpsc::channel();
    let fetchers = readers.len().max(1);
    let mut ahead = ReadAhead::new(video, window, fetchers, jobs_tx, items_tx.clone());
    for (i, reader) in readers.into_iter().enumerate() {
        if let Err(e) = spawn_fetcher(i, reader, Arc::clone(&jobs), events_tx.clone()) {
            return FrameStream::failed_with(start_error(&name, e));
        }
    }
    let taken = events_tx.clone();
    drop(events_tx);
    let video_name = name.clone();
    let run = move || {
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ahead.run(&events)));
        if let Err(panic) = ran {
            let detail = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "it stopped unexpectedly".into());
            let _ = items_tx.send(Err(ReadError::ReadAhead {
                what: video_name,
                detail,
            }));
        }
    };
    match std::thread::Builder::new()
        .name("read-ahead".into())
        .spawn(run)
    {
        Ok(_) => FrameStream::new(items, taken, counter, reader),
        Err(e) => FrameStream::failed_with(start_error(&name, e)),
    }
}

/// Starts the `i`th thread that makes requests: it takes the next request, makes it
/// with its own reader, and tells the read-ahead what came back.
fn spawn_fetcher(
    i: usize,
    mut reader: Box<dyn ByteSource>,
    jobs: Arc<Mutex<mpsc::Receiver<Request>>>,
    events: mpsc::Sender<Event>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(format!("fetch-{i}"))
        .spawn(move || loop {
            let job = jobs.lock().unwrap_or_else(|p| p.into_inner()).recv();
            let Ok((id, ranges)) = job else { return };
            if events
                .send(Event::Done(id, reader.read_request(&ranges)))
                .is_err()
            {
                return;
            }
        })
        .map(drop)
}

fn start_error(video: &str, e: std::io::Error) -> ReadError {
    ReadError::ReadAhead {
        what: video.into(),
        detail: format!("cannot start its threads: {e}"),
    }
}
