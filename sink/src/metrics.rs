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

/// Commits not pushed yet.
pub static UNPUSHED: Metric = Metric::gauge(
    "camhd_sink_unpushed_commits",
    "Commits in the checkout that the remote (--push) does not have yet.",
);
/// Pushes that failed.
pub static PUSH_FAILURES: Metric = Metric::counter(
    "camhd_sink_push_failures_total",
    "Pushes the remote refused or that could not reach it.",
);
/// When a push last failed.
pub static LAST_PUSH_FAILURE: Metric = Metric::gauge(
    "camhd_sink_last_push_failure_timestamp_seconds",
    "When a push last failed, in seconds since 1970 (0: never); the error is in the log.",
);
/// Files someone edited on the remote that the grid had written too.
pub static KEPT_REMOTE: Metric = Metric::counter(
    "camhd_sink_remote_versions_kept_total",
    "Files edited on the remote as well as by the grid since the two last agreed: the remote's version was kept.",
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
        &UNPUSHED,
        &PUSH_FAILURES,
        &LAST_PUSH_FAILURE,
        &KEPT_REMOTE,
    ])
}
