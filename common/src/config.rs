//! The configuration every process shares: which beanstalkd (`--server`, `GRID_SERVER`)
//! and which campaign's tubes (`--namespace`, `GRID_NAMESPACE`). Parsed and checked here
//! once, so every binary accepts and rejects the same values with the same words.

use std::fmt;
use std::str::FromStr;

use anyhow::Context;

use crate::beanstalk::{self, validate_tube_name, Client};

/// The default beanstalkd address.
pub const DEFAULT_SERVER: &str = "127.0.0.1:11300";
/// The default namespace.
pub const DEFAULT_NAMESPACE: &str = "camhd";

/// The `--server` and `--namespace` flags, for `#[command(flatten)]` in each binary.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "The grid (every process that meets it; grid.env sets them)")]
pub struct GridArgs {
    /// The beanstalkd server that connects the grid.
    #[arg(long, global = true, env = "GRID_SERVER", default_value = DEFAULT_SERVER, value_name = "HOST:PORT")]
    pub server: ServerAddr,

    /// Prefix of the tubes (<NAME>.jobs, <NAME>.results), so that several campaigns can
    /// share one server.
    #[arg(long, global = true, env = "GRID_NAMESPACE", default_value = DEFAULT_NAMESPACE, value_name = "NAME")]
    pub namespace: Namespace,

    /// The grid key (make one with `gridctl keygen FILE`): everything this process puts
    /// is signed with it, and jobs (filters) and results (the sink) not signed with an
    /// accepted key are buried. Without one, nothing is signed or checked.
    #[arg(long, global = true, env = "GRID_KEY_FILE", value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub key_file: Option<std::path::PathBuf>,

    /// With --server tls://…: PEM certificates of the CAs that sign the server's
    /// certificate [default: the system's roots].
    #[arg(long, global = true, env = "GRID_CA_FILE", value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub ca_file: Option<std::path::PathBuf>,

    /// With --server tls://…: a PEM client certificate, for a server that requires one.
    #[arg(long, global = true, env = "GRID_CERT_FILE", value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub cert_file: Option<std::path::PathBuf>,

    /// With --server tls://…: the PEM private key of --cert-file.
    #[arg(long, global = true, env = "GRID_CERT_KEY_FILE", value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub cert_key_file: Option<std::path::PathBuf>,

    /// Keys accepted besides --key-file while keys are rotated (repeatable; the
    /// environment takes a comma-separated list; empty means none, so a blanked
    /// `GRID_ALSO_ACCEPT_KEY_FILES=` ends a rotation).
    #[arg(
        long,
        global = true,
        env = "GRID_ALSO_ACCEPT_KEY_FILES",
        value_delimiter = ',',
        value_name = "FILE",
        value_parser = clap::value_parser!(std::ffi::OsString)
    )]
    pub also_accept_key_file: Vec<std::ffi::OsString>,

    /// The most connections the whole grid holds to the archive at once (every filter
    /// and queuer process and host together; OOI's one server serves them all): a filter,
    /// or a queuer listing the archive, takes a token of <NAME>.archive for each request
    /// in flight there, and the sink keeps this many tokens. Unset: each process keeps
    /// only its own budget (--http-connections).
    #[arg(long, global = true, env = "GRID_ARCHIVE_CONNECTIONS", value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub archive_connections: Option<u32>,
}

impl GridArgs {
    /// The keys this process signs with and accepts.
    pub fn keys(&self) -> anyhow::Result<crate::sign::Keys> {
        let also: Vec<std::path::PathBuf> = self
            .also_accept_key_file
            .iter()
            .filter(|f| !f.is_empty())
            .map(std::path::PathBuf::from)
            .collect();
        crate::sign::Keys::load(&self.namespace.0, self.key_file.as_deref(), &also)
    }

    /// The checked configuration: TLS files only with a `tls://` server, where they mean
    /// something (given to a plain server they would be silently ignored).
    pub fn config(&self) -> anyhow::Result<GridConfig> {
        if !self.server.0.starts_with(TLS_SCHEME) {
            let given: Vec<&str> = [
                (self.ca_file.is_some(), "--ca-file (GRID_CA_FILE)"),
                (self.cert_file.is_some(), "--cert-file (GRID_CERT_FILE)"),
                (
                    self.cert_key_file.is_some(),
                    "--cert-key-file (GRID_CERT_KEY_FILE)",
                ),
            ]
            .into_iter()
            .filter_map(|(set, name)| set.then_some(name))
            .collect();
            if !given.is_empty() {
                return Err(crate::cli::usage(format!(
                    "{} given, but --server {} is not a tls:// address: write --server tls://{} to use TLS, or unset them",
                    given.join(" and "),
                    self.server,
                    self.server
                ))
                .into());
            }
        }
        Ok(GridConfig {
            server: self.server.clone(),
            namespace: self.namespace.clone(),
            tls: crate::tls::TlsFiles {
                ca: self.ca_file.clone(),
                cert: self.cert_file.clone(),
                key: self.cert_key_file.clone(),
            },
        })
    }
}

/// Where the grid's server is and which tubes are ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GridConfig {
    /// The beanstalkd address.
    pub server: ServerAddr,
    /// The tube prefix.
    pub namespace: Namespace,
    /// TLS material, for a `tls://` server.
    pub tls: crate::tls::TlsFiles,
}

impl GridConfig {
    /// The tube jobs are queued in: `<namespace>.jobs`.
    pub fn jobs_tube(&self) -> String {
        format!("{}.jobs", self.namespace)
    }

    /// The tube results are put in: `<namespace>.results`.
    pub fn results_tube(&self) -> String {
        format!("{}.results", self.namespace)
    }

    /// The tube failure records go to: `<namespace>.failures`.
    pub fn failures_tube(&self) -> String {
        format!("{}.failures", self.namespace)
    }

    /// `<namespace>.sink`: the sink's state of the record (`wire::SinkState`).
    pub fn sink_tube(&self) -> String {
        format!("{}.sink", self.namespace)
    }

    /// `<namespace>.key`: the grid's key marker (see `grid::Grid::key_marker`).
    pub fn key_tube(&self) -> String {
        format!("{}.key", self.namespace)
    }

    /// `<namespace>.archive`: the grid's archive budget, a token per connection (see
    /// `archive`).
    pub fn archive_tube(&self) -> String {
        format!("{}.archive", self.namespace)
    }

    /// `<namespace>.discarded`: counts the jobs `gridctl discard` deleted since the server
    /// started (its deletes), so finished jobs are counted apart from them.
    pub fn discarded_tube(&self) -> String {
        format!("{}.discarded", self.namespace)
    }

    /// `<namespace>.grid`: the grid's identity marker (the queuer's `grid_id`).
    pub fn grid_tube(&self) -> String {
        format!("{}.grid", self.namespace)
    }

    /// `<namespace>.queuer`: where a queuer puts and deletes a probe to learn the newest id.
    pub fn queuer_tube(&self) -> String {
        format!("{}.queuer", self.namespace)
    }

    /// The prefix of the filters' status tubes: `<namespace>.status.`.
    pub fn status_prefix(&self) -> String {
        format!("{}.status.", self.namespace)
    }

    /// The status tube of one filter slot: `<namespace>.status.<host>.<pid>.<slot>`,
    /// with characters a tube name cannot hold replaced by `_`, cut to fit 200 bytes.
    pub fn status_tube(&self, host: &str, pid: u32, slot: usize) -> String {
        let host: String = host
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let tail = format!(".{pid}.{slot}");
        let mut tube = format!("{}{}", self.status_prefix(), host.trim_start_matches('-'));
        tube.truncate(beanstalk::MAX_TUBE_NAME - tail.len());
        tube + &tail
    }

    /// Connects to the server (over TLS for `tls://`), with an error that says how to
    /// point elsewhere.
    pub async fn connect(&self) -> anyhow::Result<Client> {
        let hint = "cannot reach the grid's server (is beanstalkd running there? set --server or GRID_SERVER)";
        match self.server.0.strip_prefix(TLS_SCHEME) {
            Some(addr) => {
                let config = self.tls.client_config()?;
                Client::connect_tls(addr, config, Default::default())
                    .await
                    .context(hint)
            }
            None => Client::connect(&self.server.0).await.context(hint),
        }
    }
}

/// The prefix of a server reached over TLS.
const TLS_SCHEME: &str = "tls://";

/// A `HOST:PORT` (or `tls://HOST:PORT`) address, checked for shape (not resolved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAddr(String);

impl FromStr for ServerAddr {
    type Err = String;

    fn from_str(whole: &str) -> Result<Self, Self::Err> {
        let hint = "expected HOST:PORT or tls://HOST:PORT, for example 127.0.0.1:11300";
        let s = whole.strip_prefix(TLS_SCHEME).unwrap_or(whole);
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("{s:?} has no port; {hint}"))?;
        let bare_host = host.trim_start_matches('[').trim_end_matches(']');
        if bare_host.is_empty() || bare_host.contains(char::is_whitespace) {
            return Err(format!("{s:?} has no valid host; {hint}"));
        }
        if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
            return Err("write an IPv6 host in brackets, like [::1]:11300".into());
        }
        match port.parse::<u16>() {
            Ok(p) if p > 0 => Ok(ServerAddr(whole.to_owned())),
            _ => Err(format!("{port:?} is not a port number (1-65535); {hint}")),
        }
    }
}

impl fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A namespace: the prefix of the grid's tubes, and a part of file names (the queuer's
/// ledger, the filter's spool), so it is held to what is safe in both: ASCII letters,
/// digits, `-`, `_` and `.`, starting with a letter or digit, no `..`, at most 191 bytes
/// (so `<ns>.failures` fits beanstalkd's 200).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace(String);

/// The longest namespace.
pub const MAX_NAMESPACE: usize = 191;

impl FromStr for Namespace {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rule = "a namespace is 1-191 ASCII letters, digits, '-', '_' or '.', starting with a letter or digit, without '..'";
        let first_ok = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        let chars_ok = s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if s.is_empty() || s.len() > MAX_NAMESPACE || !first_ok || !chars_ok || s.contains("..") {
            return Err(format!("{s:?} is not a namespace: {rule}"));
        }
        // The longest tube we derive decides what fits in beanstalkd's 200 bytes.
        validate_tube_name(&format!("{s}.failures")).map_err(|e| e.to_string())?;
        Ok(Namespace(s.to_owned()))
    }
}

impl Namespace {
    /// The namespace as text (safe in tube and file names).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        grid: GridArgs,
    }

    #[test]
    fn an_empty_list_of_keys_to_accept_means_none() {
        // What a blanked `GRID_ALSO_ACCEPT_KEY_FILES=` gives clap (issue 35: it stopped
        // every service with "a value is required").
        use clap::Parser;
        for given in ["", ","] {
            let cli = Cli::try_parse_from(["x", "--also-accept-key-file", given])
                .unwrap_or_else(|e| panic!("{given:?}: {e}"));
            let keys = cli.grid.keys().unwrap();
            assert!(keys.accepted_ids().is_empty(), "{given:?}");
        }
    }

    #[test]
    fn server_addresses_need_a_host_and_a_port() {
        for good in ["127.0.0.1:11300", "grid.example.org:1", "[::1]:11300"] {
            good.parse::<ServerAddr>().unwrap();
        }
        for bad in [
            "localhost",
            ":11300",
            "host:0",
            "host:99999",
            "host:port",
            "::1:11300",
        ] {
            let err = bad.parse::<ServerAddr>().unwrap_err();
            assert!(!err.is_empty(), "{bad}");
        }
    }

    #[test]
    fn a_tls_server_is_written_with_its_scheme() {
        let addr: ServerAddr = "tls://grid.example.org:11301".parse().unwrap();
        assert_eq!(addr.to_string(), "tls://grid.example.org:11301");
        assert!("tls://nohost".parse::<ServerAddr>().is_err());
    }

    #[test]
    fn namespaces_make_valid_tube_names() {
        let ns: Namespace = "camhd-2017".parse().unwrap();
        let config = GridConfig {
            server: DEFAULT_SERVER.parse().unwrap(),
            namespace: ns,
            tls: Default::default(),
        };
        assert_eq!(config.jobs_tube(), "camhd-2017.jobs");
        assert_eq!(config.results_tube(), "camhd-2017.results");
        for bad in [
            "",
            "-x",
            "a b",
            "a:b",
            &"n".repeat(192),
            "../../../../tmp/x",
            "a/b",
            "..",
            "a..b",
            ".hidden",
            "a$b",
            "a(b)",
            "é",
        ] {
            assert!(bad.parse::<Namespace>().is_err(), "{bad:?}");
        }
        "n".repeat(191).parse::<Namespace>().unwrap();
    }

    #[test]
    fn status_tubes_are_valid_for_any_hostname() {
        let config = GridConfig {
            server: DEFAULT_SERVER.parse().unwrap(),
            namespace: "camhd".parse().unwrap(),
            tls: Default::default(),
        };
        assert_eq!(
            config.status_tube("desk-3.lab", 42, 0),
            "camhd.status.desk-3.lab.42.0"
        );
        for host in ["weird host:name", "é", &"h".repeat(300)] {
            let tube = config.status_tube(host, 7, 3);
            validate_tube_name(&tube).unwrap();
            assert!(
                tube.starts_with("camhd.status.") && tube.ends_with(".7.3"),
                "{tube}"
            );
        }
    }
}
