//! A slot's connection to the server: made watching the jobs tube, handed out while it
//! lasts, dropped when lost (the next one says it is a reconnection), and how results
//! are put on it.

use common::beanstalk::{Client, PutOptions};

use super::WorkerConfig;

/// Results may sit in the results tube while the sink batches them.
const RESULT_TTR: u32 = 600;

/// How results are put.
pub fn result_options() -> PutOptions {
    PutOptions {
        priority: 1024,
        delay: 0,
        ttr: RESULT_TTR,
    }
}

/// One slot's connection, when it has one.
#[derive(Debug)]
pub struct Conn {
    client: Option<Client>,
    /// A connection was made before: the next one is a reconnection, and says so.
    made_before: bool,
    slot: usize,
}

impl Conn {
    /// No connection yet, for slot `slot`.
    pub fn new(slot: usize) -> Conn {
        Conn {
            client: None,
            made_before: false,
            slot,
        }
    }

    /// The connection, if there is one.
    pub fn get(&mut self) -> Option<&mut Client> {
        self.client.as_mut()
    }

    /// True while there is a connection.
    pub fn is_up(&self) -> bool {
        self.client.is_some()
    }

    /// Forgets a connection that failed: the next use makes a new one.
    pub fn lost(&mut self) {
        self.client = None;
    }

    /// A new connection watching the jobs tube, made now (replacing any).
    pub async fn connect(&mut self, config: &WorkerConfig) -> anyhow::Result<&mut Client> {
        let grid = &config.grid;
        let c = grid.connect_watching(&grid.config().jobs_tube()).await?;
        if std::mem::replace(&mut self.made_before, true) {
            tracing::info!(slot = self.slot, "reconnected to the server");
        }
        Ok(self.client.insert(c))
    }

    /// The connection, or a new one when there is none (one try; `None` if it fails).
    pub async fn get_or_connect(&mut self, config: &WorkerConfig) -> Option<&mut Client> {
        if self.client.is_none() {
            self.connect(config).await.ok()?;
        }
        self.client.as_mut()
    }
}
