//! Every HTTP request a filter makes, bounded: a deadline that grows with the bytes asked
//! for at a minimum sustained rate (so a trickling server fails in bounded time while a
//! slow but honest link passes), a cap on the total, redirects followed by hand (only
//! http(s) to http(s), at most a few), and bodies read only up to what was asked. Each
//! request holds a permit of its host's budget (`hosts`) on the process's one pool of
//! connections; a refusal (503, 429, a refused or reset connection) lowers the budget and
//! is tried again after the pause the server asks for, until the request's deadline.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::hosts::{Hosts, NoPermit, Permit};
use crate::multirange;
use crate::reach::Reach;
use crate::Deadline;
use crate::ReadError;

/// The limits on one video's HTTP traffic (`--http-deadline`, `--http-min-rate`) and
/// which hosts it may reach.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// The longest any one request may take, whatever its size.
    pub deadline: Duration,
    /// The slowest sustained rate accepted, in bytes per second; a request for N bytes
    /// gets [`HttpLimits::BASE`] plus N / this.
    pub min_rate: u64,
    /// Which URLs may be fetched.
    pub reach: Arc<Reach>,
    /// The whole video's time budget, when there is one: every request's allowance is
    /// cut to what is left of it.
    pub video: Option<Deadline>,
    /// The process's archive hosts: one budget of requests in flight per host (each
    /// request on a connection of its own), shared by every video read at once.
    pub hosts: Arc<Hosts>,
    /// When to speak HTTP/2 (one connection per host, each request a stream on it).
    pub http2: Http2,
}

/// When requests go over HTTP/2 instead of HTTP/1.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Http2 {
    /// Never: HTTP/1.1, several ranges to a request (multipart replies).
    #[default]
    Off,
    /// To `https://` hosts that pick `h2` when offered it by ALPN; HTTP/1.1 to the others
    /// (a host that picks HTTP/1.1 is asked over HTTP/1.1 from then on).
    Alpn,
    /// To `http://` hosts without asking (they are known to serve HTTP/2 without TLS), and
    /// to `https://` hosts as [`Http2::Alpn`].
    PriorKnowledge,
}

impl PartialEq for HttpLimits {
    fn eq(&self, other: &HttpLimits) -> bool {
        self.deadline == other.deadline
            && self.min_rate == other.min_rate
            && self.reach == other.reach
            && self.video == other.video
            && Arc::ptr_eq(&self.hosts, &other.hosts)
            && self.http2 == other.http2
    }
}

impl HttpLimits {
    /// What every request gets before its size counts: connection, TLS, the server's
    /// first byte.
    pub const BASE: Duration = Duration::from_secs(20);
    /// Redirects followed before giving up.
    pub const MAX_REDIRECTS: u32 = 5;
    /// Requests in flight to one archive host per process, by default: a 4-slot filter
    /// far from the archive holds at most this many connections to it (see
    /// [`HttpLimits::hosts`]; docs/architecture.md, "A good citizen of the archive").
    pub const CONNECTIONS: usize = 24;

    /// The most requests in flight to one host.
    pub fn connections(&self) -> usize {
        self.hosts.cap()
    }

    /// How long a request refused by its host (503, 429, a refused connection) is tried
    /// again: up to the longest a request may take, within the video's deadline.
    fn refusal_horizon(&self) -> Duration {
        self.video
            .as_ref()
            .map_or(self.deadline, |d| self.deadline.min(d.left()))
    }

    /// The time allowed for a request that should bring `bytes`.
    pub fn allowance(&self, bytes: u64) -> Duration {
        let at_rate = Duration::from_secs_f64(bytes as f64 / self.min_rate.max(1) as f64);
        let own = (Self::BASE + at_rate).min(self.deadline);
        self.video.as_ref().map_or(own, |d| own.min(d.left()))
    }

    /// These limits for one video analysed within `deadline`.
    pub fn within(&self, deadline: &Deadline) -> HttpLimits {
        HttpLimits {
            video: Some(deadline.clone()),
            ..self.clone()
        }
    }

    /// The error for a request to `url` that ran out of time waiting to start: the
    /// video's deadline when that is what passed, the grid's tokens when those were
    /// what it waited for, else the request's own allowance.
    fn no_permit(&self, url: &str, why: NoPermit) -> ReadError {
        let video_over = self.video.as_ref().is_some_and(|d| d.passed());
        match why {
            NoPermit::GridToken if !video_over => ReadError::NoArchiveToken { url: url.into() },
            _ => self.out_of_time(url),
        }
    }

    /// The error for a request to `url` that ran out of time: the video's deadline when
    /// that is what passed, else the request's own allowance.
    fn out_of_time(&self, url: &str) -> ReadError {
        match &self.video {
            Some(d) if d.passed() => d.exceeded(url),
            _ => ReadError::TooSlow { url: url.into() },
        }
    }
}

impl Default for HttpLimits {
    /// Ten minutes at most per request; 64 KiB/s at least (a ~580 KB CamHD frame in 9 s,
    /// a 32 MiB merged read in under 9 minutes): a slow link passes, a trickle fails.
    fn default() -> Self {
        HttpLimits {
            deadline: Duration::from_secs(600),
            min_rate: 64 << 10,
            reach: Arc::new(Reach::Any),
            video: None,
            hosts: Arc::new(Hosts::new(HttpLimits::CONNECTIONS)),
            http2: Http2::Off,
        }
    }
}

/// An HTTP client that keeps the limits.
#[derive(Debug, Clone)]
pub struct Http {
    agent: ureq::Agent,
    limits: HttpLimits,
    /// Origins (`scheme://host:port`) whose host passed the address check: a video's
    /// hundreds of Range requests look the host up once, not each time. What the name
    /// resolves to when connecting is filtered again by [`Filtered`].
    public_origins: Arc<std::sync::Mutex<Vec<String>>>,
}

/// A response whose body may be read, within its request's time.
pub struct Reply {
    /// The status.
    pub status: u16,
    /// The URL it came from, after redirects.
    pub url: String,
    body: Body,
    until: Instant,
    limits: HttpLimits,
    /// Its host's permit, held while the body is read (the connection is in use).
    _permit: Permit,
}

/// A reply's head and body: streaming from an HTTP/1.1 connection, or read already from
/// an HTTP/2 stream.
enum Body {
    Streaming(ureq::Response),
    Read(crate::h2::H2Reply),
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("status", &self.status)
            .field("url", &self.url)
            .finish()
    }
}

impl Body {
    fn status(&self) -> u16 {
        match self {
            Body::Streaming(r) => r.status(),
            Body::Read(r) => r.status,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        match self {
            Body::Streaming(r) => r.header(name),
            Body::Read(r) => r.header(name),
        }
    }
}

impl Reply {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.body.header(name)
    }

    /// The content type.
    pub fn content_type(&self) -> &str {
        match &self.body {
            Body::Streaming(r) => r.content_type(),
            Body::Read(r) => r
                .header("Content-Type")
                .and_then(|t| t.split(';').next())
                .map_or("text/plain", str::trim),
        }
    }

    /// The whole `Content-Type` header, parameters included ("" when absent).
    pub fn content_type_header(&self) -> &str {
        self.header("Content-Type").unwrap_or("")
    }

    /// Reads at most `max` bytes of the body; more is an error, and so is running past
    /// the request's time.
    pub fn body(self, max: u64) -> Result<Vec<u8>, ReadError> {
        let url = self.url.clone();
        self.body_within(max)?
            .ok_or_else(|| ReadError::Unreachable {
                url,
                detail: format!("the server sent more than the {max} bytes asked for"),
            })
    }

    /// The body when it has at most `max` bytes, `None` (read no further) when it has
    /// more; running past the request's time is an error.
    pub fn body_within(self, max: u64) -> Result<Option<Vec<u8>>, ReadError> {
        let url = self.url.clone();
        let response = match self.body {
            Body::Read(reply) => {
                return Ok((reply.body.len() as u64 <= max).then_some(reply.body));
            }
            Body::Streaming(response) => response,
        };
        // Room for what was asked for, once: a body grown by doubling held up to twice
        // its bytes, many requests at a time.
        let mut out = Vec::with_capacity(
            usize::try_from(max.saturating_add(1))
                .unwrap_or(0)
                .min(PREALLOCATED),
        );
        let mut reader = response.into_reader().take(max + 1);
        let mut buf = [0u8; 64 << 10];
        loop {
            if Instant::now() > self.until {
                return Err(self.limits.out_of_time(&url));
            }
            let n = reader.read(&mut buf).map_err(|e| match e.kind() {
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                    self.limits.out_of_time(&url)
                }
                _ => ReadError::Unreachable {
                    url: url.clone(),
                    detail: e.to_string(),
                },
            })?;
            if n == 0 {
                return Ok(Some(out));
            }
            out.extend_from_slice(&buf[..n]);
            if out.len() as u64 > max {
                return Ok(None);
            }
        }
    }
}

/// The most a body's buffer is sized for before its bytes come (a frame's 32 MiB and a
/// multi-range request's headers).
const PREALLOCATED: usize = 33 << 20;

/// What one request of a chain of redirects came to.
enum Hop {
    /// A reply to read (boxed: a streaming reply is ~400 bytes).
    Done(Box<Reply>),
    /// Ask this URL next (resolved against the one that redirected).
    Redirect(String),
}

/// Where a 3xx reply from `current` points, resolved against it.
fn redirect(current: &str, status: u16, location: Option<&str>) -> Result<String, ReadError> {
    let location = location.ok_or_else(|| ReadError::Unreachable {
        url: current.to_owned(),
        detail: format!("HTTP {status} without a Location"),
    })?;
    resolve(current, location)
}

/// Why one try of a request failed: refused by its host (to be tried again after the
/// pause the host's budget sets), or anything else.
enum Failure {
    Refused { error: ReadError, wait: Duration },
    Other(ReadError),
}

impl From<ReadError> for Failure {
    fn from(e: ReadError) -> Failure {
        Failure::Other(e)
    }
}

impl Http {
    /// A client with `limits`, on the pool of connections of its hosts.
    pub fn new(limits: HttpLimits) -> Http {
        Http {
            agent: limits.hosts.agent(&limits.reach),
            limits,
            public_origins: Arc::default(),
        }
    }

    /// The limits it keeps.
    pub fn limits(&self) -> &HttpLimits {
        &self.limits
    }

    /// GETs `url` (with `range`, if any) expecting about `expect` bytes, following
    /// redirects within http(s). Error statuses are errors; 2xx replies are returned.
    pub fn get(
        &self,
        url: &str,
        range: Option<(u64, u64)>,
        expect: u64,
    ) -> Result<Reply, ReadError> {
        let range = range.map(|(first, last)| format!("bytes={first}-{last}"));
        self.get_with_range(url, range.as_deref(), expect)
    }

    /// [`Http::get`] with a whole `Range` header value (`bytes=a-b,c-d,...`). A request
    /// the host refuses is tried again once the host's pause is over, for as long as
    /// [`HttpLimits::deadline`] and the video's deadline allow.
    pub fn get_with_range(
        &self,
        url: &str,
        range: Option<&str>,
        expect: u64,
    ) -> Result<Reply, ReadError> {
        let give_up = Instant::now() + self.limits.refusal_horizon();
        loop {
            match self.try_get(url, range, expect, give_up) {
                Ok(reply) => return Ok(reply),
                Err(Failure::Refused { error, wait }) if Instant::now() + wait < give_up => {
                    tracing::debug!(url, error = %error, wait_ms = wait.as_millis() as u64, "refused; trying again");
                }
                Err(Failure::Refused { error, .. } | Failure::Other(error)) => return Err(error),
            }
        }
    }

    /// One try of a request, redirects followed, each hop on a permit of its host.
    fn try_get(
        &self,
        url: &str,
        range: Option<&str>,
        expect: u64,
        give_up: Instant,
    ) -> Result<Reply, Failure> {
        let allowance = self.limits.allowance(expect);
        let mut until = None;
        let mut current = url.to_owned();
        for _ in 0..=HttpLimits::MAX_REDIRECTS {
            check_scheme(url, &current)?;
            // What is requested is the URL as checked, normalised.
            let checked = self.check_reach(&current)?;
            current = checked.as_str().into();
            let budget = self
                .limits
                .hosts
                .budget(&checked.origin().ascii_serialization());
            // Waiting for a permit is not the request's time: only the deadlines bound it.
            let permit = budget
                .acquire(give_up)
                .map_err(|why| self.limits.no_permit(url, why))?;
            let until = *until.get_or_insert_with(|| Instant::now() + allowance);
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.limits.out_of_time(url).into());
            }
            let spoken = match self.speaks_h2(&checked) {
                true => self.h2_get(&checked, range, expect, left)?,
                // `None` from HTTP/2 too when the host picked HTTP/1.1 by ALPN.
                false => None,
            };
            let hop = match spoken {
                Some(reply) => self.settle(Body::Read(reply), current, until, permit)?,
                None => self.h1_hop(url, current, range, left, until, permit)?,
            };
            match hop {
                Hop::Done(reply) => return Ok(*reply),
                Hop::Redirect(next) => current = next,
            }
        }
        Err(ReadError::Redirect {
            url: url.into(),
            detail: format!("more than {} redirects", HttpLimits::MAX_REDIRECTS),
        }
        .into())
    }

    /// True when requests to `url` go over HTTP/2: `http://` by prior knowledge,
    /// `https://` while its host has not picked HTTP/1.1 by ALPN.
    pub fn speaks_h2(&self, url: &url::Url) -> bool {
        let wanted = match (self.limits.http2, url.scheme()) {
            (Http2::Off, _) => false,
            (_, "https") => true,
            (Http2::PriorKnowledge, "http") => true,
            _ => false,
        };
        wanted
            && self
                .limits
                .hosts
                .h2(&self.limits.reach)
                .map_or(true, |h2| h2.offered(&url.origin().ascii_serialization()))
    }

    /// One GET over HTTP/2 on the host's one connection, as [`Http::h1_hop`] makes it
    /// over HTTP/1.1; `None` when the host picked HTTP/1.1 by ALPN.
    fn h2_get(
        &self,
        url: &url::Url,
        range: Option<&str>,
        expect: u64,
        left: Duration,
    ) -> Result<Option<crate::h2::H2Reply>, Failure> {
        let current = url.to_string();
        let unreachable = |detail| ReadError::Unreachable {
            url: current.clone(),
            detail,
        };
        let h2 = self
            .limits
            .hosts
            .h2(&self.limits.reach)
            .map_err(unreachable)?;
        let max = expect.saturating_add(multirange::overhead_allowed(1));
        let reply = match h2.get(url.clone(), range.map(str::to_owned), max, left) {
            Ok(reply) => reply,
            Err(crate::h2::H2Error::NotOffered) => return Ok(None),
            Err(crate::h2::H2Error::Timeout) => {
                return Err(self.limits.out_of_time(&current).into())
            }
            Err(crate::h2::H2Error::Failed(detail)) => return Err(unreachable(detail).into()),
        };
        Ok(Some(reply))
    }

    /// One request over HTTP/1.1 on the host's pool: its reply, or where it redirects.
    fn h1_hop(
        &self,
        url: &str,
        current: String,
        range: Option<&str>,
        left: Duration,
        until: Instant,
        permit: Permit,
    ) -> Result<Hop, Failure> {
        let mut request = self.agent.get(&current).timeout(left);
        if let Some(range) = range {
            request = request.set("Range", range);
        }
        let response = match request.call() {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(ureq::Error::Transport(t)) => return Err(self.transport(url, current, t, permit)),
        };
        self.settle(Body::Streaming(response), current, until, permit)
    }

    /// What a reply from `current`, over either protocol, makes of its hop: a refusal
    /// (429, 503) lowers the host's budget, a redirect is followed, an error status is an
    /// error, anything else is the reply to read.
    fn settle(
        &self,
        body: Body,
        current: String,
        until: Instant,
        mut permit: Permit,
    ) -> Result<Hop, Failure> {
        let status = body.status();
        if status == 429 || status == 503 {
            let wait = permit.refused(retry_after(body.header("Retry-After")));
            if let Body::Streaming(response) = body {
                drain(response);
            }
            let error = ReadError::HttpStatus {
                url: current,
                status,
            };
            return Err(Failure::Refused { error, wait });
        }
        permit.succeeded();
        if (300..400).contains(&status) {
            let location = body.header("Location");
            return Ok(Hop::Redirect(redirect(&current, status, location)?));
        }
        if status >= 400 {
            return Err(ReadError::HttpStatus {
                url: current,
                status,
            }
            .into());
        }
        Ok(Hop::Done(Box::new(Reply {
            status,
            url: current,
            body,
            until,
            limits: self.limits.clone(),
            _permit: permit,
        })))
    }

    /// What a transport error of a request to `current` is: out of time, a refusal (a
    /// refused or reset connection to a host that has answered before: busy, not gone),
    /// or unreachable.
    fn transport(&self, url: &str, current: String, t: ureq::Transport, permit: Permit) -> Failure {
        let text = t.to_string().to_ascii_lowercase();
        if t.kind() == ureq::ErrorKind::Io && text.contains("timed out") {
            return self.limits.out_of_time(url).into();
        }
        let refused = t.kind() == ureq::ErrorKind::ConnectionFailed
            || text.contains("reset")
            || text.contains("refused")
            || text.contains("broken pipe");
        let error = ReadError::Unreachable {
            url: current,
            detail: crate::tls::with_hint(t.to_string()),
        };
        if refused && permit.host_answered_before() {
            let wait = permit.refused(None);
            return Failure::Refused { error, wait };
        }
        Failure::Other(error)
    }
}

/// Reads a short error reply to its end, so that its connection goes back to the pool
/// instead of being closed (a longer one is dropped, and its connection with it).
fn drain(response: ureq::Response) {
    let mut rest = Vec::new();
    let _ = response.into_reader().take(4096).read_to_end(&mut rest);
}

/// A `Retry-After` header's pause: seconds, or an HTTP date.
fn retry_after(value: Option<&str>) -> Option<Duration> {
    let value = value?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

impl Http {
    /// The reach check for `url`, giving the normalised URL to request. A host whose
    /// addresses passed once is not looked up again for the same video.
    fn check_reach(&self, url: &str) -> Result<url::Url, ReadError> {
        let (checked, check_addresses) = self.limits.reach.admit(url)?;
        if !check_addresses {
            return Ok(checked);
        }
        let origin = checked.origin().ascii_serialization();
        let mut passed = self
            .public_origins
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !passed.contains(&origin) {
            crate::reach::host_addresses_allowed(url, &checked)?;
            passed.push(origin);
        }
        Ok(checked)
    }
}

/// Only http and https, before and after every redirect.
fn check_scheme(original: &str, current: &str) -> Result<(), ReadError> {
    let lower = current.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        Ok(())
    } else {
        Err(ReadError::Redirect {
            url: original.into(),
            detail: format!("refusing to follow a redirect to {current:?} (only http and https)"),
        })
    }
}

/// A `Location` against the URL it came from.
fn resolve(base: &str, location: &str) -> Result<String, ReadError> {
    let base_url = url::Url::parse(base).map_err(|e| ReadError::Redirect {
        url: base.into(),
        detail: e.to_string(),
    })?;
    base_url
        .join(location)
        .map(String::from)
        .map_err(|e| ReadError::Redirect {
            url: base.into(),
            detail: format!("bad Location {location:?}: {e}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowance_grows_with_the_bytes_and_stops_at_the_deadline() {
        let l = HttpLimits::default();
        assert_eq!(l.allowance(0), HttpLimits::BASE);
        let frame = l.allowance(580_000);
        assert!(
            frame > HttpLimits::BASE && frame < Duration::from_secs(30),
            "{frame:?}"
        );
        assert_eq!(l.allowance(1 << 40), l.deadline);
    }

    #[test]
    fn a_request_that_never_gets_a_grid_token_says_that_is_what_it_waited_for() {
        let hosts = Arc::new(Hosts::new(4));
        // The grid's budget on, and no token held (nobody keeps them, or all in use).
        let _share = hosts.share_grid_budget();
        let http = Http::new(HttpLimits {
            deadline: Duration::from_millis(100),
            hosts,
            ..HttpLimits::default()
        });
        let e = http
            .get("http://archive.invalid/x.mov", None, 10)
            .unwrap_err();
        assert!(matches!(e, ReadError::NoArchiveToken { .. }), "{e}");
        assert!(e.is_transient(), "the job is tried again later: {e}");
        assert!(e.to_string().contains("GRID_ARCHIVE_CONNECTIONS"), "{e}");
    }

    #[test]
    fn only_http_redirects_are_followed() {
        assert!(check_scheme("http://a/x", "https://b/y").is_ok());
        for bad in ["file:///etc/passwd", "ftp://h/x", "gopher://h"] {
            assert!(matches!(
                check_scheme("http://a/x", bad),
                Err(ReadError::Redirect { .. })
            ));
        }
        assert_eq!(resolve("http://a/b/c", "/d").unwrap(), "http://a/d");
    }
}
