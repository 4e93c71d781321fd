//! `gridctl serve`: the grid in a browser. Server-rendered pages (overview, workers,
//! failures, recent commits with their motion plots) and the same data as JSON under
//! `/api/`, on axum; every asset is in the binary. Read-only unless `--allow-control`,
//! and then only for whoever logs in with the control token (`auth`).

mod auth;
mod commits;
mod history;
mod listen;
mod pages;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::extract::{ConnectInfo, Form, Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use common::grid::Grid;
use serde::Deserialize;

pub use auth::Auth;

/// How long one page may take to gather its data.
const REQUEST_BUDGET: Duration = Duration::from_secs(10);
/// How often the throughput is sampled, and for how long samples are kept (an hour).
const SAMPLE_EVERY: Duration = Duration::from_secs(2);
const SAMPLES_KEPT: usize = 1800;
/// At most this many failure records are read per request.
pub const MAX_FAILURES: usize = 1000;
/// How long a client has to send a request's headers (slowloris).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long requests in flight may finish after SIGTERM or SIGINT before the server
/// stops anyway.
const GRACE: Duration = Duration::from_secs(5);
/// Plots drawn at once: each parses a document of up to 32 MiB into a tree (about 450 MB
/// for a 33 MB document, 1 s), so one at a time; more wait their turn within the request
/// budget. A streaming reader of the document (issue 26) would lift this.
const PLOTS_AT_ONCE: usize = 1;

/// What `gridctl serve` was asked for.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where to listen.
    pub listen: String,
    /// The metadata checkout, for the recent commits page.
    pub checkout: Option<PathBuf>,
    /// How many recent flow files to show.
    pub recent: usize,
    /// The control token, when the buttons are allowed.
    pub control: Option<Auth>,
    /// Host names (or name:port) the dashboard answers to besides loopback and `listen`.
    pub allowed_hosts: Vec<String>,
    /// Control allowed over plain HTTP on an address other than loopback.
    pub insecure_control: bool,
    /// Where the throughput history is kept across restarts, if anywhere.
    pub history: Option<PathBuf>,
}

/// How often the throughput history is written (and on exit).
const HISTORY_EVERY: usize = 30;

/// One throughput sample: when, and how many jobs had finished (been deleted) by then
/// since `gridctl serve` started watching, plus those the jobs tube counted then.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Unix seconds.
    pub at: i64,
    /// Jobs finished.
    pub finished: u64,
}

/// The jobs tube's deletes since the server started, counted across the tube vanishing:
/// beanstalkd forgets a tube (and its `cmd-delete` count) once it is empty and unwatched,
/// as at the end of a run. A server that restarted starts the count anew, as `gridctl
/// status` does (the one figure both show is these less the jobs discarded).
#[derive(Debug, Default)]
struct Finished {
    total: u64,
    last_seen: u64,
    /// When the server counted for started (unix seconds; 0: none yet).
    server_started: i64,
}

/// Seconds two readings of a server's start may differ by and be the same start
/// (`uptime` is whole seconds, read a moment apart).
const SAME_START: i64 = 5;

impl Finished {
    fn other_server(&self, server_started: i64) -> bool {
        (self.server_started - server_started).abs() > SAME_START
    }

    /// What the count would be with `deleted` seen now, without taking it: requests read,
    /// only the sampler (one task, in order) takes, so racing requests cannot be
    /// mistaken for a tube that vanished.
    fn peek(&self, deleted: u64, server_started: i64) -> u64 {
        if self.other_server(server_started) {
            return deleted;
        }
        self.total + deleted.saturating_sub(self.last_seen)
    }

    /// Takes the tube's `cmd-delete` now (0 for a tube that is gone) on the server that
    /// started at `server_started`.
    fn saw(&mut self, deleted: u64, server_started: i64) -> u64 {
        if self.other_server(server_started) {
            *self = Finished {
                server_started,
                ..Finished::default()
            };
        }
        self.total += if deleted >= self.last_seen {
            deleted - self.last_seen
        } else {
            deleted
        };
        self.last_seen = deleted;
        self.total
    }
}

/// The failure records as last read, and what the tubes said when they were: pages are
/// served from here, and the records (which can only be read by reserving them for an
/// instant) are read again, by one reader at a time, only when a tube says something
/// changed. So however many pages poll, reading holds no record another reader wants.
#[derive(Debug, Default)]
struct FailureCache {
    key: Option<FailureKey>,
    found: Option<Arc<crate::failures::Findings>>,
}

/// What changes when a job or result is buried, kicked or discarded, or a record put or
/// deleted: buried counts and the records tube's puts and deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FailureKey {
    jobs_buried: u64,
    results_buried: u64,
    records_put: u64,
    records_deleted: u64,
}

/// Shared by every request.
#[derive(Debug)]
pub struct App {
    grid: Grid,
    config: ServeConfig,
    samples: Mutex<VecDeque<Sample>>,
    finished: Mutex<Finished>,
    plots: tokio::sync::Semaphore,
    failures: tokio::sync::Mutex<FailureCache>,
}

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
        ..config
    };
    let (finished, samples) = config
        .history
        .as_deref()
        .and_then(history::load)
        .unwrap_or_default();
    let app = Arc::new(App {
        grid,
        config: ServeConfig { checkout, ..config },
        samples: Mutex::new(samples),
        finished: Mutex::new(finished),
        plots: tokio::sync::Semaphore::new(PLOTS_AT_ONCE),
        failures: tokio::sync::Mutex::new(FailureCache::default()),
    });
    tokio::spawn(sample(Arc::clone(&app)));
    let saving = Arc::clone(&app);
    let addr = listener.local_addr()?;
    tracing::info!(addr = %addr, control = app.config.control.is_some(), "serving the grid at http://{addr}/");
    println!("gridctl serve: http://{addr}/");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    if let Ok(mut signals) = common::shutdown::Shutdown::on_signals() {
        tokio::spawn(async move {
            signals.changed().await;
            let _ = stop.send(true);
        });
    }
    let reserve_for = reserve_for(&app.config.control);
    let serving = listen::serve(
        listener,
        router(app),
        HEADER_TIMEOUT,
        reserve_for,
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
    saving.save_history();
    Ok(())
}

/// Every route.
fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(overview))
        .route("/workers", get(workers))
        .route("/failures", get(failures))
        .route("/commits", get(commits_page))
        .route("/plot.svg", get(plot))
        .route("/api/status.json", get(api_status))
        .route("/api/workers.json", get(api_status))
        .route("/api/failures.json", get(api_failures))
        .route("/api/commits.json", get(api_commits))
        .route(
            "/static/style.css",
            get(|| asset("text/css", include_str!("assets/style.css"))),
        )
        .route(
            "/static/refresh.js",
            get(|| asset("text/javascript", include_str!("assets/refresh.js"))),
        )
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/control/{action}", post(control))
        .fallback(|| async { (StatusCode::NOT_FOUND, "no such page\n") })
        .layer(axum::middleware::map_response(secure_headers))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app),
            known_host,
        ))
        .with_state(app)
}

/// Refuses a request whose `Host` is not a name this server answers to: a page on
/// another site that resolves its own name to this address (DNS rebinding) would
/// otherwise read every page. Loopback names pass with any port (an SSH tunnel may use
/// another), so does the address listened on, and every `--allow-host`.
async fn known_host(
    State(app): State<Arc<App>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if host_allowed(host, &app.config.listen, &app.config.allowed_hosts) {
        return next.run(request).await;
    }
    let message = format!(
        "this dashboard does not answer to the name {:?}: add it with --allow-host (GRIDCTL_ALLOW_HOSTS)\n",
        crate::text::one_line(host)
    );
    (StatusCode::MISDIRECTED_REQUEST, message).into_response()
}

/// True when `host` (a Host header: a name or address, maybe a port) may be served.
fn host_allowed(host: &str, listen: &str, allowed: &[String]) -> bool {
    let host = host.to_ascii_lowercase();
    let name = match host.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host.as_str(),
    };
    if matches!(name, "localhost" | "127.0.0.1" | "[::1]") {
        return true;
    }
    host == listen.to_ascii_lowercase()
        || allowed.iter().any(|a| {
            let a = a.to_ascii_lowercase();
            a == host || a == name
        })
}

/// Headers that make whatever slipped through escaping inert: no inline script, no
/// framing, no sniffing.
async fn secure_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

async fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// Samples the jobs finished every [`SAMPLE_EVERY`], for the throughput chart.
async fn sample(app: Arc<App>) {
    let tube = app.grid.config().jobs_tube();
    let mut client = None;
    for round in 1usize.. {
        if round % HISTORY_EVERY == 0 {
            app.save_history();
        }
        if client.is_none() {
            client = app.grid.connect().await.ok();
        }
        if let Some(c) = client.as_mut() {
            match counts(c, &app.grid, &tube).await {
                Ok((deleted, discarded, started)) => app.push_sample(deleted, discarded, started),
                Err(_) => client = None,
            }
        }
        // The failure banner's newest reason stays current without a page asking.
        if let Some(c) = client.as_mut() {
            if app.findings(c).await.is_err() {
                client = None;
            }
        }
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
}

/// What the sampler reads: the jobs tube's deletes (0 for a tube that is gone), the jobs
/// discarded, and when the server started.
async fn counts(
    c: &mut common::beanstalk::Client,
    grid: &Grid,
    tube: &str,
) -> Result<(u64, u64, i64), common::beanstalk::Error> {
    let deleted = c.stats_tube_if_any(tube).await?.map_or(0, |s| s.cmd_delete);
    let discarded = grid.discarded(c).await?;
    let uptime = c.stats().await?.uptime;
    Ok((
        deleted,
        discarded,
        chrono::Utc::now().timestamp() - uptime as i64,
    ))
}

impl App {
    /// Writes the throughput history, when it is kept.
    fn save_history(&self) {
        if let Some(path) = &self.config.history {
            let finished = self.finished.lock().unwrap_or_else(|e| e.into_inner());
            let samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
            history::save(path, &finished, &samples);
        }
    }

    fn push_sample(&self, deleted: u64, discarded: u64, server_started: i64) {
        let finished = self
            .finished
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .saw(deleted, server_started)
            .saturating_sub(discarded);
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        samples.push_back(Sample {
            at: chrono::Utc::now().timestamp(),
            finished,
        });
        while samples.len() > SAMPLES_KEPT {
            samples.pop_front();
        }
    }

    fn samples(&self) -> Vec<Sample> {
        let samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        samples.iter().copied().collect()
    }

    /// The grid now, with the rate and ETA from the samples.
    async fn status(&self) -> Result<crate::status::Snapshot, Failure> {
        let work = async {
            let mut client = self.grid.connect().await?;
            crate::status::snapshot(&mut client, &self.grid).await
        };
        let mut snap = within_budget(work).await?;
        snap.newest_failure = self.newest_failure();
        // What the jobs tube says now, counted with what it said before it vanished.
        let deleted = self
            .finished
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .peek(snap.jobs.deleted, snap.server_started);
        snap.finished = deleted.saturating_sub(snap.discarded);
        let samples = self.samples();
        if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
            snap.set_rate(
                last.finished.saturating_sub(first.finished),
                (last.at - first.at) as f64,
            );
        }
        Ok(snap)
    }

    async fn failures(&self) -> Result<Arc<crate::failures::Findings>, Failure> {
        within_budget(async {
            let mut client = self.grid.connect().await?;
            self.findings(&mut client).await
        })
        .await
    }

    /// The failure records, read again only when the tubes say they changed (or the last
    /// read was incomplete), one reader at a time.
    async fn findings(
        &self,
        client: &mut common::beanstalk::Client,
    ) -> anyhow::Result<Arc<crate::failures::Findings>> {
        let key = self.failure_key(client).await?;
        let mut cache = self.failures.lock().await;
        match &cache.found {
            Some(found) if cache.key == Some(key) => Ok(Arc::clone(found)),
            _ => {
                let found = Arc::new(
                    crate::failures::find_at_most(client, &self.grid, MAX_FAILURES).await?,
                );
                // Kept until something changes, also when capped at MAX_FAILURES (with
                // 1,000 records and more it was read again for every view: 20 views,
                // 23,000 reserves); read again only when another reader held records.
                cache.key = found.settled.then_some(key);
                cache.found = Some(Arc::clone(&found));
                Ok(found)
            }
        }
    }

    async fn failure_key(
        &self,
        client: &mut common::beanstalk::Client,
    ) -> anyhow::Result<FailureKey> {
        let config = self.grid.config();
        let mut stats = Vec::new();
        for tube in [
            config.jobs_tube(),
            config.results_tube(),
            config.failures_tube(),
        ] {
            stats.push(
                client
                    .stats_tube_if_any(&tube)
                    .await
                    .context("reading the tubes' counts")?,
            );
        }
        let get =
            |i: usize, f: fn(&common::beanstalk::TubeStats) -> u64| stats[i].as_ref().map_or(0, f);
        Ok(FailureKey {
            jobs_buried: get(0, |s| s.current_jobs_buried),
            results_buried: get(1, |s| s.current_jobs_buried),
            records_put: get(2, |s| s.total_jobs),
            records_deleted: get(2, |s| s.cmd_delete),
        })
    }

    /// The newest failure as last read (no read now), for the banner on every page.
    fn newest_failure(&self) -> Option<crate::status::NewestFailure> {
        let cache = self.failures.try_lock().ok()?;
        let found = cache.found.as_ref()?;
        found
            .failed
            .iter()
            .max_by(|a, b| a.at.cmp(&b.at))
            .map(|f| crate::status::NewestFailure {
                video: f.video.clone(),
                error: f.last_error.clone(),
                at: f.at.clone(),
            })
    }

    async fn recent(&self) -> Result<Option<Vec<commits::Committed>>, Failure> {
        let Some(dir) = self.config.checkout.clone() else {
            return Ok(None);
        };
        let n = self.config.recent;
        within_budget(async move {
            tokio::task::spawn_blocking(move || commits::recent(&dir, n))
                .await
                .context("reading the git log")?
        })
        .await
        .map(Some)
    }

    /// Who is asking: may they press buttons, and with which CSRF value.
    fn viewer(&self, headers: &HeaderMap) -> pages::Viewer {
        let cookies = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
        match &self.config.control {
            None => pages::Viewer::ReadOnly,
            Some(auth) => match auth.session(cookies) {
                Some(session) => pages::Viewer::Control { csrf: session.csrf },
                None => pages::Viewer::LoggedOut,
            },
        }
    }
}

/// A page that could not be made: the server unreachable, too slow, or a bad request.
#[derive(Debug)]
pub struct Failure(StatusCode, String);

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Failure {
        Failure(StatusCode::BAD_GATEWAY, format!("{e:#}"))
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, page(pages::error_page(self.0, &self.1))).into_response()
    }
}

async fn within_budget<T>(
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(REQUEST_BUDGET, work).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(Failure(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "the grid did not answer within {} s",
                REQUEST_BUDGET.as_secs()
            ),
        )),
    }
}

async fn overview(State(app): State<Arc<App>>, headers: HeaderMap) -> Result<Response, Failure> {
    let snap = app.status().await?;
    let viewer = app.viewer(&headers);
    Ok(page(pages::overview(&snap, &app.samples(), &viewer)))
}

async fn workers(State(app): State<Arc<App>>, headers: HeaderMap) -> Result<Response, Failure> {
    let snap = app.status().await?;
    Ok(page(pages::workers(&snap, &app.viewer(&headers))))
}

/// Which page of a long list (from 1).
#[derive(Deserialize)]
struct PageQuery {
    #[serde(default = "first_page")]
    page: usize,
}

fn first_page() -> usize {
    1
}

async fn failures(
    State(app): State<Arc<App>>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
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
        &app.viewer(&headers),
    )))
}

async fn commits_page(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
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
    Ok(page(pages::commits(
        &snap,
        shown.as_deref(),
        &app.viewer(&headers),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_host_names_are_answered() {
        let listen = "10.0.0.5:8800";
        let allowed = vec!["grid.example.org".to_owned(), "proxy:8443".to_owned()];
        for ok in [
            "127.0.0.1:8800",
            "127.0.0.1:9000",
            "localhost:8800",
            "[::1]:8800",
            "10.0.0.5:8800",
            "grid.example.org",
            "Grid.Example.org:443",
            "proxy:8443",
        ] {
            assert!(host_allowed(ok, listen, &allowed), "{ok}");
        }
        for refused in [
            "attacker.example",
            "attacker.example:8800",
            "10.0.0.5:9999",
            "proxy:9000",
            "",
            "localhost.attacker.example",
            "127.0.0.1.attacker.example:8800",
        ] {
            assert!(!host_allowed(refused, listen, &allowed), "{refused}");
        }
    }

    #[test]
    fn finished_jobs_are_counted_across_the_tube_vanishing() {
        let mut f = Finished::default();
        let start = 1_700_000_000;
        assert_eq!(f.saw(3, start), 3);
        assert_eq!(
            f.saw(5, start + 2),
            5,
            "the same start, read a moment later"
        );
        assert_eq!(f.saw(0, start), 5, "the tube is gone");
        assert_eq!(f.saw(2, start), 7, "a new tube counts from zero");
        assert_eq!(f.peek(4, start), 9, "a request sees what is new");
        assert_eq!(f.peek(1, start), 7, "and never counts a stale read twice");
        assert_eq!(f.saw(4, start), 9);
    }

    #[test]
    fn a_restarted_server_starts_the_count_anew_as_status_does() {
        // The dashboard said "Finished 88" where status said 45 (issue 35).
        let mut f = Finished::default();
        let (before, after) = (1_700_000_000, 1_700_090_000);
        assert_eq!(f.saw(40, before), 40);
        assert_eq!(f.peek(45, after), 45);
        assert_eq!(f.saw(45, after), 45);
        assert_eq!(f.saw(46, after), 46);
    }
}

#[derive(Deserialize)]
struct PlotQuery {
    path: String,
}

/// The motion plot of a committed flow file, as SVG, with its regions as bands.
async fn plot(
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

/// A rendered page as an HTML response.
fn page(markup: maud::Markup) -> Response {
    axum::response::Html(markup.into_string()).into_response()
}

fn json_response(text: String) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::text::safe_json(text),
    )
        .into_response()
}

async fn api_status(State(app): State<Arc<App>>) -> Result<Response, Failure> {
    let snap = app.status().await?;
    Ok(json_response(
        serde_json::to_string(&snap).map_err(anyhow::Error::from)?,
    ))
}

/// The failures, a page of [`pages::PER_PAGE`] at a time (`?page=N`), long errors cut.
async fn api_failures(
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

async fn api_commits(State(app): State<Arc<App>>) -> Result<Response, Failure> {
    let recent = app.recent().await?.unwrap_or_default();
    Ok(json_response(
        serde_json::to_string(&recent).map_err(anyhow::Error::from)?,
    ))
}

/// Which requests the connections kept for the operator serve: one carrying an open
/// session, or a login (its page, or the form); without control, none.
fn reserve_for(control: &Option<Auth>) -> listen::ReserveFor {
    let control = control.clone();
    Arc::new(move |request: &hyper::Request<hyper::body::Incoming>| {
        let Some(auth) = &control else {
            return false;
        };
        let cookies = request
            .headers()
            .get(header::COOKIE)
            .and_then(|v| v.to_str().ok());
        request.uri().path() == "/login" || auth.session(cookies).is_some()
    })
}

async fn login_page(State(app): State<Arc<App>>) -> Response {
    if app.config.control.is_none() {
        return (
            StatusCode::NOT_FOUND,
            "control is off: start gridctl serve with --allow-control\n",
        )
            .into_response();
    }
    page(pages::login(None))
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let Some(auth) = &app.config.control else {
        return (StatusCode::NOT_FOUND, "control is off\n").into_response();
    };
    // A page elsewhere must not log a browser in (login CSRF).
    if !same_origin(&headers) {
        return (StatusCode::FORBIDDEN, "a login from another site\n").into_response();
    }
    // The right token always logs in: it holds 128 bits, so nobody's wrong guesses
    // (through the same proxy or tunnel, as the operator's) may keep it out (issue 34).
    if !auth.is_token(&form.token) {
        if let Some(wait) = auth.must_wait(peer.ip()) {
            let message = format!(
                "too many wrong tokens: try again in {} s",
                wait.as_secs() + 1
            );
            return (
                StatusCode::TOO_MANY_REQUESTS,
                page(pages::login(Some(&message))),
            )
                .into_response();
        }
        auth.failed(peer.ip());
        tracing::warn!(client = %peer.ip(), "a login with a wrong control token");
        return (
            StatusCode::FORBIDDEN,
            page(pages::login(Some("that is not the control token"))),
        )
            .into_response();
    }
    let (id, _) = match auth.open(peer.ip()) {
        Ok(opened) => opened,
        Err(e) => return Failure::from(e).into_response(),
    };
    let secure = if behind_tls(&headers) { "; Secure" } else { "" };
    let cookie = format!(
        "{}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
        auth::COOKIE,
        auth::SESSION_LIFETIME.as_secs()
    );
    with_cookie(Redirect::to("/").into_response(), &cookie)
}

#[derive(Deserialize)]
struct LogoutForm {
    csrf: String,
}

/// Ends this browser's session.
async fn logout(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Form(form): Form<LogoutForm>,
) -> Response {
    let Some(auth) = &app.config.control else {
        return (StatusCode::NOT_FOUND, "control is off\n").into_response();
    };
    let cookies = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
    let ours = auth
        .session(cookies)
        .is_some_and(|s| auth::equal(s.csrf.as_bytes(), form.csrf.as_bytes()));
    if !ours || !same_origin(&headers) {
        return (
            StatusCode::FORBIDDEN,
            "the form did not come from this page\n",
        )
            .into_response();
    }
    auth.close(cookies);
    let cookie = format!(
        "{}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0",
        auth::COOKIE
    );
    with_cookie(Redirect::to("/").into_response(), &cookie)
}

fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

/// True when a proxy in front says the browser came over TLS: the cookie is then `Secure`.
fn behind_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

#[derive(Deserialize)]
struct ControlForm {
    csrf: String,
    #[serde(default)]
    id: Option<u64>,
    #[serde(default)]
    video: Option<String>,
}

/// A button: refused unless control is on, the session is valid, the form carries the
/// CSRF value and comes from this origin.
async fn control(
    State(app): State<Arc<App>>,
    UrlPath(action): UrlPath<String>,
    headers: HeaderMap,
    Form(form): Form<ControlForm>,
) -> Result<Response, Failure> {
    let refuse = |why: &str| Err(Failure(StatusCode::FORBIDDEN, format!("refused: {why}")));
    let Some(auth) = &app.config.control else {
        return refuse("control is off (gridctl serve --allow-control)");
    };
    let cookies = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
    let Some(session) = auth.session(cookies) else {
        return refuse("log in with the control token first (/login)");
    };
    if !auth::equal(session.csrf.as_bytes(), form.csrf.as_bytes()) || !same_origin(&headers) {
        return refuse("the form did not come from this page");
    }
    let grid = &app.grid;
    let config = grid.config();
    // What the commands would print goes to the log, not to a stdout no one may read.
    let mut said = Vec::new();
    let done = within_budget(async {
        let out: &mut (dyn std::io::Write + Send) = &mut said;
        match action.as_str() {
            "pause" => crate::control::pause(config, None, out).await.map(drop),
            "resume" => crate::control::resume(config, out).await,
            // The web's drain only pauses: the overview shows the jobs still in progress.
            "drain" => crate::control::pause(config, None, out).await.map(drop),
            "retry" => match &form.video {
                Some(v) => crate::failures::retry(grid, false, std::slice::from_ref(v), out)
                    .await
                    .map(drop),
                None => crate::failures::retry(grid, true, &[], out).await.map(drop),
            },
            "discard" => match form.id {
                Some(id) => crate::failures::discard(grid, &[id], None, out).await,
                None => anyhow::bail!("discard needs an id"),
            },
            other => anyhow::bail!("no such action: {other}"),
        }
    });
    done.await?;
    tracing::info!(action = %action, said = %crate::text::one_line(&String::from_utf8_lossy(&said)), "control action done");
    Ok(Redirect::to(if action == "retry" || action == "discard" {
        "/failures"
    } else {
        "/"
    })
    .into_response())
}

/// True unless the request names an Origin that is not its Host.
fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(origin) => {
            let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
            host.is_some_and(|h| h == origin_host)
        }
    }
}
