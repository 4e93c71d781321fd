//! The client's error type: one variant per beanstalkd error reply, plus the ways a
//! connection itself can fail.

use std::time::Duration;

/// Everything the beanstalkd client can fail with.
///
/// The variants named after protocol replies (`TimedOut` … `NotIgnored`) mean the server
/// answered and the connection is still usable; the others mean it is not.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The TCP connection could not be made.
    #[error("could not connect to beanstalkd at {addr}")]
    Connect {
        /// The address tried.
        addr: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// Connecting took longer than the connect timeout.
    #[error("timed out after {after:?} connecting to beanstalkd at {addr}")]
    ConnectTimeout {
        /// The address tried.
        addr: String,
        /// The timeout that ran out.
        after: Duration,
    },
    /// The TLS handshake failed: the server's certificate is not trusted (wrong CA, wrong
    /// name), or the server refused ours.
    #[error("TLS with {addr} failed: {detail} (check GRID_CA_FILE, and GRID_CERT_FILE/GRID_CERT_KEY_FILE if the server wants a client certificate)")]
    Tls {
        /// The address tried.
        addr: String,
        /// What rustls said.
        detail: String,
    },
    /// The server did not answer a command within the read timeout.
    #[error("beanstalkd did not answer `{command}` within {after:?}")]
    ReadTimeout {
        /// The command's name.
        command: &'static str,
        /// The timeout that ran out.
        after: Duration,
    },
    /// The server closed the connection (it stopped, restarted or dropped us).
    #[error("beanstalkd closed the connection (did the server stop or restart?)")]
    ConnectionClosed,
    /// An earlier command on this connection failed part-way or was cancelled, so the
    /// stream is out of step; make a new connection.
    #[error("this beanstalkd connection is unusable after an earlier failure; reconnect")]
    Broken,
    /// A socket error.
    #[error("I/O error talking to beanstalkd")]
    Io(#[from] std::io::Error),
    /// `TIMED_OUT`: no job became ready within a `reserve-with-timeout`.
    #[error("TIMED_OUT: no job became ready in time")]
    TimedOut,
    /// `DEADLINE_SOON`: a job this connection holds is within a second of its TTR.
    #[error("DEADLINE_SOON: a reserved job's time-to-run is about to expire")]
    DeadlineSoon,
    /// `NOT_FOUND`: no such job (or not reserved by this connection), or nothing to peek.
    #[error("NOT_FOUND: no such job, or it is not reserved by this connection")]
    NotFound,
    /// `JOB_TOO_BIG`: the body is larger than the server's `max-job-size`.
    #[error("JOB_TOO_BIG: the job body exceeds the server's max-job-size (beanstalkd -z)")]
    JobTooBig,
    /// `DRAINING`: the server is in drain mode and takes no new jobs.
    #[error("DRAINING: the server is in drain mode and accepts no new jobs")]
    Draining,
    /// `BURIED`: the server buried the job instead of doing what was asked (out of memory
    /// growing a priority queue). `put` names the new job's id; `release` does not.
    #[error("BURIED: the server ran out of memory and buried the job{}", .0.map(|id| format!(" {id}")).unwrap_or_default())]
    Buried(Option<u64>),
    /// `OUT_OF_MEMORY`.
    #[error("OUT_OF_MEMORY: the server could not allocate memory")]
    OutOfMemory,
    /// `INTERNAL_ERROR`: a bug in the server.
    #[error("INTERNAL_ERROR: beanstalkd reported an internal error")]
    InternalError,
    /// `BAD_FORMAT`: the server could not parse a command.
    #[error("BAD_FORMAT: the server could not parse the command")]
    BadFormat,
    /// `UNKNOWN_COMMAND`.
    #[error("UNKNOWN_COMMAND: the server does not know the command")]
    UnknownCommand,
    /// `EXPECTED_CRLF`: a job body was not followed by CR LF.
    #[error("EXPECTED_CRLF: the job body was not followed by CR LF")]
    ExpectedCrlf,
    /// `NOT_IGNORED`: the last watched tube cannot be ignored.
    #[error("NOT_IGNORED: a connection must watch at least one tube")]
    NotIgnored,
    /// A tube name that breaks beanstalkd's rules; nothing was sent.
    #[error("invalid tube name {name:?}: {reason}")]
    InvalidTubeName {
        /// The name given.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A reply that the protocol does not allow for this command.
    #[error("unexpected reply to `{command}`: {reply:?}")]
    UnexpectedReply {
        /// The command's name.
        command: &'static str,
        /// The reply line, lossily decoded.
        reply: String,
    },
}

impl Error {
    /// True for the errors after which the connection must be replaced.
    pub fn is_connection_lost(&self) -> bool {
        matches!(
            self,
            Error::Connect { .. }
                | Error::ConnectTimeout { .. }
                | Error::Tls { .. }
                | Error::ReadTimeout { .. }
                | Error::ConnectionClosed
                | Error::Broken
                | Error::Io(_)
                | Error::UnexpectedReply { .. }
        )
    }
}
