//! What every camhd-grid process shares: the beanstalkd client, the JSON wire format of
//! jobs and results, the `--server`/`--namespace` configuration, and the glue that turns
//! a `run()` into a process exit code. Without the `grid` feature (on by default) only
//! the path policy (`paths`), safe text (`text`), `random`, and the wrapped child processes (`process`, `git`)
//! are built, on the standard library alone: all a reader of movies needs; the `wire`
//! feature adds the bodies and their signatures (`wire`, `sign`, `exit`, `files`)
//! without the client, TLS, axum or clap.

#[cfg(feature = "grid")]
pub mod archive;
#[cfg(feature = "grid")]
pub mod backoff;
#[cfg(feature = "grid")]
pub mod beanstalk;
#[cfg(feature = "grid")]
pub mod cli;
#[cfg(feature = "grid")]
pub mod config;
#[cfg(feature = "wire")]
pub mod exit;
#[cfg(feature = "wire")]
pub mod files;
#[cfg(feature = "grid")]
pub mod generate;
pub mod git;
#[cfg(feature = "grid")]
pub mod grid;
#[cfg(feature = "grid")]
pub mod host;
#[cfg(feature = "grid")]
pub mod metrics;
pub mod paths;
pub mod process;
pub mod random;
#[cfg(feature = "grid")]
pub mod shutdown;
#[cfg(feature = "wire")]
pub mod sign;
#[cfg(feature = "wire")]
pub mod skip;
pub mod text;
#[cfg(feature = "grid")]
pub mod tls;
#[cfg(feature = "wire")]
pub mod wire;
