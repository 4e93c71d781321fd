//! Reading CamHD movies without decoding them: the QuickTime sample table, byte sources
//! (a local regular file, HTTP Range requests within deadlines and a minimum rate) and
//! lazycache, each checked for plausibility before anything is allocated. The analysis
//! (`filter`) decodes what these fetch; `queuer --verify` opens indexes with no codec.

mod ahead;
mod bytes;
mod deadline;
mod error;
pub mod h2;
pub mod hosts;
pub mod http;
mod lazycache;
pub mod multirange;
pub mod quicktime;
pub mod reach;
mod source;
pub mod tls;
mod video;

pub use bytes::requests_for;
pub use deadline::{Deadline, FRAMES_PER_SECOND};
pub use error::ReadError;
pub use source::*;

/// ProRes FourCCs libav's decoder knows.
const PRORES: [&[u8; 4]; 6] = [b"apco", b"apcs", b"apcn", b"apch", b"ap4h", b"ap4x"];

/// True for the FourCCs of Apple ProRes.
pub fn is_prores(codec: &[u8; 4]) -> bool {
    PRORES.contains(&codec)
}

/// The analysis image size for a frame of `width` x `height` at `scale`.
pub fn analysis_size(width: u32, height: u32, scale: f64) -> (usize, usize) {
    let w = ((width as f64 * scale).round() as usize).max(1);
    let h = ((height as f64 * scale).round() as usize).max(1);
    (w, h)
}
