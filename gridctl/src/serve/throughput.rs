//! The jobs the grid finished over time, for the dashboard's rate, ETA and chart: one
//! [`Sample`] every two seconds, an hour of them kept, and the count of jobs finished
//! carried across the jobs tube vanishing and the server restarting ([`Finished`]).

use std::time::Duration;

/// How often the throughput is sampled, and for how long samples are kept (an hour).
pub const SAMPLE_EVERY: Duration = Duration::from_secs(2);
pub const SAMPLES_KEPT: usize = 1800;

/// How often (in samples) the throughput history is written (and on exit).
pub const HISTORY_EVERY: usize = 30;

/// One throughput sample: when, and how many jobs had finished (been deleted) by then
/// since `gridctl serve` started watching, plus those the jobs tube counted then.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Unix seconds.
    pub at: i64,
    /// Jobs finished.
    pub finished: u64,
}

/// The jobs tube's deletes since the server started, counted across the tube vanishing:
/// beanstalkd forgets a tube (and its `cmd-delete` count) once it is empty and unwatched,
/// as at the end of a run. A server that restarted starts the count anew, as `gridctl
/// status` does (the one figure both show is these less the jobs discarded).
#[derive(Debug, Default)]
pub struct Finished {
    pub(super) total: u64,
    pub(super) last_seen: u64,
    /// When the server counted for started (unix seconds; 0: none yet).
    pub(super) server_started: i64,
}

/// Seconds two readings of a server's start may differ by and be the same start
/// (`uptime` is whole seconds, read a moment apart).
const SAME_START: i64 = 5;

impl Finished {
    fn other_server(&self, server_started: i64) -> bool {
        (self.server_started - server_started).abs() > SAME_START
    }

    /// What the count would be with `deleted` seen now, without taking it: requests read,
    /// only the sampler (one task, in order) takes, so racing requests cannot be
    /// mistaken for a tube that vanished.
    pub fn peek(&self, deleted: u64, server_started: i64) -> u64 {
        if self.other_server(server_started) {
            return deleted;
        }
        self.total + deleted.saturating_sub(self.last_seen)
    }

    /// Takes the tube's `cmd-delete` now (0 for a tube that is gone) on the server that
    /// started at `server_started`.
    pub fn saw(&mut self, deleted: u64, server_started: i64) -> u64 {
        if self.other_server(server_started) {
            *self = Finished {
                server_started,
                ..Finished::default()
            };
        }
        self.total += if deleted >= self.last_seen {
            deleted - self.last_seen
        } else {
            deleted
        };
        self.last_seen = deleted;
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_jobs_are_counted_across_the_tube_vanishing() {
        let mut f = Finished::default();
        let start = 1_700_000_000;
        assert_eq!(f.saw(3, start), 3);
        assert_eq!(
            f.saw(5, start + 2),
            5,
            "the same start, read a moment later"
        );
        assert_eq!(f.saw(0, start), 5, "the tube is gone");
        assert_eq!(f.saw(2, start), 7, "a new tube counts from zero");
        assert_eq!(f.peek(4, start), 9, "a request sees what is new");
        assert_eq!(f.peek(1, start), 7, "and never counts a stale read twice");
        assert_eq!(f.saw(4, start), 9);
    }

    #[test]
    fn a_restarted_server_starts_the_count_anew_as_status_does() {
        // The dashboard said "Finished 88" where status said 45 (issue 35).
        let mut f = Finished::default();
        let (before, after) = (1_700_000_000, 1_700_090_000);
        assert_eq!(f.saw(40, before), 40);
        assert_eq!(f.peek(45, after), 45);
        assert_eq!(f.saw(45, after), 45);
        assert_eq!(f.saw(46, after), 46);
    }
}
