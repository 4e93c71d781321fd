//! Pushing the checkout's commits to a remote (`--push`), retried with backoff after a
//! failure and never fatal: the commits stay in the checkout until a push gets through.
//! A remote that moved on (people edit CamHD_motion_metadata too) is merged first (see
//! `Checkout::push`); files edited there that the grid wrote keep the remote's version.
//! What is not pushed yet, and the last failure, are in the metrics and the log.

use std::time::{Duration, Instant};

use common::backoff::Backoff;

use crate::checkout::Checkout;
use crate::metrics;

/// Pushes commits to the remote, retrying a failed push with backoff.
#[derive(Debug)]
pub struct Pusher {
    remote: Option<String>,
    pending: bool,
    /// HEAD when a push last got through.
    pushed: Option<String>,
    next_try: Instant,
    backoff: Backoff,
    /// The last push's error, while it stands.
    failure: Option<String>,
}

impl Pusher {
    /// A pusher to `remote`, or one that never pushes. With a remote, the first push is
    /// due at once: a sink stopped before its last push left commits behind.
    pub fn new(remote: Option<String>) -> Pusher {
        Pusher {
            pending: remote.is_some(),
            remote,
            pushed: None,
            next_try: Instant::now(),
            backoff: Backoff::new(Duration::from_secs(5), Duration::from_secs(600)),
            failure: None,
        }
    }

    /// Notes that a commit waits to be pushed.
    pub fn committed(&mut self) {
        self.pending = self.remote.is_some();
    }

    /// True while commits wait to be pushed.
    pub fn pending(&self) -> bool {
        self.pending
    }

    /// True when [`Pusher::push`] would try now.
    pub fn due(&self, now_anyway: bool) -> bool {
        self.remote.is_some() && self.pending && (now_anyway || Instant::now() >= self.next_try)
    }

    /// The last push's error, while commits wait.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// Pushes if a commit is waiting and its backoff has passed (or `now_anyway`); the
    /// paths whose remote version was kept over the grid's (edited there), if any.
    pub fn push(&mut self, checkout: &Checkout, now_anyway: bool) -> Vec<String> {
        let Some(remote) = self.remote.clone() else {
            return Vec::new();
        };
        if !self.due(now_anyway) {
            return Vec::new();
        }
        let outcome = checkout.push(&remote);
        let kept = match outcome {
            Ok(kept) => {
                tracing::info!(remote = %remote, "pushed");
                self.pending = false;
                self.failure = None;
                self.pushed = checkout.head().ok();
                self.backoff.reset();
                kept
            }
            Err(e) => {
                let delay = self.backoff.next_delay();
                let error = format!("{e:#}");
                tracing::warn!(remote = %remote, retry_in = delay.as_secs(), error = %error, "push failed; will retry");
                metrics::PUSH_FAILURES.inc();
                metrics::LAST_PUSH_FAILURE.set(chrono::Utc::now().timestamp() as f64);
                self.failure = Some(error);
                self.next_try = Instant::now() + delay;
                Vec::new()
            }
        };
        metrics::UNPUSHED.set(self.unpushed(checkout).0 as f64);
        kept
    }

    /// How many commits the remote does not have yet (as far as the checkout knows),
    /// and the newest of them as `<short id> <subject>`, oldest first.
    pub fn unpushed(&self, checkout: &Checkout) -> (usize, Vec<String>) {
        match (&self.remote, self.pending) {
            (Some(remote), true) => checkout.commits_since(self.pushed.as_deref(), remote),
            _ => (0, Vec::new()),
        }
    }
}
