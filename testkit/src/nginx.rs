//! A real nginx (Debian's `nginx-light`) serving a folder as the raw-data archive does
//! (Range and multi-range requests), for one test: on a free loopback port, its config,
//! logs and temp files in a temp dir, killed on drop. It can stand in for a busy archive:
//! beyond N connections per client it answers 503 with a `Retry-After`, as a capped
//! server or a proxy in front of one does.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// How the server behaves.
#[derive(Debug, Clone, Default)]
pub struct NginxOptions {
    /// Connections per client address served at once; beyond, 503 with `Retry-After`.
    pub connections_per_client: Option<u32>,
    /// The `Retry-After` seconds sent with a 503 (default 1).
    pub retry_after: Option<u32>,
    /// Serve HTTP/2 without TLS (prior knowledge) instead of HTTP/1.1.
    pub http2: bool,
    /// Bytes a second each reply is sent at (nginx's `limit_rate`): a reply then holds
    /// its connection as long as on a busy archive, not the instant a local disk takes.
    pub bytes_per_second_per_reply: Option<u64>,
    /// Requests served on one connection before nginx closes it (for HTTP/2 a GOAWAY);
    /// default 100,000.
    pub requests_per_connection: Option<u32>,
    /// Serve https with this certificate chain and key (PEM files, e.g. a [`crate::stunnel::Pki`]'s
    /// `server.pem` and `server.key`); with `http2`, HTTP/2 is offered by ALPN.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// List folders (nginx's `autoindex`), as the archive's index pages do.
    pub autoindex: bool,
    /// `/moved/PATH` answers 301 with `Location: /PATH`, as an archive that moved does.
    pub moved: bool,
}

/// A running nginx; stopped on drop.
#[derive(Debug)]
pub struct Nginx {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    https: bool,
}

impl Nginx {
    /// Serves `root` with the default options.
    pub fn serve(root: &Path) -> Nginx {
        Nginx::start(root, &NginxOptions::default())
    }

    /// Serves `root` as `options` say; panics if nginx is missing or does not start.
    pub fn start(root: &Path, options: &NginxOptions) -> Nginx {
        let mut last_log = String::new();
        // A free port may be taken before nginx binds it: a few tries.
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("a temp dir for nginx");
            let port = free_port().expect("a free port");
            let conf = config(dir.path(), root, port, options);
            std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
            let child = Command::new(nginx_binary())
                .args(["-p", dir.path().to_str().unwrap(), "-c"])
                .arg(dir.path().join("nginx.conf"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting nginx (apt-get install nginx-light)");
            let https = options.tls.is_some();
            let mut nginx = Nginx {
                child,
                port,
                dir,
                https,
            };
            if nginx.wait_ready() {
                return nginx;
            }
            last_log = nginx.log();
        }
        panic!("nginx did not start; its log: {last_log}");
    }

    fn wait_ready(&mut self) -> bool {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT` (`https://` when serving TLS).
    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.addr())
    }

    /// The status codes of the requests served so far, from its access log.
    pub fn statuses(&self) -> Vec<u16> {
        read(&self.dir.path().join("access.log"))
            .lines()
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .collect()
    }

    /// The protocol of each request served so far (`HTTP/1.1`, `HTTP/2.0`).
    pub fn protocols(&self) -> Vec<String> {
        read(&self.dir.path().join("access.log"))
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1).map(str::to_owned))
            .collect()
    }

    /// Bytes it sent in all (headers and bodies), from its access log.
    pub fn bytes_sent(&self) -> u64 {
        read(&self.dir.path().join("access.log"))
            .lines()
            .filter_map(|l| l.split_whitespace().nth(3)?.parse::<u64>().ok())
            .sum()
    }

    /// Its error log (for a failing test's message).
    pub fn log(&self) -> String {
        read(&self.dir.path().join("error.log"))
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // One process (`master_process off`): killing it leaves no worker behind holding
        // the port (a master killed with SIGKILL orphans its workers).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx_binary() -> PathBuf {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("nginx"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn config(dir: &Path, root: &Path, port: u16, options: &NginxOptions) -> String {
    let user = if rustix_is_root() { "user root;" } else { "" };
    let limit_zone = if options.connections_per_client.is_some() {
        "limit_conn_zone $binary_remote_addr zone=perclient:1m; limit_conn_status 503;"
    } else {
        ""
    };
    let limit = options
        .connections_per_client
        .map_or(String::new(), |n| format!("limit_conn perclient {n};"));
    let retry = options.retry_after.unwrap_or(1);
    let rate = options
        .bytes_per_second_per_reply
        .map_or(String::new(), |r| format!("limit_rate {r};"));
    let http2 = if options.http2 { " http2" } else { "" };
    let (ssl, certificate) = match &options.tls {
        Some((cert, key)) => (
            " ssl",
            format!(
                "ssl_certificate {}; ssl_certificate_key {};",
                cert.display(),
                key.display()
            ),
        ),
        None => ("", String::new()),
    };
    let requests = options.requests_per_connection.unwrap_or(100_000);
    let autoindex = if options.autoindex {
        "autoindex on;"
    } else {
        ""
    };
    let moved = if options.moved {
        "location /moved/ { rewrite ^/moved/(.*)$ /$1 permanent; }"
    } else {
        ""
    };
    let d = dir.display();
    format!(
        "{user}
master_process off;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  log_format status '$status $server_protocol $request_length $bytes_sent';
  access_log {d}/access.log status;
  keepalive_requests {requests};
  client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d};
  uwsgi_temp_path {d}; scgi_temp_path {d};
  {limit_zone}
  server {{
    listen 127.0.0.1:{port}{ssl}{http2};
    {certificate}
    {autoindex}
    {moved}
    root {root};
    {limit}
    {rate}
    error_page 503 @busy;
    location @busy {{ add_header Retry-After {retry} always; return 503 'busy'; }}
  }}
}}
",
        root = root.display()
    )
}

/// True when running as root (nginx then needs `user root;` to read a temp dir).
fn rustix_is_root() -> bool {
    // The real uid from /proc: no dependency for one call.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}
