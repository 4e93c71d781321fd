//! Shutdown passed into the long-running loops: the first SIGTERM or SIGINT asks them to
//! drain (stop taking work, finish what they hold), a second to abort (give back what
//! they hold at once).

use tokio::sync::watch;

/// Where the process is in shutting down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Work as usual.
    Running,
    /// Take no new work; finish or give back what is held.
    Draining,
    /// Give back what is held now.
    Abort,
}

/// A handle the loops watch; cheap to clone.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<Phase>,
}

impl Shutdown {
    /// A handle driven by `tx` (tests and callers that stop the loop themselves).
    pub fn new() -> (watch::Sender<Phase>, Shutdown) {
        let (tx, rx) = watch::channel(Phase::Running);
        (tx, Shutdown { rx })
    }

    /// A handle driven by SIGTERM and SIGINT. Must be called inside a tokio runtime.
    pub fn on_signals() -> std::io::Result<Shutdown> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let (tx, shutdown) = Shutdown::new();
        tokio::spawn(async move {
            for next in [Phase::Draining, Phase::Abort] {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                tracing::warn!(phase = ?next, "signal received");
                let _ = tx.send(next);
            }
        });
        Ok(shutdown)
    }

    /// The phase now.
    pub fn phase(&self) -> Phase {
        *self.rx.borrow()
    }

    /// True once draining or aborting.
    pub fn stopping(&self) -> bool {
        self.phase() != Phase::Running
    }

    /// Waits until the phase changes (for ever if its sender is gone).
    pub async fn changed(&mut self) {
        if self.rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
