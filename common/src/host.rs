//! This machine's name, as filters and the sink sign their failure records and
//! heartbeats with it.

/// This machine's hostname (`unknown` when the kernel and `$HOSTNAME` do not say).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}
