//! The JSON bodies that travel through the tubes: jobs (`<namespace>.jobs`) and results
//! (`<namespace>.results`). Every body carries a `version`; decoding checks size, version
//! and field sanity and never panics. Documented with examples in `docs/wire-format.md`.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The wire-format version this build writes and reads.
pub const WIRE_VERSION: u32 = 1;

/// The largest job body accepted on decode. Jobs only reference a video, so anything near
/// this is not a job.
pub const MAX_JOB_BYTES: usize = 64 * 1024;

/// The largest result body accepted on decode. A 27,000-frame video at stride 1 gives a
/// document of about 20 MB; this leaves room without inviting a memory blow-up.
pub const MAX_RESULT_BYTES: usize = 128 << 20;

/// Why a body could not be decoded. Every variant is a permanent failure: the same bytes
/// will never decode.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The body is larger than this kind of body may be.
    #[error("{kind} body is {size} bytes, more than the {max} allowed")]
    TooLarge {
        /// "job" or "result".
        kind: &'static str,
        /// The body's size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The body is not JSON, or not of the expected shape.
    #[error("{kind} body is not valid JSON of the expected shape: {source}")]
    Malformed {
        /// "job" or "result".
        kind: &'static str,
        /// serde's description, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// The body is JSON but has no numeric `version`.
    #[error("{kind} body has no numeric \"version\" field")]
    MissingVersion {
        /// "job" or "result".
        kind: &'static str,
    },
    /// The body was written by a newer (or unknown) version of the format.
    #[error("{kind} body has version {found}; this build reads version {WIRE_VERSION} (upgrade camhd-grid?)")]
    UnknownVersion {
        /// "job" or "result".
        kind: &'static str,
        /// The version found.
        found: u64,
    },
    /// A packed document inflates past the size it may have.
    #[error("result document_gzip inflates past {max} bytes")]
    InflatesPast {
        /// The limit.
        max: usize,
    },
    /// A field has a value no job could mean.
    #[error("{kind} field \"{field}\" is invalid: {reason}")]
    Invalid {
        /// "job" or "result".
        kind: &'static str,
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// Who queued a job, from where, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedBy {
    /// When it was put.
    pub at: DateTime<Utc>,
    /// The queuer's hostname.
    pub host: String,
    /// The SOURCE the queuer found the video in (folder, URL or list).
    pub source: String,
    /// The queuer's software and version, e.g. `camhd-grid queuer 0.1.0`.
    pub software: String,
}

/// One failed attempt at a job, kept in the job body so that the record travels through
/// the tubes and survives any process restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// When the attempt ended.
    pub at: DateTime<Utc>,
    /// The filter's hostname.
    pub host: String,
    /// The error, one line.
    pub error: String,
    /// True when retrying cannot help (the job is buried).
    pub permanent: bool,
}

/// A job: analyse one video and produce its `_optical_flow.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Always [`WIRE_VERSION`] when written by this build.
    pub version: u32,
    /// The video: a local path, a `file://`, `http(s)://` or lazycache URL.
    pub video: String,
    /// Where the JSON goes, relative to the metadata checkout's root.
    pub output: String,
    /// Analyse every `stride`-th frame.
    pub stride: u32,
    /// The first sampled frame (1-based, as in QuickTime).
    pub start: u64,
    /// One past the last sampled frame; -1 means the number of frames.
    pub stop: i64,
    /// Replace an existing JSON in the checkout.
    #[serde(default)]
    pub force: bool,
    /// Provenance, for the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_by: Option<QueuedBy>,
    /// Earlier failed attempts, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
}

/// A record of one failed attempt, put into `<namespace>.failures` so that what went
/// wrong travels through the tubes and survives restarts (with beanstalkd's binlog). The
/// job itself keeps its id: released with backoff, or buried when retrying cannot help.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// Always [`WIRE_VERSION`] when written by this build.
    pub version: u32,
    /// The id of what failed: a job (records by filters) or a result (by the sink).
    pub job_id: u64,
    /// The job's video.
    pub video: String,
    /// The job's output path.
    pub output: String,
    /// Which attempt this was (1 for the first).
    pub attempt: u32,
    /// What was done with it: released (to be retried), buried, or superseded.
    pub action: Action,
    /// The error, one line.
    pub error: String,
    /// The hostname of the filter (or sink) that wrote the record.
    pub host: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// The video and output of a failure record whose job or result body could not be read.
pub const UNREADABLE: &str = "(unreadable)";

impl Failure {
    /// A record of the first attempt at `job_id` (a job, or a result for the sink),
    /// buried, made now; `job` is `None` when its body could not be read. The error is
    /// flattened to one line. Set `attempt` and `action` for other outcomes.
    pub fn now(job_id: u64, job: Option<&Job>, error: &str, host: &str) -> Failure {
        // The record names the video already: a reason that starts with it says it
        // once (every read error did, "URL: the server answered HTTP 404").
        let error = job
            .and_then(|j| error.strip_prefix(j.video.as_str())?.strip_prefix(": "))
            .unwrap_or(error);
        Failure {
            version: WIRE_VERSION,
            job_id,
            video: job.map_or_else(|| UNREADABLE.into(), |j| j.video.clone()),
            output: job.map_or_else(|| UNREADABLE.into(), |j| j.output.clone()),
            attempt: 1,
            action: Action::Buried,
            error: error.replace('\n', " "),
            host: host.to_owned(),
            at: Utc::now(),
        }
    }

    /// The body to put into the failures tube.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes a failure record.
    pub fn decode(bytes: &[u8]) -> Result<Failure, WireError> {
        decode(bytes, "failure", MAX_JOB_BYTES)
    }
}

/// A filter slot's heartbeat: what it is working on and how far it has got. Each slot
/// keeps exactly one in its own tube ([`crate::config::GridConfig::status_tube`]),
/// replacing it as it goes, so `gridctl status` can show every worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Always [`WIRE_VERSION`] when written by this build.
    pub version: u32,
    /// The filter's hostname.
    pub host: String,
    /// The filter's process id.
    pub pid: u32,
    /// The slot within the filter.
    pub slot: usize,
    /// The job being analysed, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<u64>,
    /// Its video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<String>,
    /// Frame pairs done.
    #[serde(default)]
    pub frames_done: u64,
    /// Frame pairs in the job.
    #[serde(default)]
    pub frames_total: u64,
    /// Seconds until the next heartbeat at the latest; one not renewed within a few of
    /// these belongs to a dead filter. Absent in heartbeats of older filters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_seconds: Option<u64>,
    /// Why the slot gives jobs back untouched instead of analysing them (a key it cannot
    /// verify jobs with, a key the grid rotated away from), when it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusing: Option<String>,
    /// When this heartbeat was written.
    pub at: DateTime<Utc>,
}

/// A heartbeat older than this many of its intervals belongs to a dead filter.
pub const HEARTBEAT_MISSES: u64 = 3;
/// The interval assumed for heartbeats that do not say (written by older filters).
pub const HEARTBEAT_DEFAULT_EVERY: u64 = 40;

impl Heartbeat {
    /// True when this heartbeat, written `age_seconds` ago, has not been renewed for
    /// [`HEARTBEAT_MISSES`] intervals: its filter died, hangs, or lost the server. A
    /// heartbeat from more than a minute in the future (a clock gone wrong) counts as
    /// dead too, since its age tells nothing.
    pub fn is_dead(&self, age_seconds: i64) -> bool {
        let every = self.every_seconds.unwrap_or(HEARTBEAT_DEFAULT_EVERY).max(1);
        let limit = i64::try_from(every.saturating_mul(HEARTBEAT_MISSES)).unwrap_or(i64::MAX);
        age_seconds > limit || age_seconds < -60
    }

    /// The body to put into the slot's status tube.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes a heartbeat.
    pub fn decode(bytes: &[u8]) -> Result<Heartbeat, WireError> {
        decode(bytes, "heartbeat", MAX_JOB_BYTES)
    }
}

/// What the sink says of the record: the commits its remote does not have yet, and why
/// the last push failed. The sink keeps exactly one in `<namespace>.sink`
/// ([`crate::config::GridConfig::sink_tube`]), replaced after each push, so `gridctl
/// status` and the dashboard can show a record that lags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SinkState {
    /// Always [`WIRE_VERSION`] when written by this build.
    pub version: u32,
    /// The sink's hostname.
    pub host: String,
    /// The remote it pushes to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    /// How many commits the remote does not have yet.
    #[serde(default)]
    pub unpushed_count: u64,
    /// The newest of them (`<short id> <subject>`, at most 20), oldest first.
    #[serde(default)]
    pub unpushed: Vec<String>,
    /// Why the last push failed, while commits wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_error: Option<String>,
    /// When this was written.
    pub at: DateTime<Utc>,
}

impl SinkState {
    /// The body to put into the sink's tube.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes a sink state.
    pub fn decode(bytes: &[u8]) -> Result<SinkState, WireError> {
        decode(bytes, "sink state", MAX_JOB_BYTES)
    }
}

/// Where, by what and how fast a result was computed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComputedBy {
    /// The filter's hostname.
    pub host: String,
    /// The filter's software and version.
    pub software: String,
    /// When the analysis started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// Wall-clock seconds of the analysis.
    pub elapsed_seconds: f64,
}

impl Job {
    /// A job with the original tool's defaults (stride 10, start 1, stop -1).
    pub fn new(video: impl Into<String>, output: impl Into<String>) -> Job {
        Job {
            version: WIRE_VERSION,
            video: video.into(),
            output: output.into(),
            stride: 10,
            start: 1,
            stop: -1,
            force: false,
            queued_by: None,
            attempts: Vec::new(),
        }
    }

    /// The body to put into the jobs tube.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes and checks a job body.
    pub fn decode(bytes: &[u8]) -> Result<Job, WireError> {
        let job: Job = decode(bytes, "job", MAX_JOB_BYTES)?;
        job.validate()?;
        Ok(job)
    }

    fn validate(&self) -> Result<(), WireError> {
        let invalid = |field, reason: &str| {
            Err(WireError::Invalid {
                kind: "job",
                field,
                reason: reason.to_owned(),
            })
        };
        if self.video.trim().is_empty() {
            return invalid("video", "it is empty");
        }
        if let Err(e) = crate::paths::check_output(&self.output) {
            return invalid("output", &e.to_string());
        }
        if self.stride == 0 {
            return invalid("stride", "it must be at least 1");
        }
        if self.start == 0 {
            return invalid("start", "frames are numbered from 1");
        }
        if self.stop != -1 && self.stop <= self.start as i64 {
            return invalid("stop", "it must be -1 (all frames) or greater than start");
        }
        Ok(())
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising these plain structs cannot fail: no maps with non-string keys, no
    // fallible Serialize impls.
    serde_json::to_vec(value).unwrap_or_else(|e| panic!("wire body failed to serialise: {e}"))
}

/// The version check comes first, so that a body from a newer format is reported as
/// such rather than as a confusing shape error.
fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    kind: &'static str,
    max: usize,
) -> Result<T, WireError> {
    let unwrapped = unwrap_once(bytes, kind)?;
    let bytes: &[u8] = &unwrapped;
    if bytes.len() > max {
        return Err(WireError::TooLarge {
            kind,
            size: bytes.len(),
            max,
        });
    }
    #[derive(Deserialize)]
    struct Probe<'a> {
        #[serde(borrow)]
        version: Option<&'a RawValue>,
    }
    let probe: Probe =
        serde_json::from_slice(bytes).map_err(|source| WireError::Malformed { kind, source })?;
    check_version(kind, probe.version.map(RawValue::get))?;
    serde_json::from_slice(bytes).map_err(|source| WireError::Malformed { kind, source })
}

/// A signed body is read inside its envelope (checking it is the reader's business);
/// an envelope inside that one was checked by nobody and is refused.
fn unwrap_once<'a>(
    bytes: &'a [u8],
    kind: &'static str,
) -> Result<std::borrow::Cow<'a, [u8]>, WireError> {
    let unwrapped = crate::sign::unwrap(bytes);
    if crate::sign::is_envelope(&unwrapped) {
        return Err(WireError::Invalid {
            kind,
            field: "signed",
            reason: "an envelope inside an envelope".into(),
        });
    }
    Ok(unwrapped)
}

/// The body's `version` (its raw JSON text) must be this build's.
fn check_version(kind: &'static str, version: Option<&str>) -> Result<(), WireError> {
    match version.and_then(|v| v.parse::<u64>().ok()) {
        None => Err(WireError::MissingVersion { kind }),
        Some(v) if v != u64::from(WIRE_VERSION) => {
            Err(WireError::UnknownVersion { kind, found: v })
        }
        Some(_) => Ok(()),
    }
}

mod action;
mod result;

pub use action::Action;
pub use result::{job_said, JobResult, COMPRESS_ABOVE};

#[cfg(test)]
mod tests;
