//! What region finding reads of an `_optical_flow.json`: the valid entries (frame,
//! scale, tx, ty) sorted by frame, and the number of columns of the table the original
//! scripts build from the document, on which their region `size` depends, taken from
//! the one reading of the document (`crate::read`).

use crate::read::{Reading, Spelling};

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
    let reading = crate::read::read(document).map_err(|e| TableError::Unreadable(e.to_string()))?;
    Table::of(&reading)
}

impl Table {
    /// The table of a document already read: every entry must have a whole
    /// `frameNumber` and an `opticalFlow` with four numbers of `similarity` and a boolean
    /// `valid`, as the original's `pandas` reading needs.
    pub fn of(doc: &Reading) -> Result<Table, TableError> {
        if doc.spelling != Some(Spelling::V11) {
            return Err(TableError::Unreadable(
                crate::DocError::NoFrameStats.to_string(),
            ));
        }
        let mut center_width = 0;
        let mut any_center = false;
        let mut rows = Vec::new();
        for (i, entry) in doc.entries.iter().enumerate() {
            let (Some(frame), true, Some(similarity), Some(valid)) =
                (entry.frame, entry.nested, entry.similarity, entry.valid)
            else {
                return Err(TableError::Unreadable(format!(
                    "frameStats[{i}] needs a whole frameNumber and an opticalFlow with four numbers of similarity and a boolean valid"
                )));
            };
            any_center |= entry.center.is_some();
            if valid {
                // pandas spreads a missing center (NaN) over one column.
                center_width = center_width.max(entry.center.unwrap_or(1));
                rows.push(Row {
                    frame,
                    scale: similarity[0],
                    tx: similarity[2],
                    ty: similarity[3],
                });
            }
        }
        if !any_center {
            return Err(TableError::NoCenter);
        }
        rows.sort_by_key(|r| r.frame);
        let columns = doc.flow_keys.len() as u64 + center_width as u64 + 4 + 1;
        Ok(Table { rows, columns })
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
