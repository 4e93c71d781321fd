//! How a video's frames are fetched and decoded, as flags (`--decoder`, `--fetch`),
//! written once for the worker and `filter analyze`.

use filter::decode::{DecoderChoice, FetchChoice};

/// The decoder and the fetching of frames.
#[derive(Debug, Clone, clap::Args)]
pub struct FrameArgs {
    /// ProRes decoder: auto (a reduced decoder reading only the lowest DCT frequencies of
    /// luma at scales 0.25 and 0.125, about 5x faster than libav; libav elsewhere and for
    /// frames it declines) or libav (always).
    #[arg(long, env = "FILTER_DECODER", value_enum, default_value_t = DecoderChoice::Auto)]
    pub decoder: DecoderChoice,

    /// How ProRes frames are fetched: parts (only the bytes the reduced decoder reads:
    /// each frame's headers, then a prefix of each slice, many byte ranges to an HTTP
    /// request; about half the bytes of whole frames on the wire at scale 0.25), whole, or
    /// auto (parts over HTTP, whole frames from local files, where many small reads cost
    /// more than they save; use parts for a network filesystem). Parts fall back to
    /// whole frames with libav, and with a server that does not answer multi-range
    /// requests.
    #[arg(long, env = "FILTER_FETCH", value_enum, default_value_t = FetchChoice::Auto)]
    pub fetch: FetchChoice,
}
