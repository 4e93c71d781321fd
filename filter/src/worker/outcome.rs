//! A job's outcome as a value, and the one function that decides it: success waits
//! (delayed) for the sink to commit and delete it, a transient failure is released with
//! backoff (until the attempts run out), a permanent failure buried.

use std::time::Duration;

use common::wire::WireError;

use crate::AnalysisError;

/// A reserved job: what finishing it needs besides the job itself.
#[derive(Debug, Clone, Copy)]
pub struct Lease {
    /// The job's id.
    pub id: u64,
    /// Its priority, kept when it is released or buried.
    pub priority: u32,
    /// Which reservation of it this is (1 for the first).
    pub attempt: u32,
}

/// Why a job failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The body is not a job this build can read.
    #[error("malformed job: {0}")]
    Malformed(#[from] WireError),
    /// The analysis failed.
    #[error(transparent)]
    Analysis(#[from] AnalysisError),
    /// The result is larger than the server's max job size, even compressed.
    #[error("the result ({size} bytes) exceeds beanstalkd's max job size; restart it with a larger -z (it is spooled in {spool})")]
    ResultTooBig {
        /// Its size.
        size: usize,
        /// Where it was kept.
        spool: String,
    },
    /// The job was reserved more often than the attempts allow without ever finishing:
    /// the filters analysing it died (or lost it) each time.
    #[error("the job was reserved {reserves} times without finishing: the filter died or lost it while analysing it each time; not analysed again")]
    Died {
        /// How often it was reserved, this time included.
        reserves: u32,
    },
    /// The grid has a key and the job is unsigned, or signed with another key, or forged.
    #[error("job refused: {0}")]
    Signature(#[from] common::sign::SignError),
    /// Anything else (a crashed analysis thread, an unwritable spool).
    #[error("internal error: {0}")]
    Internal(String),
}

impl JobError {
    fn is_transient(&self) -> bool {
        match self {
            JobError::Analysis(e) => e.is_transient(),
            JobError::Internal(_) => true,
            JobError::Malformed(_)
            | JobError::ResultTooBig { .. }
            | JobError::Died { .. }
            | JobError::Signature(_) => false,
        }
    }
}

/// What to do with a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Its result is in the results tube: release it with a long delay, so it stays
    /// visible (to the queuer, to `gridctl`) until the sink commits the result and
    /// deletes it, and comes back by itself if the result is ever lost.
    AwaitCommit {
        /// How long the job waits for the commit before it is analysed again.
        delay: Duration,
    },
    /// Release it to run again after `delay`.
    Release {
        /// Backoff before the next attempt.
        delay: Duration,
    },
    /// Bury it: retrying cannot help, or the attempts ran out.
    Bury,
}

/// The backoff policy, and how long a finished job waits for its commit.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Attempts before a transient failure is buried.
    pub max_attempts: u32,
    /// Delay after the first failure; doubles each attempt, up to an hour.
    pub base: Duration,
    /// How long a delivered job waits (delayed) for the sink to commit and delete it.
    pub await_commit: Duration,
}

/// Decides what happens to job `id` after `attempt` (1-based) ended with `result`.
pub fn decide(result: &Result<(), JobError>, attempt: u32, id: u64, retry: &Retry) -> Outcome {
    match result {
        Ok(()) => Outcome::AwaitCommit {
            delay: retry.await_commit,
        },
        Err(e) if e.is_transient() && attempt < retry.max_attempts => Outcome::Release {
            delay: backoff(retry.base, attempt, id),
        },
        Err(_) => Outcome::Bury,
    }
}

/// `base * 2^(attempt-1)`, capped at an hour, with ±25% jitter so that jobs failing
/// together (a server down) do not come back together.
fn backoff(base: Duration, attempt: u32, id: u64) -> Duration {
    let exp = base.saturating_mul(1 << attempt.saturating_sub(1).min(16));
    let capped = exp.min(Duration::from_secs(3600));
    let seed = id.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ u64::from(attempt).rotate_left(17)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as u64);
    let jitter = (seed % 501) as f64 / 1000.0 + 0.75; // 0.75 ..= 1.25
    capped.mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::ReadError;

    const RETRY: Retry = Retry {
        max_attempts: 3,
        base: Duration::from_secs(10),
        await_commit: Duration::from_secs(86_400),
    };

    fn unreachable() -> JobError {
        JobError::Analysis(AnalysisError::Read(ReadError::Unreachable {
            url: "http://x/a.mov".into(),
            detail: "refused".into(),
        }))
    }

    #[test]
    fn success_waits_for_the_commit() {
        assert_eq!(
            decide(&Ok(()), 1, 1, &RETRY),
            Outcome::AwaitCommit {
                delay: Duration::from_secs(86_400)
            }
        );
    }

    #[test]
    fn transient_failures_back_off_until_the_attempts_run_out() {
        let delays: Vec<Duration> = (1..3)
            .map(|a| match decide(&Err(unreachable()), a, 9, &RETRY) {
                Outcome::Release { delay } => delay,
                other => panic!("attempt {a}: {other:?}"),
            })
            .collect();
        assert!(
            delays[0] >= Duration::from_millis(7500) && delays[0] <= Duration::from_millis(12500)
        );
        assert!(delays[1] >= Duration::from_secs(15) && delays[1] <= Duration::from_secs(25));
        assert_eq!(decide(&Err(unreachable()), 3, 9, &RETRY), Outcome::Bury);
    }

    #[test]
    fn permanent_failures_are_buried_at_once() {
        let corrupt = JobError::Analysis(AnalysisError::Read(ReadError::NotQuickTime {
            what: "x".into(),
        }));
        assert_eq!(decide(&Err(corrupt), 1, 1, &RETRY), Outcome::Bury);
        let malformed = JobError::Malformed(WireError::MissingVersion { kind: "job" });
        assert_eq!(decide(&Err(malformed), 1, 1, &RETRY), Outcome::Bury);
        let http404 = JobError::Analysis(AnalysisError::Read(ReadError::HttpStatus {
            url: "u".into(),
            status: 404,
        }));
        assert_eq!(decide(&Err(http404), 1, 1, &RETRY), Outcome::Bury);
        let http503 = JobError::Analysis(AnalysisError::Read(ReadError::HttpStatus {
            url: "u".into(),
            status: 503,
        }));
        assert!(matches!(
            decide(&Err(http503), 1, 1, &RETRY),
            Outcome::Release { .. }
        ));
    }

    #[test]
    fn backoff_is_capped_at_an_hour() {
        let d = backoff(Duration::from_secs(600), 30, 1);
        assert!(d <= Duration::from_secs(4500), "{d:?}");
    }
}
