//! The limits on reading one video as flags (each HTTP request's time and rate, the whole
//! video's deadline), shared by the worker and `filter analyze`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use filter::source::{self, ArchiveTls, Hosts, HttpLimits, Reach};

/// Bounds on every HTTP request to an archive or lazycache server, and on the whole
/// analysis of a video.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpArgs {
    /// The longest the analysis of one video may take, fetching and decoding included;
    /// past it the analysis stops (exit 32 in `filter analyze`; a failed attempt for the
    /// worker, retried with backoff). [default: derived from the video: 5 minutes, plus
    /// 50 ms a frame analysed, plus its bytes at 1 MiB/s]
    #[arg(long, env = "FILTER_VIDEO_DEADLINE", value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub video_deadline: Option<u64>,

    /// The longest one HTTP request may take, whatever its size.
    #[arg(long, env = "FILTER_HTTP_DEADLINE", default_value_t = 600, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub http_deadline: u64,

    /// The slowest sustained rate accepted from a server, in bytes per second: a request
    /// for N bytes may take 20 s plus N divided by this (a ~580 KB CamHD frame: 29 s at
    /// the default), so a trickling server fails in bounded time.
    #[arg(long, env = "FILTER_HTTP_MIN_RATE", default_value_t = 65_536, value_name = "BYTES_PER_SEC", value_parser = clap::value_parser!(u64).range(1..))]
    pub http_min_rate: u64,

    /// The most requests in flight to one archive host from this whole process (every
    /// slot's videos together), each on a connection of its own: the archive is one
    /// server the whole grid shares. Each video asks for as many as its round trip needs
    /// (4 beside the server, 19 at 10 ms, 64 from 40 ms on) within this; a host that
    /// refuses (503, 429, refused connections) gets half as many, and one more after
    /// each clean round, and its `Retry-After` is honoured (up to 60 s). Over HTTP/2
    /// (`--http2`) every request is a stream on the host's one connection, and this bounds
    /// the streams in flight.
    #[arg(long, env = "FILTER_HTTP_CONNECTIONS", default_value_t = HttpLimits::CONNECTIONS, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=256))]
    pub http_connections: usize,

    /// When to speak HTTP/2 to the archive: one connection per host for the whole
    /// process, each request a stream on it, instead of a connection per request in
    /// flight (and, over TLS, one handshake instead of one per connection). `alpn`: offer
    /// it to https:// archives and use it where the server picks it (HTTP/1.1 where it
    /// does not); `prior-knowledge`: also to http:// archives without asking (they are
    /// known to serve HTTP/2 without TLS, as nginx's `listen … http2` does). The requests
    /// are the same (many ranges to one). Measured over TLS at 40 ms: against Apache
    /// (OOI's server) ~5% fewer bytes on the wire at the same speed for ~18% more of its
    /// CPU; against nginx ~11% more bytes and ~4x its CPU. Off: HTTP/1.1.
    #[arg(
        long,
        env = "FILTER_HTTP2",
        value_name = "MODE",
        value_enum,
        default_value_t
    )]
    pub http2: Http2,

    /// Trust only the CAs in this PEM file for https:// archives (a mirror or proxy with
    /// a private CA), over HTTP/1.1 and HTTP/2 alike. [default: the public web's CAs,
    /// Mozilla's list built in]
    #[arg(long, env = "FILTER_HTTP_CA_FILE", value_name = "PEM")]
    pub http_ca_file: Option<PathBuf>,
}

/// Whether to speak HTTP/2 to the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Http2 {
    /// HTTP/1.1, several ranges to a request (multipart replies).
    #[default]
    Off,
    /// HTTP/2 to https:// archives that pick it by ALPN; HTTP/1.1 to the rest.
    Alpn,
    /// HTTP/2 to http:// archives without asking (known to speak it), and as `alpn` to
    /// https:// ones.
    PriorKnowledge,
}

impl HttpArgs {
    /// The checked limits: an unreadable `--http-ca-file` is an error naming it.
    pub fn limits(&self) -> anyhow::Result<HttpLimits> {
        let mut hosts = Hosts::new(self.http_connections);
        if let Some(ca) = &self.http_ca_file {
            let tls = ArchiveTls::from_ca_file(ca)
                .map_err(|e| common::cli::usage(format!("--http-ca-file: {e}")))?;
            hosts = hosts.trusting(tls);
        }
        Ok(HttpLimits {
            deadline: Duration::from_secs(self.http_deadline),
            min_rate: self.http_min_rate,
            reach: Arc::new(Reach::Any),
            video: None,
            hosts: Arc::new(hosts),
            http2: match self.http2 {
                Http2::Off => source::Http2::Off,
                Http2::Alpn => source::Http2::Alpn,
                Http2::PriorKnowledge => source::Http2::PriorKnowledge,
            },
        })
    }

    /// `--video-deadline`: a fixed budget, or `None` for one derived from each video.
    pub fn video_budget(&self) -> Option<Duration> {
        self.video_deadline.map(Duration::from_secs)
    }
}
