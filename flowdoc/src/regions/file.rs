//! The regions file as readers take it back (the dashboard's table under a plot): each
//! region's type and frames, read as a stream of small typed values; the statistics and
//! everything else are skipped, never built.

use serde::Deserialize;

/// One region as a regions file states it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Span {
    /// `type`: "static", "short" or "unknown" (whatever the file says).
    #[serde(rename = "type")]
    pub kind: String,
    /// `startFrame`.
    #[serde(rename = "startFrame")]
    pub start: i64,
    /// `endFrame`.
    #[serde(rename = "endFrame")]
    pub end: i64,
}

/// Why bytes are not a regions file (the parser's message says where).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a regions file: {0}")]
pub struct NotRegionsFile(String);

/// The regions of a regions file, in its order; the error says what is not there.
pub fn spans(file: &[u8]) -> Result<Vec<Span>, NotRegionsFile> {
    #[derive(Deserialize)]
    struct File {
        regions: Vec<Span>,
    }
    serde_json::from_slice::<File>(file)
        .map(|f| f.regions)
        .map_err(|e| NotRegionsFile(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::regions::{derive, Source};

    #[test]
    fn a_derived_regions_file_reads_back_as_its_regions() {
        let flow = br#"{"movie": {"URL": "x.mov"}, "frameStats": [
            {"frameNumber": 1, "opticalFlow": {"center": [0, 0], "similarity": [1, 0, 0, 0], "valid": true}},
            {"frameNumber": 11, "opticalFlow": {"center": [0, 0], "similarity": [1, 0, 0, 0], "valid": true}}]}"#;
        let source = Source {
            flow_path: "x_optical_flow.json",
            flow_commit: "abc",
            version: "test",
        };
        let text = derive(flow, source).unwrap();
        let spans = spans(&text).unwrap();
        assert_eq!(
            spans,
            [Span {
                kind: "static".into(),
                start: 1,
                end: 11
            }]
        );
        assert!(spans_of_nothing().is_err());
    }

    fn spans_of_nothing() -> Result<Vec<Span>, NotRegionsFile> {
        spans(br#"{"regions": [{"type": "static"}]}"#)
    }
}
