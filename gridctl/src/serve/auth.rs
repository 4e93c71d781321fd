//! Who may press the buttons of `gridctl serve --allow-control`: whoever knows the
//! control token (a file, like the grid key). Logging in with it opens a session of its
//! own (a random id in an HttpOnly, SameSite=Strict cookie, 12 hours at most, ended by
//! logging out) with its own CSRF value for every control form. The token must hold 128
//! bits of guessing, so the right one always logs in, whatever others tried; wrong ones
//! make their client wait, doubling each time, and beyond a few a second from anywhere
//! are all answered "wait". Sessions and clients are kept in memory, bounded.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;

/// The session cookie's name.
pub const COOKIE: &str = "gridctl_session";

/// The shortest token accepted, and the least it must hold: a token of 16 × `a` is as
/// easy to guess as one character, `abcdefgh12345678` little harder. 128 bits, what
/// `head -c 24 /dev/urandom | base64` gives and more: no rate of guessing finds it, so a
/// right token is never held back by anyone's wrong ones.
const MIN_TOKEN_CHARS: usize = 20;
const MIN_DISTINCT_CHARS: usize = 12;
const MIN_TOKEN_BITS: f64 = 128.0;

/// Wrong tokens from everywhere together answered within a second, at most; more wait.
const FAILURES_PER_SECOND: usize = 10;

/// How long a session lasts, and how many are kept (the oldest go first).
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
const MAX_SESSIONS: usize = 64;

/// A client's wait after its first failed login, doubled after each further one, up to
/// the most; clients remembered at most (the oldest forgotten first).
const FIRST_WAIT: Duration = Duration::from_millis(250);
const MOST_WAIT: Duration = Duration::from_secs(60);
const MAX_CLIENTS: usize = 4096;

/// The control token, the sessions it opened and the clients that failed.
#[derive(Clone)]
pub struct Auth {
    token: Arc<str>,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    sessions: HashMap<String, Session>,
    failed: HashMap<IpAddr, Failed>,
    /// When the last wrong tokens came, from anyone (at most [`FAILURES_PER_SECOND`]).
    recent_failures: std::collections::VecDeque<Instant>,
}

/// An open session: its CSRF value and when it ends.
#[derive(Clone)]
pub struct Session {
    /// The value every control form of this session carries.
    pub csrf: String,
    ends: Instant,
}

struct Failed {
    wait: Duration,
    until: Instant,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth(..)")
    }
}

impl Auth {
    /// Reads the token from `path`: one line of at least 16 characters and 64 bits of
    /// guessing, in a file other users cannot read (refused otherwise, as the grid key is).
    pub fn load(path: &Path) -> anyhow::Result<Auth> {
        let make = format!(
            "make one with: umask 027; head -c 24 /dev/urandom | base64 >{p}; chgrp camhd-grid {p}",
            p = path.display()
        );
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            // A setting to fix, not a failure to retry: said once, with the fix (exit 2,
            // which systemd does not restart every 15 s).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(common::cli::usage(format!(
                    "the control token {} does not exist (GRIDCTL_TOKEN_FILE); {make}",
                    path.display()
                ))
                .into())
            }
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(common::cli::usage(format!(
                    "cannot read the control token {} (GRIDCTL_TOKEN_FILE): {e}; the dashboard runs as the service user: chgrp camhd-grid {p}; chmod 640 {p}",
                    path.display(),
                    p = path.display()
                ))
                .into())
            }
            Err(e) => {
                return Err(anyhow::Error::new(e)
                    .context(format!("reading the control token {}", path.display())))
            }
        };
        common::cli::private_file(path, "the control token")?;
        let token = text.trim();
        if let Some(why) = weak(token) {
            return Err(common::cli::usage(format!(
                "the control token in {} is {why}; make one with: head -c 24 /dev/urandom | base64 >{}",
                path.display(),
                path.display()
            ))
            .into());
        }
        Ok(Auth::new(token))
    }

    fn new(token: &str) -> Auth {
        Auth {
            token: Arc::from(token),
            state: Arc::new(Mutex::new(State::default())),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True when `given` is the token.
    pub fn is_token(&self, given: &str) -> bool {
        equal(given.trim().as_bytes(), self.token.as_bytes())
    }

    /// How long `client` must still wait before a wrong token of its is answered as
    /// wrong again, if at all: its own back-off, or everyone's wrong tokens of the last
    /// second past [`FAILURES_PER_SECOND`]. (The right token never waits.)
    pub fn must_wait(&self, client: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let state = self.state();
        let own = state
            .failed
            .get(&client)
            .and_then(|f| (f.until > now).then(|| f.until - now));
        let everyone = (state.recent_failures.len() >= FAILURES_PER_SECOND)
            .then(|| state.recent_failures.front())
            .flatten()
            .map(|&first| (first + Duration::from_secs(1)).saturating_duration_since(now))
            .filter(|left| !left.is_zero());
        own.max(everyone)
    }

    /// A failed login by `client`: its next one waits twice as long as the last.
    pub fn failed(&self, client: IpAddr) {
        let now = Instant::now();
        let mut state = self.state();
        while state
            .recent_failures
            .front()
            .is_some_and(|&t| now.duration_since(t) >= Duration::from_secs(1))
            || state.recent_failures.len() >= FAILURES_PER_SECOND
        {
            state.recent_failures.pop_front();
        }
        state.recent_failures.push_back(now);
        if !state.failed.contains_key(&client) && state.failed.len() >= MAX_CLIENTS {
            if let Some(oldest) = state
                .failed
                .iter()
                .min_by_key(|(_, f)| f.until)
                .map(|(ip, _)| *ip)
            {
                state.failed.remove(&oldest);
            }
        }
        let f = state.failed.entry(client).or_insert(Failed {
            wait: Duration::ZERO,
            until: now,
        });
        f.wait = (f.wait * 2).clamp(FIRST_WAIT, MOST_WAIT);
        f.until = now + f.wait;
    }

    /// A login with the token by `client`: a new session (its id and CSRF value random),
    /// and the client's failures forgotten.
    pub fn open(&self, client: IpAddr) -> anyhow::Result<(String, Session)> {
        let id = common::random::hex(32).context("making a session id")?;
        let session = Session {
            csrf: common::random::hex(32).context("making a CSRF value")?,
            ends: Instant::now() + SESSION_LIFETIME,
        };
        let mut state = self.state();
        state.failed.remove(&client);
        let now = Instant::now();
        state.sessions.retain(|_, s| s.ends > now);
        while state.sessions.len() >= MAX_SESSIONS {
            let Some(oldest) = state
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.ends)
                .map(|(id, _)| id.clone())
            else {
                break;
            };
            state.sessions.remove(&oldest);
        }
        state.sessions.insert(id.clone(), session.clone());
        Ok((id, session))
    }

    /// The open session `cookies` (a Cookie header) name, if any.
    pub fn session(&self, cookies: Option<&str>) -> Option<Session> {
        let id = session_id(cookies?)?;
        let state = self.state();
        // Every id is compared, so the time taken says nothing of which one was close.
        let mut found = None;
        for (known, s) in &state.sessions {
            if equal(known.as_bytes(), id.as_bytes()) && s.ends > Instant::now() {
                found = Some(s.clone());
            }
        }
        found
    }

    /// Ends the session `cookies` name.
    pub fn close(&self, cookies: Option<&str>) {
        if let Some(id) = cookies.and_then(session_id) {
            self.state().sessions.remove(id);
        }
    }
}

/// The session id in a Cookie header.
fn session_id(cookies: &str) -> Option<&str> {
    cookies.split(';').find_map(|kv| {
        kv.trim()
            .strip_prefix(COOKIE)
            .and_then(|v| v.strip_prefix('='))
    })
}

/// Why a token is too easy to guess, if it is: too short, too few different characters
/// for 128 bits, or made of runs (`abcd`, `1234`, `aaaa`) as typed tokens are.
fn weak(token: &str) -> Option<String> {
    let chars: Vec<char> = token.chars().collect();
    let distinct = chars.iter().collect::<std::collections::HashSet<_>>().len();
    let bits = chars.len() as f64 * (distinct.max(1) as f64).log2();
    // Neighbours one apart or equal: a run a person typed, not random characters.
    let in_runs = chars
        .windows(2)
        .filter(|w| (w[1] as i64 - w[0] as i64).abs() <= 1)
        .count();
    if chars.len() < MIN_TOKEN_CHARS {
        Some(format!("shorter than {MIN_TOKEN_CHARS} characters"))
    } else if distinct < MIN_DISTINCT_CHARS || bits < MIN_TOKEN_BITS {
        Some(format!(
            "too easy to guess ({distinct} different characters; at least {MIN_DISTINCT_CHARS} and {MIN_TOKEN_BITS} bits)"
        ))
    } else if in_runs * 4 > chars.len() {
        Some("too easy to guess (made of runs like abcd or 1234)".into())
    } else {
        None
    }
}

/// Compares in time independent of where they differ.
pub fn equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn only_a_private_token_hard_to_guess_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        use std::os::unix::fs::PermissionsExt;
        let write = |text: &str, mode: u32| {
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        write("correct horse battery staple\n", 0o644);
        assert!(Auth::load(&path).is_err(), "a token others can read");
        write("short\n", 0o600);
        assert!(Auth::load(&path).is_err(), "a short token");
        write(&"a".repeat(40), 0o600);
        let err = format!("{:#}", Auth::load(&path).unwrap_err());
        assert!(
            err.contains("too easy to guess") && err.contains("/dev/urandom"),
            "{err}"
        );
        write("abababababababababab\n", 0o600);
        assert!(Auth::load(&path).is_err(), "two characters");
        for typed in [
            "abcdefgh12345678",
            "correct horse battery staple",
            "abcdefghijklmnopqrstuvwxyz0123456789",
        ] {
            write(typed, 0o600);
            assert!(Auth::load(&path).is_err(), "{typed:?} is guessable");
        }
        write("3q2+7u7vAgMEBQYHCAkKCwwNDg8QERIT\n", 0o600);
        let auth = Auth::load(&path).unwrap();
        assert!(auth.is_token("3q2+7u7vAgMEBQYHCAkKCwwNDg8QERIT"));
        assert!(!auth.is_token("3q2+7u7vAgMEBQYHCAkKCwwNDg8QERI"));
    }

    #[test]
    fn every_login_opens_its_own_session_with_its_own_csrf_until_logout() {
        let auth = Auth::new("correct horse battery staple");
        let (a, sa) = auth.open(CLIENT).unwrap();
        let (b, sb) = auth.open(CLIENT).unwrap();
        assert_ne!(a, b);
        assert_ne!(sa.csrf, sb.csrf);
        let cookie = |id: &str| format!("other=1; {COOKIE}={id}");
        assert_eq!(auth.session(Some(&cookie(&a))).unwrap().csrf, sa.csrf);
        assert!(auth.session(Some(&cookie("0123"))).is_none());
        assert!(auth.session(None).is_none());
        auth.close(Some(&cookie(&a)));
        assert!(auth.session(Some(&cookie(&a))).is_none(), "logged out");
        assert!(auth.session(Some(&cookie(&b))).is_some(), "the other stays");
    }

    #[test]
    fn sessions_are_bounded_and_the_oldest_goes_first() {
        let auth = Auth::new("correct horse battery staple");
        let (first, _) = auth.open(CLIENT).unwrap();
        for _ in 0..MAX_SESSIONS {
            auth.open(CLIENT).unwrap();
        }
        assert_eq!(auth.state().sessions.len(), MAX_SESSIONS);
        assert!(auth.session(Some(&format!("{COOKIE}={first}"))).is_none());
    }

    #[test]
    fn a_client_that_fails_waits_longer_each_time_and_others_do_not() {
        let auth = Auth::new("correct horse battery staple");
        assert!(auth.must_wait(CLIENT).is_none());
        auth.failed(CLIENT);
        let first = auth.must_wait(CLIENT).unwrap();
        auth.failed(CLIENT);
        auth.failed(CLIENT);
        let third = auth.must_wait(CLIENT).unwrap();
        assert!(third > first * 3, "{first:?} then {third:?}");
        let other: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(
            auth.must_wait(other).is_none(),
            "a few wrong tokens hold back no other"
        );
        auth.open(CLIENT).unwrap();
        assert!(auth.must_wait(CLIENT).is_none(), "forgotten after a login");
        for _ in 0..40 {
            auth.failed(CLIENT);
        }
        assert!(auth.must_wait(CLIENT).unwrap() <= MOST_WAIT);
    }

    #[test]
    fn wrong_tokens_from_many_addresses_make_everyone_wait_a_second() {
        // Rotating addresses once gave 2,445 guesses a second (issue 34).
        let auth = Auth::new("3q2+7u7vAgMEBQYHCAkKCwwNDg8QERIT");
        for i in 0..FAILURES_PER_SECOND {
            auth.failed(format!("198.51.100.{i}").parse().unwrap());
        }
        let fresh: IpAddr = "203.0.113.9".parse().unwrap();
        let wait = auth.must_wait(fresh).unwrap();
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
    }
}
