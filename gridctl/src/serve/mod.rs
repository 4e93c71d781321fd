//! `gridctl serve`: the grid in a browser. Server-rendered pages (overview, workers,
//! failures, recent commits with their motion plots) and the same data as JSON under
//! `/api/`, on axum; every asset is in the binary. Read-only unless `--allow-control`,
//! and then only for whoever logs in with the control token (`auth`, `session`).

mod auth;
mod commits;
mod guard;
mod handlers;
mod history;
mod listen;
mod pages;
mod reply;
mod session;
mod state;
mod throughput;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use common::grid::Grid;

pub use auth::Auth;
use state::App;
pub use state::ServeConfig;

/// How long a client has to send a request's headers (slowloris).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long requests in flight may finish after SIGTERM or SIGINT before the server
/// stops anyway.
const GRACE: Duration = Duration::from_secs(5);

/// Serves until SIGINT or SIGTERM.
pub async fn run(grid: Grid, config: ServeConfig) -> anyhow::Result<()> {
    let checkout = match &config.checkout {
        Some(dir) => Some(commits::open(dir)?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let bound = listener.local_addr()?;
    if config.control.is_some() && !bound.ip().is_loopback() && !config.insecure_control {
        return Err(common::cli::usage(format!(
            "control over plain HTTP on {bound}: the token and the session would cross the network in clear. Listen on 127.0.0.1 behind an SSH tunnel or a TLS proxy (docs/security.md), or give --insecure-control (GRIDCTL_INSECURE_CONTROL) if that network is yours alone"
        ))
        .into());
    }
    // The address as bound (a port 0 asked for is a real one now), for the Host check.
    let config = ServeConfig {
        listen: bound.to_string(),
        checkout,
        ..config
    };
    let app = Arc::new(App::new(grid, config));
    tokio::spawn(state::sample(Arc::clone(&app)));
    tracing::info!(addr = %bound, control = app.config.control.is_some(), "serving the grid at http://{bound}/");
    println!("gridctl serve: http://{bound}/");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    if let Ok(mut signals) = common::shutdown::Shutdown::on_signals() {
        tokio::spawn(async move {
            signals.changed().await;
            let _ = stop.send(true);
        });
    }
    let serving = listen::serve(
        listener,
        router(Arc::clone(&app)),
        HEADER_TIMEOUT,
        session::reserve_for(&app.config.control),
        stopped.clone(),
    );
    let mut stopped = stopped;
    let grace_over = async move {
        let _ = stopped.wait_for(|&s| s).await;
        tokio::time::sleep(GRACE).await;
    };
    tokio::select! {
        () = serving => {}
        () = grace_over => {
            tracing::warn!(grace_seconds = GRACE.as_secs(), "requests still running after the grace period; stopping anyway");
        }
    }
    app.save_history();
    Ok(())
}

/// Every route, behind the Host check and the secure headers.
fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(handlers::overview))
        .route("/workers", get(handlers::workers))
        .route("/failures", get(handlers::failures))
        .route("/commits", get(handlers::commits_page))
        .route("/plot.svg", get(handlers::plot))
        .route("/api/status.json", get(handlers::api_status))
        .route("/api/workers.json", get(handlers::api_status))
        .route("/api/failures.json", get(handlers::api_failures))
        .route("/api/commits.json", get(handlers::api_commits))
        .route(
            "/static/style.css",
            get(|| guard::asset("text/css", include_str!("assets/style.css"))),
        )
        .route(
            "/static/refresh.js",
            get(|| guard::asset("text/javascript", include_str!("assets/refresh.js"))),
        )
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/control/{action}", post(session::control))
        .fallback(|| async { (StatusCode::NOT_FOUND, "no such page\n") })
        .layer(axum::middleware::map_response(guard::secure_headers))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app),
            guard::known_host,
        ))
        .with_state(app)
}
