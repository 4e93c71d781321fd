//! What the read-ahead asks for: a request's kind and ranges, the pieces of planned
//! frames, and which adjacent whole frames share one request.

use std::collections::VecDeque;
use std::ops::Range;

use super::{MAX_WHOLE_FRAMES, MAX_WHOLE_REQUEST};

/// One request: what it asks for and for which frames.
pub(super) struct Ask {
    pub(super) kind: AskKind,
    pub(super) ranges: Vec<(u64, usize)>,
    /// Which switch to whole frames it belongs to (a request of an earlier one is stale).
    pub(super) generation: u32,
}

pub(super) enum AskKind {
    Heads(Range<usize>),
    Parts(Vec<Piece>),
    Whole(Range<usize>),
}

/// One planned range of a frame: frame index, offset in the frame, length.
#[derive(Debug, Clone, Copy)]
pub(super) struct Piece {
    pub(super) frame: usize,
    pub(super) offset: usize,
    pub(super) len: usize,
}

/// Planned pieces not asked for yet, in file order.
#[derive(Debug, Default)]
pub(super) struct Pending(VecDeque<Piece>);

impl Pending {
    /// The most pieces looked at for the next request.
    const LOOK_AHEAD: usize = 256;

    /// The file ranges of the first pieces (a request's worth at most), in a video
    /// whose wanted frames lie at `frames`.
    pub(super) fn ranges(&self, frames: &[(u64, (u64, usize))]) -> Vec<(u64, usize)> {
        self.0
            .iter()
            .take(Self::LOOK_AHEAD)
            .map(|p| (frames[p.frame].1 .0 + p.offset as u64, p.len))
            .collect()
    }

    /// The bytes of every pending piece.
    pub(super) fn bytes(&self) -> u64 {
        self.0.iter().map(|p| p.len as u64).sum()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds frame `frame`'s `(offset, len)` ranges.
    pub(super) fn add(&mut self, frame: usize, ranges: Vec<(usize, usize)>) {
        self.0.extend(
            ranges
                .into_iter()
                .map(|(offset, len)| Piece { frame, offset, len }),
        );
    }

    /// The first `n` pieces, taken out.
    pub(super) fn take(&mut self, n: usize) -> Vec<Piece> {
        self.0.drain(..n).collect()
    }

    pub(super) fn clear(&mut self) {
        self.0.clear();
    }
}

/// A request to make: its id and ranges, for a fetching thread.
pub(super) type Request = (u64, Vec<(u64, usize)>);

/// What planning the next frame gave.
pub(super) enum Planned {
    /// Its pieces are pending.
    Pieces,
    /// It is to be fetched whole (its table does not fit the planner).
    Whole(Ask),
    /// Nothing: no frame, no head yet, or no room in the window.
    Nothing,
}

/// `ranges` of a `len`-byte frame without what its first `head` bytes already hold,
/// each kept inside the frame.
pub(super) fn past_head(ranges: &[(usize, usize)], head: usize, len: usize) -> Vec<(usize, usize)> {
    ranges
        .iter()
        .filter_map(|&(o, l)| {
            let (start, end) = (o.max(head), (o + l).min(len));
            (start < end).then_some((start, end - start))
        })
        .collect()
}

/// Adjacent whole frames asked for in one request.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Run {
    /// One past the last frame in it.
    pub(super) end: usize,
    /// Its bytes.
    pub(super) bytes: u64,
    /// The next frame would join it but lies beyond `limit`.
    pub(super) can_grow: bool,
}

/// The frames from `start` (before `limit`) that one request for whole frames takes:
/// those adjacent in the file, up to [`MAX_WHOLE_REQUEST`] and [`MAX_WHOLE_FRAMES`].
pub(super) fn whole_run(frames: &[(u64, (u64, usize))], start: usize, limit: usize) -> Run {
    let (offset, size) = frames[start].1;
    let mut run = Run {
        end: start + 1,
        bytes: size as u64,
        can_grow: false,
    };
    while run.end < frames.len() {
        let (o, s) = frames[run.end].1;
        if o != offset + run.bytes
            || run.bytes + s as u64 > MAX_WHOLE_REQUEST
            || run.end - start >= MAX_WHOLE_FRAMES
        {
            break;
        }
        if run.end == limit {
            run.can_grow = true;
            break;
        }
        run.bytes += s as u64;
        run.end += 1;
    }
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjacent_frames_share_a_request_up_to_its_caps() {
        // Ten adjacent frames of 1 MiB, then one apart.
        let mut frames: Vec<(u64, (u64, usize))> =
            (0..10).map(|i| (i + 1, (i << 20, 1 << 20))).collect();
        frames.push((11, (20 << 20, 1 << 20)));
        let run = whole_run(&frames, 0, 11);
        assert_eq!((run.end, run.bytes), (8, 8 << 20), "8 MiB at most");
        assert_eq!(whole_run(&frames, 8, 11).end, 10, "not the frame apart");
        let cut = whole_run(&frames, 0, 3);
        assert_eq!((cut.end, cut.can_grow), (3, true), "the limit cuts it");
    }

    #[test]
    fn a_range_already_in_the_head_is_not_asked_again() {
        assert_eq!(
            past_head(&[(0, 100), (400, 50), (990, 50)], 64, 1000),
            vec![(64, 36), (400, 50), (990, 10)]
        );
    }
}
