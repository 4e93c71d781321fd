//! Frames fetched ahead of their decoding, many requests in flight, so that a filter far
//! from the archive waits for the link's bandwidth rather than for round trips: the
//! heads of the frames a few hundred at a time in large multi-range requests, then the
//! parts each head plans (the ranges of several frames packed into one request) or
//! whole frames, on as many connections as the round trip asks for, within a window of
//! frames and bytes the analysis has not taken yet. Frames come out in order.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use crate::bytes::ByteSource;
use crate::video::{FrameParts, FrameSource, PartsPlanner, Payload};
use crate::{Deadline, ReadError};

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

/// Frames (or why the video could not be read) in the order asked, as the read-ahead
/// fetches them.
pub struct FrameStream {
    items: mpsc::Receiver<Result<Item, ReadError>>,
    /// Tells the read-ahead what was taken (and that the stream is gone, on drop).
    taken: Option<mpsc::Sender<Event>>,
    counter: Counter,
    /// A reader of the video for fetching more of a frame, when the source has one.
    reader: Option<Box<dyn ByteSource>>,
}

/// Where the bytes fetched are counted.
enum Counter {
    /// A reader whose clones count together (the read-ahead's and the completions').
    Source(Box<dyn ByteSource>),
    /// Updated by a thread fetching through [`FrameSource::fetch`].
    Shared(Arc<std::sync::atomic::AtomicU64>),
}

/// A frame fetched, with the bytes it holds (released from the window when taken).
struct Item {
    frame: u64,
    payload: Result<Payload, String>,
    bytes: u64,
}

/// What the read-ahead hears: a request done, a frame taken, or the stream dropped.
enum Event {
    Done(u64, Result<Vec<Vec<u8>>, ReadError>),
    Taken(u64),
    Closed,
}

impl std::fmt::Debug for FrameStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameStream")
            .field("bytes_fetched", &self.bytes_fetched())
            .finish()
    }
}

impl FrameStream {
    /// The next frame, waiting at most until `deadline`; `None` once every frame asked
    /// for was given.
    pub fn next(
        &mut self,
        deadline: Option<&Deadline>,
        video: &str,
    ) -> Option<Result<crate::Fetched, ReadError>> {
        let item = match deadline {
            None => self.items.recv().ok()?,
            Some(d) => match self.items.recv_timeout(d.left()) {
                Ok(item) => item,
                Err(mpsc::RecvTimeoutError::Timeout) => return Some(Err(d.exceeded(video))),
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
            },
        };
        Some(item.map(|item| {
            if let Some(taken) = &self.taken {
                let _ = taken.send(Event::Taken(item.bytes));
            }
            (item.frame, item.payload)
        }))
    }

    /// Bytes fetched for the video so far, more of frames (through [`FrameStream::reader`])
    /// included.
    pub fn bytes_fetched(&self) -> u64 {
        match &self.counter {
            Counter::Source(s) => s.bytes_fetched(),
            Counter::Shared(n) => n.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// A reader of the video's bytes, for fetching more of a frame fetched in parts.
    pub fn reader(&mut self) -> Option<Box<dyn ByteSource>> {
        self.reader.take()
    }

    /// This stream, with `reader` as the reader [`FrameStream::reader`] gives.
    pub fn with_reader(mut self, reader: Box<dyn ByteSource>) -> FrameStream {
        self.reader = Some(reader);
        self
    }

    /// Fetches `frames` from `source` a few at a time on a thread of its own, at most
    /// `window.frames` ahead: for sources that fetch no faster in parallel requests of
    /// their own (lazycache, tests).
    pub fn by_blocks(
        mut source: Box<dyn FrameSource>,
        frames: Vec<u64>,
        window: Window,
    ) -> FrameStream {
        let (tx, items) = mpsc::sync_channel(window.frames);
        let fetched = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = Arc::clone(&fetched);
        let chunk = window.frames.div_ceil(2).max(1);
        let spawned = std::thread::Builder::new()
            .name("read-ahead".into())
            .spawn(move || {
                for block in frames.chunks(chunk) {
                    let fetched_now = source.fetch(block);
                    counter.store(source.bytes_fetched(), std::sync::atomic::Ordering::Relaxed);
                    match fetched_now {
                        Ok(block) => {
                            for (frame, payload) in block {
                                let item = Item {
                                    frame,
                                    payload,
                                    bytes: 0,
                                };
                                if tx.send(Ok(item)).is_err() {
                                    return;
                                }
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            panic!("cannot start the read-ahead thread: {e}");
        }
        FrameStream {
            items,
            taken: None,
            counter: Counter::Shared(fetched),
            reader: None,
        }
    }
}

impl Drop for FrameStream {
    fn drop(&mut self) {
        if let Some(taken) = &self.taken {
            let _ = taken.send(Event::Closed);
        }
    }
}

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
/// requests in flight as its reader asks for.
pub fn start(video: Video, window: Window) -> FrameStream {
    let connections = video.bytes.requests_in_flight().max(1);
    tracing::debug!(video = %video.name, connections, round_trip = ?video.bytes.round_trip(),
        parts = video.planner.is_some(), "fetching ahead");
    let (events_tx, events) = mpsc::channel();
    let (jobs_tx, jobs) = mpsc::channel::<(u64, Vec<(u64, usize)>)>();
    let jobs = Arc::new(Mutex::new(jobs));
    let mut readers = Vec::new();
    for _ in 0..connections {
        match video.bytes.try_clone() {
            Some(r) => readers.push(r),
            None => break,
        }
    }
    let counter = video.bytes.try_clone();
    let reader = video.bytes.try_clone();
    let (items_tx, items) = mpsc::channel();
    let mut ahead = ReadAhead::new(video, window, readers.len().max(1), jobs_tx, items_tx);
    for (i, mut r) in readers.into_iter().enumerate() {
        let (jobs, events) = (Arc::clone(&jobs), events_tx.clone());
        let _ = std::thread::Builder::new()
            .name(format!("fetch-{i}"))
            .spawn(move || loop {
                let job = jobs.lock().unwrap_or_else(|p| p.into_inner()).recv();
                let Ok((id, ranges)) = job else { return };
                if events
                    .send(Event::Done(id, r.read_request(&ranges)))
                    .is_err()
                {
                    return;
                }
            });
    }
    let taken = events_tx.clone();
    drop(events_tx);
    let spawned = std::thread::Builder::new()
        .name("read-ahead".into())
        .spawn(move || ahead.run(&events));
    if let Err(e) = spawned {
        panic!("cannot start the read-ahead thread: {e}");
    }
    FrameStream {
        items,
        taken: Some(taken),
        counter: match counter {
            Some(c) => Counter::Source(c),
            None => Counter::Shared(Arc::default()),
        },
        reader,
    }
}

/// One request: what it asks for and for which frames.
struct Ask {
    kind: AskKind,
    ranges: Vec<(u64, usize)>,
    /// Which switch to whole frames it belongs to (a request of an earlier one is stale).
    generation: u32,
}

enum AskKind {
    Heads(Range<usize>),
    Parts(Vec<Piece>),
    Whole(Range<usize>),
}

/// One planned range of a frame: frame index, offset in the frame, length.
#[derive(Debug, Clone, Copy)]
struct Piece {
    frame: usize,
    offset: usize,
    len: usize,
}

/// What has been fetched of one frame.
#[derive(Default)]
struct Slot {
    head: Option<Vec<u8>>,
    parts: Vec<(usize, Vec<u8>)>,
    whole: Option<Vec<u8>>,
    /// Its parts (or whole frame) are asked for.
    planned: bool,
    /// Pieces asked for and not yet here.
    waiting: usize,
    /// Bytes it holds.
    bytes: u64,
}

impl Slot {
    fn complete(&self) -> bool {
        self.whole.is_some() || (self.planned && self.waiting == 0 && self.head.is_some())
    }
}

/// The read-ahead's state: frames below `delivered` are handed over; `slots[0]` is frame
/// `delivered`.
struct ReadAhead {
    video: Video,
    window: Window,
    connections: usize,
    slots: VecDeque<Slot>,
    delivered: usize,
    /// Frames the analysis has taken.
    taken: usize,
    heads_next: usize,
    heads_in_flight: usize,
    issue_next: usize,
    pending: VecDeque<Piece>,
    asks: HashMap<u64, Ask>,
    next_id: u64,
    generation: u32,
    /// Bytes asked for or held, and not yet taken.
    held: u64,
    jobs: mpsc::Sender<(u64, Vec<(u64, usize)>)>,
    out: mpsc::Sender<Result<Item, ReadError>>,
}

impl ReadAhead {
    fn new(
        mut video: Video,
        window: Window,
        connections: usize,
        jobs: mpsc::Sender<(u64, Vec<(u64, usize)>)>,
        out: mpsc::Sender<Result<Item, ReadError>>,
    ) -> ReadAhead {
        // A multi-range request asks for ranges in file order, apart: frames out of file
        // order or overlapping (a strange index) are read whole.
        let in_order = video
            .frames
            .windows(2)
            .all(|w| w[1].1 .0 >= w[0].1 .0 + w[0].1 .1 as u64);
        if !in_order {
            video.planner = None;
        }
        let heads_next = if video.planner.is_some() {
            0
        } else {
            video.frames.len()
        };
        ReadAhead {
            video,
            window,
            connections,
            slots: VecDeque::new(),
            delivered: 0,
            taken: 0,
            heads_next,
            heads_in_flight: 0,
            issue_next: 0,
            pending: VecDeque::new(),
            asks: HashMap::new(),
            next_id: 0,
            generation: 0,
            held: 0,
            jobs,
            out,
        }
    }

    fn run(&mut self, events: &mpsc::Receiver<Event>) {
        loop {
            self.fill();
            if !self.deliver() || self.delivered == self.video.frames.len() {
                return;
            }
            let outcome = match events.recv() {
                Ok(Event::Done(id, result)) => self.done(id, result),
                Ok(Event::Taken(bytes)) => {
                    self.held = self.held.saturating_sub(bytes);
                    self.taken += 1;
                    Ok(())
                }
                Ok(Event::Closed) | Err(_) => return,
            };
            if let Err(e) = outcome {
                let _ = self.out.send(Err(e));
                return;
            }
        }
    }

    fn slot(&mut self, frame: usize) -> &mut Slot {
        let i = frame - self.delivered;
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, Slot::default);
        }
        &mut self.slots[i]
    }

    /// Asks for whatever the window allows, up to the requests in flight allowed.
    fn fill(&mut self) {
        while self.asks.len() < self.connections {
            let Some(ask) = self.next_ask() else { return };
            let bytes: u64 = ask.ranges.iter().map(|&(_, l)| l as u64).sum();
            self.held += bytes;
            let id = self.next_id;
            self.next_id += 1;
            if self.jobs.send((id, ask.ranges.clone())).is_err() {
                return;
            }
            self.asks.insert(id, ask);
        }
    }

    /// True when `bytes` more fit the window (anything fits when nothing is held, so a
    /// frame larger than the window is still fetched).
    fn fits(&self, bytes: u64) -> bool {
        self.held == 0 || self.held + bytes <= self.window.bytes
    }

    fn next_ask(&mut self) -> Option<Ask> {
        if let Some(ask) = self.next_heads() {
            return Some(ask);
        }
        if self.video.planner.is_none() {
            return self.next_whole();
        }
        self.next_parts()
    }

    /// The next frames' heads, when they are within reach and few head requests wait.
    fn next_heads(&mut self) -> Option<Ask> {
        let planner = self.video.planner.as_ref()?;
        let n = self.video.frames.len();
        let until = n.min(self.delivered + HEADS_AHEAD);
        if self.heads_next >= until || self.heads_in_flight >= 2 {
            return None;
        }
        let head_len = planner.head_len();
        let ranges: Vec<(u64, usize)> = self.video.frames[self.heads_next..until]
            .iter()
            .map(|&(_, (offset, size))| (offset, size.min(head_len)))
            .collect();
        let take = self
            .video
            .bytes
            .ranges_per_request(&ranges)
            .min(ranges.len());
        let frames = self.heads_next..self.heads_next + take;
        self.heads_next += take;
        self.heads_in_flight += 1;
        Some(Ask {
            kind: AskKind::Heads(frames),
            ranges: ranges[..take].to_vec(),
            generation: self.generation,
        })
    }

    /// Whole frames from the next one on: adjacent frames in one request, up to
    /// [`MAX_WHOLE_REQUEST`] and [`MAX_WHOLE_FRAMES`]. A request the window cuts short
    /// waits for the window to move (fewer, larger requests) while the analysis has a
    /// request's worth of frames asked for ahead of it.
    fn next_whole(&mut self) -> Option<Ask> {
        let frames = &self.video.frames;
        let start = self.issue_next;
        let limit = frames.len().min(self.taken + self.window.frames);
        if start >= limit {
            return None;
        }
        let (offset, size) = frames[start].1;
        let mut end = start + 1;
        let mut bytes = size as u64;
        let mut can_grow = false;
        while end < frames.len() {
            let (o, s) = frames[end].1;
            if o != offset + bytes
                || bytes + s as u64 > MAX_WHOLE_REQUEST
                || end - start >= MAX_WHOLE_FRAMES
            {
                break;
            }
            if end == limit {
                can_grow = true;
                break;
            }
            bytes += s as u64;
            end += 1;
        }
        let ahead_of_analysis = start - self.taken;
        if (can_grow && ahead_of_analysis >= MAX_WHOLE_FRAMES) || !self.fits(bytes) {
            return None;
        }
        self.issue_next = end;
        for k in start..end {
            self.slot(k).planned = true;
        }
        Some(Ask {
            kind: AskKind::Whole(start..end),
            ranges: vec![(offset, bytes as usize)],
            generation: self.generation,
        })
    }

    /// True when few requests are in flight: a request smaller than it could become
    /// is asked for anyway rather than let the link go idle.
    fn draining(&self) -> bool {
        self.asks.len() * 2 < self.connections
    }

    /// Plans frames whose heads are here into pending pieces, and asks for as many
    /// pieces as one request takes (fewer when no more can be planned now).
    fn next_parts(&mut self) -> Option<Ask> {
        let full = loop {
            let full = {
                let ranges = self.pending_ranges(self.pending.len().min(256));
                !ranges.is_empty() && self.video.bytes.ranges_per_request(&ranges) < ranges.len()
            };
            if full {
                break true;
            }
            match self.plan_next() {
                Planned::Pieces => continue,
                Planned::Whole(ask) => return Some(ask),
                Planned::Nothing => break false,
            }
        };
        // A partial request waits for more frames to plan while enough are in flight.
        let more_to_come = self.issue_next < self.video.frames.len();
        if self.pending.is_empty() || (!full && more_to_come && !self.draining()) {
            return None;
        }
        let ranges = self.pending_ranges(self.pending.len().min(256));
        let take = self
            .video
            .bytes
            .ranges_per_request(&ranges)
            .min(ranges.len());
        let pieces: Vec<Piece> = self.pending.drain(..take).collect();
        Some(Ask {
            kind: AskKind::Parts(pieces),
            ranges: ranges[..take].to_vec(),
            generation: self.generation,
        })
    }

    /// The file ranges of the first `n` pending pieces.
    fn pending_ranges(&self, n: usize) -> Vec<(u64, usize)> {
        self.pending
            .iter()
            .take(n)
            .map(|p| (self.video.frames[p.frame].1 .0 + p.offset as u64, p.len))
            .collect()
    }

    /// Plans the next frame, if its head is here and the window allows.
    fn plan_next(&mut self) -> Planned {
        let k = self.issue_next;
        if k >= self.video.frames.len() || k >= self.taken + self.window.frames {
            return Planned::Nothing;
        }
        let (offset, size) = self.video.frames[k].1;
        let Some(planner) = self.video.planner.clone() else {
            return Planned::Nothing;
        };
        self.slot(k);
        let Some(head) = self.slots[k - self.delivered].head.as_deref() else {
            return Planned::Nothing;
        };
        let plan = planner
            .plan(head, size)
            .map(|r| past_head(&r, head.len(), size));
        let wanted: u64 = match &plan {
            Some(ranges) => ranges.iter().map(|&(_, l)| l as u64).sum(),
            None => size as u64,
        };
        let pending: u64 = self.pending.iter().map(|p| p.len as u64).sum();
        if !self.fits(pending + wanted) {
            return Planned::Nothing;
        }
        self.issue_next += 1;
        let generation = self.generation;
        let slot = self.slot(k);
        slot.planned = true;
        match plan {
            None => Planned::Whole(Ask {
                kind: AskKind::Whole(k..k + 1),
                ranges: vec![(offset, size)],
                generation,
            }),
            Some(ranges) => {
                slot.waiting = ranges.len();
                self.pending.extend(ranges.into_iter().map(|(o, l)| Piece {
                    frame: k,
                    offset: o,
                    len: l,
                }));
                Planned::Pieces
            }
        }
    }

    /// A request is done: its bytes go to their frames. A server that does not answer
    /// multi-range requests exactly gets whole frames from now on; any other failure
    /// fails the video.
    fn done(&mut self, id: u64, result: Result<Vec<Vec<u8>>, ReadError>) -> Result<(), ReadError> {
        let Some(ask) = self.asks.remove(&id) else {
            return Ok(());
        };
        let asked: u64 = ask.ranges.iter().map(|&(_, l)| l as u64).sum();
        self.held = self.held.saturating_sub(asked);
        if let AskKind::Heads(_) = ask.kind {
            self.heads_in_flight -= 1;
        }
        if ask.generation != self.generation {
            return Ok(());
        }
        let bytes = match result {
            Err(e @ ReadError::NoMultiRange { .. }) => {
                tracing::warn!(video = %self.video.name, error = %e, "fetching whole frames from now on");
                self.whole_from_now_on();
                return Ok(());
            }
            Err(e) => return Err(e),
            Ok(bytes) => bytes,
        };
        match ask.kind {
            AskKind::Heads(frames) => {
                for (k, head) in frames.zip(bytes) {
                    self.hold(k, head.len());
                    self.slot(k).head = Some(head);
                }
            }
            AskKind::Parts(pieces) => {
                for (p, part) in pieces.into_iter().zip(bytes) {
                    self.hold(p.frame, part.len());
                    let slot = self.slot(p.frame);
                    slot.parts.push((p.offset, part));
                    slot.waiting -= 1;
                }
            }
            AskKind::Whole(frames) => {
                let whole = bytes.into_iter().next().unwrap_or_default();
                let start = self.video.frames[frames.start].1 .0;
                for k in frames {
                    let (offset, size) = self.video.frames[k].1;
                    let at = (offset - start) as usize;
                    let frame = whole.get(at..at + size).unwrap_or_default().to_vec();
                    self.hold(k, frame.len());
                    self.slot(k).whole = Some(frame);
                }
            }
        }
        Ok(())
    }

    fn hold(&mut self, frame: usize, bytes: usize) {
        self.held += bytes as u64;
        self.slot(frame).bytes += bytes as u64;
    }

    /// Forgets every frame not handed over yet and asks for them whole; requests in
    /// flight are dropped when they come back.
    fn whole_from_now_on(&mut self) {
        self.video.planner = None;
        self.generation += 1;
        let held: u64 = self.slots.iter().map(|s| s.bytes).sum();
        self.held = self.held.saturating_sub(held);
        self.slots.clear();
        self.pending.clear();
        self.issue_next = self.delivered;
        self.heads_next = self.video.frames.len();
    }

    /// Hands over every frame complete in order; false once the analysis is gone.
    fn deliver(&mut self) -> bool {
        while self.slots.front().is_some_and(Slot::complete) {
            let Some(slot) = self.slots.pop_front() else {
                break;
            };
            let (frame, (at, len)) = self.video.frames[self.delivered];
            self.delivered += 1;
            let payload = match (slot.whole, slot.head) {
                (Some(whole), _) => Payload::Prores(whole),
                (None, head) => {
                    let mut parts = FrameParts {
                        at,
                        len,
                        fetched: Vec::with_capacity(slot.parts.len() + 1),
                    };
                    parts.fetched.push((0, head.unwrap_or_default()));
                    parts.add(slot.parts);
                    match parts.fetched.as_slice() {
                        [(0, whole)] if whole.len() == len => {
                            Payload::Prores(parts.fetched.remove(0).1)
                        }
                        _ => Payload::ProresParts(parts),
                    }
                }
            };
            let item = Item {
                frame,
                payload: Ok(payload),
                bytes: slot.bytes,
            };
            if self.out.send(Ok(item)).is_err() {
                return false;
            }
        }
        true
    }
}

/// What planning the next frame gave.
enum Planned {
    /// Its pieces are pending.
    Pieces,
    /// It is to be fetched whole (its table does not fit the planner).
    Whole(Ask),
    /// Nothing: no frame, no head yet, or no room in the window.
    Nothing,
}

/// `ranges` of a `len`-byte frame without what its first `head` bytes already hold,
/// each kept inside the frame.
fn past_head(ranges: &[(usize, usize)], head: usize, len: usize) -> Vec<(usize, usize)> {
    ranges
        .iter()
        .filter_map(|&(o, l)| {
            let (start, end) = (o.max(head), (o + l).min(len));
            (start < end).then_some((start, end - start))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::sync::Condvar;
    use std::time::{Duration, Instant};

    use super::*;

    /// What the test sees of the requests: how many are in flight (and the most ever),
    /// the bytes served, and a count of requests the test lets finish.
    #[derive(Default)]
    struct Wire {
        in_flight: AtomicUsize,
        most: AtomicUsize,
        /// Bytes asked for (counted when a request starts).
        asked: AtomicU64,
        served: AtomicU64,
        /// Requests allowed to finish (`u64::MAX`: all).
        allowed: Mutex<u64>,
        changed: Condvar,
    }

    impl Wire {
        fn allow(&self, n: u64) {
            let mut allowed = self.allowed.lock().unwrap();
            *allowed = allowed.saturating_add(n);
            self.changed.notify_all();
        }

        /// Waits until `pred` holds (a minute at most: a hang fails the test).
        fn wait_for(&self, what: &str, pred: impl Fn(&Wire) -> bool) {
            let started = Instant::now();
            while !pred(self) {
                assert!(started.elapsed() < Duration::from_secs(60), "never {what}");
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }

    /// A file of `len` bytes (byte i is i % 251) whose requests the test paces.
    struct Paced {
        len: u64,
        wire: Arc<Wire>,
        connections: usize,
    }

    impl ByteSource for Paced {
        fn size(&self) -> u64 {
            self.len
        }
        fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), ReadError> {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = ((offset + i as u64) % 251) as u8;
            }
            Ok(())
        }
        fn bytes_fetched(&self) -> u64 {
            self.wire.served.load(Ordering::SeqCst)
        }
        fn name(&self) -> &str {
            "paced"
        }
        fn requests_in_flight(&self) -> usize {
            self.connections
        }
        fn read_request(&mut self, ranges: &[(u64, usize)]) -> Result<Vec<Vec<u8>>, ReadError> {
            let bytes: u64 = ranges.iter().map(|&(_, l)| l as u64).sum();
            self.wire.asked.fetch_add(bytes, Ordering::SeqCst);
            let now = self.wire.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.wire.most.fetch_max(now, Ordering::SeqCst);
            {
                let mut allowed = self.wire.allowed.lock().unwrap();
                while *allowed == 0 {
                    allowed = self.wire.changed.wait(allowed).unwrap();
                }
                *allowed -= 1;
            }
            let out = self.read_ranges(ranges);
            self.wire.served.fetch_add(bytes, Ordering::SeqCst);
            self.wire.in_flight.fetch_sub(1, Ordering::SeqCst);
            out
        }
        fn try_clone(&self) -> Option<Box<dyn ByteSource>> {
            Some(Box::new(Paced {
                len: self.len,
                wire: Arc::clone(&self.wire),
                connections: self.connections,
            }))
        }
    }

    /// `count` frames of `size` bytes, every 10th of a file of such frames.
    fn video(wire: &Arc<Wire>, connections: usize, count: u64, size: usize) -> Video {
        let frames = (0..count)
            .map(|i| (1 + 10 * i, (10 * i * size as u64, size)))
            .collect();
        Video {
            bytes: Box::new(Paced {
                len: 10 * count * size as u64,
                wire: Arc::clone(wire),
                connections,
            }),
            frames,
            planner: None,
            name: "paced".into(),
        }
    }

    #[test]
    fn as_many_requests_as_allowed_are_in_flight_never_more() {
        let wire = Arc::new(Wire::default());
        let mut stream = start(video(&wire, 5, 200, 1000), Window::frames(100));
        // Nothing finishes until the test says so: the read-ahead asks for as many as it
        // may (one connection each), and then waits.
        wire.wait_for("five requests in flight", |w| {
            w.in_flight.load(Ordering::SeqCst) == 5
        });
        wire.allow(u64::MAX);
        for n in 0..200u64 {
            let (frame, payload) = stream.next(None, "paced").unwrap().unwrap();
            assert_eq!(frame, 1 + 10 * n);
            let Ok(Payload::Prores(bytes)) = payload else {
                panic!("frame {frame}: {payload:?}")
            };
            assert_eq!(bytes.len(), 1000);
            assert_eq!(bytes[0], ((10 * n * 1000) % 251) as u8, "frame {frame}");
        }
        assert!(stream.next(None, "paced").is_none(), "every frame, once");
        assert_eq!(wire.most.load(Ordering::SeqCst), 5);
    }

    #[test]
    fn what_is_fetched_and_not_taken_stays_within_the_window() {
        let wire = Arc::new(Wire::default());
        wire.allow(u64::MAX);
        let window = Window {
            frames: 1000,
            bytes: 100_000,
        };
        let mut stream = start(video(&wire, 8, 300, 7_000), window);
        // Nothing is taken until the read-ahead has had all it may: the window, and one
        // frame more at most (asked for while the window had room for less).
        wire.wait_for("the read-ahead fill its window", |w| {
            w.served.load(Ordering::SeqCst) > window.bytes - 7_000
                && w.in_flight.load(Ordering::SeqCst) == 0
        });
        let limit = window.bytes + 7_000;
        assert!(wire.asked.load(Ordering::SeqCst) <= limit);
        let mut taken = 0u64;
        while let Some(next) = stream.next(None, "paced") {
            assert!(next.is_ok());
            // The read-ahead may hear of this frame before `taken` counts it.
            let held = wire.asked.load(Ordering::SeqCst) - taken;
            assert!(held <= limit + 7_000, "{held} bytes held, {taken} taken");
            taken += 7_000;
        }
        assert_eq!(taken, 300 * 7_000);
    }
}
