//! A small HTTP/1.1 server for tests: one thread per connection, keep-alive, a handler
//! closure per request, and a count of the body bytes it sent, so a test can prove how
//! much a client fetched. [`files_with_ranges`] serves a folder with Range support, as
//! the raw-data archive does.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// One request as the handler sees it.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `HEAD`, …
    pub method: String,
    /// The path and query, as sent.
    pub target: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The first header of this (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// A query parameter's value.
    pub fn query(&self, key: &str) -> Option<&str> {
        let query = self.target.split_once('?')?.1;
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }
}

/// What the handler answers.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Extra headers (Content-Length is added).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// Send the body one byte at a time, this long apart (a hostile, trickling server).
    pub trickle: Option<std::time::Duration>,
    /// Claim this Content-Length instead of the body's (a lying server).
    pub claimed_length: Option<u64>,
    /// Close the connection once the body is sent: with a longer `claimed_length`, a
    /// connection dropped mid-reply.
    pub hang_up: bool,
}

impl Response {
    /// A response with a body and a content type.
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
            trickle: None,
            claimed_length: None,
            hang_up: false,
        }
    }

    /// A 206 of `content_type` whose connection drops after its head: it claims a body
    /// and sends none.
    pub fn dropped(content_type: &str) -> Response {
        Response {
            claimed_length: Some(1 << 20),
            hang_up: true,
            ..Response::new(206, content_type, Vec::new())
        }
    }

    /// A plain 404.
    pub fn not_found() -> Response {
        Response::new(404, "text/plain", "not found\n")
    }
}

type Handler = dyn Fn(&Request) -> Response + Send + Sync;

/// A running server; stops on drop.
pub struct HttpServer {
    addr: String,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl HttpServer {
    /// Starts serving `handler` on a free loopback port.
    pub fn start(handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
        let addr = listener.local_addr().expect("local addr").to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let requests = Arc::new(AtomicU64::new(0));
        let handler: Arc<Handler> = Arc::new(handler);
        let (s, b, r) = (Arc::clone(&stop), Arc::clone(&sent), Arc::clone(&requests));
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (h, b, r) = (Arc::clone(&handler), Arc::clone(&b), Arc::clone(&r));
                std::thread::spawn(move || serve(conn, &*h, &b, &r));
            }
        });
        HttpServer {
            addr,
            stop,
            sent,
            requests,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Body bytes sent so far.
    pub fn body_bytes_sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(conn: TcpStream, handler: &Handler, sent: &AtomicU64, requests: &AtomicU64) {
    let mut writer = match conn.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::new(conn);
    while let Some(request) = read_request(&mut reader) {
        let response = handler(&request);
        let head_only = request.method == "HEAD";
        let mut head = format!("HTTP/1.1 {} X\r\n", response.status);
        for (k, v) in &response.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        let length = response
            .claimed_length
            .unwrap_or(response.body.len() as u64);
        head.push_str(&format!("Content-Length: {length}\r\n\r\n"));
        if writer.write_all(head.as_bytes()).is_err() {
            return;
        }
        requests.fetch_add(1, Ordering::SeqCst);
        if !head_only {
            if let Some(gap) = response.trickle {
                for b in &response.body {
                    std::thread::sleep(gap);
                    if writer
                        .write_all(&[*b])
                        .and_then(|()| writer.flush())
                        .is_err()
                    {
                        return;
                    }
                    sent.fetch_add(1, Ordering::SeqCst);
                }
            } else {
                if writer.write_all(&response.body).is_err() {
                    return;
                }
                sent.fetch_add(response.body.len() as u64, Ordering::SeqCst);
            }
        }
        if response.hang_up {
            let _ = writer.shutdown(std::net::Shutdown::Both);
            return;
        }
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let request = Request {
        method,
        target,
        headers,
    };
    if let Some(n) = request
        .header("content-length")
        .and_then(|v| v.parse::<u64>().ok())
    {
        std::io::copy(&mut reader.take(n), &mut std::io::sink()).ok()?;
    }
    Some(request)
}

/// A handler serving the files below `root` with single-range `Range` support, like the
/// raw-data archive. With `ranges` false it ignores Range and sends whole files; a
/// request for several ranges gets the whole file, as from a server without multi-range
/// support.
pub fn files_with_ranges(root: impl Into<PathBuf>, ranges: bool) -> impl Fn(&Request) -> Response {
    let root = root.into();
    move |req| serve_file(&root, req, ranges)
}

/// A handler serving the files below `root` with multi-range support as Apache has it:
/// several ranges come back as `multipart/byteranges`, and more than `max_ranges` (its
/// `MaxRanges`) get the whole file. Files are read range by range, so big ones are cheap.
pub fn files_with_multiranges(
    root: impl Into<PathBuf>,
    max_ranges: usize,
) -> impl Fn(&Request) -> Response {
    let root = root.into();
    move |req| serve_multirange(&root, req, max_ranges)
}

/// The boundary of the multipart replies this server makes.
pub const BOUNDARY: &str = "3d6b6a416f9b5";

fn serve_multirange(root: &Path, req: &Request, max_ranges: usize) -> Response {
    use std::os::unix::fs::FileExt;
    let rel = req.path().trim_start_matches('/');
    if rel.split('/').any(|c| c == "..") {
        return Response::new(400, "text/plain", "bad path\n");
    }
    let Ok(file) = std::fs::File::open(root.join(rel)) else {
        return Response::not_found();
    };
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let read = |a: u64, b: u64| {
        let mut buf = vec![0; (b - a + 1) as usize];
        file.read_exact_at(&mut buf, a)
            .map(|_| buf)
            .unwrap_or_default()
    };
    let specs: Option<Vec<(u64, u64)>> = req.header("range").and_then(|r| {
        r.strip_prefix("bytes=")?
            .split(',')
            .map(|spec| {
                let (a, b) = spec.trim().split_once('-')?;
                let (a, b): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
                (a <= b && b < total).then_some((a, b))
            })
            .collect()
    });
    match specs {
        Some(specs) if specs.len() == 1 => {
            let (a, b) = specs[0];
            let mut r = Response::new(206, "video/quicktime", read(a, b));
            r.headers
                .push(("Content-Range".into(), format!("bytes {a}-{b}/{total}")));
            r
        }
        Some(specs) if !specs.is_empty() && specs.len() <= max_ranges => {
            let mut body = Vec::new();
            for (a, b) in specs {
                body.extend_from_slice(
                    format!(
                        "\r\n--{BOUNDARY}\r\nContent-Type: video/quicktime\r\n\
                         Content-Range: bytes {a}-{b}/{total}\r\n\r\n"
                    )
                    .as_bytes(),
                );
                body.extend_from_slice(&read(a, b));
            }
            body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
            Response::new(
                206,
                &format!("multipart/byteranges; boundary={BOUNDARY}"),
                body,
            )
        }
        _ => Response::new(200, "video/quicktime", read(0, total.saturating_sub(1))),
    }
}

fn serve_file(root: &Path, req: &Request, ranges: bool) -> Response {
    let rel = req.path().trim_start_matches('/');
    if rel.split('/').any(|c| c == "..") {
        return Response::new(400, "text/plain", "bad path\n");
    }
    let Ok(data) = std::fs::read(root.join(rel)) else {
        return Response::not_found();
    };
    let total = data.len() as u64;
    let range = req
        .header("range")
        .filter(|_| ranges)
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split_once('-'))
        .and_then(|(a, b)| {
            let first: u64 = a.parse().ok()?;
            let last: u64 = if b.is_empty() {
                total - 1
            } else {
                b.parse().ok()?
            };
            Some((first, last.min(total.saturating_sub(1))))
        });
    match range {
        Some((first, last)) if first <= last && first < total => {
            let mut r = Response::new(
                206,
                "video/quicktime",
                data[first as usize..=last as usize].to_vec(),
            );
            r.headers.push((
                "Content-Range".into(),
                format!("bytes {first}-{last}/{total}"),
            ));
            r
        }
        Some(_) => {
            let mut r = Response::new(416, "text/plain", "");
            r.headers
                .push(("Content-Range".into(), format!("bytes */{total}")));
            r
        }
        None => Response::new(200, "video/quicktime", data),
    }
}
