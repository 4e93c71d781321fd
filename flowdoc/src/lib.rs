//! The `_optical_flow.json` document, defined once: its types as the filter writes them
//! (`document`), the bounds of what it may say (`limits`), the check a result must pass before the sink writes it (`check`), the
//! reading that plots and summaries use (`read`), the regions file derived from it
//! (`regions`), and, with the `plot` feature, the motion traces drawn from it (`plot`).

mod check;
pub mod document;
pub mod limits;
pub mod read;
pub mod regions;

#[cfg(feature = "plot")]
pub mod plot;

pub use check::check;
