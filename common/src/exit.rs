//! Exit codes, the same in every binary (after BSD's sysexits where one fits), and the
//! errors that choose one: a setting to fix (`Usage`, 2) and a lock another process
//! holds (`Busy`, 75). Light: the wire format's key files raise them too.

/// Everything asked for was done.
pub const OK: u8 = 0;
/// Something failed; the message says what.
pub const FAILURE: u8 = 1;
/// Bad arguments (clap's own code).
pub const USAGE: u8 = 2;
/// The beanstalkd server could not be reached (EX_UNAVAILABLE).
pub const UNAVAILABLE: u8 = 69;
/// Another process holds what this one needs (a lock); try again later (EX_TEMPFAIL).
pub const BUSY: u8 = 75;

/// An error meaning "another process holds this; try again later" (exit code
/// [`exit::BUSY`]), for locks that make a process one of a kind.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Busy(pub String);

/// A configuration that cannot work (exit code [`exit::USAGE`], like clap's own
/// refusals): found after parsing, e.g. a file that is not safe to use as given.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// A [`Usage`] error.
pub fn usage(message: impl Into<String>) -> Usage {
    Usage(message.into())
}
