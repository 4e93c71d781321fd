//! The `_optical_flow.json` document the filter writes: its types live in the `flowdoc`
//! crate, beside the sink's check and the plots' reader; what only a filter knows (its
//! host and processor) is here.

pub use flowdoc::document::*;

pub use common::host::hostname;

/// The processor's model name, for `hostinfo`.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned())
}
