//! The grid fixture the end-to-end tests share: a [`World`] (a real beanstalkd, a temp
//! dir holding a metadata checkout and a logs folder, a namespace), the grid's processes
//! started from the built binaries ([`Proc`]: logging to a file, killed on drop, their
//! log printed when a test fails), and the smallest flow document the sink accepts.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use crate::git::metadata_checkout;
use crate::{bin, Beanstalkd};

/// A grid process whose stderr goes to a log file; killed on drop, and its log printed
/// if the test is failing.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Starts the binary `program` as `name`, its stdout and stderr in `logs/NAME.out`
    /// and `logs/NAME.log`.
    pub fn start(
        name: &str,
        program: &str,
        args: &[&str],
        env: &[(&str, String)],
        logs: &Path,
    ) -> Proc {
        let log = logs.join(format!("{name}.log"));
        let mut cmd = bin::command(program);
        cmd.args(args)
            .stdout(Stdio::from(
                std::fs::File::create(logs.join(format!("{name}.out"))).expect("a log file"),
            ))
            .stderr(Stdio::from(
                std::fs::File::create(&log).expect("a log file"),
            ));
        for (k, v) in env {
            cmd.env(k, v);
        }
        Proc {
            name: name.into(),
            child: cmd.spawn().expect("starting a grid process"),
            log,
        }
    }

    /// Waits for the process to exit by itself; panics after `limit`, which only bounds
    /// a broken test.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let end = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for a process") {
                return status;
            }
            assert!(
                Instant::now() < end,
                "{} did not finish within {limit:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The name it was started as.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What it has written to its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until its log contains `needle`; panics after `limit` (which only bounds a
    /// broken test) with the log so far.
    pub fn wait_log(&self, needle: &str, limit: Duration) {
        let end = Instant::now() + limit;
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < end,
                "{} never logged {needle:?} within {limit:?}:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends it `sig` (`-TERM`, `-KILL`, …) with kill(1).
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill {sig} {}", self.id());
    }

    /// Kills it now and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("--- {} log ---\n{log}", self.name);
        }
    }
}

/// A fresh world: a beanstalkd of its own, a metadata checkout and a logs folder in a
/// temp dir, and the namespace its processes use.
#[derive(Debug)]
pub struct World {
    /// The server.
    pub server: Beanstalkd,
    /// The temp dir everything else lives in.
    pub dir: tempfile::TempDir,
    namespace: String,
}

impl World {
    /// A world on a new server.
    pub fn new(namespace: &str) -> World {
        World::with_server(Beanstalkd::start().expect("starting beanstalkd"), namespace)
    }

    /// A world on `server`.
    pub fn with_server(server: Beanstalkd, namespace: &str) -> World {
        let dir = tempfile::tempdir().expect("a temp dir");
        metadata_checkout(dir.path());
        std::fs::create_dir_all(dir.path().join("logs")).expect("the logs folder");
        World {
            server,
            dir,
            namespace: namespace.into(),
        }
    }

    /// The metadata checkout.
    pub fn checkout(&self) -> PathBuf {
        self.dir.path().join("checkout")
    }

    /// Where process logs go.
    pub fn logs(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    /// `GRID_SERVER` and `GRID_NAMESPACE` for the world's processes.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("GRID_SERVER", self.server.addr()),
            ("GRID_NAMESPACE", self.namespace.clone()),
        ]
    }

    /// Runs `program ARGS` to the end with the world's environment.
    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        let mut cmd = bin::command(program);
        cmd.args(args);
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        cmd.output().expect("running a grid binary")
    }

    /// `gridctl failed --json`, parsed.
    pub fn failed(&self) -> Vec<serde_json::Value> {
        let out = self.run("gridctl", &["failed", "--json"]);
        serde_json::from_slice(&out.stdout).expect("gridctl failed --json prints JSON")
    }
}

/// The smallest document the sink accepts as an `_optical_flow.json` of the video at
/// `url`, marked with `marker` so a test can tell which result was written.
pub fn flow_document(marker: u64, url: &str) -> serde_json::Value {
    serde_json::json!({
        "contents": {"movie": "1.0", "frameStats": {"opticalFlow": "1.1"}},
        "frameStats": [{"frameNumber": 11, "opticalFlow": {"similarity": [1.0, 0.0, 0.5, -0.5], "valid": true}}],
        "movie": {"URL": url, "NumFrames": 27},
        "marker": marker
    })
}
