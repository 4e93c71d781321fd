//! A process's share of the grid's archive budget (`common::archive`): tokens of
//! `<namespace>.archive` reserved on a connection of their own, one per request in
//! flight to the archive (a filter's videos, a queuer's listings). A token is taken when
//! requests wait for room, touched while held, and given back when fewer are wanted or
//! its turn is over (the server hands a token given back to the process waiting longest);
//! every one goes back when the process stops, and the server takes them back by itself
//! if it dies (its connection closes) or hangs (their TTR runs out). Built with the
//! `lease` feature (it needs common's beanstalkd client).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::GridShare;
use common::archive::TOKEN_TTR;
use common::backoff::Backoff;
use common::beanstalk::{Client, Error as BsError};
use common::grid::Grid;
use common::shutdown::Shutdown;

/// How long a token is held before it is given back once unused, for a process that
/// waits: tokens go round the processes that want them.
const TURN: Duration = Duration::from_secs(5);

/// How often held tokens are touched (well within their TTR).
const TOUCH_EVERY: Duration = Duration::from_secs(TOKEN_TTR as u64 / 3);

/// How often the lease looks at what is wanted when it neither waits nor gives back.
const LOOK_EVERY: Duration = Duration::from_millis(50);

/// Waiting this long for a first token says so in the log.
const STARVED: Duration = Duration::from_secs(30);

/// Keeps this process's share (of `Hosts::share_grid_budget`) until `shutdown`,
/// reconnecting when the server goes; every token held is given back before it returns.
pub async fn keep(grid: Grid, share: GridShare, shutdown: Shutdown) {
    let mut backoff = Backoff::reconnect();
    while !shutdown.stopping() {
        let held = hold(&grid, &share, &shutdown).await;
        // The server takes back the tokens of a closed connection.
        share.lost_all();
        match held {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), tube = %grid.config().archive_tube(), "lost the archive tokens' connection");
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}

/// Tokens held: their job ids, oldest first, and since when.
type Held = VecDeque<(u64, Instant)>;

async fn hold(grid: &Grid, share: &GridShare, shutdown: &Shutdown) -> anyhow::Result<()> {
    let mut c = grid.connect().await?;
    let tube = grid.config().archive_tube();
    c.watch(&tube).await?;
    c.ignore("default").await?;
    let mut held = Held::new();
    let mut touched = Instant::now();
    let mut starved_since: Option<Instant> = None;
    while !shutdown.stopping() {
        if touched.elapsed() >= TOUCH_EVERY {
            for (id, _) in &held {
                c.touch(*id).await?;
            }
            touched = Instant::now();
        }
        give_back_what_is_done(&mut c, share, &mut held).await?;
        if share.wanted() > share.held() {
            match c.reserve_with_timeout(1).await {
                Ok(token) => {
                    held.push_back((token.id, Instant::now()));
                    share.add();
                    starved_since = None;
                    continue;
                }
                Err(BsError::TimedOut | BsError::DeadlineSoon) => {
                    let since = *starved_since.get_or_insert_with(Instant::now);
                    if held.is_empty() && since.elapsed() >= STARVED {
                        tracing::warn!(%tube, waited_s = since.elapsed().as_secs(), "no archive token for a while: the grid's budget is in use (gridctl status), or nobody keeps its tokens (the sink does, with GRID_ARCHIVE_CONNECTIONS)");
                        starved_since = Some(Instant::now());
                    }
                }
                Err(e) => return Err(e.into()),
            }
        } else {
            starved_since = None;
            tokio::time::sleep(LOOK_EVERY).await;
        }
    }
    for (id, _) in held.drain(..) {
        c.release(id, 0, 0).await?;
    }
    Ok(())
}

/// Retires a token not wanted or past its turn, and gives back those the share sheds.
async fn give_back_what_is_done(
    c: &mut Client,
    share: &GridShare,
    held: &mut Held,
) -> Result<(), BsError> {
    let surplus = share.held() > share.wanted() + share.retiring();
    let turn_over = held
        .get(share.retiring())
        .is_some_and(|(_, since)| since.elapsed() >= TURN);
    if surplus || turn_over {
        share.retire();
    }
    while share.shed() {
        let Some((id, _)) = held.pop_front() else {
            break;
        };
        c.release(id, 0, 0).await?;
    }
    Ok(())
}
