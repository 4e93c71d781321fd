//! The HTTP limits as flags, shared by the worker and `filter analyze`.

use std::time::Duration;

use std::sync::Arc;

use filter::source::{HttpLimits, Reach};

/// Bounds on every HTTP request to an archive or lazycache server.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpArgs {
    /// The longest one HTTP request may take, whatever its size.
    #[arg(long, env = "FILTER_HTTP_DEADLINE", default_value_t = 600, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub http_deadline: u64,

    /// The slowest sustained rate accepted from a server, in bytes per second: a request
    /// for N bytes may take 20 s plus N divided by this (a ~580 KB CamHD frame: 29 s at
    /// the default), so a trickling server fails in bounded time.
    #[arg(long, env = "FILTER_HTTP_MIN_RATE", default_value_t = 65_536, value_name = "BYTES_PER_SEC", value_parser = clap::value_parser!(u64).range(1..))]
    pub http_min_rate: u64,
}

impl HttpArgs {
    /// The checked limits.
    pub fn limits(&self) -> HttpLimits {
        HttpLimits {
            deadline: Duration::from_secs(self.http_deadline),
            min_rate: self.http_min_rate,
            reach: Arc::new(Reach::Any),
        }
    }
}
