//! The regions file beside every flow file (`common::paths::resolve_regions` names it): the
//! video split into static stretches and the moves between them, derived from its
//! `_optical_flow.json` exactly as CamHD_motion_metadata's scripts derive it (`find`),
//! from the entries they read (`table`), written as their `RegionFile` writes it, and
//! read back for display (`file`).

pub mod file;
mod find;
mod table;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::read::Reading;

pub use find::{regions, Region, RegionType, Stats, FIND_REGIONS_VERSION, SQUASH_DELTA};
pub use table::{read, Row, Table, TableError};

/// The version of the regions document (`contents.regions`).
pub const REGIONS_VERSION: &str = "1.1";

/// Why a flow document has no regions file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoRegions {
    /// No entry is valid: the original writes no file either.
    #[error("no valid entry to find regions in")]
    NoValidEntries,
    /// The document cannot be read as region finding reads it.
    #[error(transparent)]
    Table(#[from] TableError),
}

/// Where a regions file comes from: its flow file (relative to the checkout), the
/// commit that holds it, and the software that derived it.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// The flow file's path relative to the checkout.
    pub flow_path: &'a str,
    /// The commit that holds it (`depends.opticalFlow`).
    pub flow_commit: &'a str,
    /// The deriving software's version, for `analysis.version`.
    pub version: &'a str,
}

/// What a regions file is derived from: a flow document's table and its `movie`, read
/// once. Small (32 bytes a valid entry), so a sink can keep it from the bytes it wrote
/// until the commit that names the flow file is made.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    table: Table,
    movie: serde_json::Value,
}

impl Input {
    /// The input of the flow document `flow`.
    pub fn read(flow: &[u8]) -> Result<Input, NoRegions> {
        let reading = crate::read::read(flow).map_err(|e| TableError::Unreadable(e.to_string()))?;
        Input::of(&reading)
    }

    /// The input of a flow document already read.
    pub fn of(reading: &Reading) -> Result<Input, NoRegions> {
        let table = Table::of(reading)?;
        if table.rows.is_empty() {
            return Err(NoRegions::NoValidEntries);
        }
        let raw = reading
            .movie
            .ok_or_else(|| TableError::Unreadable("the document has no movie".into()))?;
        // Parsed (key order kept) so the regions file is indented alike whatever the
        // flow file's layout.
        let movie = serde_json::from_str(raw.get())
            .map_err(|e| TableError::Unreadable(format!("movie: {e}")))?;
        Ok(Input { table, movie })
    }

    /// The regions document, as pretty JSON (4-space indents, as the repository's
    /// regions files are written, and a final newline).
    pub fn derive(&self, source: Source) -> Vec<u8> {
        let doc = Document {
            movie: &self.movie,
            contents: Contents {
                regions: REGIONS_VERSION,
                analysis: "1.0",
            },
            versions: Versions {
                find_regions: FIND_REGIONS_VERSION,
            },
            regions: regions(&self.table),
            depends: Depends {
                optical_flow: BTreeMap::from([(source.flow_path, source.flow_commit)]),
            },
            analysis: Analysis {
                software: "camhd-grid",
                version: source.version,
                method: "findRegions 1.0 with squash_gaps(delta=30), as CamHD_motion_metadata's make_regions_files.py --no-classify",
            },
        };
        let mut out = Vec::with_capacity(4096);
        let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
        doc.serialize(&mut ser)
            .unwrap_or_else(|e| panic!("a regions document failed to serialise: {e}"));
        out.push(b'\n');
        out
    }
}

/// The regions document of the flow document `flow`, as [`Input::derive`] writes it.
pub fn derive(flow: &[u8], source: Source) -> Result<Vec<u8>, NoRegions> {
    Ok(Input::read(flow)?.derive(source))
}

/// The regions document, in the original's key order.
#[derive(Serialize)]
struct Document<'a> {
    movie: &'a serde_json::Value,
    contents: Contents,
    versions: Versions,
    regions: Vec<Region>,
    depends: Depends<'a>,
    analysis: Analysis<'a>,
}

#[derive(Serialize)]
struct Contents {
    regions: &'static str,
    analysis: &'static str,
}

#[derive(Serialize)]
struct Versions {
    #[serde(rename = "findRegions")]
    find_regions: &'static str,
}

#[derive(Serialize)]
struct Depends<'a> {
    #[serde(rename = "opticalFlow")]
    optical_flow: BTreeMap<&'a str, &'a str>,
}

#[derive(Serialize)]
struct Analysis<'a> {
    software: &'static str,
    version: &'a str,
    method: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_without_valid_entries_has_no_regions() {
        let doc = br#"{"movie": {"URL": "x.mov"}, "frameStats": [{"frameNumber": 1,
            "opticalFlow": {"center": [0, 0], "similarity": [1, 0, 0, 0], "valid": false}}]}"#;
        let source = Source {
            flow_path: "x_optical_flow.json",
            flow_commit: "abc",
            version: "test",
        };
        assert_eq!(derive(doc, source), Err(NoRegions::NoValidEntries));
    }
}
