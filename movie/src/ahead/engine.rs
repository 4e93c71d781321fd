//! The read-ahead's one thread: it decides what to ask for next (heads, the parts each
//! head plans, or whole frames), within the window and the requests in flight allowed,
//! files each reply under its frames, and hands complete frames over in order. Its
//! cursors and what holds between them are written down once, on [`ReadAhead`].

use std::collections::HashMap;
use std::sync::mpsc;

use super::asks::{past_head, whole_run, Ask, AskKind, Pending, Planned, Request, Run};
use super::frames::{Frames, Inconsistent};
use super::stream::{Event, Item};
use super::{Video, Window, HEADS_AHEAD, MAX_WHOLE_FRAMES};
use crate::ReadError;

/// The read-ahead's state. Frames are numbered by their index among those wanted
/// (`video.frames`), and these hold at every step:
///
/// - `taken <= frames.delivered() <= issue_next`: the analysis took what was handed
///   over; only frames already asked for (or planned) are handed over.
/// - In parts mode `issue_next <= heads_next`: a frame is planned once its head is here.
///   Frames in `issue_next..heads_next` are `Empty` (head in flight) or `Head`; frames in
///   `delivered..issue_next` are asked for (`Parts`, `WholeAsked`) or complete.
/// - `issue_next < taken + window.frames` when a frame is asked for or planned.
/// - `held` = the bytes of requests in flight + those frames hold + those handed over and
///   not taken yet; a request is asked for only while `held` stays within
///   `window.bytes`, or for the frame handed over next (so a frame larger than the
///   window still comes, and heads that fill it cannot stop the video).
/// - `asks.len() <= connections`; a reply whose `generation` is not the current one was
///   asked for before the switch to whole frames and is dropped.
pub(super) struct ReadAhead {
    video: Video,
    window: Window,
    connections: usize,
    frames: Frames,
    /// Frames the analysis has taken.
    taken: usize,
    /// The next frame whose head to ask for (`video.frames.len()` in whole mode).
    heads_next: usize,
    heads_in_flight: usize,
    /// The next frame to plan or ask for whole.
    issue_next: usize,
    /// Planned pieces not asked for yet, in file order.
    pending: Pending,
    asks: HashMap<u64, Ask>,
    next_id: u64,
    generation: u32,
    held: u64,
    jobs: mpsc::Sender<Request>,
    out: mpsc::Sender<Result<Item, ReadError>>,
}

impl ReadAhead {
    pub(super) fn new(
        mut video: Video,
        window: Window,
        connections: usize,
        jobs: mpsc::Sender<Request>,
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
            frames: Frames::default(),
            taken: 0,
            heads_next,
            heads_in_flight: 0,
            issue_next: 0,
            pending: Pending::default(),
            asks: HashMap::new(),
            next_id: 0,
            generation: 0,
            held: 0,
            jobs,
            out,
        }
    }

    /// Asks, files replies and hands frames over until every frame is handed over, the
    /// stream is dropped, or the video fails (the stream then gets the error).
    pub(super) fn run(&mut self, events: &mpsc::Receiver<Event>) {
        if let Err(e) = self.run_until_done(events) {
            let _ = self.out.send(Err(e));
        }
    }

    fn run_until_done(&mut self, events: &mpsc::Receiver<Event>) -> Result<(), ReadError> {
        loop {
            self.fill().map_err(|e| self.inconsistent(e))?;
            if !self.deliver() || self.frames.delivered() == self.video.frames.len() {
                return Ok(());
            }
            match events.recv() {
                Ok(Event::Done(id, result)) => self.done(id, result)?,
                Ok(Event::Taken(bytes)) => {
                    self.held = self.held.saturating_sub(bytes);
                    self.taken += 1;
                }
                Ok(Event::Closed) | Err(_) => return Ok(()),
            }
        }
    }

    fn inconsistent(&self, e: Inconsistent) -> ReadError {
        ReadError::ReadAhead {
            what: self.video.name.clone(),
            detail: e.0,
        }
    }

    /// Asks for whatever the window allows, up to the requests in flight allowed.
    fn fill(&mut self) -> Result<(), Inconsistent> {
        while self.asks.len() < self.connections {
            let Some(ask) = self.next_ask()? else {
                return Ok(());
            };
            let bytes: u64 = ask.ranges.iter().map(|&(_, l)| l as u64).sum();
            self.held += bytes;
            let id = self.next_id;
            self.next_id += 1;
            if self.jobs.send((id, ask.ranges.clone())).is_err() {
                return Ok(());
            }
            self.asks.insert(id, ask);
        }
        Ok(())
    }

    /// True when `bytes` more for frames from `k` on fit the window. What the analysis
    /// waits for next always fits (a frame larger than the window, or one behind heads
    /// that fill it, is still fetched): the window is exceeded by one frame at most.
    fn fits(&self, k: usize, bytes: u64) -> bool {
        k == self.frames.delivered() || self.held + bytes <= self.window.bytes
    }

    fn next_ask(&mut self) -> Result<Option<Ask>, Inconsistent> {
        if let Some(ask) = self.next_heads() {
            return Ok(Some(ask));
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
        let until = n.min(self.frames.delivered() + HEADS_AHEAD);
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
    fn next_whole(&mut self) -> Result<Option<Ask>, Inconsistent> {
        let frames = &self.video.frames;
        let start = self.issue_next;
        let limit = frames.len().min(self.taken + self.window.frames);
        if start >= limit {
            return Ok(None);
        }
        let (offset, size) = frames[start].1;
        let Run {
            mut end,
            mut bytes,
            can_grow,
        } = whole_run(frames, start, limit);
        let ahead_of_analysis = start - self.taken;
        if can_grow && ahead_of_analysis >= MAX_WHOLE_FRAMES {
            return Ok(None);
        }
        if !self.fits(start, bytes) {
            return Ok(None);
        }
        if self.held + bytes > self.window.bytes {
            // The frame the analysis waits for, alone: past the window by one frame only.
            (end, bytes) = (start + 1, size as u64);
        }
        self.issue_next = end;
        for k in start..end {
            self.frames.ask_whole(k)?;
        }
        Ok(Some(Ask {
            kind: AskKind::Whole(start..end),
            ranges: vec![(offset, bytes as usize)],
            generation: self.generation,
        }))
    }

    /// True when few requests are in flight: a request smaller than it could become
    /// is asked for anyway rather than let the link go idle.
    fn draining(&self) -> bool {
        self.asks.len() * 2 < self.connections
    }

    /// Plans frames whose heads are here into pending pieces, and asks for as many
    /// pieces as one request takes (fewer when no more can be planned now).
    fn next_parts(&mut self) -> Result<Option<Ask>, Inconsistent> {
        let full = loop {
            let full = {
                let ranges = self.pending.ranges(&self.video.frames);
                !ranges.is_empty() && self.video.bytes.ranges_per_request(&ranges) < ranges.len()
            };
            if full {
                break true;
            }
            match self.plan_next()? {
                Planned::Pieces => continue,
                Planned::Whole(ask) => return Ok(Some(ask)),
                Planned::Nothing => break false,
            }
        };
        // A partial request waits for more frames to plan while enough are in flight.
        let more_to_come = self.issue_next < self.video.frames.len();
        if self.pending.is_empty() || (!full && more_to_come && !self.draining()) {
            return Ok(None);
        }
        let ranges = self.pending.ranges(&self.video.frames);
        let take = self
            .video
            .bytes
            .ranges_per_request(&ranges)
            .min(ranges.len());
        let pieces = self.pending.take(take);
        Ok(Some(Ask {
            kind: AskKind::Parts(pieces),
            ranges: ranges[..take].to_vec(),
            generation: self.generation,
        }))
    }

    /// Plans the next frame, if its head is here and the window allows: its pieces join
    /// the pending ones, or (a table the planner declines) it is asked for whole.
    fn plan_next(&mut self) -> Result<Planned, Inconsistent> {
        let k = self.issue_next;
        if k >= self.video.frames.len() || k >= self.taken + self.window.frames {
            return Ok(Planned::Nothing);
        }
        let (offset, size) = self.video.frames[k].1;
        let (Some(planner), Some(head)) = (self.video.planner.as_ref(), self.frames.head(k)) else {
            return Ok(Planned::Nothing);
        };
        let plan = planner
            .plan(head, size)
            .map(|r| past_head(&r, head.len(), size));
        let wanted: u64 = match &plan {
            Some(ranges) => ranges.iter().map(|&(_, l)| l as u64).sum(),
            None => size as u64,
        };
        if !self.fits(k, self.pending.bytes() + wanted) {
            return Ok(Planned::Nothing);
        }
        self.issue_next += 1;
        let Some(ranges) = plan else {
            let freed = self.frames.ask_whole(k)?;
            self.held = self.held.saturating_sub(freed);
            return Ok(Planned::Whole(Ask {
                kind: AskKind::Whole(k..k + 1),
                ranges: vec![(offset, size)],
                generation: self.generation,
            }));
        };
        self.frames.ask_parts(k, ranges.len())?;
        self.pending.add(k, ranges);
        Ok(Planned::Pieces)
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
        self.file(ask.kind, bytes).map_err(|e| self.inconsistent(e))
    }

    /// Files the bytes of a request under its frames.
    fn file(&mut self, kind: AskKind, bytes: Vec<Vec<u8>>) -> Result<(), Inconsistent> {
        match kind {
            AskKind::Heads(frames) => {
                for (k, head) in frames.zip(bytes) {
                    self.held += head.len() as u64;
                    self.frames.got_head(k, head)?;
                }
            }
            AskKind::Parts(pieces) => {
                for (p, part) in pieces.into_iter().zip(bytes) {
                    self.held += part.len() as u64;
                    self.frames.got_part(p.frame, p.offset, part)?;
                }
            }
            AskKind::Whole(frames) => {
                let whole = bytes.into_iter().next().unwrap_or_default();
                if frames.len() == 1 && whole.len() == self.video.frames[frames.start].1 .1 {
                    // One frame: its bytes as they came, not a copy.
                    self.held += whole.len() as u64;
                    return self.frames.got_whole(frames.start, whole);
                }
                let start = self.video.frames[frames.start].1 .0;
                for k in frames {
                    let (offset, size) = self.video.frames[k].1;
                    let at = (offset - start) as usize;
                    let frame = whole.get(at..at + size).unwrap_or_default().to_vec();
                    self.held += frame.len() as u64;
                    self.frames.got_whole(k, frame)?;
                }
            }
        }
        Ok(())
    }

    /// Forgets every frame not handed over yet and asks for them whole; requests in
    /// flight are dropped when they come back.
    fn whole_from_now_on(&mut self) {
        self.video.planner = None;
        self.generation += 1;
        let freed = self.frames.clear();
        self.held = self.held.saturating_sub(freed);
        self.pending.clear();
        self.issue_next = self.frames.delivered();
        self.heads_next = self.video.frames.len();
    }

    /// Hands over every frame complete in order; false once the analysis is gone.
    fn deliver(&mut self) -> bool {
        let frames = &self.video.frames;
        while let Some((k, payload, bytes)) = self
            .frames
            .next_complete(|k| (frames[k].1 .0, frames[k].1 .1))
        {
            let item = Item {
                frame: frames[k].0,
                payload: Ok(payload),
                bytes,
            };
            if self.out.send(Ok(item)).is_err() {
                return false;
            }
        }
        true
    }
}
