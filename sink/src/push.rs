//! Pushing the checkout's commits to a remote (`--push`), retried with backoff after a
//! failure and never fatal: the commits stay in the checkout until a push gets through.

use std::time::{Duration, Instant};

use common::backoff::Backoff;

use crate::checkout::Checkout;

/// Pushes commits to the remote, retrying a failed push with backoff.
#[derive(Debug)]
pub struct Pusher {
    remote: Option<String>,
    pending: bool,
    next_try: Instant,
    backoff: Backoff,
}

impl Pusher {
    /// A pusher to `remote`, or one that never pushes.
    pub fn new(remote: Option<String>) -> Pusher {
        Pusher {
            remote,
            pending: false,
            next_try: Instant::now(),
            backoff: Backoff::new(Duration::from_secs(5), Duration::from_secs(600)),
        }
    }

    /// Notes that a commit waits to be pushed.
    pub fn committed(&mut self) {
        self.pending = true;
    }

    /// Pushes if a commit is waiting and its backoff has passed (or `now_anyway`).
    pub fn push(&mut self, checkout: &Checkout, now_anyway: bool) {
        let Some(remote) = &self.remote else { return };
        if !self.pending || (!now_anyway && Instant::now() < self.next_try) {
            return;
        }
        match checkout.push(remote) {
            Ok(()) => {
                tracing::info!(remote = %remote, "pushed");
                self.pending = false;
                self.backoff.reset();
            }
            Err(e) => {
                let delay = self.backoff.next_delay();
                tracing::warn!(remote = %remote, retry_in = delay.as_secs(), error = %format!("{e:#}"), "push failed; will retry");
                self.next_try = Instant::now() + delay;
            }
        }
    }
}
