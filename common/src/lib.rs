//! What every camhd-grid process shares: the beanstalkd client, the JSON wire format of
//! jobs and results, the `--server`/`--namespace` configuration, and the glue that turns
//! a `run()` into a process exit code.

pub mod backoff;
pub mod beanstalk;
pub mod cli;
pub mod config;
pub mod generate;
pub mod git;
pub mod grid;
pub mod host;
pub mod metrics;
pub mod paths;
pub mod process;
pub mod random;
pub mod shutdown;
pub mod sign;
pub mod tls;
pub mod wire;
