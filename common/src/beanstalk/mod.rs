//! Our own async beanstalkd client on tokio.
//!
//! Why our own: the Rust clients on crates.io are synchronous and unmaintained, on tokio
//! 0.1 with 32-bit job ids, not binary-safe, or missing commands (see
//! `docs/architecture.md`). This one speaks the whole protocol, keeps bodies as bytes,
//! uses 64-bit ids and gives every error reply its own [`Error`] variant.

mod client;
mod error;
mod proto;
mod stats;
mod tube;

#[cfg(test)]
mod raw_tests;

pub use client::{Client, ConnectOptions, PutOptions, RawJob};
pub use error::Error;
pub use stats::{JobState, JobStats, ServerStats, TubeStats};
pub use tube::{validate_tube_name, MAX_TUBE_NAME};
