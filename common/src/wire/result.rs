//! The result body: the `_optical_flow.json` document of one job, carried as the raw
//! JSON the filter wrote (gzipped when large), with the one decoder every reader uses:
//! capped before parsing and while inflating, version first, job checked.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{
    check_version, encode, unwrap_once, ComputedBy, Job, WireError, MAX_RESULT_BYTES, WIRE_VERSION,
};

/// A result: the `_optical_flow.json` document for one job.
///
/// The document travels as raw JSON, never as a tree: the filter serialises its typed
/// document once ([`JobResult::new`]), encoding copies those bytes (or gzips them, for a
/// large one) and decoding hands back the bytes it read ([`JobResult::decode_within`]).
#[derive(Debug, Clone, Serialize)]
pub struct JobResult {
    /// Always [`WIRE_VERSION`] when written by this build.
    pub version: u32,
    /// The job this answers, as it was reserved.
    pub job: Job,
    /// The id the job had in the jobs tube, for the operator's cross-reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<u64>,
    /// The `_optical_flow.json` document, compact JSON, always an object. A body carries
    /// it as `document`, or as `document_gzip` when it is larger than [`COMPRESS_ABOVE`].
    pub document: Box<RawValue>,
    /// Provenance and timing.
    pub computed_by: ComputedBy,
}

impl PartialEq for JobResult {
    fn eq(&self, other: &JobResult) -> bool {
        (self.version, &self.job, self.job_id, &self.computed_by)
            == (other.version, &other.job, other.job_id, &other.computed_by)
            && self.document.get() == other.document.get()
    }
}

/// A result body as it travels: the document plain or packed.
#[derive(Serialize)]
struct ResultBody<'a> {
    version: u32,
    job: &'a Job,
    #[serde(skip_serializing_if = "Option::is_none")]
    job_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    document: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    document_gzip: Option<String>,
    computed_by: &'a ComputedBy,
}

/// A result body as it is read: every field raw, so that one pass checks it is JSON
/// without building a tree, and the version is judged before any field's shape.
#[derive(Deserialize)]
struct RawResult<'a> {
    #[serde(borrow)]
    version: Option<&'a RawValue>,
    #[serde(borrow)]
    job: Option<&'a RawValue>,
    #[serde(borrow)]
    job_id: Option<&'a RawValue>,
    #[serde(borrow)]
    document: Option<&'a RawValue>,
    #[serde(borrow)]
    document_gzip: Option<&'a RawValue>,
    #[serde(borrow)]
    computed_by: Option<&'a RawValue>,
}

/// Result bodies larger than this carry their document compressed (about 12x smaller:
/// measured 96.5 KB of compact JSON for 300 entries became 8.1 KB).
pub const COMPRESS_ABOVE: usize = 64 * 1024;

impl JobResult {
    /// The result of `job` (id `job_id`): `document` serialised once, here.
    pub fn new<D: Serialize>(
        job: Job,
        job_id: Option<u64>,
        document: &D,
        computed_by: ComputedBy,
    ) -> Result<JobResult, serde_json::Error> {
        Ok(JobResult {
            version: WIRE_VERSION,
            job,
            job_id,
            document: serde_json::value::to_raw_value(document)?,
            computed_by,
        })
    }

    /// The body to put into the results tube: plain JSON, with the document gzipped
    /// and base64-encoded when it is larger than [`COMPRESS_ABOVE`].
    pub fn encode(&self) -> Vec<u8> {
        let raw = self.document.get();
        let large = raw.len() > COMPRESS_ABOVE;
        encode(&ResultBody {
            version: self.version,
            job: &self.job,
            job_id: self.job_id,
            document: (!large).then_some(&*self.document),
            document_gzip: large.then(|| gzip_base64(raw.as_bytes())),
            computed_by: &self.computed_by,
        })
    }

    /// Decodes and checks a result body whose document may be up to
    /// [`MAX_RESULT_BYTES`].
    pub fn decode(bytes: &[u8]) -> Result<JobResult, WireError> {
        JobResult::decode_within(bytes, MAX_RESULT_BYTES)
    }

    /// Decodes and checks a result body whose document may be at most `max_document`
    /// bytes: the body is refused before parsing when it is larger than that and a
    /// little room for the rest, a packed document is inflated as a stream that stops at
    /// the cap, and the document is kept as the bytes read.
    pub fn decode_within(bytes: &[u8], max_document: usize) -> Result<JobResult, WireError> {
        let unwrapped = unwrap_once(bytes, "result")?;
        let bytes: &[u8] = &unwrapped;
        let max_body = max_document.saturating_add(ENVELOPE_ROOM);
        if bytes.len() > max_body {
            return Err(WireError::TooLarge {
                kind: "result",
                size: bytes.len(),
                max: max_body,
            });
        }
        let raw: RawResult =
            serde_json::from_slice(bytes).map_err(|source| WireError::Malformed {
                kind: "result",
                source,
            })?;
        check_version("result", raw.version.map(RawValue::get))?;
        let job = job_of(raw.job)?;
        let job_id = field(raw.job_id, "job_id")?;
        let computed_by = field(raw.computed_by, "computed_by")?.ok_or(WireError::Invalid {
            kind: "result",
            field: "computed_by",
            reason: "it is missing".into(),
        })?;
        let document = document_of(raw.document, raw.document_gzip, max_document)?;
        Ok(JobResult {
            version: WIRE_VERSION,
            job,
            job_id,
            document,
            computed_by,
        })
    }
}

/// A body may hold this much besides its document.
const ENVELOPE_ROOM: usize = 1 << 20;

/// For a failure record: the job a result body names, unchecked (it cannot be trusted:
/// the body may be refused for any other reason), read without decoding the document.
pub fn job_said(bytes: &[u8]) -> Option<Job> {
    #[derive(Deserialize)]
    struct JobOnly<'a> {
        #[serde(borrow)]
        job: Option<&'a RawValue>,
    }
    let unwrapped = crate::sign::unwrap(bytes);
    let body: JobOnly = serde_json::from_slice(&unwrapped).ok()?;
    serde_json::from_str(body.job?.get()).ok()
}

/// The job a result carries, checked as a job body is.
fn job_of(raw: Option<&RawValue>) -> Result<Job, WireError> {
    let raw = raw.ok_or(WireError::Invalid {
        kind: "result",
        field: "job",
        reason: "it is missing".into(),
    })?;
    Job::decode(raw.get().as_bytes()).map_err(|e| match e {
        WireError::Invalid { field, reason, .. } => WireError::Invalid {
            kind: "result",
            field,
            reason: format!("in its job: {reason}"),
        },
        other => WireError::Invalid {
            kind: "result",
            field: "job",
            reason: other.to_string(),
        },
    })
}

/// An optional field of the result, typed.
fn field<T: DeserializeOwned>(
    raw: Option<&RawValue>,
    name: &'static str,
) -> Result<Option<T>, WireError> {
    match raw.map(RawValue::get) {
        None | Some("null") => Ok(None),
        Some(text) => serde_json::from_str(text)
            .map(Some)
            .map_err(|e| WireError::Invalid {
                kind: "result",
                field: name,
                reason: e.to_string(),
            }),
    }
}

/// The document, plain or unpacked, at most `max` bytes, and a JSON object.
fn document_of(
    plain: Option<&RawValue>,
    packed: Option<&RawValue>,
    max: usize,
) -> Result<Box<RawValue>, WireError> {
    let present = |r: &Option<&RawValue>| r.is_some_and(|r| r.get() != "null");
    let document = match (present(&plain), present(&packed)) {
        (_, true) => {
            let packed: String = field(packed, "document_gzip")?.unwrap_or_default();
            unpack(&packed, max)?
        }
        (true, false) => plain.map(|r| r.to_owned()).unwrap_or_default(),
        (false, false) => {
            return Err(WireError::Invalid {
                kind: "result",
                field: "document",
                reason: "neither document nor document_gzip is there".into(),
            })
        }
    };
    if document.get().len() > max {
        return Err(WireError::TooLarge {
            kind: "result document",
            size: document.get().len(),
            max,
        });
    }
    if !document.get().starts_with('{') {
        return Err(WireError::Invalid {
            kind: "result",
            field: "document",
            reason: "it must be a JSON object".into(),
        });
    }
    Ok(document)
}

/// Gzip, then base64: what `document_gzip` holds.
fn gzip_base64(bytes: &[u8]) -> String {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = std::io::Write::write_all(&mut gz, bytes);
    let gzipped = gz.finish().unwrap_or_default();
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, gzipped)
}

/// The document from `document_gzip`: base64, then gzip read as a stream that stops one
/// byte past `max`, so a small bomb costs at most the cap in memory.
fn unpack(packed: &str, max: usize) -> Result<Box<RawValue>, WireError> {
    let invalid = |reason: String| WireError::Invalid {
        kind: "result",
        field: "document_gzip",
        reason,
    };
    let gzipped = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, packed)
        .map_err(|e| invalid(format!("not base64: {e}")))?;
    let mut json = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(flate2::read::GzDecoder::new(&gzipped[..]), max as u64 + 1),
        &mut json,
    )
    .map_err(|e| invalid(format!("not gzip: {e}")))?;
    if json.len() > max {
        return Err(WireError::InflatesPast { max });
    }
    let text = String::from_utf8(json).map_err(|e| invalid(format!("not UTF-8 inside: {e}")))?;
    RawValue::from_string(text).map_err(|e| invalid(format!("not JSON inside: {e}")))
}
