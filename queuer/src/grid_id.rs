//! The grid's identity: a marker the first queuer leaves in the server, in
//! `<namespace>.grid`, delayed for ever so no one ever reserves it. It is the same however
//! the server is addressed (an IP, a name, through a tunnel) and differs for another
//! server, or for the same one restarted without its binlog (whose jobs are gone with it),
//! so the ledger is keyed by it. It is no trust anchor: someone who replaces it only
//! makes the next queuer rebuild its ledger from the server's jobs.

use anyhow::Context;
use common::beanstalk::{Client, Error as BsError, PutOptions};
use common::config::GridConfig;
use serde::{Deserialize, Serialize};

/// How long the marker is delayed: 68 years.
const FOR_EVER: u32 = i32::MAX as u32;
/// Junk jobs at the head of the marker tube removed in one pass, at most: junk there is
/// cleaned, never a reason to stop (beyond this many a pass goes on without a marker
/// it could trust, and rebuilds its ledger from the whole server).
const ATTEMPTS: usize = 10_000;

#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    grid: String,
    created: chrono::DateTime<chrono::Utc>,
}

/// The grid's identity and where its jobs begin.
#[derive(Debug, Clone)]
pub struct GridId {
    /// `<marker id>-<random hex>`.
    pub id: String,
    /// The lowest id a job of this grid can have: the marker's, when the marker was
    /// there before this pass; 0 when this pass had to make it (jobs of a grid whose
    /// marker was deleted are older than the new one).
    pub floor: u64,
}

/// The grid's identity, `<marker id>-<random hex>`, made on first use.
pub async fn grid_id(client: &mut Client, grid: &GridConfig) -> anyhow::Result<GridId> {
    let tube = grid.grid_tube();
    client.use_tube(&tube).await?;
    let mut ours = None;
    for _ in 0..ATTEMPTS {
        match client.peek_delayed().await {
            Ok(job) => match serde_json::from_slice::<Marker>(&job.body) {
                Ok(m) if is_id(&m.grid) => {
                    // Two queuers that both made one agree on the first; the other goes.
                    if let Some(mine) = ours.filter(|&mine| mine != job.id) {
                        let _ = client.delete(mine).await;
                    }
                    let floor = if ours.is_some() { 0 } else { job.id };
                    return Ok(GridId {
                        id: format!("{}-{}", job.id, m.grid),
                        floor,
                    });
                }
                _ => {
                    tracing::warn!(tube = %tube, job = job.id, "deleting a job that is not a grid marker from the marker tube");
                    client.delete(job.id).await?;
                }
            },
            Err(BsError::NotFound) if ours.is_none() => {
                let marker = Marker {
                    grid: common::random::hex(16).context("reading /dev/urandom")?,
                    created: chrono::Utc::now(),
                };
                let options = PutOptions {
                    priority: 0,
                    delay: FOR_EVER,
                    ttr: 60,
                };
                ours = Some(
                    client
                        .put(&serde_json::to_vec(&marker)?, options)
                        .await
                        .context("putting the grid marker")?,
                );
            }
            Err(e) => return Err(e).context("reading the grid marker"),
        }
    }
    anyhow::bail!("could not settle the grid's identity in {tube}: it keeps holding jobs that are not markers")
}

fn is_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}
