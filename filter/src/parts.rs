//! Which bytes of each ProRes frame to fetch when the reduced decoder reads it: the
//! headers and slice table, and of each slice the prefix decoding reads (its header and
//! the lowest luma frequencies), sized from what the same slice needed in the frames
//! decoded before, with a margin. A prefix that turns out short is fetched whole when
//! the frame is decoded (see `analysis`). Issue 20 measured it: the decoder reads ~19%
//! of a CamHD frame.

use std::sync::Mutex;

use crate::prores::ReducedDecoder;
use crate::source::PartsPlanner;

/// Ranges closer than this are fetched as one: in a multi-range reply each range costs
/// ~110 bytes of part headers and ~25 of request header.
pub const MERGE_GAP: usize = 160;

/// The share of a slice asked for before anything is known of it: at the default scale
/// the decoder reads 13-40% of a slice depending on the ProRes flavour (docs/benchmarks.md).
const FIRST_GUESS: f64 = 0.45;

/// Plans each frame's ranges from its slice table and what earlier frames needed.
#[derive(Debug)]
pub struct SliceParts {
    decoder: ReducedDecoder,
    /// Per slice (in coded order), the bytes from its start the last decode read.
    needed: Mutex<Vec<u32>>,
}

impl SliceParts {
    /// A planner for frames `decoder` decodes.
    pub fn new(decoder: ReducedDecoder) -> SliceParts {
        SliceParts {
            decoder,
            needed: Mutex::new(Vec::new()),
        }
    }

    /// Learns what a decode read of each slice (from [`ReducedDecoder::decode_parts`]).
    pub fn learn(&self, needs: &[u32]) {
        if needs.is_empty() {
            return;
        }
        let mut needed = self.needed.lock().unwrap_or_else(|p| p.into_inner());
        needed.clear();
        needed.extend_from_slice(needs);
    }

    /// How much of a slice of `size` bytes to ask for, knowing it needed `before`.
    fn want(before: Option<u32>, size: usize) -> usize {
        let guess = match before {
            // An eighth more and 64 bytes: the same slice of a frame a third of a second
            // later differs little (measured: no misses on the benchmark clip).
            Some(n) => n as usize + n as usize / 8 + 64,
            None => (size as f64 * FIRST_GUESS) as usize + 64,
        };
        guess.min(size)
    }
}

impl PartsPlanner for SliceParts {
    fn head_len(&self) -> usize {
        // A 1080p frame's headers and slice table: 2,204 bytes. A frame cut otherwise,
        // whose table does not fit, is fetched whole.
        self.decoder.head_bytes()
    }

    fn plan(&self, head: &[u8], len: usize) -> Option<Vec<(usize, usize)>> {
        let slices = self.decoder.slice_layout(head).ok()?;
        let needed = self.needed.lock().unwrap_or_else(|p| p.into_inner());
        let same_layout = needed.len() == slices.len();
        let mut ranges: Vec<(usize, usize)> = Vec::with_capacity(slices.len());
        for (i, &(offset, size)) in slices.iter().enumerate() {
            if offset + size > len {
                return None; // a damaged table: the decoder will say so of the whole frame
            }
            let want = Self::want(same_layout.then(|| needed[i]), size);
            match ranges.last_mut() {
                Some((o, l)) if offset < *o + *l + MERGE_GAP => *l = offset + want - *o,
                _ => ranges.push((offset, want)),
            }
        }
        Some(ranges)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slice_is_asked_for_by_what_it_needed_before_with_a_margin() {
        assert_eq!(SliceParts::want(Some(800), 4000), 800 + 100 + 64);
        assert_eq!(
            SliceParts::want(Some(800), 900),
            900,
            "never past the slice"
        );
        assert_eq!(SliceParts::want(None, 1000), 450 + 64);
    }
}
