//! Wire-format specs: round trips, every rejection, and the documented examples.

use super::*;

fn raw(value: serde_json::Value) -> Box<RawValue> {
    serde_json::value::to_raw_value(&value).unwrap()
}

fn result_for(job: Job) -> JobResult {
    JobResult {
        version: WIRE_VERSION,
        job,
        job_id: Some(7),
        document: raw(serde_json::json!({"contents": {}, "frameStats": []})),
        computed_by: ComputedBy {
            host: "h".into(),
            software: "camhd-grid filter 0.1.0".into(),
            started_at: Utc::now(),
            finished_at: Utc::now(),
            elapsed_seconds: 1.5,
        },
    }
}

#[test]
fn a_job_round_trips_byte_for_byte_equal() {
    let mut job = Job::new("/data/a.mov", "RS03ASHS/a_optical_flow.json");
    job.queued_by = Some(QueuedBy {
        at: Utc::now(),
        host: "q".into(),
        source: "/data".into(),
        software: "camhd-grid queuer 0.1.0".into(),
    });
    job.attempts.push(Attempt {
        at: Utc::now(),
        host: "f".into(),
        error: "HTTP 503".into(),
        permanent: false,
    });
    assert_eq!(Job::decode(&job.encode()).unwrap(), job);
}

#[test]
fn a_result_round_trips() {
    let result = result_for(Job::new("v.mov", "v_optical_flow.json"));
    assert_eq!(JobResult::decode(&result.encode()).unwrap(), result);
}

#[test]
fn bodies_are_plain_json_with_a_version() {
    let body = Job::new("v.mov", "v_optical_flow.json").encode();
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(value["version"], 1);
    assert_eq!(value["video"], "v.mov");
    assert_eq!(value["stop"], -1);
}

#[test]
fn unknown_fields_are_ignored_so_the_format_can_grow() {
    let body =
        br#"{"version":1,"video":"v.mov","output":"o_optical_flow.json","stride":10,"start":1,"stop":-1,"new":true}"#;
    assert_eq!(Job::decode(body).unwrap().video, "v.mov");
}

#[test]
fn a_body_that_is_not_json_is_malformed() {
    for body in [
        &b"put me"[..],
        b"",
        b"\xff\xfe",
        b"[1,2]",
        b"{\"version\":1}",
    ] {
        let err = Job::decode(body).unwrap_err();
        assert!(
            matches!(
                err,
                WireError::Malformed { .. } | WireError::MissingVersion { .. }
            ),
            "{body:?}: {err}"
        );
    }
    assert!(matches!(
        Job::decode(b"{\"version\":1}"),
        Err(WireError::Malformed { .. })
    ));
}

#[test]
fn a_missing_or_unknown_version_is_its_own_error() {
    let no_version = br#"{"video":"v.mov","output":"o","stride":10,"start":1,"stop":-1}"#;
    assert!(matches!(
        Job::decode(no_version),
        Err(WireError::MissingVersion { kind: "job" })
    ));
    let future = br#"{"version":2,"anything":"else"}"#;
    let err = Job::decode(future).unwrap_err();
    assert!(matches!(err, WireError::UnknownVersion { found: 2, .. }));
    assert!(err.to_string().contains("upgrade"), "{err}");
    assert!(matches!(
        Job::decode(br#"{"version":"1"}"#),
        Err(WireError::MissingVersion { .. })
    ));
}

#[test]
fn oversized_bodies_are_refused_before_parsing() {
    let big = vec![b' '; MAX_JOB_BYTES + 1];
    assert!(matches!(
        Job::decode(&big),
        Err(WireError::TooLarge { kind: "job", .. })
    ));
}

#[test]
fn nonsense_field_values_are_invalid() {
    let mut cases = Vec::new();
    let base = Job::new("v.mov", "v_optical_flow.json");
    cases.push((
        "video",
        Job {
            video: " ".into(),
            ..base.clone()
        },
    ));
    cases.push((
        "output",
        Job {
            output: String::new(),
            ..base.clone()
        },
    ));
    cases.push((
        "stride",
        Job {
            stride: 0,
            ..base.clone()
        },
    ));
    cases.push((
        "start",
        Job {
            start: 0,
            ..base.clone()
        },
    ));
    cases.push((
        "stop",
        Job {
            start: 10,
            stop: 10,
            ..base.clone()
        },
    ));
    cases.push((
        "stop",
        Job {
            stop: -2,
            ..base.clone()
        },
    ));
    for (field, job) in cases {
        match Job::decode(&job.encode()) {
            Err(WireError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: expected Invalid, got {other:?}"),
        }
    }
}

#[test]
fn a_result_whose_document_is_not_an_object_is_invalid() {
    let mut result = result_for(Job::new("v.mov", "o_optical_flow.json"));
    result.document = raw(serde_json::json!([1, 2]));
    assert!(matches!(
        JobResult::decode(&result.encode()),
        Err(WireError::Invalid {
            field: "document",
            ..
        })
    ));
}

/// The examples in docs/wire-format.md are what a Python or shell producer copies, so
/// they must decode.
#[test]
fn the_documented_examples_decode() {
    let doc = include_str!("../../../docs/wire-format.md");
    let blocks = json_blocks(doc);
    let jobs: Vec<_> = blocks.iter().filter(|(tag, _)| tag == "job").collect();
    let results: Vec<_> = blocks.iter().filter(|(tag, _)| tag == "result").collect();
    assert!(!jobs.is_empty() && !results.is_empty(), "examples missing");
    for (_, body) in jobs {
        Job::decode(body.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{body}"));
    }
    for (_, body) in results {
        JobResult::decode(body.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{body}"));
    }
}

/// Code blocks opened with "```json" followed by a tag word, e.g. "```json job".
fn json_blocks(doc: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in doc.lines() {
        match (&mut current, line.strip_prefix("```json ")) {
            (None, Some(tag)) => current = Some((tag.trim().to_owned(), String::new())),
            (Some(_), _) if line.starts_with("```") => blocks.extend(current.take()),
            (Some((_, body)), _) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    blocks
}

#[test]
fn large_documents_travel_compressed_and_come_back_whole() {
    let mut result = result_for(Job::new("v.mov", "v_optical_flow.json"));
    let entries: Vec<serde_json::Value> = (1..20_000)
        .step_by(10)
        .map(|f| serde_json::json!({"frameNumber": f, "opticalFlow": {"similarity": [1.0, 0.0, 0.5, -0.25], "valid": true}}))
        .collect();
    result.document = raw(serde_json::json!({"contents": {}, "frameStats": entries}));
    let plain = serde_json::to_vec(&result).unwrap();
    assert!(result.document.get().len() > COMPRESS_ABOVE);
    let body = result.encode();
    assert!(plain.len() > COMPRESS_ABOVE);
    assert!(
        body.len() * 5 < plain.len(),
        "{} vs {}",
        body.len(),
        plain.len()
    );
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(value["document"].is_null() && value["document_gzip"].is_string());
    assert_eq!(
        value["job"]["video"], "v.mov",
        "the envelope stays readable"
    );
    assert_eq!(JobResult::decode(&body).unwrap(), result);
}

#[test]
fn small_documents_stay_plain() {
    let result = result_for(Job::new("v.mov", "v_optical_flow.json"));
    let value: serde_json::Value = serde_json::from_slice(&result.encode()).unwrap();
    assert!(value["document"].is_object() && value.get("document_gzip").is_none());
}

#[test]
fn a_bad_compressed_document_is_invalid() {
    let mut v: serde_json::Value =
        serde_json::from_slice(&result_for(Job::new("v.mov", "o_optical_flow.json")).encode())
            .unwrap();
    v["document"] = serde_json::Value::Null;
    v["document_gzip"] = "not base64!".into();
    let err = JobResult::decode(&serde_json::to_vec(&v).unwrap()).unwrap_err();
    assert!(
        matches!(
            err,
            WireError::Invalid {
                field: "document_gzip",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_packed_document_that_inflates_past_the_cap_is_refused_while_inflating() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gz, &vec![b' '; 8 << 20]).unwrap();
    let packed = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        gz.finish().unwrap(),
    );
    let mut v: serde_json::Value =
        serde_json::from_slice(&result_for(Job::new("v.mov", "o_optical_flow.json")).encode())
            .unwrap();
    v["document"] = serde_json::Value::Null;
    v["document_gzip"] = packed.into();
    let bomb = serde_json::to_vec(&v).unwrap();
    assert!(bomb.len() < 64 << 10);
    let err = JobResult::decode_within(&bomb, 1 << 20).unwrap_err();
    assert!(
        matches!(err, WireError::InflatesPast { max: 1_048_576 }),
        "{err}"
    );
}

#[test]
fn a_body_larger_than_its_document_cap_allows_is_refused_before_parsing() {
    let body = result_for(Job::new("v.mov", "o_optical_flow.json")).encode();
    let err = JobResult::decode_within(&body, 0).unwrap_err();
    assert!(
        matches!(
            err,
            WireError::TooLarge {
                kind: "result document",
                ..
            }
        ),
        "{err}"
    );
    let mut huge = body.clone();
    huge.resize(body.len() + (1 << 20) + 1, b' ');
    let err = JobResult::decode_within(&huge, 0).unwrap_err();
    assert!(
        matches!(err, WireError::TooLarge { kind: "result", .. }),
        "{err}"
    );
}

#[test]
fn a_result_of_a_newer_format_says_so_whatever_its_shape() {
    let body = br#"{"version":2,"job":"elsewhere","computed_by":[1]}"#;
    let err = JobResult::decode(body).unwrap_err();
    assert!(
        matches!(err, WireError::UnknownVersion { found: 2, .. }),
        "{err}"
    );
}

#[test]
fn the_job_a_body_names_is_read_without_its_document_even_when_the_rest_is_refused() {
    let job = Job::new("/v.mov", "a/b_optical_flow.json");
    let mut v: serde_json::Value =
        serde_json::from_slice(&result_for(job.clone()).encode()).unwrap();
    v["document"] = "not an object".into();
    v["computed_by"] = serde_json::Value::Null;
    let body = serde_json::to_vec(&v).unwrap();
    assert!(JobResult::decode(&body).is_err());
    assert_eq!(job_said(&body), Some(job));
    assert_eq!(job_said(b"{\"job\": 3}"), None);
    assert_eq!(job_said(b"not json"), None);
}

#[test]
fn the_document_is_carried_as_the_bytes_it_was_written_as() {
    let mut result = result_for(Job::new("v.mov", "o_optical_flow.json"));
    let text = r#"{"frameStats":[],"contents":{"b":1.10,"a":"\u00e9"}}"#;
    result.document = RawValue::from_string(text.into()).unwrap();
    let back = JobResult::decode(&result.encode()).unwrap();
    assert_eq!(back.document.get(), text);
}

#[test]
fn a_failure_record_names_its_video_once() {
    let job = Job::new("http://h/a.mov", "a_optical_flow.json");
    let f = Failure::now(
        1,
        Some(&job),
        "http://h/a.mov: the server answered HTTP 404",
        "x",
    );
    assert_eq!(f.error, "the server answered HTTP 404");
    assert_eq!(f.video, "http://h/a.mov");
    let other = Failure::now(1, Some(&job), "http://h/b.mov: moved", "x");
    assert_eq!(other.error, "http://h/b.mov: moved", "another URL is kept");
}
