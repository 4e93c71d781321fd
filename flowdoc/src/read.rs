//! The document as readers take it: the entries of any `_optical_flow.json`, version 1.1
//! (`frameStats`) or the older 1.0 spelling (`frame_stats`), for plots and summaries.

use serde_json::Value;

/// One entry of the document.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Entry {
    /// The sampled frame.
    pub frame: u64,
    /// `[scale, theta, tx, ty]`.
    pub similarity: [f64; 4],
    /// Whether the estimate is valid.
    pub valid: bool,
}

/// The entries of a document, sorted by frame, in either spelling.
pub fn entries(doc: &Value) -> Result<Vec<Entry>, String> {
    let stats = doc
        .get("frameStats")
        .or_else(|| doc.get("frame_stats"))
        .and_then(Value::as_array)
        .ok_or("no frameStats (or frame_stats) array: is this an _optical_flow.json?")?;
    let mut out = Vec::with_capacity(stats.len());
    for s in stats {
        let frame = s
            .get("frameNumber")
            .or_else(|| s.get("frame_number"))
            .and_then(Value::as_u64);
        let flow = s.get("opticalFlow").unwrap_or(s);
        let sim: Option<Vec<f64>> = flow
            .get("similarity")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_f64).collect());
        let (Some(frame), Some(sim)) = (frame, sim) else {
            continue;
        };
        if sim.len() != 4 {
            continue;
        }
        let valid = flow.get("valid").and_then(Value::as_bool).unwrap_or(true);
        out.push(Entry {
            frame,
            similarity: [sim[0], sim[1], sim[2], sim[3]],
            valid,
        });
    }
    out.sort_by_key(|e| e.frame);
    Ok(out)
}

/// Frames per second of the document's movie (CamHD's 29.97 when it does not say, or
/// says something no video is: see `crate::limits`).
pub fn fps(doc: &Value) -> f64 {
    let movie = &doc["movie"];
    match (movie["NumFrames"].as_f64(), movie["Duration"].as_f64()) {
        (Some(n), Some(d)) if crate::limits::implausible_movie(n, Some(d)).is_none() => n / d,
        _ => 30000.0 / 1001.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_are_read_and_sorted() {
        let v11 = serde_json::json!({"frameStats": [
            {"frameNumber": 11, "opticalFlow": {"similarity": [1.0, 0.0, 2.0, 3.0], "valid": true}},
            {"frameNumber": 1, "opticalFlow": {"similarity": [1.0, 0.0, 0.0, 0.0], "valid": false}}]});
        let e = entries(&v11).unwrap();
        assert_eq!(
            (e[0].frame, e[0].valid, e[1].similarity[3]),
            (1, false, 3.0)
        );
        let v10 = serde_json::json!({"frame_stats": [{"frame_number": 5, "similarity": [1.1, 0.0, 0.0, 0.0]}]});
        assert_eq!(entries(&v10).unwrap()[0].similarity[0], 1.1);
        assert!(entries(&serde_json::json!({"x": 1})).is_err());
    }
}
