//! A real `beanstalkd` for one test: free port, binlog in a temp dir, raised max job size,
//! log kept for failure reports, killed on drop, restartable on the same port and binlog.

use std::fs::File;
use std::io;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::free_port;

/// How long a started server may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Options for a [`Beanstalkd`]; see [`Beanstalkd::builder`].
#[derive(Debug, Clone)]
pub struct BeanstalkdBuilder {
    max_job_size: u32,
    binlog: bool,
}

impl BeanstalkdBuilder {
    /// The largest job body the server accepts (`-z`), in bytes.
    pub fn max_job_size(mut self, bytes: u32) -> Self {
        self.max_job_size = bytes;
        self
    }

    /// Whether to keep a binlog (`-b`) so jobs survive a restart. On by default.
    pub fn binlog(mut self, on: bool) -> Self {
        self.binlog = on;
        self
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(self) -> io::Result<Beanstalkd> {
        let mut dir = Some(tempfile::Builder::new().prefix("beanstalkd-").tempdir()?);
        let mut last_error = None;
        // A free port can be taken by someone else before beanstalkd binds it.
        for _ in 0..5 {
            let mut server = Beanstalkd {
                options: self.clone(),
                port: free_port()?,
                child: None,
                dir: dir.take(),
                restarts: 0,
            };
            match server.spawn() {
                Ok(()) => return Ok(server),
                Err(e) => {
                    last_error = Some(e);
                    server.kill();
                    dir = server.dir.take();
                }
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("beanstalkd did not start")))
    }
}

/// A running `beanstalkd` owned by a test. Set `BEANSTALKD_BIN` to use another binary.
#[derive(Debug)]
pub struct Beanstalkd {
    options: BeanstalkdBuilder,
    port: u16,
    child: Option<Child>,
    dir: Option<TempDir>,
    restarts: u32,
}

impl Beanstalkd {
    /// A server with a binlog and a 16 MiB max job size.
    pub fn start() -> io::Result<Beanstalkd> {
        Beanstalkd::builder().start()
    }

    /// Options for a server before it starts.
    pub fn builder() -> BeanstalkdBuilder {
        BeanstalkdBuilder {
            max_job_size: 16 << 20,
            binlog: true,
        }
    }

    /// `127.0.0.1:PORT`, for clients.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The binlog folder (empty when the binlog is off).
    pub fn binlog_dir(&self) -> PathBuf {
        self.dir().join("binlog")
    }

    /// Kills the server (SIGKILL, like a crash) and starts it again on the same port and
    /// binlog; jobs it held come back from the binlog, reserved ones as ready.
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        self.restarts += 1;
        // The port was ours a moment ago; a few tries cover the kernel's slow release.
        let mut last = None;
        for _ in 0..20 {
            match self.spawn() {
                Ok(()) => return Ok(()),
                Err(e) => {
                    last = Some(e);
                    self.kill();
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("restart failed")))
    }

    /// Changes the max job size (`-z`) used from the next [`Beanstalkd::restart`] on.
    pub fn set_max_job_size(&mut self, bytes: u32) {
        self.options.max_job_size = bytes;
    }

    /// Kills the server now; [`Beanstalkd::restart`] brings it back.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Everything the server wrote (it runs with `-V`), for failure reports.
    pub fn logs(&self) -> String {
        let mut all = String::new();
        for n in 0..=self.restarts {
            if let Ok(text) = std::fs::read_to_string(self.log_path(n)) {
                all.push_str(&format!("--- beanstalkd run {n} ---\n{text}"));
            }
        }
        all
    }

    fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .map(TempDir::path)
            .unwrap_or(Path::new("."))
    }

    fn log_path(&self, run: u32) -> PathBuf {
        self.dir().join(format!("beanstalkd-{run}.log"))
    }

    fn spawn(&mut self) -> io::Result<()> {
        let bin = std::env::var_os("BEANSTALKD_BIN").unwrap_or_else(|| "beanstalkd".into());
        let log = File::create(self.log_path(self.restarts))?;
        let mut cmd = Command::new(&bin);
        cmd.args(["-l", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-z", &self.options.max_job_size.to_string(), "-V"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if self.options.binlog {
            std::fs::create_dir_all(self.binlog_dir())?;
            cmd.arg("-b").arg(self.binlog_dir());
        }
        let child = cmd.spawn().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "could not run {} (install beanstalkd or set BEANSTALKD_BIN): {e}",
                    Path::new(&bin).display()
                ),
            )
        })?;
        self.child = Some(child);
        self.wait_ready()
    }

    /// Waits until our own child answers on the port. Another test's server may hold the
    /// same port (a free port can be handed out twice); answering `stats` with another
    /// pid, it is a conflict to retry on a new port, not a ready server.
    fn wait_ready(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let own = self.child.as_ref().map(Child::id);
        loop {
            if let Ok(stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                match server_pid(stream) {
                    Ok(pid) if Some(pid) == own => return Ok(()),
                    Ok(pid) => {
                        return Err(io::Error::new(
                            io::ErrorKind::AddrInUse,
                            format!(
                                "port {} belongs to another beanstalkd (pid {pid})",
                                self.port
                            ),
                        ))
                    }
                    // Accepting but not answering yet.
                    Err(_) => {}
                }
            }
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    return Err(io::Error::other(format!(
                        "beanstalkd exited with {status} before accepting connections:\n{}",
                        self.logs()
                    )));
                }
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("beanstalkd did not accept connections within {READY_TIMEOUT:?}"),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The pid the beanstalkd behind `stream` reports in `stats`.
fn server_pid(mut stream: TcpStream) -> io::Result<u32> {
    use std::io::{BufRead, BufReader, Write};
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(b"stats\r\n")?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "no stats"));
        }
        if let Some(pid) = line.trim().strip_prefix("pid: ") {
            return pid
                .parse()
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad pid in stats"));
        }
    }
}

impl Drop for Beanstalkd {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}
