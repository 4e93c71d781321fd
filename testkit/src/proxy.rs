//! A TCP proxy for fault tests: clients connect to it instead of the server, and the test
//! can cut every connection it carries (both ends see the close at once) or blackhole
//! them (bytes vanish in both directions and nobody is told: a half-open connection, as
//! when a NAT forgets it or a cable is pulled). New connections always pass. Started as
//! a [`Link`], it is a distant, slow one: every byte takes a delay each way (half the
//! round trip), and what the server sends, on all connections together, reaches the
//! clients at a set rate.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

const PASS: u8 = 0;
const BLACKHOLE: u8 = 1;
const CUT: u8 = 2;

/// A running proxy on a free loopback port; stops accepting on drop.
#[derive(Debug)]
pub struct Proxy {
    addr: String,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<Arc<AtomicU8>>>>,
    counts: Arc<Counts>,
}

/// Connections carried: open now, the most open at once, accepted in all; and the bytes
/// carried from the server to its clients.
#[derive(Debug, Default)]
struct Counts {
    open: AtomicUsize,
    peak: AtomicUsize,
    accepted: AtomicUsize,
    to_clients: AtomicU64,
}

/// One connection counted open until both its directions are done.
struct Open(Arc<Counts>);

impl Open {
    fn new(counts: &Arc<Counts>) -> Arc<Open> {
        let now = counts.open.fetch_add(1, Ordering::SeqCst) + 1;
        counts.peak.fetch_max(now, Ordering::SeqCst);
        counts.accepted.fetch_add(1, Ordering::SeqCst);
        Arc::new(Open(Arc::clone(counts)))
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Proxy {
    /// Forwards a free loopback port to `upstream` (`host:port`).
    pub fn start(upstream: &str) -> std::io::Result<Proxy> {
        Proxy::start_with(upstream, None, Duration::ZERO)
    }

    /// [`Proxy::start`] as a link carrying at most `bytes_per_second` from the server to
    /// its clients, all connections together (requests pass unpaced).
    pub fn start_throttled(upstream: &str, bytes_per_second: u64) -> std::io::Result<Proxy> {
        Proxy::start_link(
            upstream,
            Link {
                bytes_per_second: Some(bytes_per_second),
                round_trip: Duration::ZERO,
            },
        )
    }

    /// [`Proxy::start`] as `link`.
    pub fn start_link(upstream: &str, link: Link) -> std::io::Result<Proxy> {
        let pace = link.bytes_per_second.map(|b| Arc::new(Pace::new(b)));
        Proxy::start_with(upstream, pace, link.round_trip / 2)
    }

    fn start_with(
        upstream: &str,
        pace: Option<Arc<Pace>>,
        delay: Duration,
    ) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?.to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<Arc<AtomicU8>>>> = Arc::default();
        let counts: Arc<Counts> = Arc::default();
        let (s, c, up) = (Arc::clone(&stop), Arc::clone(&conns), upstream.to_owned());
        let counted = Arc::clone(&counts);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&up) else {
                    continue; // the client sees a close, as if the server were down
                };
                // No Nagle: a paced write must not wait on the client's delayed ACK.
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                let state = Arc::new(AtomicU8::new(PASS));
                c.lock().unwrap().push(Arc::clone(&state));
                let open = Open::new(&counted);
                pipe(
                    &client,
                    &server,
                    &state,
                    None,
                    delay,
                    (Arc::clone(&open), false),
                );
                pipe(&server, &client, &state, pace.clone(), delay, (open, true));
            }
        });
        Ok(Proxy {
            addr,
            stop,
            conns,
            counts,
        })
    }

    /// The most connections it carried at once so far.
    pub fn peak_connections(&self) -> usize {
        self.counts.peak.load(Ordering::SeqCst)
    }

    /// Connections it accepted so far.
    pub fn connections_accepted(&self) -> usize {
        self.counts.accepted.load(Ordering::SeqCst)
    }

    /// Bytes it carried from the server to its clients so far: what the wire carried,
    /// TLS records, HTTP/2 frames and all.
    pub fn bytes_to_clients(&self) -> u64 {
        self.counts.to_clients.load(Ordering::SeqCst)
    }

    /// `127.0.0.1:PORT`: give this to clients as the server.
    pub fn addr(&self) -> String {
        self.addr.clone()
    }

    /// Closes every connection carried now, on both sides.
    pub fn cut_all(&self) {
        self.set_all(CUT);
    }

    /// Makes every connection carried now silently drop what it carries, both ways, and
    /// never close: each end waits for the other until its own timeout says otherwise.
    pub fn blackhole_all(&self) {
        self.set_all(BLACKHOLE);
    }

    /// Moves every connection still passing traffic to `to`.
    fn set_all(&self, to: u8) {
        let mut conns = self.conns.lock().unwrap();
        for c in conns.iter() {
            let _ = c.compare_exchange(PASS, to, Ordering::SeqCst, Ordering::SeqCst);
        }
        conns.retain(|c| c.load(Ordering::SeqCst) != CUT);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
        for c in self.conns.lock().unwrap().iter() {
            c.store(CUT, Ordering::SeqCst);
        }
    }
}

/// A distant link: its round trip and the rate it carries from the server to the
/// clients (all connections together).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// Server-to-client bytes per second, all connections together; `None`: unlimited.
    pub bytes_per_second: Option<u64>,
    /// Every byte takes half of this each way, on every connection alike.
    pub round_trip: Duration,
}

/// A link's rate, shared by the connections on it: each chunk takes its turn.
#[derive(Debug)]
struct Pace {
    bytes_per_second: f64,
    /// When the link is free again.
    free_at: Mutex<Instant>,
}

impl Pace {
    fn new(bytes_per_second: u64) -> Pace {
        Pace {
            bytes_per_second: bytes_per_second.max(1) as f64,
            free_at: Mutex::new(Instant::now()),
        }
    }

    /// Waits until `n` bytes have had their time on the link.
    fn wait(&self, n: usize) {
        let done = {
            let mut free_at = self.free_at.lock().unwrap_or_else(|p| p.into_inner());
            let start = (*free_at).max(Instant::now());
            *free_at = start + Duration::from_secs_f64(n as f64 / self.bytes_per_second);
            *free_at
        };
        std::thread::sleep(done.saturating_duration_since(Instant::now()));
    }
}

/// Copies `from` to `to` on a thread, obeying `state` between reads and `pace` (if any)
/// before each write; each chunk is written `delay` after it was read (by a second
/// thread, so the link carries many chunks at once, as a long wire does). The
/// connection counts as open while `open` is held; the bytes are counted when it is the
/// server-to-client direction.
fn pipe(
    from: &TcpStream,
    to: &TcpStream,
    state: &Arc<AtomicU8>,
    pace: Option<Arc<Pace>>,
    delay: Duration,
    (open, to_client): (Arc<Open>, bool),
) {
    let (Ok(mut from), Ok(to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    let state = Arc::clone(state);
    let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
    let (wire, arrivals) = mpsc::channel::<(Instant, Vec<u8>)>();
    let writer_state = Arc::clone(&state);
    let Ok(mut writer) = to.try_clone() else {
        return;
    };
    std::thread::spawn(move || {
        for (due, bytes) in arrivals {
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            if writer_state.load(Ordering::SeqCst) == PASS && writer.write_all(&bytes).is_err() {
                break;
            }
        }
        let _ = writer.shutdown(Shutdown::Both);
    });
    std::thread::spawn(move || {
        let _open = open;
        // 64 KiB reads: one connection must fill the link (an HTTP/2 client has one);
        // reading 16 KiB and sleeping its time held one connection near 35 MB/s.
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match state.load(Ordering::SeqCst) {
                CUT => break,
                BLACKHOLE => {
                    // Swallow everything; keep both sockets open until the proxy goes.
                    match from.read(&mut buf) {
                        Ok(0) => std::thread::sleep(Duration::from_millis(50)),
                        _ => continue,
                    }
                    continue;
                }
                _ => {}
            }
            match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if to_client {
                        _open.0.to_clients.fetch_add(n as u64, Ordering::SeqCst);
                    }
                    if let Some(pace) = &pace {
                        pace.wait(n);
                    }
                    if wire
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break,
            }
        }
        let _ = from.shutdown(Shutdown::Read);
        if state.load(Ordering::SeqCst) == CUT {
            let _ = to.shutdown(Shutdown::Both);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{HttpServer, Response};

    /// GETs `/` through `addr` on `connections` connections at once; the bytes each got.
    fn fetch_all(addr: &str, connections: usize) -> Vec<usize> {
        let threads: Vec<_> = (0..connections)
            .map(|_| {
                let addr = addr.to_owned();
                std::thread::spawn(move || {
                    let mut s = TcpStream::connect(addr).unwrap();
                    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
                    // The head, then the body it announces (the server keeps the
                    // connection open for the next request).
                    let mut got = Vec::new();
                    let mut buf = [0u8; 64 << 10];
                    let wanted = loop {
                        let n = s.read(&mut buf).unwrap();
                        assert!(n > 0, "closed early");
                        got.extend_from_slice(&buf[..n]);
                        let text = String::from_utf8_lossy(&got);
                        if let Some(end) = text.find("\r\n\r\n") {
                            let len: usize = text
                                .lines()
                                .find_map(|l| {
                                    l.to_ascii_lowercase()
                                        .strip_prefix("content-length:")
                                        .map(|v| v.trim().parse().unwrap())
                                })
                                .unwrap();
                            break end + 4 + len;
                        }
                    };
                    while got.len() < wanted {
                        let n = s.read(&mut buf).unwrap();
                        assert!(n > 0, "closed early");
                        got.extend_from_slice(&buf[..n]);
                    }
                    got.len()
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    }

    #[test]
    fn a_distant_link_delays_every_reply_by_its_round_trip() {
        let server = HttpServer::start(|_| Response::new(200, "text/plain", "hi"));
        let addr = server.url().trim_start_matches("http://").to_owned();
        let link = Link {
            bytes_per_second: None,
            round_trip: Duration::from_millis(300),
        };
        let proxy = Proxy::start_link(&addr, link).unwrap();
        let started = Instant::now();
        let got = fetch_all(&proxy.addr(), 3);
        let took = started.elapsed();
        assert!(got.iter().all(|&n| n > 2), "{got:?}");
        // A request there and its reply back: one round trip at least, however fast the
        // machine.
        assert!(took >= Duration::from_millis(300), "{took:?}");
    }

    #[test]
    fn a_throttled_link_carries_no_more_than_its_rate_over_all_connections() {
        let body = vec![7u8; 1 << 20];
        let server = HttpServer::start(move |_| {
            Response::new(200, "application/octet-stream", body.clone())
        });
        let addr = server.url().trim_start_matches("http://").to_owned();
        let proxy = Proxy::start_throttled(&addr, 8 << 20).unwrap();
        let started = Instant::now();
        let got = fetch_all(&proxy.addr(), 2);
        let took = started.elapsed();
        // 2 MiB at 8 MiB/s: a quarter of a second at least, however fast the machine.
        assert!(got.iter().all(|&n| n > 1 << 20), "{got:?}");
        assert!(took >= Duration::from_millis(240), "{took:?}");
        // Every byte the clients got went through it, and it counted them.
        assert_eq!(proxy.bytes_to_clients(), got.iter().sum::<usize>() as u64);
    }
}
