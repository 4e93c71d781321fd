//! The dashboard's read-only answers: the pages (overview, workers, failures, recent
//! commits), a committed file's motion plot, and the same data as JSON under `/api/`.

use std::sync::Arc;

use anyhow::Context;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::commits;
use super::pages::{self, Viewer};
use super::reply::{json_response, page, within_budget, Failure};
use super::state::App;

/// Which page of a long list (from 1).
#[derive(Deserialize)]
pub struct PageQuery {
    #[serde(default = "first_page")]
    page: usize,
}

fn first_page() -> usize {
    1
}

/// `/`: progress, throughput, the tubes.
pub async fn overview(State(app): State<Arc<App>>, viewer: Viewer) -> Result<Response, Failure> {
    let snap = app.status().await?;
    Ok(page(pages::overview(&snap, &app.samples(), &viewer)))
}

/// `/workers`: every filter's heartbeat.
pub async fn workers(State(app): State<Arc<App>>, viewer: Viewer) -> Result<Response, Failure> {
    let snap = app.status().await?;
    Ok(page(pages::workers(&snap, &viewer)))
}

/// `/failures`: failed jobs and parked results, a page at a time, and the skip list.
pub async fn failures(
    State(app): State<Arc<App>>,
    Query(q): Query<PageQuery>,
    viewer: Viewer,
) -> Result<Response, Failure> {
    let snap = app.status().await?;
    let found = app.failures().await?;
    // The checkout's skip list: a few KB, read per view.
    let skipped = app
        .config
        .checkout
        .as_deref()
        .and_then(|c| common::skip::SkipList::read(c).ok())
        .filter(|l| !l.is_empty());
    Ok(page(pages::failures(
        &snap,
        &found,
        q.page.max(1),
        skipped.as_ref(),
        &viewer,
    )))
}

/// `/commits`: the flow files committed lately, with their regions.
pub async fn commits_page(
    State(app): State<Arc<App>>,
    viewer: Viewer,
) -> Result<Response, Failure> {
    let snap = app.status().await?;
    let recent = app.recent().await?;
    let with_regions = match (&recent, &app.config.checkout) {
        (Some(list), Some(dir)) => {
            let (list, dir) = (list.clone(), dir.clone());
            within_budget(async move {
                tokio::task::spawn_blocking(move || {
                    list.into_iter()
                        .map(|c| {
                            let r = commits::regions(&dir, &c.path);
                            (c, r)
                        })
                        .collect::<Vec<_>>()
                })
                .await
                .context("reading the regions files")
            })
            .await?
        }
        _ => Vec::new(),
    };
    let shown = recent.map(|_| with_regions);
    Ok(page(pages::commits(&snap, shown.as_deref(), &viewer)))
}

#[derive(Deserialize)]
pub struct PlotQuery {
    path: String,
}

/// The motion plot of a committed flow file, as SVG, with its regions as bands.
pub async fn plot(
    State(app): State<Arc<App>>,
    Query(q): Query<PlotQuery>,
) -> Result<Response, Failure> {
    let Some(dir) = app.config.checkout.clone() else {
        return Err(Failure(StatusCode::NOT_FOUND, "no --checkout given".into()));
    };
    // Bounded: plots wait their turn, and a request gives up at the budget (the plot
    // itself is bounded by the document's size and entries, and always ends).
    let work = async {
        let _turn = app.plots.acquire().await.context("the plot queue closed")?;
        tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
            let doc = commits::flow_document(&dir, &q.path)?;
            flowdoc::plot::plot_svg(&doc, flowdoc::plot::Axis::Time, &q.path)
                .with_context(|| format!("plotting {}", q.path))
        })
        .await
        .context("the plot thread failed")?
    };
    let svg = within_budget(work).await.map_err(|Failure(status, why)| {
        let status = match status {
            StatusCode::GATEWAY_TIMEOUT => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::NOT_FOUND,
        };
        Failure(status, why)
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "max-age=60"),
        ],
        svg,
    )
        .into_response())
}

/// `/api/status.json` (and `/api/workers.json`): the grid's snapshot.
pub async fn api_status(State(app): State<Arc<App>>) -> Result<Response, Failure> {
    let snap = app.status().await?;
    Ok(json_response(
        serde_json::to_string(&snap).map_err(anyhow::Error::from)?,
    ))
}

/// The failures, a page of [`pages::PER_PAGE`] at a time (`?page=N`), long errors cut.
pub async fn api_failures(
    State(app): State<Arc<App>>,
    Query(q): Query<PageQuery>,
) -> Result<Response, Failure> {
    let found = app.failures().await?;
    let shown: Vec<serde_json::Value> = pages::page_of(&found.failed, q.page.max(1))
        .iter()
        .map(|f| {
            let mut v = serde_json::to_value(f).unwrap_or_default();
            v["last_error"] = pages::cut(&f.last_error, pages::MAX_TEXT).into();
            v
        })
        .collect();
    let body = serde_json::json!({
        "page": q.page.max(1),
        "per_page": pages::PER_PAGE,
        "total": found.failed.len(),
        "failed": shown,
    });
    Ok(json_response(body.to_string()))
}

/// `/api/commits.json`: the flow files committed lately.
pub async fn api_commits(State(app): State<Arc<App>>) -> Result<Response, Failure> {
    let recent = app.recent().await?.unwrap_or_default();
    Ok(json_response(
        serde_json::to_string(&recent).map_err(anyhow::Error::from)?,
    ))
}
