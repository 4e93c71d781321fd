//! The dashboard's connections, accepted here rather than by `axum::serve` because it
//! sets no timer, so a client that sends its headers a byte at a time (slowloris) keeps
//! its connection for ever. Here: headers within a deadline, a whole request within
//! another, at most so many connections per client (an IPv4 address, an IPv6 /64) and in
//! all, and on shutdown every connection finishes its request and closes. Beyond the
//! limit in all a reserve of connections is kept for the operator: each serves one
//! request, and only one that carries an open session or logs in; anything else there
//! is answered 503 and closed, so idle connections from many addresses cannot lock the
//! operator out.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

/// Connections one client (address, or IPv6 /64) may hold at once, all clients together,
/// and beyond those the reserve for the operator's requests.
const PER_CLIENT: usize = 32;
const IN_ALL: usize = 512;
const RESERVE: usize = 64;

/// Whether a request may use a reserved connection: one carrying an open session, or a
/// login (`gridctl serve` decides; without control nothing may).
pub type ReserveFor = Arc<dyn Fn(&hyper::Request<hyper::body::Incoming>) -> bool + Send + Sync>;

/// How long a request may take once its headers are in (its body, and the page).
const REQUEST_LIMIT: Duration = Duration::from_secs(30);

/// Serves `router` on `listener` until `stop` turns true, then lets each connection end
/// its request and returns when all have closed. `header_timeout`: how long a client
/// has to send a request's headers.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    reserve_for: ReserveFor,
    mut stop: watch::Receiver<bool>,
) {
    let held = Held::default();
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors, most likely: breathe, then go on.
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Some(slot) = held.take(peer.ip()) else {
                    tracing::debug!(client = %peer.ip(), "too many connections; closed");
                    continue;
                };
                let serving = Serving {
                    router: router.clone(),
                    header_timeout,
                    stop: stop.clone(),
                    reserve_for: slot.reserved.then(|| Arc::clone(&reserve_for)),
                };
                connections.spawn(connection(stream, peer, serving, slot));
            }
            () = stopping(&mut stop) => break,
        }
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// What every connection is served with.
struct Serving {
    router: Router,
    header_timeout: Duration,
    stop: watch::Receiver<bool>,
    /// Set on a reserved connection: which requests it may serve.
    reserve_for: Option<ReserveFor>,
}

/// One connection: HTTP/1.1 with a header deadline, each request within its limit.
async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    serving: Serving,
    _slot: Slot,
) {
    let Serving {
        router,
        header_timeout,
        mut stop,
        reserve_for,
    } = serving;
    let reserved = reserve_for.is_some();
    let service =
        hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            let refused = reserve_for.as_ref().is_some_and(|may| !may(&request));
            async move {
                if refused {
                    return Ok((
                        StatusCode::SERVICE_UNAVAILABLE,
                        [(axum::http::header::CONNECTION, "close")],
                        "too many connections: try again later\n",
                    )
                        .into_response());
                }
                match tokio::time::timeout(REQUEST_LIMIT, router.oneshot(request)).await {
                    Ok(response) => response,
                    Err(_) => Ok((StatusCode::REQUEST_TIMEOUT, "the request took too long\n")
                        .into_response()),
                }
            }
        });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        // A reserved connection serves one request, then closes.
        .keep_alive(!reserved);
    let conn = http.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        () = stopping(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Returns once `stop` is true (holding no borrow of it across the wait's end).
async fn stopping(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|&s| s).await;
}

/// Connections held, per client and in all.
#[derive(Clone, Default)]
struct Held(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// One connection's place in [`Held`], given back on drop.
struct Slot {
    held: Held,
    client: IpAddr,
    /// Taken from the reserve: one request, an operator's.
    reserved: bool,
}

/// Who a connection counts against: its IPv4 address, or its IPv6 /64 (one host's
/// addresses are a whole /64, so per address would be no limit at all).
fn client_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

impl Held {
    fn take(&self, ip: IpAddr) -> Option<Slot> {
        let client = client_of(ip);
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let in_all: usize = map.values().sum();
        let mine = map.entry(client).or_insert(0);
        if *mine >= PER_CLIENT || in_all >= IN_ALL + RESERVE {
            return None;
        }
        *mine += 1;
        Some(Slot {
            held: self.clone(),
            client,
            reserved: in_all >= IN_ALL,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self.held.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_holds_only_so_many_connections_and_gets_them_back() {
        let held = Held::default();
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.2".parse().unwrap(), "127.0.0.1".parse().unwrap());
        let slots: Vec<Slot> = (0..PER_CLIENT).map(|_| held.take(a).unwrap()).collect();
        assert!(held.take(a).is_none(), "one more from the same address");
        let other = held.take(b);
        assert!(other.is_some(), "another address is served");
        drop(slots);
        assert!(held.take(a).is_some(), "given back on close");
    }

    #[test]
    fn past_the_limit_in_all_connections_come_from_the_reserve() {
        let held = Held::default();
        let mut slots = Vec::new();
        for i in 0..IN_ALL / PER_CLIENT {
            let ip: IpAddr = format!("10.0.0.{i}").parse().unwrap();
            slots.extend((0..PER_CLIENT).map(|_| held.take(ip).unwrap()));
        }
        assert!(slots.iter().all(|s| !s.reserved));
        let operator: IpAddr = "127.0.0.1".parse().unwrap();
        let reserved = held.take(operator).unwrap();
        assert!(reserved.reserved, "the operator still gets a connection");
    }

    #[test]
    fn an_ipv6_host_counts_as_its_64() {
        let held = Held::default();
        let slots: Vec<Slot> = (0..PER_CLIENT)
            .map(|i| {
                held.take(format!("2001:db8:1:2::{i:x}").parse().unwrap())
                    .unwrap()
            })
            .collect();
        assert!(held.take("2001:db8:1:2:ffff::1".parse().unwrap()).is_none());
        assert!(held.take("2001:db8:1:3::1".parse().unwrap()).is_some());
        drop(slots);
    }
}
