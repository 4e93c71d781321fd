//! A Prometheus text endpoint (`--metrics ADDR` on `filter` and `sink`): counters kept
//! in atomics, served over plain HTTP/1.1 at `/metrics` by a small tokio task. Off unless
//! asked for.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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

/// Serves `metrics` at `http://ADDR/metrics` until the process ends.
pub async fn serve(
    addr: &str,
    metrics: Arc<dyn Fn() -> String + Send + Sync>,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for --metrics on {addr}"))?;
    tracing::info!(addr = %listener.local_addr()?, "metrics at /metrics");
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                continue;
            };
            let metrics = Arc::clone(&metrics);
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let n = conn.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]);
                let (status, body) = if request.starts_with("GET /metrics") {
                    ("200 OK", metrics())
                } else {
                    ("404 Not Found", "try /metrics\n".to_owned())
                };
                let reply = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(reply.as_bytes()).await;
            });
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
