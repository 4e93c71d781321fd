//! A result body as the sink takes it: decoded by `common::wire` within the sink's size
//! cap (the body bounded before parsing, a packed document unpacked no further than the
//! cap, its job checked, path policy included), then its document checked
//! to be an optical-flow document and the text to write produced, without ever
//! building the document as a tree in memory; what its regions file needs is taken from
//! the same reading.

use common::wire::{Job, JobResult, WireError};
use flowdoc::regions::{self, NoRegions};

/// Why a result is parked instead of written.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The body is not a result this build can read.
    #[error("malformed result: {0}")]
    Malformed(String),
    /// The body or its document is over the size cap.
    #[error("result too large: {0} (the cap is --max-document-bytes, SINK_MAX_DOCUMENT_BYTES)")]
    TooLarge(String),
    /// The document is JSON but not an `_optical_flow.json` document.
    #[error("not an optical-flow document: {0}")]
    NotOpticalFlow(String),
}

impl From<WireError> for Refusal {
    fn from(e: WireError) -> Refusal {
        match e {
            WireError::TooLarge { .. } | WireError::InflatesPast { .. } => {
                Refusal::TooLarge(e.to_string())
            }
            other => Refusal::Malformed(other.to_string()),
        }
    }
}

/// A result that may be written.
#[derive(Debug)]
pub struct Accepted {
    /// The job it answers.
    pub job: Job,
    /// That job's id in the jobs tube, if the filter said.
    pub job_id: Option<u64>,
    /// The document as it goes into the checkout: pretty JSON and a final newline.
    pub text: Vec<u8>,
    /// What its regions file is derived from, read from the same bytes (or why it has
    /// none).
    pub regions: Result<regions::Input, NoRegions>,
}

/// A refusal, with the job when the body names one (for the failure record).
pub type Refused = (Option<Box<Job>>, Refusal);

/// Reads `body` as a result whose document may be at most `max_document` bytes.
pub fn accept(body: &[u8], max_document: usize) -> Result<Accepted, Refused> {
    let refused = |r: Refusal| (common::wire::job_said(body).map(Box::new), r);
    let result = JobResult::decode_within(body, max_document).map_err(|e| refused(e.into()))?;
    let document = result.document.get().as_bytes();
    let reading =
        flowdoc::check(document).map_err(|e| refused(Refusal::NotOpticalFlow(e.to_string())))?;
    let regions = regions::Input::of(&reading);
    drop(reading);
    let text = pretty(document).map_err(refused)?;
    Ok(Accepted {
        job: result.job,
        job_id: result.job_id,
        text,
        regions,
    })
}

/// The document as pretty JSON (key order kept), transcoded token by token.
fn pretty(document: &[u8]) -> Result<Vec<u8>, Refusal> {
    let mut out = Vec::with_capacity(document.len() * 2);
    let mut de = serde_json::Deserializer::from_slice(document);
    let mut ser = serde_json::Serializer::pretty(&mut out);
    serde_transcode::transcode(&mut de, &mut ser)
        .map_err(|e| Refusal::NotOpticalFlow(e.to_string()))?;
    out.push(b'\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(document: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "version": 1,
            "job": {"version": 1, "video": "/v.mov", "output": "a/b_optical_flow.json", "stride": 10, "start": 1, "stop": -1},
            "job_id": 7,
            "document": document,
            "computed_by": {"host": "h", "software": "s", "started_at": "2026-12-02T00:00:00Z",
                            "finished_at": "2026-12-02T00:00:01Z", "elapsed_seconds": 1.0},
        }))
        .unwrap()
    }

    fn flow_doc() -> serde_json::Value {
        serde_json::json!({
            "contents": {"movie": "1.0", "frameStats": {"opticalFlow": "1.1"}},
            "frameStats": [{"frameNumber": 11, "opticalFlow": {"similarity": [1.0, 0.0, 3.5, -0.25], "valid": true, "center": [-960.0, -540.0]}}],
            "movie": {"URL": "/v.mov", "NumFrames": 27}
        })
    }

    #[test]
    fn an_optical_flow_document_is_written_as_pretty_json_in_its_own_order() {
        let a = accept(&body(flow_doc()), 1 << 20).unwrap();
        assert_eq!(a.job_id, Some(7));
        let text = String::from_utf8(a.text).unwrap();
        let expected = serde_json::to_string_pretty(&flow_doc()).unwrap() + "\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn anything_else_is_not_an_optical_flow_document() {
        for doc in [
            serde_json::json!({"hello": "world"}),
            serde_json::json!({"contents": {"frameStats": {}}, "movie": {}, "frameStats": []}),
            serde_json::json!({"contents": {"frameStats": {"opticalFlow": 1}}, "movie": 3, "frameStats": []}),
            serde_json::json!({"contents": {"frameStats": {"opticalFlow": 1}}, "movie": {}, "frameStats": [{"frameNumber": 1.5, "opticalFlow": {"similarity": [1, 0, 0, 0], "valid": true}}]}),
            serde_json::json!({"contents": {"frameStats": {"opticalFlow": 1}}, "movie": {}, "frameStats": [{"frameNumber": 1, "opticalFlow": {"similarity": [1, 0, 0], "valid": true}}]}),
            serde_json::json!({"contents": {"frameStats": {"opticalFlow": 1}}, "movie": {}, "frameStats": [{"frameNumber": 1, "opticalFlow": {"similarity": [1, 0, 0, 0], "valid": "yes"}}]}),
        ] {
            let err = accept(&body(doc.clone()), 1 << 20).unwrap_err().1;
            assert!(matches!(err, Refusal::NotOpticalFlow(_)), "{doc}: {err}");
        }
    }

    #[test]
    fn a_document_with_a_key_twice_in_any_object_is_refused() {
        let text = serde_json::to_string(&flow_doc()).unwrap();
        for doubled in [
            text.replace(
                r#""URL":"/v.mov""#,
                r#""URL":"/v.mov","URL":"/elsewhere.mov""#,
            ),
            text.replace(r#""valid":true"#, r#""valid":true,"valid":false"#),
            text.replacen('{', r#"{"movie":{},"#, 1),
        ] {
            let body = format!(
                r#"{{"version":1,"job":{{"version":1,"video":"/v.mov","output":"a/b_optical_flow.json","stride":10,"start":1,"stop":-1}},"computed_by":{{"host":"h","software":"s","started_at":"2026-12-02T00:00:00Z","finished_at":"2026-12-02T00:00:01Z","elapsed_seconds":1.0}},"document":{doubled}}}"#
            );
            let err = accept(body.as_bytes(), 1 << 20).unwrap_err().1;
            assert!(
                err.to_string().contains("appears twice"),
                "{doubled}: {err}"
            );
        }
    }

    #[test]
    fn size_caps_hold_before_parsing_and_while_unpacking() {
        let big = body(flow_doc());
        assert!(matches!(
            accept(&big, 10).unwrap_err().1,
            Refusal::TooLarge(_)
        ));
        // 8 MiB of spaces in a string: packed by the wire format into a few KiB.
        let huge = serde_json::json!({ "pad": " ".repeat(8 << 20) });
        let computed_by = common::wire::ComputedBy {
            host: "h".into(),
            software: "s".into(),
            started_at: chrono::Utc::now(),
            finished_at: chrono::Utc::now(),
            elapsed_seconds: 1.0,
        };
        let job = Job::new("/v.mov", "a/b_optical_flow.json");
        let bomb = JobResult::new(job, None, &huge, computed_by)
            .unwrap()
            .encode();
        assert!(bomb.len() < 64 << 10, "{} bytes", bomb.len());
        let (said, err) = accept(&bomb, 1 << 20).unwrap_err();
        assert!(matches!(err, Refusal::TooLarge(_)), "{err}");
        assert!(err.to_string().contains("inflates past"), "{err}");
        assert_eq!(said.map(|j| j.video), Some("/v.mov".into()));
    }
}
