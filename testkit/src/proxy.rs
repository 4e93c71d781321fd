//! A TCP proxy for fault tests: clients connect to it instead of the server, and the test
//! can cut every connection it carries (both ends see the close at once) or blackhole
//! them (bytes vanish in both directions and nobody is told: a half-open connection, as
//! when a NAT forgets it or a cable is pulled). New connections always pass.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PASS: u8 = 0;
const BLACKHOLE: u8 = 1;
const CUT: u8 = 2;

/// A running proxy on a free loopback port; stops accepting on drop.
#[derive(Debug)]
pub struct Proxy {
    addr: String,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<Arc<AtomicU8>>>>,
}

impl Proxy {
    /// Forwards a free loopback port to `upstream` (`host:port`).
    pub fn start(upstream: &str) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?.to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<Arc<AtomicU8>>>> = Arc::default();
        let (s, c, up) = (Arc::clone(&stop), Arc::clone(&conns), upstream.to_owned());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&up) else {
                    continue; // the client sees a close, as if the server were down
                };
                let state = Arc::new(AtomicU8::new(PASS));
                c.lock().unwrap().push(Arc::clone(&state));
                pipe(&client, &server, &state);
                pipe(&server, &client, &state);
            }
        });
        Ok(Proxy { addr, stop, conns })
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

/// Copies `from` to `to` on a thread, obeying `state` between reads.
fn pipe(from: &TcpStream, to: &TcpStream, state: &Arc<AtomicU8>) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    let state = Arc::clone(state);
    let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 << 10];
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
                    if state.load(Ordering::SeqCst) == PASS && to.write_all(&buf[..n]).is_err() {
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
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    });
}
