//! HTTP/2 to an archive that speaks it: over TLS when the server picks `h2` by ALPN
//! (`--http2 alpn`), or without TLS and without asking (`--http2 prior-knowledge`, as
//! nginx's `listen … http2` serves it). One connection per host for the whole process,
//! every request (as the HTTP/1.1 path makes it, many ranges to one) a stream on it,
//! instead of a connection per request in flight. A TLS server that picks HTTP/1.1 is
//! remembered as such and left to the HTTP/1.1 path. The requests run on a small runtime
//! of their own, and a caller (a fetching thread, a decoder completing a frame, a
//! runtime's blocking task) waits on a channel. hyper's HTTP/2 client does the protocol;
//! what is ours is bounding it as the HTTP/1.1 path is bounded (reach, time, bytes).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::reach::{forbidden, Reach};

/// Streams open at once on the process's connections, all hosts together (nginx allows
/// 128 on a connection by default).
const STREAMS: usize = 100;

/// Tries of a batch whose connection failed (closed by the server, broken).
const ATTEMPTS: u32 = 3;

/// The open connection to each origin, with its number (connections are numbered as
/// made, so a failed one is forgotten, not one made since).
type Connections = tokio::sync::Mutex<HashMap<String, (u64, SendRequest<Empty<Bytes>>)>>;

/// The number of the next connection made.
static NEXT_CONNECTION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// One reply: its status, headers and whole body (at most what was asked, and one byte).
#[derive(Debug)]
pub struct H2Reply {
    /// The status.
    pub status: u16,
    /// The headers.
    pub headers: hyper::HeaderMap,
    /// The body, cut one byte past what was allowed (so "more than asked" shows).
    pub body: Vec<u8>,
}

impl H2Reply {
    /// A header's value, when it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Why a batch of streams failed.
#[derive(Debug)]
pub enum H2Error {
    /// It ran past its time.
    Timeout,
    /// The connection or a stream failed.
    Failed(String),
    /// The server picked HTTP/1.1 (or nothing) by ALPN: ask it over HTTP/1.1.
    NotOffered,
}

/// Origins (`https://host:port`) whose server picked HTTP/1.1 by ALPN, and when.
type Http1Only = std::sync::Mutex<HashMap<String, Instant>>;

/// How long a server that picked HTTP/1.1 is taken at its word: a filter runs for months,
/// and an archive may turn HTTP/2 on meanwhile (asking again costs one handshake).
const ASK_AGAIN_AFTER: Duration = Duration::from_secs(3600);

/// True while (at `now`) the server of `origin` is known to have picked HTTP/1.1 by ALPN.
fn picked_http1(http1_only: &Http1Only, origin: &str, now: Instant) -> bool {
    lock(http1_only)
        .get(origin)
        .is_some_and(|&at| now.saturating_duration_since(at) < ASK_AGAIN_AFTER)
}

/// The process's HTTP/2 connections and the runtime they run on.
pub struct H2 {
    runtime: tokio::runtime::Runtime,
    conns: Arc<Connections>,
    streams: Arc<tokio::sync::Semaphore>,
    /// The TLS set-up offering `h2` by ALPN.
    tls: Arc<rustls::ClientConfig>,
    http1_only: Arc<Http1Only>,
    /// Addresses an allowed source names (let through the loopback refusal).
    exempt: Vec<IpAddr>,
    filters: bool,
}

impl std::fmt::Debug for H2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("H2(..)")
    }
}

impl H2 {
    /// A client for sources within `reach`, its TLS connections set up by `tls` (which
    /// offers `h2` by ALPN).
    pub fn new(reach: &Reach, tls: Arc<rustls::ClientConfig>) -> std::io::Result<H2> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("http2")
            .enable_all()
            .build()?;
        Ok(H2 {
            runtime,
            conns: Arc::default(),
            streams: Arc::new(tokio::sync::Semaphore::new(STREAMS)),
            tls,
            http1_only: Arc::default(),
            exempt: reach.exempt_addresses(),
            filters: reach.filters_hosts(),
        })
    }

    /// False once the server of `origin` picked HTTP/1.1 by ALPN: its requests go over
    /// HTTP/1.1 from then on (for an hour; then it is offered HTTP/2 again).
    pub fn offered(&self, origin: &str) -> bool {
        !picked_http1(&self.http1_only, origin, Instant::now())
    }

    /// GETs `url` (already checked against the reach), with `range` if any, as a stream
    /// on its host's connection, its body read to `max` bytes (and one more), within
    /// `within`.
    pub fn get(
        &self,
        url: url::Url,
        range: Option<String>,
        max: u64,
        within: Duration,
    ) -> Result<H2Reply, H2Error> {
        let (tx, rx) = std::sync::mpsc::channel();
        let (conns, streams) = (Arc::clone(&self.conns), Arc::clone(&self.streams));
        let (exempt, filters) = (self.exempt.clone(), self.filters);
        let (tls, http1_only) = (Arc::clone(&self.tls), Arc::clone(&self.http1_only));
        self.runtime.spawn(async move {
            let to = Target {
                url: &url,
                filters,
                exempt: &exempt,
                tls: &tls,
                http1_only: &http1_only,
            };
            let reply = stream_again(&conns, &streams, to, range.as_deref(), max);
            let outcome = match tokio::time::timeout(within, reply).await {
                Ok(outcome) => outcome,
                Err(_) => Err(H2Error::Timeout),
            };
            let _ = tx.send(outcome);
        });
        rx.recv()
            .unwrap_or_else(|_| Err(H2Error::Failed("the HTTP/2 runtime stopped".into())))
    }
}

/// Where a stream goes, and what its address must pass.
#[derive(Clone, Copy)]
struct Target<'a> {
    url: &'a url::Url,
    filters: bool,
    exempt: &'a [IpAddr],
    tls: &'a Arc<rustls::ClientConfig>,
    http1_only: &'a Http1Only,
}

/// The stream's reply. A stream that fails (its connection closed by the server:
/// nginx's GOAWAY after `keepalive_requests`, Apache's after `MaxKeepAliveRequests`; or
/// broken) goes again on a new connection; [`ATTEMPTS`] failures on connections made for
/// it fail the request (one another request wore out says nothing of the server).
async fn stream_again(
    conns: &Connections,
    streams: &tokio::sync::Semaphore,
    to: Target<'_>,
    range: Option<&str>,
    max: u64,
) -> Result<H2Reply, H2Error> {
    let mut fruitless = 0;
    loop {
        let (error, made) = match connection(conns, to).await {
            Ok((id, sender, made)) => {
                let _stream = streams.acquire().await;
                match get(sender, to.url, range, max).await {
                    Ok(reply) => return Ok(reply),
                    Err(e) => {
                        forget(conns, id).await;
                        (e, made)
                    }
                }
            }
            Err(H2Error::NotOffered) => return Err(H2Error::NotOffered),
            Err(e) => (e, true),
        };
        if made {
            fruitless += 1;
        }
        if fruitless >= ATTEMPTS {
            return Err(error);
        }
        tracing::debug!(
            ?error,
            fruitless,
            "an HTTP/2 stream failed; again on a new connection"
        );
    }
}

/// Forgets the connection numbered `id`, so the next stream makes a new one; a newer
/// connection made meanwhile by another request is kept.
async fn forget(conns: &Connections, id: u64) {
    conns.lock().await.retain(|_, conn| conn.0 != id);
}

/// The connection to the target's host, its number, and whether it was made now: the
/// one open, or a new one (its address checked against the reach as the HTTP/1.1
/// client's resolver checks it).
async fn connection(
    conns: &Connections,
    to: Target<'_>,
) -> Result<(u64, SendRequest<Empty<Bytes>>, bool), H2Error> {
    let url = to.url;
    let origin = url.origin().ascii_serialization();
    let mut conns = conns.lock().await;
    if let Some((id, sender)) = conns.get(&origin) {
        if !sender.is_closed() {
            return Ok((*id, sender.clone(), false));
        }
    }
    if picked_http1(to.http1_only, &origin, Instant::now()) {
        return Err(H2Error::NotOffered);
    }
    let tcp = connect(to).await?;
    let sender = if url.scheme() == "https" {
        let tls = over_tls(to, tcp).await?;
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            tracing::info!(
                origin,
                "the archive picked HTTP/1.1 by ALPN; asking it over HTTP/1.1"
            );
            lock(to.http1_only).insert(origin, Instant::now());
            return Err(H2Error::NotOffered);
        }
        handshake(tls).await?
    } else {
        handshake(tcp).await?
    };
    let id = NEXT_CONNECTION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    conns.insert(origin, (id, sender.clone()));
    Ok((id, sender, true))
}

/// A TCP connection to the target's host, its address checked against the reach as the
/// HTTP/1.1 client's resolver checks it.
async fn connect(to: Target<'_>) -> Result<tokio::net::TcpStream, H2Error> {
    let Target {
        url,
        filters,
        exempt,
        ..
    } = to;
    let host = url.host_str().unwrap_or_default().to_owned();
    let port = url.port_or_known_default().unwrap_or(80);
    let exempt = exempt.to_vec();
    let addrs: Vec<SocketAddr> = tokio::task::spawn_blocking(move || {
        use std::net::ToSocketAddrs;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        (host.as_str(), port).to_socket_addrs().map(|a| {
            a.filter(|a| !filters || !forbidden(a.ip()) || exempt.contains(&a.ip()))
                .collect()
        })
    })
    .await
    .map_err(|e| H2Error::Failed(e.to_string()))?
    .map_err(|e| H2Error::Failed(format!("cannot resolve: {e}")))?;
    let addr = addrs
        .first()
        .ok_or_else(|| H2Error::Failed("no address it may reach".into()))?;
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| H2Error::Failed(format!("connecting: {e}")))?;
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

/// TLS on `tcp`, the server's certificate checked for the target's host, `h2` offered.
async fn over_tls(
    to: Target<'_>,
    tcp: tokio::net::TcpStream,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, H2Error> {
    let host = to.url.host_str().unwrap_or_default();
    let name = host.trim_start_matches('[').trim_end_matches(']');
    let name = rustls::pki_types::ServerName::try_from(name.to_owned())
        .map_err(|e| H2Error::Failed(format!("{host:?} cannot be checked by TLS: {e}")))?;
    tokio_rustls::TlsConnector::from(Arc::clone(to.tls))
        .connect(name, tcp)
        .await
        .map_err(|e| H2Error::Failed(crate::tls::with_hint(format!("TLS: {e}"))))
}

/// HTTP/2's handshake on `io`, its connection driven by a task of its own.
async fn handshake<I>(io: I) -> Result<SendRequest<Empty<Bytes>>, H2Error>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .map_err(|e| H2Error::Failed(format!("HTTP/2 handshake: {e}")))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "an HTTP/2 connection ended");
        }
    });
    Ok(sender)
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One stream: GET `url` (with `range`), its body read to `max` bytes and one more.
async fn get(
    mut sender: SendRequest<Empty<Bytes>>,
    url: &url::Url,
    range: Option<&str>,
    max: u64,
) -> Result<H2Reply, H2Error> {
    let failed = |e: hyper::Error| H2Error::Failed(e.to_string());
    let mut request = hyper::Request::get(url.as_str());
    if let Some(range) = range {
        request = request.header(hyper::header::RANGE, range);
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| H2Error::Failed(e.to_string()))?;
    sender.ready().await.map_err(failed)?;
    let response = sender.send_request(request).await.map_err(failed)?;
    let (parts, mut body) = response.into_parts();
    let cap = usize::try_from(max.saturating_add(1)).unwrap_or(usize::MAX);
    let mut out = Vec::with_capacity(cap.min(33 << 20));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(failed)?;
        if let Some(data) = frame.data_ref() {
            let room = cap - out.len();
            out.extend_from_slice(&data[..data.len().min(room)]);
            if out.len() >= cap {
                // More than asked: read no further (the stream is reset when dropped).
                break;
            }
        }
    }
    Ok(H2Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_that_picked_http1_is_asked_again_after_an_hour() {
        let http1_only = Http1Only::default();
        let origin = "https://archive.example:443";
        let now = Instant::now();
        assert!(!picked_http1(&http1_only, origin, now));
        lock(&http1_only).insert(origin.into(), now);
        assert!(picked_http1(&http1_only, origin, now + ASK_AGAIN_AFTER / 2));
        assert!(!picked_http1(&http1_only, origin, now + ASK_AGAIN_AFTER));
    }
}
