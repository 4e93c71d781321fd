//! Camera-motion analysis of CamHD videos: ProRes decoding to grey, the motion estimate,
//! and the `_optical_flow.json` document, over the frame sources of the `movie` crate
//! (file, HTTP, lazycache; re-exported as `source`). Used by `filter analyze` and by the
//! grid worker.

pub mod analysis;
pub mod corners;
pub mod decode;
pub mod document;
mod error;
pub mod frame_decoder;
pub mod frame_error;
pub mod motion;
pub mod parts;
mod pipeline;
pub mod plan;
pub mod prores;
pub mod settings;
pub mod worker;

pub use analysis::{analyze, decode_only, Analysis, Progress, RunStats, Settings};
pub use error::AnalysisError;
/// Frame sources: the `movie` crate.
pub use movie as source;
