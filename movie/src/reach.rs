//! Which sources a filter may read, decided on what a source means, never on how it is
//! spelt: allowed folders are compared with the real path of the file actually opened
//! (`..` and symlinks resolved), allowed URLs with the parsed and normalised URL that is
//! actually requested (dot segments resolved, userinfo refused, scheme, host and port
//! compared exactly, paths by whole segments). Loopback, link-local and cloud-metadata
//! addresses stay out of reach unless an allowed source names that very address.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use crate::ReadError;

/// Which videos a filter may fetch: a job names any URL it likes, and a filter on a cloud
/// machine must not become a way to reach what only it can reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Reach {
    /// Anything (`filter analyze`: the scientist names the video).
    #[default]
    Any,
    /// Any local file, and any host whose addresses are all neither loopback, link-local
    /// (169.254.0.0/16, fe80::/10), cloud metadata services nor unspecified; checked
    /// before every request, redirects included, and again when connecting.
    Public,
    /// Only sources inside one of these (`--allow-source`), redirect targets included;
    /// the refusals of [`Reach::Public`] still apply to hosts not named as addresses.
    Allowed(Vec<Allowed>),
}

/// One allowed source: a local folder or a URL prefix, parsed once at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allowed {
    /// Files below this folder (its real path, when it exists at start-up).
    Dir(PathBuf),
    /// URLs below this prefix.
    Url(UrlPrefix),
}

/// An allowed URL prefix: the exact scheme, host and port, and leading path segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlPrefix {
    scheme: String,
    host: url::Host<String>,
    port: u16,
    /// Whole path segments, as the parser normalised them.
    segments: Vec<String>,
}

impl FromStr for Allowed {
    type Err = String;

    fn from_str(raw: &str) -> Result<Allowed, String> {
        let lower = raw.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            let url = url::Url::parse(raw).map_err(|e| format!("{raw:?} is not a URL: {e}"))?;
            if !url.username().is_empty() || url.password().is_some() {
                return Err(format!(
                    "{raw:?} has a user name or password; name the host only"
                ));
            }
            if url.query().is_some() || url.fragment().is_some() {
                return Err(format!(
                    "{raw:?} has a query or fragment; give a folder URL"
                ));
            }
            let host = url
                .host()
                .ok_or_else(|| format!("{raw:?} has no host"))?
                .to_owned();
            let segments = segments(&url).map_err(|e| format!("{raw:?}: {e}"))?;
            return Ok(Allowed::Url(UrlPrefix {
                scheme: url.scheme().to_owned(),
                host,
                port: url.port_or_known_default().unwrap_or(80),
                segments,
            }));
        }
        let path = raw.strip_prefix("file://").unwrap_or(raw);
        if !path.starts_with('/') {
            return Err(format!(
                "{raw:?} is neither an absolute folder nor an http(s) URL (with its port, if not the scheme's)"
            ));
        }
        let path = Path::new(path);
        Ok(Allowed::Dir(
            std::fs::canonicalize(path).unwrap_or_else(|_| lexical(path)),
        ))
    }
}

impl std::fmt::Display for Allowed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Allowed::Dir(d) => write!(f, "{}/", d.display()),
            Allowed::Url(u) => {
                write!(f, "{}://{}:{}/", u.scheme, u.host, u.port)?;
                for s in &u.segments {
                    write!(f, "{s}/")?;
                }
                Ok(())
            }
        }
    }
}

/// `path` with `.` and `..` resolved on the text alone (for a folder that does not exist
/// yet: nothing below it can be opened either until it does).
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

/// The path's segments, percent-decoded, with the empty one a trailing slash leaves
/// dropped; a segment that decodes to a separator, a dot segment or NUL is refused, since
/// a server that decodes before it resolves would walk out on it.
fn segments(url: &url::Url) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for raw in url.path_segments().into_iter().flatten() {
        let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
        if decoded.contains(['/', '\\', '\0']) || decoded == "." || decoded == ".." {
            return Err(format!(
                "the path segment {raw:?} decodes to {decoded:?}, which could leave its folder"
            ));
        }
        out.push(raw.to_owned());
    }
    if out.last().is_some_and(String::is_empty) {
        out.pop();
    }
    Ok(out)
}

impl UrlPrefix {
    fn contains(&self, url: &url::Url, path: &[String]) -> bool {
        url.scheme() == self.scheme
            && url.host().map(|h| h.to_owned()).as_ref() == Some(&self.host)
            && url.port_or_known_default() == Some(self.port)
            && path.len() >= self.segments.len()
            && path[..self.segments.len()] == self.segments[..]
    }

    /// The address this prefix names, when its host is one.
    fn address(&self) -> Option<IpAddr> {
        match &self.host {
            url::Host::Ipv4(a) => Some(IpAddr::V4(*a)),
            url::Host::Ipv6(a) => Some(IpAddr::V6(*a)),
            url::Host::Domain(_) => None,
        }
    }
}

impl Reach {
    /// Reads `--allow-source` values: none means [`Reach::Public`].
    pub fn allowing(sources: &[String]) -> Result<Reach, String> {
        let allowed = sources
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(Allowed::from_str)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(if allowed.is_empty() {
            Reach::Public
        } else {
            Reach::Allowed(allowed)
        })
    }

    /// Addresses that the loopback, link-local and metadata refusal lets through: those
    /// an allowed URL names as its host.
    pub fn exempt_addresses(&self) -> Vec<IpAddr> {
        match self {
            Reach::Allowed(list) => list
                .iter()
                .filter_map(|a| match a {
                    Allowed::Url(u) => u.address(),
                    Allowed::Dir(_) => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// True when hosts must be resolved and checked before requests.
    pub fn filters_hosts(&self) -> bool {
        !matches!(self, Reach::Any)
    }

    /// Parses and checks `raw`, an http(s) URL, returning the normalised URL to request:
    /// what is checked is what is fetched.
    pub fn check_url(&self, raw: &str) -> Result<url::Url, ReadError> {
        let (url, check_addresses) = self.admit(raw)?;
        if check_addresses {
            host_addresses_allowed(raw, &url)?;
        }
        Ok(url)
    }

    /// Everything of [`Reach::check_url`] but resolving the host: the URL to request, and
    /// whether its host's addresses must still be checked.
    pub(crate) fn admit(&self, raw: &str) -> Result<(url::Url, bool), ReadError> {
        let refuse = |reason: String| ReadError::Forbidden {
            url: raw.into(),
            reason,
        };
        let url = url::Url::parse(raw).map_err(|e| refuse(format!("not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(refuse("only http and https URLs are fetched".into()));
        }
        if let Reach::Any = self {
            return Ok((url, false));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(refuse(
                "it carries a user name or password (user@host), which no archive URL needs".into(),
            ));
        }
        let path = segments(&url).map_err(refuse)?;
        if let Reach::Allowed(list) = self {
            let matched = list.iter().find_map(|a| match a {
                Allowed::Url(u) if u.contains(&url, &path) => Some(u),
                _ => None,
            });
            let Some(prefix) = matched else {
                return Err(refuse(format!(
                    "it is inside none of the allowed sources ({}; --allow-source, GRID_ALLOW_SOURCES)",
                    self.describe()
                )));
            };
            // A host that is exactly the address an operator named needs no look-up.
            return Ok((url, prefix.address().is_none()));
        }
        Ok((url, true))
    }

    /// Checks a local path before it is opened: with allowed sources, its real path (`..`
    /// and symlinks resolved) must be inside an allowed folder.
    pub fn check_path(&self, path: &str) -> Result<(), ReadError> {
        match self {
            Reach::Allowed(_) => {
                let real = std::fs::canonicalize(path).unwrap_or_else(|_| {
                    lexical(&std::env::current_dir().unwrap_or_default().join(path))
                });
                self.inside(path, &real)
            }
            _ => Ok(()),
        }
    }

    /// Checks the file actually opened for `path`: its real path, read back from the
    /// open descriptor, so a symlink swapped between the check and the open is caught.
    pub fn check_opened(&self, path: &str, file: &File) -> Result<(), ReadError> {
        match self {
            Reach::Allowed(_) => {
                let fd = format!("/proc/self/fd/{}", file.as_raw_fd());
                let real = std::fs::read_link(&fd).map_err(|e| ReadError::Forbidden {
                    url: path.into(),
                    reason: format!("cannot tell which file was opened ({fd}: {e})"),
                })?;
                self.inside(path, &real)
            }
            _ => Ok(()),
        }
    }

    fn inside(&self, shown: &str, real: &Path) -> Result<(), ReadError> {
        let Reach::Allowed(list) = self else {
            return Ok(());
        };
        let ok = list
            .iter()
            .any(|a| matches!(a, Allowed::Dir(d) if real.starts_with(d)));
        if ok {
            Ok(())
        } else {
            Err(ReadError::Forbidden {
                url: shown.into(),
                reason: format!(
                    "it is {}, inside none of the allowed sources ({}; --allow-source, GRID_ALLOW_SOURCES)",
                    real.display(),
                    self.describe()
                ),
            })
        }
    }

    fn describe(&self) -> String {
        match self {
            Reach::Allowed(list) => list
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            Reach::Public => "any public host".into(),
            Reach::Any => "anything".into(),
        }
    }
}

/// Refuses a URL whose host is, or resolves to, a [`forbidden`] address.
pub(crate) fn host_addresses_allowed(raw: &str, url: &url::Url) -> Result<(), ReadError> {
    let refuse = |reason: String| ReadError::Forbidden {
        url: raw.into(),
        reason,
    };
    let host = url.host().ok_or_else(|| refuse("no host".into()))?;
    let port = url.port_or_known_default().unwrap_or(80);
    let addrs: Vec<IpAddr> = match &host {
        url::Host::Ipv4(a) => vec![IpAddr::V4(*a)],
        url::Host::Ipv6(a) => vec![IpAddr::V6(*a)],
        url::Host::Domain(name) => (*name, port)
            .to_socket_addrs()
            .map_err(|e| ReadError::Unreachable {
                url: raw.into(),
                detail: format!("cannot resolve {name}: {e}"),
            })?
            .map(|a| a.ip())
            .collect(),
    };
    match addrs.into_iter().find(|a| forbidden(*a)) {
        Some(a) => Err(refuse(format!(
            "{host} is {a}, a loopback, link-local, cloud-metadata or unspecified address (if it really is a video archive, allow that address by naming it in --allow-source, e.g. http://{}/)",
            match a {
                IpAddr::V6(v6) => format!("[{v6}]:{port}"),
                v4 => format!("{v4}:{port}"),
            }
        ))),
        None => Ok(()),
    }
}

/// Cloud metadata services outside the link-local range: Alibaba's, AWS's over IPv6,
/// Azure's wire server.
const METADATA_V4: [Ipv4Addr; 2] = [
    Ipv4Addr::new(100, 100, 100, 200),
    Ipv4Addr::new(168, 63, 129, 16),
];
const METADATA_V6: [Ipv6Addr; 1] = [Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)];

/// Loopback, link-local, unspecified and cloud-metadata addresses, also when an IPv6
/// address carries one of IPv4 (mapped, compatible or NAT64).
pub fn forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            a.is_loopback() || a.is_link_local() || a.is_unspecified() || METADATA_V4.contains(&a)
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            let embedded = if let Some(v4) = a.to_ipv4_mapped() {
                Some(v4)
            } else if s[..6] == [0; 6] || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                // ::a.b.c.d (compatible) and 64:ff9b::a.b.c.d (NAT64)
                let [.., a1, a2, a3, a4] = a.octets();
                Some(Ipv4Addr::new(a1, a2, a3, a4))
            } else {
                None
            };
            a.is_loopback()
                || a.is_unspecified()
                || (s[0] & 0xffc0) == 0xfe80
                || METADATA_V6.contains(&a)
                || embedded.is_some_and(|v4| forbidden(IpAddr::V4(v4)))
        }
    }
}

/// Resolves as usual, then drops forbidden addresses (but those named in allowed
/// sources), so a name that changes what it resolves to between the check and the
/// connection still cannot reach them.
#[derive(Debug)]
pub(crate) struct Filtered {
    pub(crate) exempt: Vec<IpAddr>,
}

impl ureq::Resolver for Filtered {
    fn resolve(&self, netloc: &str) -> std::io::Result<Vec<SocketAddr>> {
        Ok(netloc
            .to_socket_addrs()?
            .filter(|a| !forbidden(a.ip()) || self.exempt.contains(&a.ip()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(list: &[&str]) -> Reach {
        Reach::allowing(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn loopback_link_local_metadata_and_unspecified_hosts_are_out_of_public_reach() {
        for url in [
            "http://127.0.0.1:9/x.mov",
            "http://localhost/x.mov",
            "http://169.254.169.254/latest/meta-data/",
            "http://0.0.0.0/x.mov",
            "http://[::1]/x.mov",
            "http://[fe80::1]/x.mov",
            "http://[::ffff:127.0.0.1]/x.mov",
            "http://[fd00:ec2::254]/latest/",
            "http://100.100.100.200/latest/meta-data/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://0x7f.1/x.mov",
            "http://2130706433/x.mov",
        ] {
            let err = Reach::Public.check_url(url).unwrap_err();
            assert!(matches!(err, ReadError::Forbidden { .. }), "{url}: {err}");
        }
        assert!(Reach::Public.check_url("http://10.1.2.3/x.mov").is_ok());
        assert!(Reach::Public.check_path("/data/a.mov").is_ok());
    }

    #[test]
    fn a_url_prefix_matches_whole_segments_of_the_same_origin() {
        let reach = allowed(&["https://rawdata.oceanobservatories.org/files/"]);
        // `admit` is the check without the host look-up (no DNS in tests).
        let (ok, look_up) = reach
            .admit("https://rawdata.oceanobservatories.org/files/day/../a.mov")
            .unwrap();
        assert_eq!(
            ok.as_str(),
            "https://rawdata.oceanobservatories.org/files/a.mov"
        );
        assert!(look_up, "a named host's addresses are still checked");
        for bad in [
            "https://rawdata.oceanobservatories.org.evil/files/a.mov",
            "https://rawdata.oceanobservatories.org/filesx/a.mov",
            "https://rawdata.oceanobservatories.org:444/files/a.mov",
            "http://rawdata.oceanobservatories.org/files/a.mov",
            "https://rawdata.oceanobservatories.org/files/../etc/a.mov",
            "https://rawdata.oceanobservatories.org/files/%2e%2e/etc/a.mov",
            "https://rawdata.oceanobservatories.org/files/..%2fetc%2fa.mov",
            "https://rawdata.oceanobservatories.org@169.254.169.254/files/a.mov",
            "https://x:y@rawdata.oceanobservatories.org/files/a.mov",
        ] {
            assert!(reach.admit(bad).is_err(), "{bad}");
        }
        assert!(reach.check_path("/etc/passwd").is_err());
    }

    #[test]
    fn an_allowed_address_is_the_only_forbidden_one_let_through() {
        let reach = allowed(&["http://127.0.0.1:1808"]);
        reach.check_url("http://127.0.0.1:1808/x.mov").unwrap();
        for bad in [
            "http://127.0.0.1:1808@127.0.0.1:18090/x.mov",
            "http://127.0.0.1:18090/x.mov",
            "http://localhost:1808/x.mov",
            "http://127.0.0.2:1808/x.mov",
        ] {
            assert!(reach.check_url(bad).is_err(), "{bad}");
        }
        assert_eq!(
            reach.exempt_addresses(),
            vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]
        );
        // A name allowed explicitly still may not resolve to such an address.
        let by_name = allowed(&["http://localhost:1808/"]);
        assert!(by_name.check_url("http://localhost:1808/x.mov").is_err());
    }

    #[test]
    fn bad_allowed_sources_are_refused_at_start() {
        for bad in [
            "relative/dir",
            "http://u@h/x/",
            "http://h/x?y",
            "ftp://h/",
            "http://h/%2e%2e%2f/",
        ] {
            assert!(bad.parse::<Allowed>().is_err(), "{bad}");
        }
        assert_eq!(
            "/data/archive/../archive/x/".parse::<Allowed>().unwrap(),
            Allowed::Dir("/data/archive/x".into())
        );
    }

    #[test]
    fn local_paths_are_checked_by_their_real_path() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("archive");
        std::fs::create_dir_all(archive.join("day")).unwrap();
        std::fs::write(archive.join("day/a.mov"), b"x").unwrap();
        std::fs::write(dir.path().join("secret.mov"), b"x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.mov"), archive.join("day/link.mov"))
            .unwrap();
        let reach = allowed(&[&format!("{}/", archive.display())]);
        let a = archive.join("day/a.mov");
        reach.check_path(a.to_str().unwrap()).unwrap();
        reach
            .check_opened(a.to_str().unwrap(), &File::open(&a).unwrap())
            .unwrap();
        for bad in [
            format!("{}/../secret.mov", archive.display()),
            format!("{}/day/../../secret.mov", archive.display()),
            format!("{}/day/link.mov", archive.display()),
            format!("{}x/a.mov", archive.display()),
            "/etc/passwd".into(),
        ] {
            assert!(reach.check_path(&bad).is_err(), "{bad}");
        }
        let link = archive.join("day/link.mov");
        assert!(reach
            .check_opened(link.to_str().unwrap(), &File::open(&link).unwrap())
            .is_err());
    }
}
