//! The grid end to end, as separate processes sharing nothing but a real beanstalkd: the
//! queuer queues a folder of ProRes clips, two filters analyse them, the sink commits the
//! JSON into a git checkout. And a filter killed with SIGKILL mid-job loses nothing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use testkit::{bin, Beanstalkd};

const DAY: &str = "RS03ASHS/PN03B/06-CAMHDA301/2017/06/14";

/// A grid process whose stderr goes to a log file; killed on drop, and its log printed
/// if the test is failing.
struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn start(
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
                std::fs::File::create(logs.join(format!("{name}.out"))).unwrap(),
            ))
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
        for (k, v) in env {
            cmd.env(k, v);
        }
        Proc {
            name: name.into(),
            child: cmd.spawn().unwrap(),
            log,
        }
    }

    /// Waits for the process to exit by itself; panics after `limit`.
    fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let end = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
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
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("--- {} log ---\n{log}", self.name);
        }
    }
}

/// A fresh world: server, checkout with a README, an archive folder of clips.
struct World {
    server: Beanstalkd,
    dir: tempfile::TempDir,
}

impl World {
    fn new(clips: &[(&str, u32)]) -> World {
        let server = Beanstalkd::start().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let checkout = dir.path().join("checkout");
        std::fs::create_dir_all(&checkout).unwrap();
        std::fs::write(checkout.join("README.md"), "# CamHD motion metadata\n").unwrap();
        git(&checkout, &["init", "-q"]);
        git(&checkout, &["add", "README.md"]);
        git(
            &checkout,
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "commit",
                "-qm",
                "init",
            ],
        );
        let day = dir.path().join("archive/files").join(DAY);
        std::fs::create_dir_all(&day).unwrap();
        for (name, frames) in clips {
            let status = Command::new("ffmpeg")
                .args([
                    "-hide_banner",
                    "-loglevel",
                    "error",
                    "-y",
                    "-f",
                    "lavfi",
                    "-i",
                ])
                .arg("testsrc2=size=320x180:rate=30000/1001")
                .args([
                    "-frames:v",
                    &frames.to_string(),
                    "-c:v",
                    "prores_ks",
                    "-profile:v",
                    "2",
                ])
                .arg(day.join(name))
                .status()
                .unwrap();
            assert!(status.success());
        }
        std::fs::create_dir_all(dir.path().join("logs")).unwrap();
        World { server, dir }
    }

    fn checkout(&self) -> PathBuf {
        self.dir.path().join("checkout")
    }

    fn archive(&self) -> String {
        self.dir
            .path()
            .join("archive/files")
            .to_string_lossy()
            .into_owned()
    }

    fn logs(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("GRID_SERVER", self.server.addr()),
            ("GRID_NAMESPACE", "e2e".into()),
        ]
    }

    fn queuer(&self) -> Output {
        let mut cmd = bin::command("queuer");
        cmd.args([
            "--checkout",
            self.checkout().to_str().unwrap(),
            &self.archive(),
        ]);
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    fn filter(&self, name: &str, idle: u32) -> Proc {
        let idle = idle.to_string();
        let args = [
            "--scale",
            "0.5",
            "--threads",
            "1",
            "--ttr-touch",
            "1",
            "--exit-when-idle",
            &idle,
        ];
        Proc::start(name, "filter", &args, &self.env(), &self.logs())
    }

    fn sink(&self, idle: u32) -> Proc {
        let idle = idle.to_string();
        let checkout = self.checkout();
        let args = [
            "--checkout",
            checkout.to_str().unwrap(),
            "--commit-every",
            "1",
            "--exit-when-idle",
            &idle,
        ];
        Proc::start("sink", "sink", &args, &self.env(), &self.logs())
    }

    fn status(&self) -> serde_json::Value {
        let mut cmd = bin::command("gridctl");
        cmd.args(["status", "--json"]);
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        serde_json::from_slice(&cmd.output().unwrap().stdout).unwrap()
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_empty(status: &serde_json::Value) {
    for tube in ["jobs", "results"] {
        for state in ["ready", "reserved", "delayed", "buried"] {
            assert_eq!(status[tube][state], 0, "{tube} {state}: {status}");
        }
    }
}

#[test]
fn a_folder_of_videos_ends_up_committed_in_the_checkout() {
    let names = [
        "CAMHDA301-20170614T000000.mov",
        "CAMHDA301-20170614T030000.mov",
        "CAMHDA301-20170614T060000.mov",
    ];
    let world = World::new(&names.map(|n| (n, 45)));

    let queued = world.queuer();
    assert!(
        queued.status.success(),
        "{}",
        String::from_utf8_lossy(&queued.stderr)
    );
    assert!(
        stdout(&queued).contains("queued 3, already done 0, in flight 0"),
        "{}",
        stdout(&queued)
    );
    let again = world.queuer();
    assert!(
        stdout(&again).contains("queued 0, already done 0, in flight 3"),
        "{}",
        stdout(&again)
    );

    let mut filters = [world.filter("filter-1", 3), world.filter("filter-2", 3)];
    let mut sink = world.sink(6);
    for f in &mut filters {
        assert!(
            f.wait(Duration::from_secs(120)).success(),
            "{} failed",
            f.name
        );
    }
    assert!(sink.wait(Duration::from_secs(60)).success(), "sink failed");

    for name in names {
        let json = world
            .checkout()
            .join(DAY)
            .join(name.replace(".mov", "_optical_flow.json"));
        let text =
            std::fs::read_to_string(&json).unwrap_or_else(|e| panic!("{}: {e}", json.display()));
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(doc["movie"]["NumFrames"], 45);
        assert_eq!(
            doc["frameStats"].as_array().unwrap().len(),
            5,
            "frames 1, 11, 21, 31, 41"
        );
        assert!(text.ends_with("}\n"));
    }
    assert!(
        git(&world.checkout(), &["status", "--porcelain"]).is_empty(),
        "all committed"
    );
    let log = git(
        &world.checkout(),
        &["log", "--format=%an|%s", "--name-only"],
    );
    assert!(
        log.contains("camhd-grid sink|Add optical flow for"),
        "{log}"
    );
    assert_eq!(
        log.matches("_optical_flow.json").count(),
        3,
        "each file committed once:\n{log}"
    );
    assert_empty(&world.status());

    let third = world.queuer();
    assert!(
        stdout(&third).contains("queued 0, already done 3, in flight 0"),
        "{}",
        stdout(&third)
    );
    drop(filters);
}

#[test]
fn a_filter_killed_mid_job_loses_nothing() {
    let name = "CAMHDA301-20170614T090000.mov";
    let world = World::new(&[(name, 900)]);
    let mut cmd = bin::command("queuer");
    // Stride 1 on 900 frames: long enough to be killed in the middle.
    cmd.args([
        "--checkout",
        world.checkout().to_str().unwrap(),
        "--stride",
        "1",
        &world.archive(),
    ]);
    for (k, v) in world.env() {
        cmd.env(k, v);
    }
    assert!(stdout(&cmd.output().unwrap()).contains("queued 1"));

    let mut doomed = world.filter("filter-doomed", 30);
    let start = Instant::now();
    while world.status()["jobs"]["reserved"] != 1 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the job was never reserved"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    doomed.child.kill().unwrap(); // SIGKILL
    doomed.child.wait().unwrap();
    assert_eq!(
        world.status()["jobs"]["ready"],
        1,
        "the job went straight back to ready"
    );

    let mut survivor = world.filter("filter-survivor", 3);
    let mut sink = world.sink(6);
    assert!(survivor.wait(Duration::from_secs(180)).success());
    assert!(sink.wait(Duration::from_secs(60)).success());
    let json = format!("{DAY}/{}", name.replace(".mov", "_optical_flow.json"));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(world.checkout().join(&json)).unwrap())
            .unwrap();
    assert_eq!(doc["frameStats"].as_array().unwrap().len(), 899);
    let commits = git(&world.checkout(), &["log", "--oneline", "--", &json]);
    assert_eq!(
        commits.lines().count(),
        1,
        "committed exactly once:\n{commits}"
    );
    assert_empty(&world.status());
}
