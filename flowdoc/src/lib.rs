//! The `_optical_flow.json` document, defined once: its types as the filter writes them
//! (`document`), the one reader every user of its bytes goes through (`read`), the bounds
//! of what it may say (`limits`), the check a result must pass before the sink writes it
//! (`check`), the regions file derived from it and read back (`regions`), and, with the
//! `plot` feature, the motion traces drawn from it (`plot`).

mod check;
pub mod document;
mod error;
pub mod limits;
pub mod read;
pub mod regions;

#[cfg(feature = "plot")]
pub mod plot;

pub use check::{check, check_reading};
pub use error::{DocError, EntryProblem, MovieError};
pub use read::{read, Reading};
