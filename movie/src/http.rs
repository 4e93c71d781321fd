//! Every HTTP request a filter makes, bounded: a deadline that grows with the bytes asked
//! for at a minimum sustained rate (so a trickling server fails in bounded time while a
//! slow but honest link passes), a cap on the total, redirects followed by hand (only
//! http(s) to http(s), at most a few), and bodies read only up to what was asked.

use std::io::Read;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::AnalysisError;

/// Which videos a filter may fetch: a job names any URL it likes, and a filter on a cloud
/// machine must not become a way to reach what only it can reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Reach {
    /// Anything (`filter analyze`: the scientist names the video).
    #[default]
    Any,
    /// Any host whose addresses are all neither loopback, link-local (169.254.0.0/16,
    /// fe80::/10, where cloud metadata lives) nor unspecified; checked before every
    /// request, redirects included, and again when connecting.
    Public,
    /// Only URLs or paths that start with one of these prefixes (`--allow-source`),
    /// redirect targets included.
    Allowed(Vec<String>),
}

impl Reach {
    /// Refuses `url` (a URL or a local path) unless this reach allows it.
    pub fn check(&self, url: &str) -> Result<(), AnalysisError> {
        let refuse = |reason: String| AnalysisError::Forbidden {
            url: url.into(),
            reason,
        };
        match self {
            Reach::Any => Ok(()),
            Reach::Allowed(prefixes) => {
                if prefixes.iter().any(|p| url.starts_with(p.as_str())) {
                    Ok(())
                } else {
                    Err(refuse("it starts with none of the allowed sources (--allow-source, GRID_ALLOW_SOURCES)".into()))
                }
            }
            Reach::Public => {
                let lower = url.to_ascii_lowercase();
                if !(lower.starts_with("http://") || lower.starts_with("https://")) {
                    return Ok(()); // a local path: only regular files are opened
                }
                let parsed = url::Url::parse(url).map_err(|e| refuse(e.to_string()))?;
                let host = parsed.host_str().ok_or_else(|| refuse("no host".into()))?;
                let port = parsed.port_or_known_default().unwrap_or(80);
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let addrs: Vec<SocketAddr> = (host, port)
                    .to_socket_addrs()
                    .map_err(|e| AnalysisError::Unreachable {
                        url: url.into(),
                        detail: format!("cannot resolve {host}: {e}"),
                    })?
                    .collect();
                match addrs.iter().find(|a| forbidden(a.ip())) {
                    Some(a) => Err(refuse(format!(
                        "{host} resolves to {}, a loopback, link-local or unspecified address (allow it with --allow-source if it is really a video archive)",
                        a.ip()
                    ))),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Loopback, link-local and unspecified addresses (IPv4-mapped IPv6 included).
fn forbidden(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(a) => a.is_loopback() || a.is_link_local() || a.is_unspecified(),
        IpAddr::V6(a) => {
            a.is_loopback() || a.is_unspecified() || (a.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// Resolves as usual, then drops forbidden addresses, so a name that changes what it
/// resolves to between the check and the connection still cannot reach them.
#[derive(Debug)]
struct PublicOnly;

impl ureq::Resolver for PublicOnly {
    fn resolve(&self, netloc: &str) -> std::io::Result<Vec<SocketAddr>> {
        Ok(netloc
            .to_socket_addrs()?
            .filter(|a| !forbidden(a.ip()))
            .collect())
    }
}

/// The limits on one video's HTTP traffic (`--http-deadline`, `--http-min-rate`) and
/// which hosts it may reach.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpLimits {
    /// The longest any one request may take, whatever its size.
    pub deadline: Duration,
    /// The slowest sustained rate accepted, in bytes per second; a request for N bytes
    /// gets [`HttpLimits::BASE`] plus N / this.
    pub min_rate: u64,
    /// Which URLs may be fetched.
    pub reach: Arc<Reach>,
}

impl HttpLimits {
    /// What every request gets before its size counts: connection, TLS, the server's
    /// first byte.
    pub const BASE: Duration = Duration::from_secs(20);
    /// Redirects followed before giving up.
    pub const MAX_REDIRECTS: u32 = 5;

    /// The time allowed for a request that should bring `bytes`.
    pub fn allowance(&self, bytes: u64) -> Duration {
        let at_rate = Duration::from_secs_f64(bytes as f64 / self.min_rate.max(1) as f64);
        (Self::BASE + at_rate).min(self.deadline)
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
        }
    }
}

/// An HTTP client that keeps the limits.
#[derive(Debug, Clone)]
pub struct Http {
    agent: ureq::Agent,
    limits: HttpLimits,
    /// Origins (`scheme://host:port`) that passed the public-reach check: a video's
    /// hundreds of Range requests look the host up once, not each time. What the name
    /// resolves to when connecting is filtered again by [`PublicOnly`].
    public_origins: Arc<std::sync::Mutex<Vec<String>>>,
}

/// A response whose body may be read, within its request's time.
pub struct Reply {
    /// The status.
    pub status: u16,
    /// The URL it came from, after redirects.
    pub url: String,
    response: ureq::Response,
    until: Instant,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("status", &self.status)
            .field("url", &self.url)
            .finish()
    }
}

impl Reply {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.response.header(name)
    }

    /// The content type.
    pub fn content_type(&self) -> &str {
        self.response.content_type()
    }

    /// Reads at most `max` bytes of the body; more is an error, and so is running past
    /// the request's time.
    pub fn body(self, max: u64) -> Result<Vec<u8>, AnalysisError> {
        let url = self.url.clone();
        let mut out = Vec::new();
        let mut reader = self.response.into_reader().take(max + 1);
        let mut buf = [0u8; 64 << 10];
        loop {
            if Instant::now() > self.until {
                return Err(too_slow(&url));
            }
            let n = reader.read(&mut buf).map_err(|e| match e.kind() {
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => too_slow(&url),
                _ => AnalysisError::Unreachable {
                    url: url.clone(),
                    detail: e.to_string(),
                },
            })?;
            if n == 0 {
                return Ok(out);
            }
            out.extend_from_slice(&buf[..n]);
            if out.len() as u64 > max {
                return Err(AnalysisError::Unreachable {
                    url,
                    detail: format!("the server sent more than the {max} bytes asked for"),
                });
            }
        }
    }
}

fn too_slow(url: &str) -> AnalysisError {
    AnalysisError::TooSlow { url: url.into() }
}

impl Http {
    /// A client with `limits`.
    pub fn new(limits: HttpLimits) -> Http {
        let mut builder = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(15))
            .redirects(0);
        if *limits.reach == Reach::Public {
            builder = builder.resolver(PublicOnly);
        }
        Http {
            agent: builder.build(),
            limits,
            public_origins: Arc::default(),
        }
    }

    /// GETs `url` (with `range`, if any) expecting about `expect` bytes, following
    /// redirects within http(s). Error statuses are errors; 2xx replies are returned.
    pub fn get(
        &self,
        url: &str,
        range: Option<(u64, u64)>,
        expect: u64,
    ) -> Result<Reply, AnalysisError> {
        let allowance = self.limits.allowance(expect);

        let until = Instant::now() + allowance;
        let mut current = url.to_owned();
        for _ in 0..=HttpLimits::MAX_REDIRECTS {
            check_scheme(url, &current)?;
            self.check_reach(&current)?;
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(too_slow(url));
            }
            let mut request = self.agent.get(&current).timeout(left);
            if let Some((first, last)) = range {
                request = request.set("Range", &format!("bytes={first}-{last}"));
            }
            let response = match request.call() {
                Ok(r) => r,
                Err(ureq::Error::Status(status, r)) if (300..400).contains(&status) => r,
                Err(ureq::Error::Status(status, _)) => {
                    return Err(AnalysisError::HttpStatus {
                        url: current,
                        status,
                    })
                }
                Err(ureq::Error::Transport(t)) => {
                    let timed_out = t.kind() == ureq::ErrorKind::Io
                        && t.to_string().to_ascii_lowercase().contains("timed out");
                    return Err(if timed_out {
                        too_slow(url)
                    } else {
                        AnalysisError::Unreachable {
                            url: current,
                            detail: t.to_string(),
                        }
                    });
                }
            };
            let status = response.status();
            if (300..400).contains(&status) {
                let location =
                    response
                        .header("Location")
                        .ok_or_else(|| AnalysisError::Unreachable {
                            url: current.clone(),
                            detail: format!("HTTP {status} without a Location"),
                        })?;
                current = resolve(&current, location)?;
                continue;
            }
            return Ok(Reply {
                status,
                url: current,
                response,
                until,
            });
        }
        Err(AnalysisError::Redirect {
            url: url.into(),
            detail: format!("more than {} redirects", HttpLimits::MAX_REDIRECTS),
        })
    }
}

impl Http {
    /// The reach check for `url`, remembering public origins that passed.
    fn check_reach(&self, url: &str) -> Result<(), AnalysisError> {
        if *self.limits.reach != Reach::Public {
            return self.limits.reach.check(url);
        }
        let origin = url::Url::parse(url)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default();
        let mut passed = self
            .public_origins
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !origin.is_empty() && passed.contains(&origin) {
            return Ok(());
        }
        self.limits.reach.check(url)?;
        passed.push(origin);
        Ok(())
    }
}

/// Only http and https, before and after every redirect.
fn check_scheme(original: &str, current: &str) -> Result<(), AnalysisError> {
    let lower = current.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        Ok(())
    } else {
        Err(AnalysisError::Redirect {
            url: original.into(),
            detail: format!("refusing to follow a redirect to {current:?} (only http and https)"),
        })
    }
}

/// A `Location` against the URL it came from.
fn resolve(base: &str, location: &str) -> Result<String, AnalysisError> {
    let base_url = url::Url::parse(base).map_err(|e| AnalysisError::Redirect {
        url: base.into(),
        detail: e.to_string(),
    })?;
    base_url
        .join(location)
        .map(String::from)
        .map_err(|e| AnalysisError::Redirect {
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
    fn loopback_link_local_and_unspecified_hosts_are_out_of_public_reach() {
        for url in [
            "http://127.0.0.1:9/x.mov",
            "http://localhost/x.mov",
            "http://169.254.169.254/latest/meta-data/",
            "http://0.0.0.0/x.mov",
            "http://[::1]/x.mov",
            "http://[fe80::1]/x.mov",
            "http://[::ffff:127.0.0.1]/x.mov",
        ] {
            let err = Reach::Public.check(url).unwrap_err();
            assert!(
                matches!(err, AnalysisError::Forbidden { .. }),
                "{url}: {err}"
            );
        }
        assert!(Reach::Public.check("http://10.1.2.3/x.mov").is_ok());
        assert!(Reach::Public.check("/data/a.mov").is_ok());
        let allowed = Reach::Allowed(vec!["https://rawdata.oceanobservatories.org/files/".into()]);
        assert!(allowed
            .check("https://rawdata.oceanobservatories.org/files/a.mov")
            .is_ok());
        assert!(allowed
            .check("https://rawdata.oceanobservatories.org.evil/files/a.mov")
            .is_err());
        assert!(allowed.check("/etc/passwd").is_err());
    }

    #[test]
    fn only_http_redirects_are_followed() {
        assert!(check_scheme("http://a/x", "https://b/y").is_ok());
        for bad in ["file:///etc/passwd", "ftp://h/x", "gopher://h"] {
            assert!(matches!(
                check_scheme("http://a/x", bad),
                Err(AnalysisError::Redirect { .. })
            ));
        }
        assert_eq!(resolve("http://a/b/c", "/d").unwrap(), "http://a/d");
    }
}
