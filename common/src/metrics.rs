//! A Prometheus text endpoint (`--metrics ADDR` on `filter` and `sink`): counters kept
//! in atomics, served at `/metrics` by axum (the stack `gridctl serve` uses) in a tokio
//! task. Off unless asked for.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use axum::http::header::CONTENT_TYPE;
use tokio::net::TcpListener;

/// One counter or gauge.
#[derive(Debug)]
pub struct Metric {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    /// Stored as bits of an f64, so seconds can be summed.
    value: AtomicU64,
}

impl Metric {
    const fn new(name: &'static str, help: &'static str, kind: &'static str) -> Metric {
        Metric {
            name,
            help,
            kind,
            value: AtomicU64::new(0),
        }
    }

    /// A counter.
    pub const fn counter(name: &'static str, help: &'static str) -> Metric {
        Metric::new(name, help, "counter")
    }

    /// A gauge: a value that goes up and down.
    pub const fn gauge(name: &'static str, help: &'static str) -> Metric {
        Metric::new(name, help, "gauge")
    }

    /// Sets the value (of a gauge).
    pub fn set(&self, v: f64) {
        self.value.store(v.to_bits(), Ordering::Relaxed);
    }

    /// Adds `v`.
    pub fn add(&self, v: f64) {
        let _ = self
            .value
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + v).to_bits())
            });
    }

    /// Adds one.
    pub fn inc(&self) {
        self.add(1.0);
    }

    /// The value now.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.value.load(Ordering::Relaxed))
    }
}

/// Renders `metrics` in the Prometheus text format.
pub fn render(metrics: &[&Metric]) -> String {
    let mut out = String::new();
    for m in metrics {
        let _ = writeln!(
            out,
            "# HELP {} {}\n# TYPE {} {}\n{} {}",
            m.name,
            m.help,
            m.name,
            m.kind,
            m.name,
            m.get()
        );
    }
    out
}

/// The text format's content type.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4";

/// Serves `metrics` at `http://ADDR/metrics` until the process ends.
pub async fn serve(
    addr: &str,
    metrics: Arc<dyn Fn() -> String + Send + Sync>,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for --metrics on {addr}"))?;
    tracing::info!(addr = %listener.local_addr()?, "metrics at /metrics");
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || async move { ([(CONTENT_TYPE, TEXT_FORMAT)], metrics()) }),
        )
        .fallback(|| async { (axum::http::StatusCode::NOT_FOUND, "try /metrics\n") });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "the metrics endpoint stopped");
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_in_the_text_format() {
        static DONE: Metric = Metric::counter("jobs_done_total", "Jobs done.");
        DONE.inc();
        DONE.add(2.5);
        let text = render(&[&DONE]);
        assert!(
            text.contains("# TYPE jobs_done_total counter\njobs_done_total 3.5\n"),
            "{text}"
        );
    }
}
