//! The grid-wide budget of connections to the archive, kept on beanstalkd itself: one
//! ready job in `<namespace>.archive` per connection the whole grid may hold
//! (`GRID_ARCHIVE_CONNECTIONS`). A filter reserves a token for each request it has in
//! flight to the archive and touches it while it does; the server hands a token back by
//! itself when the filter's connection closes (it died) or its TTR runs out (it hangs).
//! The sink, the grid's one of a kind, keeps the count: it puts missing tokens and
//! deletes extra ones (an operator's lower budget, or tokens anyone else put).

use crate::beanstalk::{Client, Error, PutOptions};
use crate::grid::Grid;

/// How long a filter may hold a token without touching it: a filter that hangs gives
/// its tokens back within this.
pub const TOKEN_TTR: u32 = 60;

/// The body of a token (what it is, for anyone peeking with a beanstalk CLI).
const TOKEN: &[u8] =
    br#"{"archive_token": 1, "about": "one connection to the archive; see docs/architecture.md"}"#;

/// The most extra tokens deleted in one pass.
const MAX_DELETED: usize = 10_000;

/// The archive budget as the server holds it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Tokens {
    /// Tokens not held by any filter.
    pub free: u64,
    /// Tokens held by filters and queuers (requests they may have in flight to the archive).
    pub in_use: u64,
    /// Every token: free, in use, delayed or buried.
    pub total: u64,
}

/// The tokens in `<namespace>.archive` now; `None` when the grid has none (no budget).
pub async fn tokens(grid: &Grid, c: &mut Client) -> Result<Option<Tokens>, Error> {
    let tube = grid.config().archive_tube();
    Ok(c.stats_tube_if_any(&tube).await?.and_then(|s| {
        let total = s.current_jobs_ready
            + s.current_jobs_reserved
            + s.current_jobs_delayed
            + s.current_jobs_buried;
        (total > 0).then_some(Tokens {
            free: s.current_jobs_ready,
            in_use: s.current_jobs_reserved,
            total,
        })
    }))
}

/// Makes `<namespace>.archive` hold `budget` tokens: puts those missing, deletes free
/// ones beyond it (held ones are deleted by a later pass, once given back). The
/// connection is back on the tube it used before.
pub async fn keep_tokens(grid: &Grid, c: &mut Client, budget: u32) -> Result<Tokens, Error> {
    let tube = grid.config().archive_tube();
    let now = tokens(grid, c).await?.unwrap_or(Tokens {
        free: 0,
        in_use: 0,
        total: 0,
    });
    let back = c.used_tube().to_owned();
    c.use_tube(&tube).await?;
    let budget = u64::from(budget);
    if now.total < budget {
        let options = PutOptions {
            priority: 0,
            delay: 0,
            ttr: TOKEN_TTR,
        };
        for _ in now.total..budget {
            c.put(TOKEN, options).await?;
        }
        tracing::info!(%tube, added = budget - now.total, budget, "archive tokens put");
    } else if now.total > budget {
        let extra = (now.total - budget).min(now.free) as usize;
        let mut deleted = 0;
        for _ in 0..extra.min(MAX_DELETED) {
            match c.peek_ready().await {
                Ok(job) => match c.delete(job.id).await {
                    Ok(()) => deleted += 1,
                    Err(Error::NotFound) => {}
                    Err(e) => return Err(e),
                },
                Err(Error::NotFound) => break,
                Err(e) => return Err(e),
            }
        }
        tracing::info!(%tube, deleted, budget, "extra archive tokens deleted");
    }
    c.use_tube(&back).await?;
    Ok(tokens(grid, c).await?.unwrap_or(now))
}
