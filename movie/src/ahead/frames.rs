//! What the read-ahead holds of the frames it has not handed over yet: one state per
//! frame, from the next to hand over on, the moves between states a reply may make, and
//! how a complete frame becomes the payload the analysis takes. A reply that does not
//! fit its frame's state is an error with a reason, never a panic.

use std::collections::VecDeque;

use crate::video::{FrameParts, Payload};

/// What has been fetched of one frame not handed over yet. A frame moves
/// `Empty -> Head -> Parts -> (complete)` when fetched in parts, `-> WholeAsked -> Whole`
/// when fetched whole (from any state before complete: whole frames chosen, the planner
/// declined its table, or the server answers no multi-range request).
#[derive(Debug, Default)]
pub(super) enum FrameState {
    /// Nothing here: its head is asked for, or not yet.
    #[default]
    Empty,
    /// Its head is here; its parts are not planned yet.
    Head(Vec<u8>),
    /// Its parts are asked for: the head, the parts here, and how many are to come.
    Parts {
        head: Vec<u8>,
        parts: Vec<(usize, Vec<u8>)>,
        missing: usize,
    },
    /// Asked for whole; a head it had is dropped.
    WholeAsked,
    /// Here, whole.
    Whole(Vec<u8>),
}

impl FrameState {
    fn complete(&self) -> bool {
        matches!(
            self,
            FrameState::Whole(_) | FrameState::Parts { missing: 0, .. }
        )
    }

    fn name(&self) -> &'static str {
        match self {
            FrameState::Empty => "nothing fetched",
            FrameState::Head(_) => "its head only",
            FrameState::Parts { .. } => "its parts asked for",
            FrameState::WholeAsked => "asked for whole",
            FrameState::Whole(_) => "whole",
        }
    }
}

/// One frame's state and the bytes it holds.
#[derive(Debug, Default)]
struct Slot {
    state: FrameState,
    bytes: u64,
}

/// A reply or a plan that does not fit the state of its frame: a bug of the read-ahead,
/// which fails the video with this reason.
#[derive(Debug)]
pub(super) struct Inconsistent(pub(super) String);

/// The frames not handed over yet, from the next one on, by their index among the
/// frames wanted.
#[derive(Debug, Default)]
pub(super) struct Frames {
    slots: VecDeque<Slot>,
    /// The index of `slots[0]`: frames below it are handed over.
    delivered: usize,
}

impl Frames {
    /// Frames handed over so far.
    pub(super) fn delivered(&self) -> usize {
        self.delivered
    }

    fn slot(&mut self, k: usize, doing: &str) -> Result<&mut Slot, Inconsistent> {
        let Some(i) = k.checked_sub(self.delivered) else {
            return Err(Inconsistent(format!(
                "{doing} frame #{k}, which was handed over already ({} are)",
                self.delivered
            )));
        };
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, Slot::default);
        }
        Ok(&mut self.slots[i])
    }

    /// The head of frame `k`, when it is here and not planned yet.
    pub(super) fn head(&self, k: usize) -> Option<&[u8]> {
        let i = k.checked_sub(self.delivered)?;
        match &self.slots.get(i)?.state {
            FrameState::Head(head) => Some(head),
            _ => None,
        }
    }

    /// Frame `k`'s head arrived.
    pub(super) fn got_head(&mut self, k: usize, head: Vec<u8>) -> Result<(), Inconsistent> {
        let slot = self.slot(k, "a head for")?;
        if !matches!(slot.state, FrameState::Empty) {
            return Err(Inconsistent(format!(
                "a head for frame #{k}, which holds {}",
                slot.state.name()
            )));
        }
        slot.bytes += head.len() as u64;
        slot.state = FrameState::Head(head);
        Ok(())
    }

    /// Frame `k`'s `missing` parts are asked for (none: its head is all it needs).
    pub(super) fn ask_parts(&mut self, k: usize, missing: usize) -> Result<(), Inconsistent> {
        let slot = self.slot(k, "asking parts of")?;
        let FrameState::Head(head) = std::mem::take(&mut slot.state) else {
            return Err(Inconsistent(format!(
                "parts planned for frame #{k} without its head"
            )));
        };
        slot.state = FrameState::Parts {
            head,
            parts: Vec::new(),
            missing,
        };
        Ok(())
    }

    /// Frame `k` is asked for whole: whatever it held is dropped; gives the bytes freed.
    pub(super) fn ask_whole(&mut self, k: usize) -> Result<u64, Inconsistent> {
        let slot = self.slot(k, "asking whole")?;
        if slot.state.complete() {
            return Err(Inconsistent(format!(
                "frame #{k} asked for whole, but it holds {}",
                slot.state.name()
            )));
        }
        slot.state = FrameState::WholeAsked;
        Ok(std::mem::take(&mut slot.bytes))
    }

    /// A part of frame `k` (at `offset` in the frame) arrived.
    pub(super) fn got_part(
        &mut self,
        k: usize,
        offset: usize,
        bytes: Vec<u8>,
    ) -> Result<(), Inconsistent> {
        let slot = self.slot(k, "a part for")?;
        let len = bytes.len() as u64;
        match &mut slot.state {
            FrameState::Parts { parts, missing, .. } if *missing > 0 => {
                parts.push((offset, bytes));
                *missing -= 1;
            }
            other => {
                return Err(Inconsistent(format!(
                    "a part for frame #{k}, which holds {}",
                    other.name()
                )))
            }
        }
        slot.bytes += len;
        Ok(())
    }

    /// Frame `k` arrived whole.
    pub(super) fn got_whole(&mut self, k: usize, bytes: Vec<u8>) -> Result<(), Inconsistent> {
        let slot = self.slot(k, "the whole of")?;
        if !matches!(slot.state, FrameState::WholeAsked) {
            return Err(Inconsistent(format!(
                "frame #{k} arrived whole, but it holds {}",
                slot.state.name()
            )));
        }
        slot.bytes = bytes.len() as u64;
        slot.state = FrameState::Whole(bytes);
        Ok(())
    }

    /// Forgets every frame not handed over; gives the bytes they held.
    pub(super) fn clear(&mut self) -> u64 {
        let held = self.slots.iter().map(|s| s.bytes).sum();
        self.slots.clear();
        held
    }

    /// The next frame to hand over, when it is complete: its index, the payload of a
    /// frame of `len` bytes at `at` in the file, and the bytes it holds.
    pub(super) fn next_complete(
        &mut self,
        place: impl Fn(usize) -> (u64, usize),
    ) -> Option<(usize, Payload, u64)> {
        if !self.slots.front().is_some_and(|s| s.state.complete()) {
            return None;
        }
        let slot = self.slots.pop_front()?;
        let k = self.delivered;
        self.delivered += 1;
        let (at, len) = place(k);
        Some((k, payload(slot.state, at, len), slot.bytes))
    }
}

/// The payload of a complete frame: whole, or its head and parts (whole again when they
/// cover it).
fn payload(state: FrameState, at: u64, len: usize) -> Payload {
    let (head, parts) = match state {
        FrameState::Whole(whole) => return Payload::Prores(whole),
        FrameState::Parts { head, parts, .. } => (head, parts),
        // `next_complete` hands over complete frames only.
        _ => (Vec::new(), Vec::new()),
    };
    let mut frame = FrameParts {
        at,
        len,
        fetched: Vec::with_capacity(parts.len() + 1),
    };
    frame.fetched.push((0, head));
    frame.add(parts);
    match frame.fetched.as_slice() {
        [(0, whole)] if whole.len() == len => Payload::Prores(frame.fetched.remove(0).1),
        _ => Payload::ProresParts(frame),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declined_frame_waits_for_its_whole_bytes() {
        let mut frames = Frames::default();
        frames.got_head(0, vec![1; 10]).unwrap();
        assert_eq!(frames.ask_whole(0).unwrap(), 10, "its head is dropped");
        assert!(frames.next_complete(|_| (0, 100)).is_none());
        frames.got_whole(0, vec![2; 100]).unwrap();
        let (k, payload, bytes) = frames.next_complete(|_| (0, 100)).unwrap();
        assert_eq!((k, bytes), (0, 100));
        assert_eq!(payload, Payload::Prores(vec![2; 100]));
    }

    #[test]
    fn a_reply_for_a_frame_handed_over_or_in_another_state_is_an_error() {
        let mut frames = Frames::default();
        frames.got_head(0, vec![1; 10]).unwrap();
        frames.ask_parts(0, 0).unwrap();
        assert!(frames.next_complete(|_| (0, 10)).is_some());
        assert!(frames.got_whole(0, vec![0; 10]).is_err(), "handed over");
        assert!(
            frames.got_whole(1, vec![0; 10]).is_err(),
            "never asked whole"
        );
        assert!(frames.got_part(1, 5, vec![0; 5]).is_err(), "no parts asked");
        frames.got_head(1, vec![1; 10]).unwrap();
        assert!(frames.got_head(1, vec![1; 10]).is_err(), "a head twice");
    }

    #[test]
    fn parts_complete_a_frame_once_every_one_is_here() {
        let mut frames = Frames::default();
        frames.got_head(0, vec![7; 4]).unwrap();
        frames.ask_parts(0, 2).unwrap();
        frames.got_part(0, 8, vec![9; 2]).unwrap();
        assert!(frames.next_complete(|_| (50, 12)).is_none());
        frames.got_part(0, 4, vec![8; 4]).unwrap();
        let (_, payload, bytes) = frames.next_complete(|_| (50, 12)).unwrap();
        assert_eq!(bytes, 10);
        let Payload::ProresParts(parts) = payload else {
            panic!("{payload:?}")
        };
        assert_eq!(parts.fetched, vec![(0, vec![7, 7, 7, 7, 8, 8, 8, 8, 9, 9])]);
    }
}
