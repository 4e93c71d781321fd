//! The wall-time budget of one video's analysis (`--video-deadline`): fetching, decoding
//! and estimating together. Every HTTP request's own allowance is cut to what is left of
//! it, and the analysis checks it between blocks, so no server, however patient its lies,
//! holds a filter's slot past it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ReadError;

/// A video's deadline: when its analysis started and how long it may take. Clones share
/// the budget, so an automatic one fitted to the video once its size is known holds for
/// the source already opened too.
#[derive(Debug, Clone)]
pub struct Deadline {
    start: Instant,
    budget_ms: Arc<AtomicU64>,
    auto: bool,
}

impl PartialEq for Deadline {
    fn eq(&self, other: &Self) -> bool {
        self.start == other.start && self.budget() == other.budget() && self.auto == other.auto
    }
}

impl Deadline {
    /// What an automatic deadline allows before the video's size is known (its index
    /// read): an hour, which also caps the frames of a lazycache video without a
    /// `FileSize` (see [`Deadline::frames_that_fit`]).
    pub const OPENING: Duration = Duration::from_secs(3600);

    /// A deadline of `budget` from now (`--video-deadline SECS`).
    pub fn after(budget: Duration) -> Deadline {
        Deadline {
            start: Instant::now(),
            budget_ms: Arc::new(AtomicU64::new(budget.as_millis() as u64)),
            auto: false,
        }
    }

    /// A deadline derived from the video: [`Deadline::OPENING`] until [`Deadline::fit`]
    /// sets it from the video's size.
    pub fn auto() -> Deadline {
        Deadline {
            auto: true,
            ..Deadline::after(Self::OPENING)
        }
    }

    /// A deadline of `budget` from now, or an automatic one without.
    pub fn starting_now(budget: Option<Duration>) -> Deadline {
        budget.map_or_else(Deadline::auto, Deadline::after)
    }

    /// Sets the budget of an automatic deadline, counted from its start.
    pub fn fit(&self, budget: Duration) {
        if self.auto {
            self.budget_ms
                .store(budget.as_millis() as u64, Ordering::Relaxed);
        }
    }

    /// True for a deadline derived from the video (no `--video-deadline`).
    pub fn is_auto(&self) -> bool {
        self.auto
    }

    /// The whole budget.
    pub fn budget(&self) -> Duration {
        Duration::from_millis(self.budget_ms.load(Ordering::Relaxed))
    }

    /// What is left of it (zero once it has passed).
    pub fn left(&self) -> Duration {
        (self.start + self.budget()).saturating_duration_since(Instant::now())
    }

    /// True once it has passed.
    pub fn passed(&self) -> bool {
        self.left().is_zero()
    }

    /// The error for `what` having run past it.
    pub fn exceeded(&self, what: &str) -> ReadError {
        ReadError::DeadlineExceeded {
            what: what.into(),
            seconds: self.budget().as_secs_f64().ceil() as u64,
        }
    }

    /// An error if it has passed.
    pub fn check(&self, what: &str) -> Result<(), ReadError> {
        if self.passed() {
            Err(self.exceeded(what))
        } else {
            Ok(())
        }
    }

    /// The most frames a source that cannot say its size may claim: as many as could be
    /// fetched within the budget at [`FRAMES_PER_SECOND`], the fastest a frame server
    /// plausibly delivers.
    pub fn frames_that_fit(&self) -> u64 {
        self.budget().as_secs().saturating_mul(FRAMES_PER_SECOND)
    }
}

/// The most frames per second a frame server (lazycache decodes, scales and PNG-encodes
/// each) is assumed to deliver, for [`Deadline::frames_that_fit`].
pub const FRAMES_PER_SECOND: u64 = 100;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_auto_deadline_is_fitted_once_for_every_clone() {
        let d = Deadline::auto();
        let held_by_source = d.clone();
        assert_eq!(held_by_source.budget(), Deadline::OPENING);
        d.fit(Duration::from_secs(90));
        assert_eq!(held_by_source.budget(), Duration::from_secs(90));
        let fixed = Deadline::after(Duration::from_secs(5));
        fixed.fit(Duration::from_secs(500));
        assert_eq!(
            fixed.budget(),
            Duration::from_secs(5),
            "a set deadline stays"
        );
        assert_eq!(fixed.frames_that_fit(), 500);
    }

    #[test]
    fn a_passed_deadline_names_its_budget() {
        let d = Deadline::after(Duration::ZERO);
        let e = d.check("v.mov").unwrap_err();
        assert!(e.to_string().contains("0 s"), "{e}");
        assert!(e.is_transient());
    }
}
