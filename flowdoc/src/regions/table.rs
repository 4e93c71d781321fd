//! What region finding reads of an `_optical_flow.json`: the valid entries (frame,
//! scale, tx, ty) sorted by frame, and the number of columns of the table the original
//! scripts build from the document, on which their region `size` depends. Read as a
//! stream of typed entries, never as a tree.

use std::collections::BTreeSet;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// One valid entry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    /// `frameNumber`.
    pub frame: i64,
    /// `similarity[0]`.
    pub scale: f64,
    /// `similarity[2]`.
    pub tx: f64,
    /// `similarity[3]`.
    pub ty: f64,
}

impl Row {
    /// The squared length of the translation, as the original compares it with 100.
    pub fn trans(&self) -> f64 {
        self.tx * self.tx + self.ty * self.ty
    }
}

/// The valid entries of a document, with what region finding needs to know of the rest.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Valid entries sorted by frame.
    pub rows: Vec<Row>,
    /// Columns of the original's table of valid entries: every key of any entry's
    /// `opticalFlow` but `center` and `similarity`, plus one per element of `center`
    /// (the longest), four for `similarity`, and one for the squared translation.
    /// A region's `size` is its entries times this (pandas' `DataFrame.size`).
    pub columns: u64,
}

/// Why a document has no table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// Not a document region finding can read (the serde message says where).
    #[error("not an optical-flow document region finding can read: {0}")]
    Unreadable(String),
    /// No entry has a `center`: the original fails on such a document.
    #[error("no entry has a center, which the original region finding needs")]
    NoCenter,
}

/// Reads the table of `document` (an `_optical_flow.json`, version 1.1).
pub fn read(document: &[u8]) -> Result<Table, TableError> {
    read_with_movie(document).map(|(table, _)| table)
}

/// [`read`], and the document's `movie` as it is written (`None` when it has none), in
/// one pass over the document.
pub fn read_with_movie(
    document: &[u8],
) -> Result<(Table, Option<&serde_json::value::RawValue>), TableError> {
    let doc: Document =
        serde_json::from_slice(document).map_err(|e| TableError::Unreadable(e.to_string()))?;
    let mut keys = BTreeSet::new();
    let mut center_width = 0;
    let mut any_center = false;
    let mut rows = Vec::new();
    for entry in doc.frame_stats {
        let flow = entry.optical_flow;
        any_center |= flow.center.is_some();
        keys.extend(flow.other_keys);
        if flow.valid {
            // pandas spreads a missing center (NaN) over one column.
            center_width = center_width.max(flow.center.unwrap_or(1));
            rows.push(Row {
                frame: entry.frame_number,
                scale: flow.similarity[0],
                tx: flow.similarity[2],
                ty: flow.similarity[3],
            });
        }
    }
    if !any_center {
        return Err(TableError::NoCenter);
    }
    rows.sort_by_key(|r| r.frame);
    let columns = keys.len() as u64 + center_width as u64 + 4 + 1;
    Ok((Table { rows, columns }, doc.movie))
}

#[derive(Deserialize)]
struct Document<'a> {
    #[serde(rename = "frameStats")]
    frame_stats: Vec<Entry>,
    #[serde(borrow, default)]
    movie: Option<&'a serde_json::value::RawValue>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(rename = "frameNumber")]
    frame_number: i64,
    #[serde(rename = "opticalFlow")]
    optical_flow: Flow,
}

/// An entry's `opticalFlow`: what region finding reads, the width of `center`, and the
/// names of the other keys.
struct Flow {
    similarity: [f64; 4],
    valid: bool,
    /// Elements of `center` (keys, for an object; 1 for a scalar), if it has one.
    center: Option<usize>,
    other_keys: Vec<String>,
}

impl<'de> Deserialize<'de> for Flow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Flow, D::Error> {
        d.deserialize_map(FlowVisitor)
    }
}

struct FlowVisitor;

impl<'de> Visitor<'de> for FlowVisitor {
    type Value = Flow;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an opticalFlow object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Flow, A::Error> {
        let (mut similarity, mut valid, mut center) = (None, None, None);
        let mut other_keys = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "similarity" => similarity = Some(map.next_value::<[f64; 4]>()?),
                "valid" => valid = Some(map.next_value::<bool>()?),
                "center" => center = Some(map.next_value::<Width>()?.0),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    other_keys.push(key);
                }
            }
        }
        Ok(Flow {
            similarity: similarity.ok_or_else(|| de::Error::missing_field("similarity"))?,
            valid: valid.ok_or_else(|| de::Error::missing_field("valid"))?,
            center,
            // `valid` is a column of the table too.
            other_keys: {
                other_keys.push("valid".to_owned());
                other_keys
            },
        })
    }
}

/// The number of columns pandas spreads a value over: its elements, its keys, or one.
struct Width(usize);

impl<'de> Deserialize<'de> for Width {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Width, D::Error> {
        d.deserialize_any(WidthVisitor)
    }
}

struct WidthVisitor;

impl<'de> Visitor<'de> for WidthVisitor {
    type Value = Width;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Width, A::Error> {
        let mut n = 0;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            n += 1;
        }
        Ok(Width(n))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Width, A::Error> {
        let mut keys = BTreeSet::new();
        while let Some(k) = map.next_key::<String>()? {
            map.next_value::<IgnoredAny>()?;
            keys.insert(k);
        }
        Ok(Width(keys.len()))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Width, E> {
        Ok(Width(1))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Width, E> {
        Ok(Width(1))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Width, E> {
        Ok(Width(1))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Width, E> {
        Ok(Width(1))
    }
    fn visit_str<E>(self, _: &str) -> Result<Width, E> {
        Ok(Width(1))
    }
    fn visit_unit<E>(self) -> Result<Width, E> {
        Ok(Width(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_camhd_grid_document_has_thirteen_columns_and_only_valid_rows() {
        let doc = br#"{"frameStats": [
          {"frameNumber": 21, "opticalFlow": {"fromFrame": 16, "toFrame": 26, "imgScale": 0.25,
            "flowScale": 1.0, "center": [-960.0, -540.0], "similarity": [1.0, 0.0, 3.0, 4.0],
            "valid": true, "performance": {"timing": {"elapsedSeconds": 0.1}}}},
          {"frameNumber": 11, "opticalFlow": {"fromFrame": 6, "toFrame": 16, "imgScale": 0.25,
            "flowScale": 1.0, "center": [-960.0, -540.0], "similarity": [1.0, 0.0, 0.0, 0.0],
            "valid": false, "performance": {"timing": {"elapsedSeconds": 0.1}}}},
          {"frameNumber": 1, "opticalFlow": {"fromFrame": 1, "toFrame": 6, "imgScale": 0.25,
            "flowScale": 1.0, "center": [-960.0, -540.0], "similarity": [1.5, 0.0, 1.0, 2.0],
            "valid": true, "performance": {"timing": {"elapsedSeconds": 0.1}}}}]}"#;
        let t = read(doc).unwrap();
        assert_eq!(t.columns, 13);
        let frames: Vec<i64> = t.rows.iter().map(|r| r.frame).collect();
        assert_eq!(frames, [1, 21]);
        assert_eq!(t.rows[1].trans(), 25.0);
    }

    #[test]
    fn keys_of_invalid_entries_count_and_a_missing_center_is_one_column() {
        let doc = br#"{"frameStats": [
          {"frameNumber": 1, "opticalFlow": {"similarity": [1, 0, 0, 0], "valid": true}},
          {"frameNumber": 2, "opticalFlow": {"similarity": [1, 0, 0, 0], "valid": false,
             "center": [1, 2, 3], "extra": null}}]}"#;
        // valid, extra; center 1 (the valid row has none); similarity 4; trans 1.
        assert_eq!(read(doc).unwrap().columns, 2 + 1 + 4 + 1);
    }

    #[test]
    fn documents_region_finding_cannot_read_say_why() {
        let no_center =
            br#"{"frameStats": [{"frameNumber": 1, "opticalFlow": {"similarity": [1, 0, 0, 0], "valid": true}}]}"#;
        assert_eq!(read(no_center), Err(TableError::NoCenter));
        for bad in [
            &br#"{"frame_stats": []}"#[..],
            br#"{"frameStats": [{"frameNumber": 1, "opticalFlow": {"valid": true}}]}"#,
            br#"{"frameStats": [{"frameNumber": 1.5, "opticalFlow": {}}]}"#,
            b"[1,",
        ] {
            assert!(
                matches!(read(bad), Err(TableError::Unreadable(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
