//! A good citizen of the archive (issue 33), against a real nginx through a distant link:
//! every video a process reads at once shares one budget of connections to their host,
//! and a server that refuses beyond a few connections (503 with `Retry-After`) slows the
//! analysis, never fails it or changes its answer.

mod support;

use std::sync::Arc;
use std::time::Duration;

use filter::decode::FetchChoice;
use filter::document::OpticalFlowDocument;
use filter::source::{self, ArchiveTls, Hosts, Http2, HttpLimits, SourceKind};
use filter::{analyze, Settings};
use support::{clip, clips};
use testkit::stunnel::Pki;
use testkit::{Link, Nginx, NginxOptions, Proxy};

/// The scripted clip at 960x540 (the reduced decoder reads it, so parts are fetched).
fn clip_path() -> std::path::PathBuf {
    clip("scripted-960.mov", 960, 540, 60)
}

fn similarities(doc: &OpticalFlowDocument) -> Vec<(u64, [f64; 4], bool)> {
    doc.frame_stats
        .iter()
        .map(|s| {
            (
                s.frame_number,
                s.optical_flow.similarity,
                s.optical_flow.valid,
            )
        })
        .collect()
}

/// The clip's file name, as the archive serves it.
fn clip_name() -> String {
    clip_path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// The motion a local analysis of the clip finds (what every distant one must find).
fn local_answer(fetch: FetchChoice) -> Vec<(u64, [f64; 4], bool)> {
    let local = analyse(clip_path().to_str().unwrap(), &HttpLimits::default(), fetch);
    similarities(&local)
}

/// Reads `url` once for each of `fetches`, all at once (as a worker's slots do, sharing
/// one `limits`), and asserts each finds `local`.
fn all_at_once_find(
    url: &str,
    limits: &HttpLimits,
    fetches: &[FetchChoice],
    local: &[(u64, [f64; 4], bool)],
) {
    let runs: Vec<_> = fetches
        .iter()
        .map(|&fetch| {
            let (url, limits) = (url.to_owned(), limits.clone());
            std::thread::spawn(move || (fetch, analyse(&url, &limits, fetch)))
        })
        .collect();
    for run in runs {
        let (fetch, far) = run.join().unwrap();
        assert_eq!(similarities(&far), local, "{fetch:?}");
    }
}

/// Asserts nginx served every request (at least one) over `protocol`.
fn assert_every_request_over(nginx: &Nginx, protocol: &str) {
    let protocols = nginx.protocols();
    assert!(
        !protocols.is_empty() && protocols.iter().all(|p| p == protocol),
        "{protocols:?}"
    );
}

fn analyse(video: &str, limits: &HttpLimits, fetch: FetchChoice) -> OpticalFlowDocument {
    let source = source::open_with(video, SourceKind::Auto, 0.25, limits).expect("opening");
    let settings = Settings {
        stride: 5,
        fetch,
        threads: 1,
        ..Settings::default()
    };
    analyze(source, &settings, &mut |_| {})
        .expect("the analysis")
        .document
}

/// nginx serving the clips, 40 ms of round trip away through a 50 MB/s link.
fn distant(options: &NginxOptions) -> (Nginx, Proxy, String) {
    let nginx = Nginx::start(clips().path(), options);
    let link = Link {
        bytes_per_second: Some(50_000_000),
        round_trip: Duration::from_millis(40),
    };
    let proxy = Proxy::start_link(&nginx.addr(), link).unwrap();
    let name = clip_name();
    let scheme = if options.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let url = format!("{scheme}://{}/{name}", proxy.addr());
    (nginx, proxy, url)
}

/// A throwaway CA and the certificate for 127.0.0.1 it signed, and nginx options serving
/// https with it.
fn tls_options(dir: &std::path::Path) -> (Pki, NginxOptions) {
    let pki = Pki::new(dir, "archive");
    let options = NginxOptions {
        tls: Some((pki.file("server.pem"), pki.file("server.key"))),
        ..NginxOptions::default()
    };
    (pki, options)
}

/// Limits trusting only `pki`'s CA, speaking HTTP/2 where a server picks it by ALPN.
fn trusting(pki: &Pki) -> HttpLimits {
    let tls = ArchiveTls::from_ca_file(&pki.file("ca.pem")).expect("the test CA");
    HttpLimits {
        hosts: Arc::new(Hosts::new(HttpLimits::CONNECTIONS).trusting(tls)),
        http2: Http2::Alpn,
        ..HttpLimits::default()
    }
}

#[test]
fn videos_read_at_once_share_one_budget_of_connections_to_their_host() {
    let local = local_answer(FetchChoice::Whole);
    let (nginx, proxy, url) = distant(&NginxOptions::default());
    // As the worker's slots do: one limits value, cloned for every video.
    let limits = HttpLimits {
        hosts: Arc::new(Hosts::new(6)),
        ..HttpLimits::default()
    };
    let fetches = [
        FetchChoice::Parts,
        FetchChoice::Whole,
        FetchChoice::Parts,
        FetchChoice::Auto,
    ];
    all_at_once_find(&url, &limits, &fetches, &local);
    let peak = proxy.peak_connections();
    assert!(
        peak <= 6,
        "{peak} connections at once to one host with a budget of 6 ({} in all)",
        proxy.connections_accepted()
    );
    assert!(
        nginx.statuses().iter().all(|&s| s == 206),
        "{}",
        nginx.log()
    );
}

#[test]
fn a_server_refusing_beyond_four_connections_slows_the_analysis_and_never_fails_it() {
    let local = local_answer(FetchChoice::Whole);
    // Each reply at 2 MB/s: requests stay in flight long enough to meet the cap.
    let options = NginxOptions {
        connections_per_client: Some(4),
        retry_after: Some(1),
        bytes_per_second_per_reply: Some(2_000_000),
        ..NginxOptions::default()
    };
    let (nginx, _proxy, url) = distant(&options);
    // Four videos at once, as a 4-slot filter reads them, on the default budget.
    let limits = HttpLimits::default();
    let fetches = [FetchChoice::Parts, FetchChoice::Whole].repeat(2);
    all_at_once_find(&url, &limits, &fetches, &local);
    let statuses = nginx.statuses();
    let refused = statuses.iter().filter(|&&s| s == 503).count();
    assert!(
        refused > 0,
        "the server refused none of {} requests",
        statuses.len()
    );
    // The budget came down to what the server takes.
    let budget = &limits.hosts.snapshot()[0];
    assert!(
        budget.refusals > 0 && budget.limit < HttpLimits::CONNECTIONS,
        "{budget:?}"
    );
}

#[test]
fn over_http2_one_connection_carries_every_request_and_the_answer_is_the_local_one() {
    let local = local_answer(FetchChoice::Whole);
    let options = NginxOptions {
        http2: true,
        ..NginxOptions::default()
    };
    let (nginx, proxy, url) = distant(&options);
    // What a worker's slots share: one limits value, HTTP/2 by prior knowledge.
    let limits = HttpLimits {
        http2: Http2::PriorKnowledge,
        ..HttpLimits::default()
    };
    for fetch in [FetchChoice::Parts, FetchChoice::Whole] {
        let far = analyse(&url, &limits, fetch);
        assert_eq!(similarities(&far), local, "{fetch:?}");
    }
    assert_eq!(
        proxy.connections_accepted(),
        1,
        "every request on one connection ({} requests)",
        nginx.statuses().len()
    );
    assert!(
        nginx.statuses().iter().all(|&s| s == 206),
        "{}",
        nginx.log()
    );
    assert_every_request_over(&nginx, "HTTP/2.0");
}

#[test]
fn over_http2_a_redirect_is_followed_as_over_http1() {
    let local = local_answer(FetchChoice::Whole);
    let options = NginxOptions {
        http2: true,
        moved: true,
        ..NginxOptions::default()
    };
    let nginx = Nginx::start(clips().path(), &options);
    let name = clip_name();
    let limits = HttpLimits {
        http2: Http2::PriorKnowledge,
        ..HttpLimits::default()
    };
    let far = analyse(
        &format!("{}/moved/{name}", nginx.url()),
        &limits,
        FetchChoice::Parts,
    );
    assert_eq!(similarities(&far), local);
    let statuses = nginx.statuses();
    assert!(statuses.contains(&301), "{statuses:?}");
    assert!(
        statuses.iter().all(|&s| s == 301 || s == 206),
        "{statuses:?}"
    );
    assert_every_request_over(&nginx, "HTTP/2.0");
}

#[test]
fn an_http2_server_refusing_beyond_four_streams_is_waited_out_not_failed() {
    // nginx counts each HTTP/2 stream as a connection for `limit_conn`: beyond four at
    // once it answers 503 with Retry-After, on the one connection.
    let local = local_answer(FetchChoice::Whole);
    let options = NginxOptions {
        http2: true,
        connections_per_client: Some(4),
        retry_after: Some(1),
        bytes_per_second_per_reply: Some(2_000_000),
        ..NginxOptions::default()
    };
    let (nginx, _proxy, url) = distant(&options);
    let limits = HttpLimits {
        http2: Http2::PriorKnowledge,
        ..HttpLimits::default()
    };
    // Four videos at once, as a 4-slot filter reads them: more streams than four.
    let fetches = [FetchChoice::Parts, FetchChoice::Whole].repeat(2);
    all_at_once_find(&url, &limits, &fetches, &local);
    let statuses = nginx.statuses();
    let refused = statuses.iter().filter(|&&s| s == 503).count();
    assert!(
        refused > 0,
        "the server refused none of {} requests",
        statuses.len()
    );
    assert_every_request_over(&nginx, "HTTP/2.0");
    let budget = &limits.hosts.snapshot()[0];
    assert!(
        budget.refusals > 0 && budget.limit < HttpLimits::CONNECTIONS,
        "{budget:?}"
    );
}

#[test]
fn an_http2_server_closing_its_connection_every_few_requests_costs_a_new_connection_not_the_answer()
{
    const PER_CONNECTION: u32 = 5;
    let local = local_answer(FetchChoice::Parts);
    // nginx ends a connection with a GOAWAY after its `keepalive_requests`; streams sent
    // past that point are refused and must go again on a new connection.
    let options = NginxOptions {
        http2: true,
        requests_per_connection: Some(PER_CONNECTION),
        ..NginxOptions::default()
    };
    let (nginx, proxy, url) = distant(&options);
    let limits = HttpLimits {
        http2: Http2::PriorKnowledge,
        ..HttpLimits::default()
    };
    let far = analyse(&url, &limits, FetchChoice::Parts);
    assert_eq!(similarities(&far), local);
    let requests = nginx.statuses().len();
    assert!(
        requests > 2 * PER_CONNECTION as usize
            && proxy.connections_accepted() >= requests / PER_CONNECTION as usize,
        "{} connections for {requests} requests",
        proxy.connections_accepted()
    );
}

#[test]
fn over_tls_a_server_that_picks_http2_by_alpn_gets_one_connection_and_the_local_answer() {
    let local = local_answer(FetchChoice::Whole);
    let dir = tempfile::tempdir().unwrap();
    let (pki, options) = tls_options(dir.path());
    let options = NginxOptions {
        http2: true,
        ..options
    };
    let (nginx, proxy, url) = distant(&options);
    let limits = trusting(&pki);
    for fetch in [FetchChoice::Parts, FetchChoice::Whole] {
        let far = analyse(&url, &limits, fetch);
        assert_eq!(similarities(&far), local, "{fetch:?}");
    }
    assert_eq!(
        proxy.connections_accepted(),
        1,
        "one TLS connection for every request ({} requests)",
        nginx.statuses().len()
    );
    assert_every_request_over(&nginx, "HTTP/2.0");
}

#[test]
fn over_tls_a_server_that_picks_http1_by_alpn_is_read_over_http1_trusting_the_same_ca() {
    let local = local_answer(FetchChoice::Parts);
    let dir = tempfile::tempdir().unwrap();
    let (pki, options) = tls_options(dir.path());
    let (nginx, _proxy, url) = distant(&options);
    // Two videos at once: the second asks after the first learnt the server's choice.
    let limits = trusting(&pki);
    all_at_once_find(&url, &limits, &[FetchChoice::Parts; 2], &local);
    assert_every_request_over(&nginx, "HTTP/1.1");
}

#[test]
fn an_archive_whose_certificate_no_trusted_ca_signed_is_refused_saying_how_to_trust_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_pki, options) = tls_options(dir.path());
    let nginx = Nginx::start(clips().path(), &options);
    let url = format!("{}/{}", nginx.url(), clip_name());
    for http2 in [Http2::Off, Http2::Alpn] {
        // The public web's CAs, the default: the test CA is not among them.
        let limits = HttpLimits {
            http2,
            ..HttpLimits::default()
        };
        let Err(e) = source::open_with(&url, SourceKind::Auto, 0.25, &limits) else {
            panic!("{http2:?}: a certificate no trusted CA signed was accepted");
        };
        let text = e.to_string();
        assert!(
            matches!(e, source::ReadError::Unreachable { .. }) && text.contains("--http-ca-file"),
            "{http2:?}: {text}"
        );
    }
    assert!(nginx.statuses().is_empty(), "no request was served");
}
