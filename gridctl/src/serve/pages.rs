//! The pages of `gridctl serve`, rendered on the server with maud (which escapes every
//! string it writes); every string that came from a tube or the checkout also goes
//! through `text::one_line`, so control characters and bidi overrides show as escapes.

use maud::{html, Markup, DOCTYPE};

use super::commits::{Committed, RegionRow};
use super::Sample;
use crate::failures::{Findings, Kind};
use crate::status::{Snapshot, TubeCounts, Worker};
use crate::text::one_line;

/// A committed flow file and, if HEAD holds it, its regions file's regions.
pub type WithRegions = (Committed, Option<Vec<RegionRow>>);

/// At most this many rows of one table are drawn.
const MAX_ROWS: usize = 2000;

/// Who is looking.
#[derive(Debug, Clone)]
pub enum Viewer {
    /// Control is off: no buttons.
    ReadOnly,
    /// Control is on but this browser has not logged in: a link to log in.
    LoggedOut,
    /// Logged in: buttons, each form with this CSRF value.
    Control {
        /// The CSRF value.
        csrf: String,
    },
}

/// A string from a tube or the checkout, made safe to show.
fn shown(s: &str) -> String {
    one_line(s)
}

/// The frame every page shares.
fn page(title: &str, here: &str, snap: &Snapshot, viewer: &Viewer, body: Markup) -> Markup {
    let nav = [
        ("/", "Overview"),
        ("/workers", "Workers"),
        ("/failures", "Failures"),
        ("/commits", "Commits"),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · camhd-grid " (shown(&snap.namespace)) }
                link rel="stylesheet" href="/static/style.css";
                script src="/static/refresh.js" defer {}
            }
            body {
                header {
                    span.grid { "camhd-grid · " (shown(&snap.namespace)) }
                    @for (href, name) in nav {
                        a href=(href) class=[(href == here).then_some("here")] { (name) }
                    }
                    @match viewer {
                        Viewer::ReadOnly => span { "read-only" },
                        Viewer::LoggedOut => a href="/login" { "log in to control" },
                        Viewer::Control { .. } => span { "control enabled" },
                    }
                }
                main id="main" { (body) }
                footer {
                    "beanstalkd " (shown(&snap.version)) " at " (shown(&snap.server))
                    " · gridctl " (common::cli::VERSION)
                }
            }
        }
    }
}

/// A page saying what went wrong.
pub fn error_page(status: axum::http::StatusCode, message: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { "camhd-grid: " (status.as_u16()) } link rel="stylesheet" href="/static/style.css"; }
            body { main { h1 { (status) } p.error { (shown(message)) } p { a href="/" { "overview" } } } }
        }
    }
}

/// The overview: progress, throughput, tubes, state, server.
pub fn overview(snap: &Snapshot, samples: &[Sample], viewer: &Viewer) -> Markup {
    let j = &snap.jobs;
    let left = j.ready + j.reserved + j.delayed + j.buried;
    let done = j.deleted;
    let paused = j.paused_seconds_left > 0;
    let body = html! {
        h1 { "Overview" }
        (record(snap))
        p {
            "Finished " strong #finished { (done) } " of " (done + left) " jobs queued so far; "
            strong #left { (left) } " left."
            br;
            progress max=((done + left).max(1)) value=(done) {}
        }
        p {
            @match snap.finished_per_minute {
                Some(rate) => { "Finishing " strong #rate { (format!("{rate:.1}")) } " jobs a minute" }
                None => { "Measuring the rate (a sample every 2 s)" }
            }
            @if let Some(eta) = snap.eta_seconds { "; the queue is empty in about " strong { (duration(eta)) } }
            "."
        }
        (chart(samples))
        @if paused || snap.draining {
            p.warn #state {
                @if paused { "The jobs tube is paused: no job is handed out. " }
                @if snap.draining { "The server is draining. " }
                (j.reserved) " job(s) still in progress."
            }
        } @else {
            p.ok #state { "Handing out jobs." }
        }
        (controls(viewer, paused))
        h2 { "Tubes" }
        (tubes(&[j, &snap.results]))
        @if let (Some(a), Some(r)) = (j.awaiting_commit, j.retrying) {
            p { "Jobs delayed: " (a) " awaiting the sink's commit, " (r) " retrying later." }
        }
        h2 { "Workers" }
        p {
            a href="/workers" { (snap.workers.len()) " working" }
            @if !snap.dead_workers.is_empty() { ", " (snap.dead_workers.len()) " dead" }
            @if !snap.untrusted_workers.is_empty() { ", " span.warn { (snap.untrusted_workers.len()) " untrusted (not counted)" } }
        }
        h2 { "Server" }
        table {
            tr { th { "beanstalkd" } td { (shown(&snap.version)) } }
            tr { th { "address" } td { (shown(&snap.server)) } }
            tr { th { "up" } td { (duration(snap.uptime_seconds as f64)) } }
            tr { th { "largest job" } td { (snap.max_job_size) " bytes" } }
            tr { th { "binlog" } td { @if snap.binlog { "on" } @else { span.warn { "off: a restart loses every job" } } } }
        }
    };
    page("Overview", "/", snap, viewer, body)
}

/// The pause, resume and drain buttons (or how to get them).
fn controls(viewer: &Viewer, paused: bool) -> Markup {
    match viewer {
        Viewer::Control { csrf } => html! {
            p {
                @if paused {
                    (button("/control/resume", "Resume", csrf, None))
                } @else {
                    (button("/control/pause", "Pause", csrf, None))
                    " "
                    (button("/control/drain", "Drain", csrf, None))
                }
            }
        },
        _ => html! {},
    }
}

/// A one-button form posting the CSRF value (and a field, if given). Discarding asks
/// first (with JavaScript on).
fn button(action: &str, label: &str, csrf: &str, field: Option<(&str, String)>) -> Markup {
    let confirm = (action == "/control/discard")
        .then_some("Discard this failed job and its records for good?");
    html! {
        form.inline method="post" action=(action) data-confirm=[confirm] {
            input type="hidden" name="csrf" value=(csrf);
            @if let Some((name, value)) = field { input type="hidden" name=(name) value=(value); }
            button type="submit" { (label) }
        }
    }
}

fn tubes(tubes: &[&TubeCounts]) -> Markup {
    html! {
        table #tubes {
            tr { th { "tube" } th.n { "ready" } th.n { "reserved" } th.n { "delayed" } th.n { "buried" } th.n { "watching" } th.n { "finished" } }
            @for t in tubes {
                tr data-tube=(shown(&t.tube)) {
                    td { (shown(&t.tube)) @if !t.exists { " (empty, unused)" } }
                    td.n.ready { (t.ready) } td.n.reserved { (t.reserved) } td.n.delayed { (t.delayed) }
                    td.n.buried { (t.buried) } td.n { (t.workers_watching) } td.n { (t.deleted) }
                }
            }
        }
    }
}

/// Jobs finished per minute over the last hour, as an inline SVG line.
fn chart(samples: &[Sample]) -> Markup {
    const W: f64 = 600.0;
    const H: f64 = 80.0;
    let rates: Vec<(i64, f64)> = samples
        .windows(2)
        .map(|w| {
            let dt = (w[1].at - w[0].at).max(1) as f64;
            (
                w[1].at,
                w[1].finished.saturating_sub(w[0].finished) as f64 / dt * 60.0,
            )
        })
        .collect();
    let (Some(first), Some(last)) = (rates.first(), rates.last()) else {
        return html! { p { "Throughput: not enough samples yet." } };
    };
    let span = (last.0 - first.0).max(1) as f64;
    let top = rates.iter().map(|r| r.1).fold(1.0, f64::max);
    let points: Vec<String> = rates
        .iter()
        .map(|(t, r)| {
            format!(
                "{:.1},{:.1}",
                (t - first.0) as f64 / span * W,
                H - r / top * (H - 4.0)
            )
        })
        .collect();
    html! {
        p { "Jobs finished per minute, last " (duration(span)) " (top " (format!("{top:.1}")) "):" }
        svg.chart width=(W) height=(H) viewBox=(format!("0 0 {W} {H}")) role="img" aria-label="throughput" {
            polyline points=(points.join(" ")) {}
        }
    }
}

/// `3 h 05 min`, `4 min 10 s`, `12 s`.
fn duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, s / 60 % 60),
    }
}

/// Every heartbeat: working, dead, untrusted.
pub fn workers(snap: &Snapshot, viewer: &Viewer) -> Markup {
    let body = html! {
        h1 { "Workers" }
        h2 { "Working (" (snap.workers.len()) ")" }
        (worker_table(&snap.workers, "working"))
        @if !snap.dead_workers.is_empty() {
            h2 { "Dead (" (snap.dead_workers.len()) "): heartbeats not renewed in time" }
            (worker_table(&snap.dead_workers, "dead"))
        }
        @if !snap.untrusted_workers.is_empty() {
            h2.warn { "Untrusted (" (snap.untrusted_workers.len()) "): not signed with the grid's key, not counted as workers" }
            (worker_table(&snap.untrusted_workers, "untrusted"))
        }
    };
    page("Workers", "/workers", snap, viewer, body)
}

fn worker_table(workers: &[Worker], class: &str) -> Markup {
    html! {
        table.workers {
            tr { th { "host" } th.n { "pid" } th.n { "slot" } th.n { "job" } th { "video" } th { "progress" } th.n { "heartbeat" } th { "signature" } }
            @for w in workers.iter().take(MAX_ROWS) {
                tr class=(class) {
                    td { (shown(&w.host)) } td.n { (w.pid) } td.n { (w.slot) }
                    td.n { @if let Some(id) = w.job_id { (id) } @else { "idle" } }
                    td.video { @if let Some(v) = &w.video { (shown(v)) } }
                    td {
                        @if w.frames_total > 0 {
                            progress max=(w.frames_total) value=(w.frames_done) {}
                            " " (w.frames_done) "/" (w.frames_total)
                        }
                    }
                    td.n { (w.seconds_since_heartbeat) " s ago" }
                    td { (w.signature) }
                }
            }
        }
        @if workers.len() > MAX_ROWS { p { "and " (workers.len() - MAX_ROWS) " more" } }
    }
}

/// Failed jobs and parked results, as `gridctl failed` joins them.
pub fn failures(snap: &Snapshot, found: &Findings, viewer: &Viewer) -> Markup {
    let body = html! {
        h1 { "Failures (" (found.failed.len()) ")" }
        @if !found.complete {
            p.warn { "Showing the first " (super::MAX_FAILURES) " failure records (or another gridctl held some): the list may be incomplete." }
        }
        @if let Viewer::Control { csrf } = viewer {
            @if !found.failed.is_empty() { p { (button("/control/retry", "Retry all", csrf, None)) } }
        }
        table #failures {
            tr { th { "kind" } th.n { "id" } th { "video" } th.n { "attempts" } th { "last error" } th { "host" } th { "when" } th { "record" }
                 @if let Viewer::Control { .. } = viewer { th { "" } } }
            @for f in found.failed.iter().take(MAX_ROWS) {
                tr {
                    td { (match f.kind { Kind::Job => "job", Kind::Result => "result" }) }
                    td.n { (f.job_id) }
                    td.video { (shown(&f.video)) }
                    td.n { (f.attempts) }
                    td.error { (shown(&f.last_error)) }
                    td { (shown(&f.host)) }
                    td { (shown(&f.at)) }
                    td { (f.record) }
                    @if let Viewer::Control { csrf } = viewer {
                        td {
                            (button("/control/retry", "Retry", csrf, Some(("video", f.video.clone()))))
                            " "
                            (button("/control/discard", "Discard", csrf, Some(("id", f.job_id.to_string()))))
                        }
                    }
                }
            }
        }
        @for u in &found.unrecorded {
            p { (u.count) " more buried in " (shown(&u.tube)) " without a failure record"
                @if let Some(id) = u.first { " (gridctl peek " (id) " shows the first)" } }
        }
    };
    page("Failures", "/failures", snap, viewer, body)
}

/// The newest flow files committed, with their plots and regions.
pub fn commits(snap: &Snapshot, recent: Option<&[WithRegions]>, viewer: &Viewer) -> Markup {
    let body = html! {
        h1 { "Recent commits" }
        @match recent {
            None => p { "Start gridctl serve with --checkout DIR (the sink's checkout) to see what was committed." },
            Some([]) => p { "Nothing committed yet." },
            Some(list) => {
                @for (c, regions) in list {
                    div.commit {
                        p {
                            strong.video { (shown(&c.path)) } br;
                            "commit " code { (shown(&c.commit.chars().take(12).collect::<String>())) }
                            " · " (when(c.time)) " · " (shown(&c.subject))
                        }
                        img loading="lazy" alt=(format!("motion of {}", shown(&c.path)))
                            src=(format!("/plot.svg?path={}", url_encode(&c.path)));
                        @match regions {
                            Some(rows) => {
                                p { (count(rows.len(), "region", "regions")) ":" }
                                table.regions {
                                    tr { th { "type" } th.n { "from frame" } th.n { "to frame" } }
                                    @for r in rows.iter().take(MAX_ROWS) {
                                        tr { td { (shown(&r.kind)) } td.n { (r.start) } td.n { (r.end) } }
                                    }
                                }
                            }
                            None => p { "No regions file (yet)." },
                        }
                    }
                }
            }
        }
    };
    page("Commits", "/commits", snap, viewer, body)
}

/// Where the record stands against the sink's remote: a warning while commits wait.
fn record(snap: &Snapshot) -> Markup {
    let Some(sink) = &snap.sink else {
        return html! {};
    };
    html! {
        @if sink.unpushed_count > 0 {
            p.warn #record {
                "The record is behind: " (count(sink.unpushed_count as usize, "commit", "commits"))
                " not pushed to " (shown(sink.remote.as_deref().unwrap_or("the remote")))
                @if let Some(e) = &sink.push_error { "; the last push failed: " (shown(e)) }
                " (the sink's word " (sink.seconds_since) " s ago)."
            }
        }
    }
}

/// `n` things, in the singular or plural as `n` asks.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Seconds since 1970 as a UTC date and time.
fn when(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// A path as a URL query value (paths hold only `A-Za-z0-9._-/` by the path policy;
/// anything else is percent-encoded all the same).
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The login form.
pub fn login(error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { "camhd-grid: log in" } link rel="stylesheet" href="/static/style.css"; }
            body {
                main {
                    h1 { "Log in to control the grid" }
                    @if let Some(e) = error { p.warn { (e) } }
                    form method="post" action="/login" {
                        label { "Control token " input type="password" name="token" autocomplete="current-password"; }
                        " " button type="submit" { "Log in" }
                    }
                    p { a href="/" { "back (read-only)" } }
                }
            }
        }
    }
}
