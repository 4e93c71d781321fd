//! One pool of connections and one budget of requests in flight per archive host, shared
//! by every video one process reads at once: the grid's filters all read OOI's one
//! server, and each request holds one of its workers. The budget starts at its cap and
//! follows the server (AIMD): a refusal (503, 429, a refused or reset connection) halves
//! it and pauses the host for its `Retry-After` (bounded) or a backoff; clean rounds (as
//! many successes as the budget) add one back, twice as many rounds per step after each
//! decrease. A grid-wide budget caps every host's requests together further (`share`).

#[cfg(feature = "lease")]
pub mod lease;
mod share;

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::reach::{Filtered, Reach};
use crate::tls::ArchiveTls;
pub use share::GridShare;
use share::Total;

/// The longest a `Retry-After` is honoured for: a server asking for longer is asked again
/// then (a video's deadline still bounds the whole).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The pause after a refusal that names none: doubling from this with each refusal in a
/// row, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// The most clean rounds one more request in flight waits for, after refusals.
const MAX_ROUNDS_PER_STEP: usize = 16;
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// The hosts one process reads, each with its budget; one pool of connections for all.
pub struct Hosts {
    /// Requests in flight to one host at most (`--http-connections`).
    cap: usize,
    /// The pool of connections, one per set of reachable sources (a process has one).
    agents: Mutex<Vec<(Reach, ureq::Agent)>>,
    /// The HTTP/2 connections, made on first use.
    h2: std::sync::OnceLock<Result<Arc<crate::h2::H2>, String>>,
    /// Whom `https://` hosts must prove themselves to, over either protocol.
    tls: ArchiveTls,
    budgets: Mutex<HashMap<String, Arc<Budget>>>,
    /// Requests in flight to every host together, all budgets' permits counted.
    total: Arc<Total>,
}

impl std::fmt::Debug for Hosts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hosts").field("cap", &self.cap).finish()
    }
}

impl Hosts {
    /// Hosts whose budgets start at, and never exceed, `cap` requests in flight each.
    pub fn new(cap: usize) -> Hosts {
        Hosts {
            cap: cap.max(1),
            agents: Mutex::default(),
            h2: std::sync::OnceLock::new(),
            tls: ArchiveTls::public(),
            budgets: Mutex::default(),
            total: Arc::default(),
        }
    }

    /// These hosts, trusting the CAs `tls` trusts instead of the public web's (set
    /// before the first request: connections made since keep what they were made with).
    pub fn trusting(mut self, tls: ArchiveTls) -> Hosts {
        self.tls = tls;
        self
    }

    /// Whom `https://` hosts must prove themselves to.
    pub fn tls(&self) -> &ArchiveTls {
        &self.tls
    }

    /// The most requests in flight to one host.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// From now on every host's requests together stay within the share of the grid's
    /// archive budget this process holds (none until its lease takes tokens): the
    /// handle the lease keeps that share with.
    pub fn share_grid_budget(&self) -> GridShare {
        self.total.share()
    }

    /// The pool of connections for requests within `reach`: idle connections are kept
    /// up to the budget per host, so open ones never outnumber it for long.
    pub fn agent(&self, reach: &Reach) -> ureq::Agent {
        let mut agents = lock(&self.agents);
        if let Some((_, agent)) = agents.iter().find(|(r, _)| r == reach) {
            return agent.clone();
        }
        let mut builder = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(15))
            .max_idle_connections_per_host(self.cap)
            .max_idle_connections(self.cap * 4)
            .redirects(0)
            .tls_config(Arc::clone(&self.tls.http1));
        if reach.filters_hosts() {
            builder = builder.resolver(Filtered {
                exempt: reach.exempt_addresses(),
            });
        }
        let agent = builder.build();
        agents.push((reach.clone(), agent.clone()));
        agent
    }

    /// The process's HTTP/2 client (one connection per host), for sources within `reach`.
    pub fn h2(&self, reach: &Reach) -> Result<Arc<crate::h2::H2>, String> {
        self.h2
            .get_or_init(|| {
                crate::h2::H2::new(reach, Arc::clone(&self.tls.http2))
                    .map(Arc::new)
                    .map_err(|e| format!("cannot start the HTTP/2 client: {e}"))
            })
            .clone()
    }

    /// The budget of the host of `origin` (`scheme://host:port`).
    pub fn budget(&self, origin: &str) -> Arc<Budget> {
        let mut budgets = lock(&self.budgets);
        Arc::clone(budgets.entry(origin.to_owned()).or_insert_with(|| {
            Arc::new(Budget {
                origin: origin.to_owned(),
                cap: self.cap,
                state: Mutex::new(State::new(self.cap)),
                changed: Condvar::new(),
                total: Arc::clone(&self.total),
            })
        }))
    }

    /// What each host's budget is now, for logs and status: origin, limit, in flight,
    /// refusals seen.
    pub fn snapshot(&self) -> Vec<BudgetNow> {
        let budgets = lock(&self.budgets);
        let mut out: Vec<BudgetNow> = budgets.values().map(|b| b.now()).collect();
        out.sort_by(|a, b| a.origin.cmp(&b.origin));
        out
    }
}

/// One host's budget as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetNow {
    /// `scheme://host:port`.
    pub origin: String,
    /// Requests allowed in flight now.
    pub limit: usize,
    /// Requests in flight.
    pub in_flight: usize,
    /// Refusals seen so far (503, 429, refused or reset connections).
    pub refusals: u64,
}

/// One host's budget of requests in flight.
pub struct Budget {
    origin: String,
    cap: usize,
    state: Mutex<State>,
    changed: Condvar,
    total: Arc<Total>,
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget").field("now", &self.now()).finish()
    }
}

struct State {
    /// Requests allowed in flight: between 1 and the cap.
    limit: f64,
    in_flight: usize,
    /// Bumped by each decrease: a refusal of a request sent before it does not halve
    /// the budget again (one decrease per round, as TCP does).
    epoch: u64,
    /// Successes since the last change.
    clean: usize,
    /// Clean rounds that add one request: doubled by every decrease (up to
    /// [`MAX_ROUNDS_PER_STEP`]), so a host that refused is probed for more less and less
    /// often (each probe past its limit costs a refusal and a pause).
    rounds_per_step: usize,
    /// No request starts before then.
    paused_until: Option<Instant>,
    /// Refusals in a row, for the backoff when a refusal names no pause.
    in_a_row: u32,
    refusals: u64,
    /// Answers that were no refusal, ever.
    answered: u64,
}

impl State {
    fn new(cap: usize) -> State {
        State {
            limit: cap as f64,
            in_flight: 0,
            epoch: 0,
            clean: 0,
            rounds_per_step: 1,
            paused_until: None,
            in_a_row: 0,
            refusals: 0,
            answered: 0,
        }
    }
}

/// The right to have one request in flight to a host; given back on drop.
pub struct Permit {
    budget: Arc<Budget>,
    epoch: u64,
    succeeded: bool,
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit")
            .field("origin", &self.budget.origin)
            .finish()
    }
}

/// Why no request could start before its time ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoPermit {
    /// The host's own budget was in use, or the host paused (a refusal's `Retry-After`).
    Host,
    /// This process held no free token of the grid's archive budget.
    GridToken,
}

impl Budget {
    /// Waits until a request may start (within this host's budget, past any pause, and
    /// within the grid's allowance) and gives its permit; once `until` passes, which of
    /// them it was still waiting for.
    pub fn acquire(self: &Arc<Self>, until: Instant) -> Result<Permit, NoPermit> {
        let epoch = {
            let mut state = lock(&self.state);
            loop {
                let now = Instant::now();
                if now >= until {
                    return Err(NoPermit::Host);
                }
                let paused = state.paused_until.filter(|&t| t > now);
                let room = (state.in_flight as f64) < state.limit.floor().max(1.0);
                if paused.is_none() && room {
                    state.in_flight += 1;
                    break state.epoch;
                }
                state = self.wait(state, paused.unwrap_or(until), until);
            }
        };
        // The grid's allowance, waited for without holding this host's state.
        if self.total.take(until) {
            return Ok(Permit {
                budget: Arc::clone(self),
                epoch,
                succeeded: false,
            });
        }
        lock(&self.state).in_flight -= 1;
        self.changed.notify_all();
        Err(NoPermit::GridToken)
    }

    fn wait<'a>(
        &self,
        state: std::sync::MutexGuard<'a, State>,
        wake: Instant,
        until: Instant,
    ) -> std::sync::MutexGuard<'a, State> {
        let left = wake.min(until).saturating_duration_since(Instant::now());
        self.changed
            .wait_timeout(state, left.max(Duration::from_millis(1)))
            .unwrap_or_else(|p| p.into_inner())
            .0
    }

    fn now(&self) -> BudgetNow {
        let state = lock(&self.state);
        BudgetNow {
            origin: self.origin.clone(),
            limit: state.limit.floor() as usize,
            in_flight: state.in_flight,
            refusals: state.refusals,
        }
    }
}

impl Permit {
    /// The request got an answer that was no refusal (the permit is still held while
    /// its body is read): a clean round (as many successes as the budget allows) adds
    /// one request to the budget, up to its cap.
    pub fn succeeded(&mut self) {
        if std::mem::replace(&mut self.succeeded, true) {
            return;
        }
        let budget = Arc::clone(&self.budget);
        let mut state = lock(&budget.state);
        state.answered += 1;
        state.in_a_row = 0;
        state.clean += 1;
        let round = state.limit.floor() as usize * state.rounds_per_step;
        if state.clean >= round && state.limit < budget.cap as f64 {
            state.limit = (state.limit + 1.0).min(budget.cap as f64);
            state.clean = 0;
            tracing::debug!(origin = %budget.origin, limit = state.limit, "more requests in flight");
        }
    }

    /// True when the host has answered a request of this process before: a connection
    /// it refuses or resets now is a busy server's, not a wrong address's.
    pub fn host_answered_before(&self) -> bool {
        lock(&self.budget.state).answered > 0
    }

    /// The host refused the request: the budget halves (once per round), the host is
    /// paused for `retry_after` (at most [`MAX_RETRY_AFTER`]) or a backoff; gives how
    /// long the request should wait before it is tried again.
    pub fn refused(self, retry_after: Option<Duration>) -> Duration {
        let budget = Arc::clone(&self.budget);
        let mut state = lock(&budget.state);
        state.refusals += 1;
        if self.epoch == state.epoch {
            state.limit = (state.limit / 2.0).max(1.0);
            state.epoch += 1;
            state.clean = 0;
            state.rounds_per_step = (state.rounds_per_step * 2).min(MAX_ROUNDS_PER_STEP);
            tracing::info!(origin = %budget.origin, limit = state.limit.floor(), "the archive refused a request; fewer in flight");
        }
        let pause = match retry_after {
            Some(after) => after.min(MAX_RETRY_AFTER),
            None => {
                let doubled = FIRST_BACKOFF.saturating_mul(1 << state.in_a_row.min(8));
                state.in_a_row += 1;
                doubled.min(MAX_BACKOFF)
            }
        };
        let until = Instant::now() + pause;
        state.paused_until = Some(state.paused_until.map_or(until, |t| t.max(until)));
        pause
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        {
            let mut state = lock(&self.budget.state);
            state.in_flight = state.in_flight.saturating_sub(1);
        }
        self.budget.total.give_back();
        self.budget.changed.notify_all();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[test]
    fn no_more_requests_than_the_cap_are_in_flight_to_one_host() {
        let hosts = Hosts::new(3);
        let a = hosts.budget("http://a:80");
        let permits: Vec<Permit> = (0..3).map(|_| a.acquire(soon()).unwrap()).collect();
        assert_eq!(
            a.acquire(Instant::now() + Duration::from_millis(50)).err(),
            Some(NoPermit::Host),
            "a fourth waits"
        );
        assert!(
            hosts.budget("http://b:80").acquire(soon()).is_ok(),
            "another host has its own"
        );
        drop(permits);
        assert!(a.acquire(soon()).is_ok());
    }

    #[test]
    fn a_refusal_halves_the_budget_once_per_round_and_clean_rounds_win_it_back() {
        let hosts = Hosts::new(16);
        let a = hosts.budget("http://a:80");
        // Sixteen in flight, all refused: the budget halves once, not sixteen times.
        let permits: Vec<Permit> = (0..16).map(|_| a.acquire(soon()).unwrap()).collect();
        for p in permits {
            p.refused(Some(Duration::ZERO));
        }
        assert_eq!(a.now().limit, 8);
        assert_eq!(a.now().refusals, 16);
        // A refusal in the next round halves it again.
        a.acquire(soon()).unwrap().refused(Some(Duration::ZERO));
        assert_eq!(a.now().limit, 4);
        // Clean rounds win it back, more slowly after each decrease: after two, four
        // rounds of four successes add one.
        for _ in 0..15 {
            a.acquire(soon()).unwrap().succeeded();
        }
        assert_eq!(a.now().limit, 4);
        assert!(a.acquire(soon()).unwrap().host_answered_before());
        a.acquire(soon()).unwrap().succeeded();
        assert_eq!(a.now().limit, 5);
    }

    #[test]
    fn a_retry_after_pauses_the_host_within_its_bound() {
        let hosts = Hosts::new(4);
        let a = hosts.budget("http://a:80");
        let wait = a
            .acquire(soon())
            .unwrap()
            .refused(Some(Duration::from_secs(3600)));
        assert_eq!(wait, MAX_RETRY_AFTER);
        assert!(
            a.acquire(Instant::now() + Duration::from_millis(50))
                .is_err(),
            "paused"
        );
        let b = hosts.budget("http://b:80");
        let backoff = b.acquire(soon()).unwrap().refused(None);
        assert_eq!(backoff, FIRST_BACKOFF);
    }

    #[test]
    fn the_grids_share_caps_every_host_together() {
        let hosts = Hosts::new(8);
        let share = hosts.share_grid_budget();
        for _ in 0..3 {
            share.add();
        }
        let (a, b) = (hosts.budget("http://a:80"), hosts.budget("http://b:80"));
        let held = [
            a.acquire(soon()).unwrap(),
            a.acquire(soon()).unwrap(),
            b.acquire(soon()).unwrap(),
        ];
        assert_eq!(
            b.acquire(Instant::now() + Duration::from_millis(50)).err(),
            Some(NoPermit::GridToken),
            "waiting for the grid's token, not the host"
        );
        assert_eq!(share.held(), 3);
        drop(held);
        assert!(b.acquire(soon()).is_ok());
    }
}
