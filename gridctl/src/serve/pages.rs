//! The pages of `gridctl serve`, rendered on the server with maud (which escapes every
//! string it writes); every string that came from a tube or the checkout also goes
//! through `text::one_line`, so control characters and bidi overrides show as escapes.

use maud::{html, Markup, DOCTYPE};

use super::commits::{Committed, RegionRow};
use super::throughput::Sample;
use crate::failures::{Findings, Kind};
use crate::status::{Snapshot, TubeCounts, Worker};
use common::text::one_line;

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

/// A path or URL as [`shown`], breakable after each `/`: at a phone's width a path
/// broke every few letters wherever it had to.
fn path_shown(s: &str) -> Markup {
    let text = shown(s);
    let mut parts = text.split('/').peekable();
    html! {
        @while let Some(part) = parts.next() {
            (part)
            @if parts.peek().is_some() { "/" wbr; }
        }
    }
}

/// The pages every header links to.
const NAV: [(&str, &str); 4] = [
    ("/", "Overview"),
    ("/workers", "Workers"),
    ("/failures", "Failures"),
    ("/commits", "Commits"),
];

/// The header of a page outside the grid's frame (login, errors): the same links.
fn plain_header() -> Markup {
    html! {
        header {
            span.grid { "camhd-grid" }
            @for (href, name) in NAV { a href=(href) { (name) } }
        }
    }
}

/// The frame every page shares.
fn page(title: &str, here: &str, snap: &Snapshot, viewer: &Viewer, body: Markup) -> Markup {
    let nav = NAV;
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
                        Viewer::Control { csrf } => span { "control enabled " (button("/logout", "Log out", csrf, None)) },
                    }
                }
                main id="main" { (failure_banner(snap)) (body) }
                footer {
                    "beanstalkd " (shown(&snap.version)) " at " (shown(&snap.server))
                    " · gridctl " (common::cli::VERSION)
                }
            }
        }
    }
}

/// Failures first: on every page while jobs or results are parked, how many, and the
/// newest reason read.
fn failure_banner(snap: &Snapshot) -> Markup {
    let (jobs, results) = (snap.jobs.buried, snap.results.buried);
    if jobs + results == 0 {
        return html! {};
    }
    html! {
        div.banner #failure-banner role="alert" {
            a href="/failures" {
                strong {
                    @if jobs > 0 { (count(jobs as usize, "failed job", "failed jobs")) }
                    @if jobs > 0 && results > 0 { ", " }
                    @if results > 0 { (count(results as usize, "result", "results")) " the sink would not write" }
                }
            }
            @if let Some(f) = &snap.newest_failure {
                " · newest: " span.video { (shown(&f.video)) } ": " span.error-inline { (shown(&cut(&f.error, 300))) }
                " (" (shown(&f.at)) ")"
            }
        }
    }
}

/// Rows of a long list on one page, and the longest text shown of one value.
pub const PER_PAGE: usize = 100;
pub const MAX_TEXT: usize = 2000;

/// Page `n` (from 1) of `rows`.
pub fn page_of<T>(rows: &[T], n: usize) -> &[T] {
    let start = (n - 1).saturating_mul(PER_PAGE).min(rows.len());
    &rows[start..(start + PER_PAGE).min(rows.len())]
}

pub use common::text::cut;

/// A page saying what went wrong.
pub fn error_page(status: axum::http::StatusCode, message: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "camhd-grid: " (status.as_u16()) }
                link rel="stylesheet" href="/static/style.css";
            }
            body { (plain_header()) main { h1 { (status) } p.error { (shown(message)) } p { a href="/" { "overview" } } } }
        }
    }
}

/// The overview: progress, throughput, tubes, state, server.
pub fn overview(snap: &Snapshot, samples: &[Sample], viewer: &Viewer) -> Markup {
    let j = &snap.jobs;
    // Failed jobs are neither done nor left: they wait for an operator, not a filter.
    let left = j.ready + j.reserved + j.delayed;
    let failed = j.buried;
    let done = snap.finished;
    let queued = done + left + failed + snap.discarded;
    let paused = j.paused_seconds_left > 0;
    let (working, idle) = busy_and_idle(&snap.workers);
    let body = html! {
        h1 { "Overview" }
        (record(snap))
        p {
            "Finished " strong #finished { (done) } " of " strong #queued { (queued) } " jobs queued since the server started; "
            strong #left { (left) } " left"
            @if failed > 0 { ", " a.warn href="/failures" { strong #failed { (failed) } " failed" } }
            @if snap.discarded > 0 { ", " strong #discarded { (snap.discarded) } " discarded" }
            "."
            br;
            progress max=(queued.max(1)) value=(done) {}
        }
        p {
            @match snap.finished_per_minute {
                Some(rate) => { "Finishing " strong #rate { (format!("{rate:.1}")) } " jobs a minute" }
                None => { "Measuring the rate (a sample every 2 s)" }
            }
            @if let Some(eta) = snap.eta_seconds {
                @if left > 0 {
                    "; the " (left) " left are done in about " strong #eta { (duration(eta)) }
                    @if failed > 0 { " (the failed wait for you: retry or discard them)" }
                }
            }
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
            a href="/workers" { strong #working { (working.len()) } " working, " strong #idle { (idle.len()) } " idle" }
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
            @if let Some(a) = &snap.archive {
                tr { th { "archive budget" } td #archive { (a.total) " connections: " (a.in_use) " in use, " (a.free) " free" } }
            }
            @if let Some(marker) = &snap.key_marker {
                tr { th { "key marker" } td {
                    @if marker.starts_with("signed with key") && marker.ends_with("verified") { (shown(marker)) }
                    @else { span.warn #key-marker { (shown(marker)) } }
                } }
            }
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
        div.scroll { table #tubes {
            tr { th { "tube" } th.n { "ready" } th.n { "reserved" } th.n { "delayed" } th.n { "buried" } th.n { "watching" } th.n { "deleted" } }
            @for t in tubes {
                tr data-tube=(shown(&t.tube)) {
                    td { (shown(&t.tube)) @if !t.exists { " (empty, unused)" } }
                    td.n.ready { (t.ready) } td.n.reserved { (t.reserved) } td.n.delayed { (t.delayed) }
                    td.n.buried { (t.buried) } td.n { (t.workers_watching) } td.n { (t.deleted) }
                }
            }
        } }
    }
}

/// How far back the rate at each sample looks: the chart shows a minute's average, not
/// the 2-s steps between samples (a job finished in one step reads as 30 a minute).
const SMOOTHING_SECONDS: i64 = 60;

/// Jobs finished per minute at each sample, averaged over the minute before it.
fn smoothed_rates(samples: &[Sample]) -> Vec<(i64, f64)> {
    let mut rates = Vec::with_capacity(samples.len());
    let mut from = 0;
    for (i, now) in samples.iter().enumerate().skip(1) {
        while from + 1 < i && samples[from + 1].at <= now.at - SMOOTHING_SECONDS {
            from += 1;
        }
        let then = &samples[from];
        let dt = (now.at - then.at).max(1) as f64;
        rates.push((
            now.at,
            now.finished.saturating_sub(then.finished) as f64 / dt * 60.0,
        ));
    }
    rates
}

/// Jobs finished per minute over the samples kept (up to an hour), as an inline SVG
/// chart with its axes labelled.
fn chart(samples: &[Sample]) -> Markup {
    const W: f64 = 600.0;
    const H: f64 = 120.0;
    const LEFT: f64 = 40.0;
    const BOTTOM: f64 = 18.0;
    let rates = smoothed_rates(samples);
    let (Some(first), Some(last)) = (rates.first(), rates.last()) else {
        return html! { p { "Throughput: not enough samples yet (one every 2 s)." } };
    };
    let span = (last.0 - first.0).max(1) as f64;
    let top = rates.iter().map(|r| r.1).fold(1.0, f64::max).ceil();
    let (plot_w, plot_h) = (W - LEFT - 4.0, H - BOTTOM - 6.0);
    let x = |t: i64| LEFT + (t - first.0) as f64 / span * plot_w;
    let y = |r: f64| 6.0 + plot_h - r / top * plot_h;
    let points: Vec<String> = rates
        .iter()
        .map(|&(t, r)| format!("{:.1},{:.1}", x(t), y(r)))
        .collect();
    let minutes = (span / 60.0).round() as i64;
    html! {
        p { "Jobs finished per minute (a minute's average), the last " (duration(span)) ":" }
        svg.chart viewBox=(format!("0 0 {W} {H}")) role="img"
            aria-label=(format!("jobs finished per minute, up to {top}")) {
            line.axis x1=(LEFT) y1=(y(0.0)) x2=(W - 4.0) y2=(y(0.0)) {}
            line.axis x1=(LEFT) y1=(y(0.0)) x2=(LEFT) y2=(y(top)) {}
            text.label x=(LEFT - 4.0) y=(y(top) + 4.0) text-anchor="end" { (top) }
            text.label x=(LEFT - 4.0) y=(y(0.0)) text-anchor="end" { "0" }
            text.label x=(LEFT) y=(H - 4.0) text-anchor="start" {
                @if minutes > 0 { "−" (minutes) " min" } @else { "−" (span as i64) " s" }
            }
            text.label x=(W - 4.0) y=(H - 4.0) text-anchor="end" { "now" }
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
        @let (working, idle) = busy_and_idle(&snap.workers);
        h2 { "Working (" (working.len()) ")" }
        (worker_table(&working, "working"))
        @if !idle.is_empty() {
            h2 { "Idle (" (idle.len()) "): waiting for a job" }
            (worker_table(&idle, "idle"))
        }
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

/// Slots with a job, and slots waiting for one.
fn busy_and_idle(workers: &[Worker]) -> (Vec<Worker>, Vec<Worker>) {
    workers.iter().cloned().partition(|w| w.job_id.is_some())
}

fn worker_table(workers: &[Worker], class: &str) -> Markup {
    html! {
        div.scroll { table.workers.cards {
            tr { th { "host" } th.n { "pid" } th.n { "slot" } th.n { "job" } th { "video" } th { "progress" } th.n { "heartbeat" } th { "signature" } }
            @for w in workers.iter().take(MAX_ROWS) {
                tr class=(class) {
                    td data-label="host" { (shown(&w.host)) } td.n data-label="pid" { (w.pid) } td.n data-label="slot" { (w.slot) }
                    td.n data-label="job" { @if let Some(id) = w.job_id { (id) } @else { "idle" } }
                    td.video { @if let Some(v) = &w.video { (path_shown(v)) } }
                    td {
                        @if w.frames_total > 0 {
                            progress max=(w.frames_total) value=(w.frames_done) {}
                            " " (w.frames_done) "/" (w.frames_total)
                        } @else if w.job_id.is_some() {
                            "starting (frames not counted yet)"
                        }
                        @if let Some(why) = &w.refusing {
                            span.warn.refusing { "refusing: " (shown(why)) }
                        }
                    }
                    td.n data-label="heartbeat" { (ago(w.seconds_since_heartbeat)) }
                    td data-label="signature" { (w.signature) }
                }
            }
        } }
        @if workers.len() > MAX_ROWS { p { "and " (workers.len() - MAX_ROWS) " more" } }
    }
}

/// Failed jobs and parked results, as `gridctl failed` joins them.
pub fn failures(
    snap: &Snapshot,
    found: &Findings,
    n: usize,
    skipped: Option<&common::skip::SkipList>,
    viewer: &Viewer,
) -> Markup {
    let pages = found.failed.len().div_ceil(PER_PAGE).max(1);
    let body = html! {
        h1 { "Failures (" (found.failed.len()) ")" }
        @if let Some(list) = skipped {
            p #skipped { (list.len()) " video(s) skipped for good (gridctl discard --forever): the queuer never queues them again; they are listed in "
                @if let Some(file) = list.file() { code { (shown(&file.display().to_string())) } } "." }
        }
        @if pages > 1 {
            p.pages {
                "Page " (n.min(pages)) " of " (pages) ": "
                @if n > 1 { a href=(format!("/failures?page={}", n - 1)) { "← previous" } " " }
                @if n < pages { a href=(format!("/failures?page={}", n + 1)) { "next →" } }
            }
        }
        @if !found.complete {
            p.warn { "Showing the first " (crate::failures::MAX_PER_VIEW) " failure records (or another gridctl held some): the list may be incomplete." }
        }
        @if let Viewer::Control { csrf } = viewer {
            @if !found.failed.is_empty() { p { (button("/control/retry", "Retry all", csrf, None)) } }
        }
        div.scroll { table.cards #failures {
            tr { th { "kind" } th.n { "id" } th { "video" } th.n { "attempts" } th { "last error" } th { "host" } th { "when" } th { "record" }
                 @if let Viewer::Control { .. } = viewer { th { "" } } }
            @for f in page_of(&found.failed, n) {
                tr {
                    td data-label="kind" { (match f.kind { Kind::Job => "job", Kind::Result => "result" }) }
                    td.n data-label="id" { (f.job_id) }
                    td.video { (path_shown(&f.video)) }
                    td.n data-label="attempts" { (f.attempts) }
                    td.error { (shown(&cut(&f.last_error, MAX_TEXT))) }
                    td data-label="host" { (shown(&f.host)) }
                    td data-label="when" { (shown(&f.at)) }
                    td data-label="record" { (f.record) }
                    @if let Viewer::Control { csrf } = viewer {
                        td {
                            (button("/control/retry", "Retry", csrf, Some(("video", f.video.clone()))))
                            " "
                            (button("/control/discard", "Discard", csrf, Some(("id", f.job_id.to_string()))))
                        }
                    }
                }
            }
        } }
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
                    @let plot = format!("/plot.svg?path={}", url_encode(&c.path));
                    div.commit {
                        a.thumb href=(plot) title="the full plot" {
                            img loading="lazy" alt=(format!("motion of {}", shown(&c.path))) src=(plot);
                        }
                        div.about {
                            strong.video { (shown(&c.path)) } br;
                            "commit " code { (shown(&c.commit.chars().take(12).collect::<String>())) }
                            " · " span title=(when(c.time)) { (since(c.time)) } " · " (shown(&c.subject))
                            @match regions {
                                Some(rows) => {
                                    details {
                                        summary { (count(rows.len(), "region", "regions")) ":" }
                                        table.regions {
                                            tr { th { "type" } th.n { "from frame" } th.n { "to frame" } }
                                            @for r in rows.iter().take(MAX_ROWS) {
                                                tr { td { (shown(&r.kind)) } td.n { (r.start) } td.n { (r.end) } }
                                            }
                                        }
                                    }
                                }
                                None => p { "No regions file (yet)." },
                            }
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
                @if crate::status::diverged(sink) { strong { "RECORD DIVERGED" } ": the remote's history was rewritten; nothing is pushed until a person reconciles them. " }
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

/// How long ago `secs` seconds were: `12 s ago`, `2 min ago`, `3 h ago`, `4 days ago`.
fn ago(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=59 => format!("{s} s ago"),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=172_799 => format!("{} h ago", s / 3600),
        _ => format!("{} days ago", s / 86_400),
    }
}

/// How long ago a Unix time was.
fn since(secs: i64) -> String {
    ago(chrono::Utc::now().timestamp() - secs)
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
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "camhd-grid: log in" }
                link rel="stylesheet" href="/static/style.css";
            }
            body {
                (plain_header())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(every: i64, finished: impl Fn(i64) -> u64, until: i64) -> Vec<Sample> {
        (0..=until / every)
            .map(|i| Sample {
                at: 1_000_000 + i * every,
                finished: finished(i * every),
            })
            .collect()
    }

    #[test]
    fn the_chart_shows_a_minutes_average_not_the_steps_between_samples() {
        // 8 jobs a minute, finishing one at a time: a 2-s step with a job reads as 30.
        let steady = samples(2, |t| (t * 8 / 60) as u64, 600);
        let rates = smoothed_rates(&steady);
        let after_a_minute: Vec<f64> = rates
            .iter()
            .filter(|(t, _)| *t >= 1_000_000 + 60)
            .map(|r| r.1)
            .collect();
        let (lo, hi) = after_a_minute
            .iter()
            .fold((f64::MAX, 0.0f64), |(lo, hi), &r| (lo.min(r), hi.max(r)));
        assert!(lo >= 7.0 && hi <= 9.0, "between {lo} and {hi}");
    }

    #[test]
    fn times_read_as_how_long_ago() {
        assert_eq!(ago(12), "12 s ago");
        assert_eq!(ago(130), "2 min ago");
        assert_eq!(ago(7300), "2 h ago");
        assert_eq!(ago(200_000), "2 days ago");
        assert_eq!(ago(-5), "0 s ago", "a clock ahead reads as now");
    }

    #[test]
    fn long_lists_come_a_page_at_a_time() {
        let rows: Vec<usize> = (0..250).collect();
        assert_eq!(page_of(&rows, 1), &rows[..100]);
        assert_eq!(page_of(&rows, 3), &rows[200..]);
        assert!(page_of(&rows, 4).is_empty());
        assert!(page_of(&rows, usize::MAX).is_empty(), "no overflow");
    }

    #[test]
    fn long_texts_are_cut_with_a_mark() {
        assert_eq!(cut("abc", 5), "abc");
        assert_eq!(cut("abcdef", 3), "abc… (cut)");
        assert_eq!(cut("ééé", 2), "éé… (cut)", "cut on characters, not bytes");
    }
}
