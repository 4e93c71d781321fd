//! The one reader of an `_optical_flow.json`: bytes in, one streaming pass, never a tree.
//! It reads what any user needs (the declared contents, `movie` as written, every entry's
//! frame, similarity, validity and centre, the keys of the entries' `opticalFlow`) and
//! judges nothing; `check`, plots and region finding each apply their own rule to the
//! same [`Reading`]. Both spellings are read: 1.1 (`frameStats`) and 1.0 (`frame_stats`).

mod visit;

use std::collections::BTreeSet;

use serde::de::Deserializer;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::{DocError, MovieError};
use crate::limits::implausible_movie;

/// How a document spells its entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spelling {
    /// `frameStats` of `frameNumber` and `opticalFlow` (version 1.1, what the filter writes).
    V11,
    /// `frame_stats` of `frame_number` with the flow's fields beside it (version 1.0).
    V10,
}

/// A document as read: what is there, unjudged.
#[derive(Debug)]
pub struct Reading<'a> {
    /// Whether `contents.frameStats.opticalFlow` is declared.
    pub declares_flow: bool,
    /// `movie` exactly as written.
    pub movie: Option<&'a RawValue>,
    /// Which array held the entries; `None` when the document has neither.
    pub spelling: Option<Spelling>,
    /// The entries, in the document's order.
    pub entries: Vec<Entry>,
    /// Every key of any entry's `opticalFlow` object but `center` and `similarity`.
    pub flow_keys: BTreeSet<String>,
}

/// One entry as read: each field `None` when it is missing or not of its type.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Entry {
    /// `frameNumber` (`frame_number`), when a whole number.
    pub frame: Option<i64>,
    /// Whether the entry has an `opticalFlow` object (1.0 entries hold its fields
    /// themselves; the fields below come from it when it is there).
    pub nested: bool,
    /// `similarity`, when four numbers: `[scale, theta, tx, ty]`.
    pub similarity: Option<[f64; 4]>,
    /// `valid`, when a boolean.
    pub valid: Option<bool>,
    /// The number of elements of `center` (keys, for an object; 1 for a scalar).
    pub center: Option<usize>,
}

/// An entry as plots draw it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// The sampled frame.
    pub frame: u64,
    /// `[scale, theta, tx, ty]`.
    pub similarity: [f64; 4],
    /// Whether the estimate is valid (true when the document does not say).
    pub valid: bool,
}

/// Reads `document`. Fails only on what no user can read: not JSON, not an object, an
/// entries field that is not an array, or more than [`MAX_ENTRIES`](crate::limits::MAX_ENTRIES) entries.
pub fn read(document: &[u8]) -> Result<Reading<'_>, DocError> {
    let mut de = serde_json::Deserializer::from_slice(document);
    let reading = de
        .deserialize_map(visit::DocumentVisitor)
        .and_then(|r| de.end().map(|()| r))
        .map_err(|e| DocError::Unreadable(e.to_string()))?;
    Ok(reading)
}

/// `movie`'s frame count and duration, as a reader computes with them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MovieFacts {
    /// `NumFrames`.
    pub num_frames: f64,
    /// `Duration` in seconds, when given.
    pub duration: Option<f64>,
}

impl Reading<'_> {
    /// `movie`'s facts: an object with a numeric `NumFrames` and, if any, a numeric
    /// `Duration`; the error says what is missing.
    pub fn movie_facts(&self) -> Result<MovieFacts, MovieError> {
        #[derive(Deserialize)]
        struct Movie {
            #[serde(rename = "NumFrames")]
            num_frames: f64,
            #[serde(rename = "Duration", default)]
            duration: Option<f64>,
        }
        let raw = self.movie.ok_or(MovieError::Missing)?;
        let movie: Movie =
            serde_json::from_str(raw.get()).map_err(|e| MovieError::Unreadable(e.to_string()))?;
        Ok(MovieFacts {
            num_frames: movie.num_frames,
            duration: movie.duration,
        })
    }

    /// Frames per second of the movie (CamHD's 29.97 when the document does not say, or
    /// says something no video is: see `crate::limits`).
    pub fn fps(&self) -> f64 {
        match self.movie_facts() {
            Ok(MovieFacts {
                num_frames: n,
                duration: Some(d),
            }) if implausible_movie(n, Some(d)).is_none() => n / d,
            _ => 30000.0 / 1001.0,
        }
    }

    /// The entries a plot can draw (a frame from 0 and four numbers), sorted by frame.
    pub fn samples(&self) -> Vec<Sample> {
        let mut out: Vec<Sample> = self
            .entries
            .iter()
            .filter_map(|e| {
                Some(Sample {
                    frame: u64::try_from(e.frame?).ok()?,
                    similarity: e.similarity?,
                    valid: e.valid.unwrap_or(true),
                })
            })
            .collect();
        out.sort_by_key(|s| s.frame);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_are_read_and_plots_take_them_sorted() {
        let v11 = br#"{"frameStats": [
            {"frameNumber": 11, "opticalFlow": {"similarity": [1.0, 0.0, 2.0, 3.0], "valid": true}},
            {"frameNumber": 1, "opticalFlow": {"similarity": [1.0, 0.0, 0.0, 0.0], "valid": false}}]}"#;
        let r = read(v11).unwrap();
        assert_eq!(r.spelling, Some(Spelling::V11));
        let s = r.samples();
        assert_eq!(
            (s[0].frame, s[0].valid, s[1].similarity[3]),
            (1, false, 3.0)
        );
        let v10 = br#"{"frame_stats": [{"frame_number": 5, "similarity": [1.1, 0.0, 0.0, 0.0]}]}"#;
        let r = read(v10).unwrap();
        assert_eq!(r.spelling, Some(Spelling::V10));
        assert!(!r.entries[0].nested);
        assert_eq!(r.samples()[0].similarity[0], 1.1);
        assert_eq!(read(br#"{"x": 1}"#).unwrap().spelling, None);
    }

    #[test]
    fn what_a_field_is_not_reads_as_missing_and_only_unreadable_documents_fail() {
        let doc = br#"{"contents": {"frameStats": {"opticalFlow": "1.1"}}, "movie": {"NumFrames": 30},
          "frameStats": [
            {"frameNumber": 1.5, "opticalFlow": {"similarity": [1, 0, 0], "valid": "yes", "center": [1, 2], "x": 1}},
            {"frameNumber": 2, "opticalFlow": 7},
            "not an entry",
            {"frameNumber": 3, "opticalFlow": {"similarity": [1, "0", 0, 0], "valid": true}}]}"#;
        let r = read(doc).unwrap();
        assert!(r.declares_flow);
        assert_eq!(r.movie_facts().unwrap().num_frames, 30.0);
        let e = &r.entries;
        assert_eq!(e.len(), 4);
        assert_eq!(
            (e[0].frame, e[0].similarity, e[0].valid, e[0].center),
            (None, None, None, Some(2))
        );
        assert_eq!((e[1].frame, e[1].nested), (Some(2), false));
        assert_eq!(e[2], Entry::default());
        assert_eq!((e[3].similarity, e[3].valid), (None, Some(true)));
        let keys: Vec<&str> = r.flow_keys.iter().map(String::as_str).collect();
        assert_eq!(keys, ["valid", "x"]);
        assert!(r.samples().is_empty());
        for bad in [
            &b"[1,"[..],
            b"[]",
            b"3",
            br#"{"frameStats": {}}"#,
            br#"{"a":1} x"#,
        ] {
            assert!(read(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn a_movie_without_its_facts_says_so_and_plots_fall_back_to_camhds_rate() {
        let r = read(br#"{"movie": {"NumFrames": 300, "Duration": 5.0}}"#).unwrap();
        assert_eq!(r.fps(), 60.0);
        for doc in [
            &br#"{"movie": 3}"#[..],
            br#"{}"#,
            br#"{"movie": {"NumFrames": 0, "Duration": 1}}"#,
        ] {
            let r = read(doc).unwrap();
            assert!(
                (r.fps() - 29.97).abs() < 0.01,
                "{}",
                String::from_utf8_lossy(doc)
            );
        }
        assert!(read(br#"{"movie": 3}"#).unwrap().movie_facts().is_err());
    }
}
