//! The sink's Prometheus metrics (`sink --metrics ADDR`).

use common::metrics::Metric;

/// Results committed (written or kept).
pub static RESULTS: Metric = Metric::counter(
    "camhd_sink_results_committed_total",
    "Results committed and deleted from the tube.",
);
/// Results buried.
pub static BURIED: Metric = Metric::counter(
    "camhd_sink_results_buried_total",
    "Results buried for a bad body or path.",
);
/// Seconds spent committing.
pub static COMMIT_SECONDS: Metric = Metric::counter(
    "camhd_sink_commit_seconds_sum",
    "Seconds spent in git add and commit (divide by _count).",
);
/// Commits made.
pub static COMMITS: Metric = Metric::counter("camhd_sink_commit_seconds_count", "Commits made.");

/// Regions files committed.
pub static REGIONS: Metric = Metric::counter(
    "camhd_sink_regions_committed_total",
    "Regions files derived from committed flow files and committed.",
);
/// Flow files left without a regions file.
pub static REGIONS_SKIPPED: Metric = Metric::counter(
    "camhd_sink_regions_skipped_total",
    "Committed flow files whose regions could not be derived (no valid entry, unreadable).",
);

/// All of them, in the text format.
pub fn render() -> String {
    common::metrics::render(&[
        &RESULTS,
        &BURIED,
        &COMMIT_SECONDS,
        &COMMITS,
        &REGIONS,
        &REGIONS_SKIPPED,
    ])
}
