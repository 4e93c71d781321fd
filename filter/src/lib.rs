//! Camera-motion analysis of CamHD videos: frame sources (file, HTTP, lazycache), ProRes
//! decoding to grey, the motion estimate, and the `_optical_flow.json` document. Used by
//! `filter analyze` and by the grid worker.

pub mod analysis;
pub mod decode;
pub mod document;
mod error;
pub mod motion;
pub mod plan;
pub mod prores;
pub mod source;
pub mod worker;

pub use analysis::{analyze, decode_only, Analysis, Progress, RunStats, Settings};
pub use error::AnalysisError;
