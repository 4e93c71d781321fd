//! Which frames to sample, which pairs to compare, and which frames to decode — the
//! original's convention: `range(start, stop, stride)`, 1-based, stop exclusive, stop -1
//! meaning the number of frames, and for each sampled f the pair (f - gap/2, f + gap/2)
//! clamped to the video.

/// One sampled frame and the two frames compared for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    /// The sampled frame (`frameNumber`).
    pub frame: u64,
    /// `fromFrame`.
    pub from: u64,
    /// `toFrame`.
    pub to: u64,
}

/// The whole plan for one video.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Pairs in frame order.
    pub pairs: Vec<Pair>,
    /// Every frame some pair needs, ascending, each once.
    pub needed: Vec<u64>,
}

/// Why no plan could be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// The video has fewer frames than one pair spans.
    TooShort {
        /// Frames needed.
        needed: u64,
    },
    /// The range selects no frame.
    Empty(String),
}

/// Plans the analysis of a video with `frames` frames.
pub fn plan(frames: u64, start: u64, stop: i64, stride: u32, gap: u64) -> Result<Plan, PlanError> {
    if frames <= gap {
        return Err(PlanError::TooShort { needed: gap + 1 });
    }
    let stop = if stop < 0 {
        frames
    } else {
        (stop as u64).min(frames)
    };
    if start >= stop {
        return Err(PlanError::Empty(format!(
            "start {start} is not before stop {stop} (the video has {frames} frames)"
        )));
    }
    let half = gap / 2;
    let pairs: Vec<Pair> = (start..stop)
        .step_by(stride.max(1) as usize)
        .map(|f| Pair {
            frame: f,
            from: f.saturating_sub(half).max(1),
            to: (f + half).min(frames),
        })
        .collect();
    let mut needed: Vec<u64> = pairs.iter().flat_map(|p| [p.from, p.to]).collect();
    needed.sort_unstable();
    needed.dedup();
    Ok(Plan { pairs, needed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_original() {
        let p = plan(100, 1, -1, 10, 10).unwrap();
        let frames: Vec<u64> = p.pairs.iter().map(|p| p.frame).collect();
        assert_eq!(frames, [1, 11, 21, 31, 41, 51, 61, 71, 81, 91]);
        assert_eq!(
            p.pairs[0],
            Pair {
                frame: 1,
                from: 1,
                to: 6
            }
        );
        assert_eq!(
            p.pairs[1],
            Pair {
                frame: 11,
                from: 6,
                to: 16
            }
        );
        assert_eq!(
            p.pairs[9],
            Pair {
                frame: 91,
                from: 86,
                to: 96
            }
        );
    }

    #[test]
    fn at_stride_ten_each_needed_frame_serves_two_pairs() {
        let p = plan(27_000, 1, -1, 10, 10).unwrap();
        assert_eq!(p.pairs.len(), 2_700);
        assert_eq!(p.needed.len(), 2_701, "a tenth of the frames, plus frame 1");
    }

    #[test]
    fn stride_one_needs_every_frame_once() {
        let p = plan(50, 1, -1, 1, 10).unwrap();
        assert_eq!(p.pairs.len(), 49);
        assert_eq!(p.needed, (1..=50).collect::<Vec<_>>());
        assert_eq!(
            p.pairs[48],
            Pair {
                frame: 49,
                from: 44,
                to: 50
            }
        );
    }

    #[test]
    fn stop_is_exclusive_and_clamped() {
        let p = plan(100, 5, 25, 10, 10).unwrap();
        assert_eq!(p.pairs.iter().map(|p| p.frame).collect::<Vec<_>>(), [5, 15]);
        assert_eq!(plan(100, 1, 1000, 50, 10).unwrap().pairs.len(), 2);
    }

    #[test]
    fn too_short_and_empty_ranges_are_errors() {
        assert_eq!(
            plan(10, 1, -1, 10, 10),
            Err(PlanError::TooShort { needed: 11 })
        );
        assert!(matches!(
            plan(100, 50, 40, 10, 10),
            Err(PlanError::Empty(_))
        ));
        assert!(matches!(
            plan(100, 100, -1, 10, 10),
            Err(PlanError::Empty(_))
        ));
    }
}
