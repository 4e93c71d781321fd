//! Requests in flight to every archive host together, within the share of the grid's
//! archive budget this process holds: the lease (the filter's, on beanstalkd) adds a
//! token when requests wait, retires one it should give back, and sheds it once a
//! request has ended, so what the process has in flight never outnumbers what it holds.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use super::lock;

/// What every host's requests share.
#[derive(Default)]
pub(super) struct Total {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    in_flight: usize,
    /// Requests waiting for room.
    waiting: usize,
    /// The grid's tokens held, when the grid has a budget.
    held: Option<usize>,
    /// Tokens to give back as soon as requests in flight leave them unused.
    retiring: usize,
}

impl State {
    fn room(&self) -> bool {
        self.held
            .is_none_or(|held| self.in_flight < held.saturating_sub(self.retiring))
    }
}

impl Total {
    /// Takes room for one request, waiting until `until` at most.
    pub(super) fn take(&self, until: Instant) -> bool {
        let mut state = lock(&self.state);
        state.waiting += 1;
        let granted = loop {
            if state.room() {
                state.in_flight += 1;
                break true;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break false;
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        };
        state.waiting -= 1;
        granted
    }

    /// A request ended.
    pub(super) fn give_back(&self) {
        lock(&self.state).in_flight -= 1;
        self.changed.notify_all();
    }

    /// Turns the grid's budget on (no token held yet) and gives the lease its handle.
    pub(super) fn share(self: &Arc<Self>) -> GridShare {
        lock(&self.state).held.get_or_insert(0);
        GridShare {
            total: Arc::clone(self),
        }
    }
}

/// The lease's handle on this process's share of the grid's archive budget.
#[derive(Clone)]
pub struct GridShare {
    total: Arc<Total>,
}

impl std::fmt::Debug for GridShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GridShare")
            .field("held", &self.held())
            .field("wanted", &self.wanted())
            .finish()
    }
}

impl GridShare {
    /// Tokens held.
    pub fn held(&self) -> usize {
        lock(&self.total.state).held.unwrap_or(0)
    }

    /// Tokens this process could use now: requests in flight and waiting for room, and
    /// those retiring (still held until their requests end).
    pub fn wanted(&self) -> usize {
        let state = lock(&self.total.state);
        state.in_flight + state.waiting
    }

    /// One more token is held.
    pub fn add(&self) {
        if let Some(held) = lock(&self.total.state).held.as_mut() {
            *held += 1;
        }
        self.total.changed.notify_all();
    }

    /// Asks for one token to be given back (its turn is over, or it is not needed): no
    /// new request takes its room, and [`GridShare::shed`] gives it up once unused.
    pub fn retire(&self) {
        let mut state = lock(&self.total.state);
        if state.retiring < state.held.unwrap_or(0) {
            state.retiring += 1;
        }
    }

    /// Gives up a retiring token if no request uses it now; true when it did (the lease
    /// then returns it to the server).
    pub fn shed(&self) -> bool {
        let mut state = lock(&self.total.state);
        let held = state.held.unwrap_or(0);
        if state.retiring == 0 || state.in_flight >= held {
            return false;
        }
        state.retiring -= 1;
        state.held = Some(held - 1);
        true
    }

    /// Tokens retiring.
    pub fn retiring(&self) -> usize {
        lock(&self.total.state).retiring
    }

    /// Every token is gone (the lease lost its connection: the server took them back).
    pub fn lost_all(&self) {
        let mut state = lock(&self.total.state);
        state.held = Some(0);
        state.retiring = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_retired_token_is_shed_only_once_its_request_ended() {
        let total = Arc::new(Total::default());
        let share = total.share();
        share.add();
        share.add();
        let soon = Instant::now() + Duration::from_secs(5);
        assert!(
            total.take(soon) && total.take(soon),
            "two tokens, two requests"
        );
        share.retire();
        assert!(!share.shed(), "both in use");
        total.give_back();
        assert!(
            !total.take(Instant::now() + Duration::from_millis(20)),
            "a retiring token takes no new request"
        );
        assert!(share.shed());
        assert_eq!((share.held(), share.retiring()), (1, 0));
    }
}
