//! The grid end to end, as separate processes sharing nothing but a real beanstalkd: the
//! queuer queues a folder of ProRes clips, two filters analyse them, the sink commits the
//! JSON into a git checkout. And a filter killed with SIGKILL mid-job loses nothing.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::wire::Action;
use testkit::git::git;
use testkit::http::HttpServer;
use testkit::{bin, files_with_gate, Beanstalkd, Gate, Proc};

const DAY: &str = "RS03ASHS/PN03B/06-CAMHDA301/2017/06/14";

/// A fresh world (testkit's: server, checkout, logs) with an archive folder of clips.
struct World {
    base: testkit::World,
    /// Environment every process of the world gets on top of the server and namespace
    /// (a TLS server address and certificates, say).
    extra_env: Vec<(&'static str, String)>,
    /// The archive URLs served on loopback, which filters refuse unless allowed.
    served: std::cell::RefCell<Vec<String>>,
}

impl std::ops::Deref for World {
    type Target = testkit::World;
    fn deref(&self) -> &testkit::World {
        &self.base
    }
}

impl std::ops::DerefMut for World {
    fn deref_mut(&mut self) -> &mut testkit::World {
        &mut self.base
    }
}

impl World {
    fn new(clips: &[(&str, u32)]) -> World {
        World::with_server(Beanstalkd::start().unwrap(), clips)
    }

    fn with_server(server: Beanstalkd, clips: &[(&str, u32)]) -> World {
        let base = testkit::World::with_server(server, "e2e");
        let day = base.dir.path().join("archive/files").join(DAY);
        std::fs::create_dir_all(&day).unwrap();
        for (name, frames) in clips {
            testkit::clip::prores_profile(&day.join(name), "320x180", *frames, 2);
        }
        World {
            base,
            extra_env: Vec::new(),
            served: Default::default(),
        }
    }

    fn archive(&self) -> String {
        self.dir
            .path()
            .join("archive/files")
            .to_string_lossy()
            .into_owned()
    }

    /// A new grid key in the world's `keys/` folder, made by `gridctl keygen` (and
    /// checked to be private): its path and id.
    fn keygen(&self, name: &str) -> (std::path::PathBuf, String) {
        let dir = self.dir.path().join("keys");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        let out = bin::command("gridctl")
            .args(["keygen", path.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let id = stdout(&out).split_whitespace().nth(3).unwrap().to_owned();
        (path, id)
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = self.base.env();
        env.extend(self.extra_env.iter().cloned());
        env
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
        self.filter_with(name, idle, &[])
    }

    /// A filter with the tests' settings (small scale, one thread, fast touches, a spool
    /// in the world's temp dir) plus `extra` flags.
    fn filter_with(&self, name: &str, idle: u32, extra: &[&str]) -> Proc {
        self.filter_touching(name, idle, 1, extra)
    }

    /// [`World::filter_with`], touching its reservations every `touch` seconds.
    fn filter_touching(&self, name: &str, idle: u32, touch: u32, extra: &[&str]) -> Proc {
        let (idle, touch) = (idle.to_string(), touch.to_string());
        let spool = self.dir.path().join("spool");
        let archive = self.archive();
        // The tests' archives are served on loopback, which filters refuse unless allowed.
        let served = self.served.borrow().clone();
        let mut args = vec!["--scale", "0.5", "--threads", "1", "--ttr-touch", &touch];
        args.extend(["--allow-source", &archive]);
        for url in &served {
            args.extend(["--allow-source", url]);
        }
        args.extend([
            "--exit-when-idle",
            &idle,
            "--spool",
            spool.to_str().unwrap(),
        ]);
        args.extend(extra);
        Proc::start(name, "filter", &args, &self.env(), &self.logs())
    }

    fn queue(&self, extra: &[&str]) -> Output {
        let mut cmd = bin::command("queuer");
        cmd.args(["--checkout", self.checkout().to_str().unwrap()])
            .args(extra)
            .arg(self.archive());
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
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
    // Camera work the analysis finds valid, so that each video has regions.
    let day = world.base.dir.path().join("archive/files").join(DAY);
    for name in names {
        testkit::clip::panning(&day.join(name), "320x180", 45);
    }

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
            f.name()
        );
    }
    assert!(sink.wait(Duration::from_secs(60)).success(), "sink failed");
    assert!(
        sink.log().contains("sink started"),
        "the sink says what it serves when it starts: {}",
        sink.log()
    );

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
        // Beside it, its regions, naming the commit that holds the flow file.
        let rel = format!("{DAY}/{}", name.replace(".mov", "_optical_flow.json"));
        let regions_rel = rel.replace(".json", "_regions.json");
        let flow_commit = git(
            &world.checkout(),
            &["log", "-n1", "--format=%H", "--", &rel],
        );
        let regions: serde_json::Value = serde_json::from_str(&git(
            &world.checkout(),
            &["show", &format!("HEAD:{regions_rel}")],
        ))
        .unwrap();
        assert_eq!(regions["depends"]["opticalFlow"][&rel], flow_commit.trim());
        assert_eq!(regions["movie"], doc["movie"]);
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
    let world = World::new(&[(name, 60)]);
    let gated = world.queue_gated(name, &["--stride", "1"], Gate::closed());

    let mut doomed = world.filter("filter-doomed", 30);
    gated.gate.wait_held(1, HOLD_LIMIT);
    doomed.kill(); // SIGKILL while its frames are held
    assert_eq!(
        world.status()["jobs"]["ready"],
        1,
        "the job went straight back to ready"
    );

    gated.gate.open();
    let mut survivor = world.filter("filter-survivor", 3);
    let mut sink = world.sink(6);
    assert!(survivor.wait(Duration::from_secs(180)).success());
    assert!(sink.wait(Duration::from_secs(60)).success());
    let json = format!("{DAY}/{}", name.replace(".mov", "_optical_flow.json"));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(world.checkout().join(&json)).unwrap())
            .unwrap();
    assert_eq!(doc["frameStats"].as_array().unwrap().len(), 59);
    let commits = git(&world.checkout(), &["log", "--oneline", "--", &json]);
    assert_eq!(
        commits.lines().count(),
        1,
        "committed exactly once:\n{commits}"
    );
    assert_empty(&world.status());
}

/// Spooled results below `spool` (every grid's folder; not those set aside).
fn spooled(spool: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(spool) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| e.path())
        .map(|p| {
            if p.is_dir() && !p.ends_with("aside") {
                spooled(&p)
            } else {
                usize::from(p.to_string_lossy().ends_with(".result.json"))
            }
        })
        .sum()
}

#[test]
fn a_result_too_big_for_the_server_is_spooled_then_delivered_after_a_restart() {
    use common::beanstalk::Client;
    let name = "CAMHDA301-20170614T120000.mov";
    let server = Beanstalkd::builder().max_job_size(4096).start().unwrap();
    let mut world = World::with_server(server, &[(name, 60)]);
    // Stride 1: 59 entries, about 20 KB of result; the server takes 4 KB.
    assert!(stdout(&world.queue(&["--stride", "1"])).contains("queued 1"));
    assert!(world
        .filter("filter-small-z", 2)
        .wait(Duration::from_secs(60))
        .success());
    let status = world.status();
    assert_eq!(status["jobs"]["buried"], 1, "{status}");
    let spool = world.dir.path().join("spool");
    assert_eq!(spooled(&spool), 1, "the result is kept");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let record = rt.block_on(async {
        let mut c = Client::connect(&world.server.addr()).await.unwrap();
        c.use_tube("e2e.failures").await.unwrap();
        c.peek_ready().await.unwrap().body
    });
    let record: serde_json::Value = serde_json::from_slice(&record).unwrap();
    assert_eq!(record["action"], "buried");
    assert!(record["error"].as_str().unwrap().contains("-z"), "{record}");

    world.server.set_max_job_size(16 << 20);
    world.server.restart().unwrap();
    assert!(world
        .filter("filter-big-z", 2)
        .wait(Duration::from_secs(60))
        .success());
    assert_eq!(spooled(&spool), 0, "the spool is emptied");
    assert!(world.sink(3).wait(Duration::from_secs(60)).success());
    let json = world
        .checkout()
        .join(DAY)
        .join(name.replace(".mov", "_optical_flow.json"));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    assert_eq!(doc["frameStats"].as_array().unwrap().len(), 59);
    assert_empty(&world.status());
}

/// How long a test waits for a filter to reach the gate: only a broken filter takes it.
const HOLD_LIMIT: Duration = Duration::from_secs(60);

/// The archive served over HTTP, with the frames of its videos held at `gate`.
struct Gated {
    gate: Gate,
    /// The video's URL.
    url: String,
    _server: HttpServer,
}

impl World {
    /// A filter with its own grace period, started for signal tests.
    fn filter_with_grace(&self, name: &str, grace: u32) -> Proc {
        self.filter_with(name, 2, &["--grace", &grace.to_string()])
    }

    /// Serves the archive over HTTP with a closed gate in front of the frames, and
    /// queues `name` from there (with `extra` queuer flags). A filter that takes the job
    /// reads the index, then waits at the gate until the test lets the frames go.
    fn queue_gated(&self, name: &str, extra: &[&str], gate: Gate) -> Gated {
        let server = HttpServer::start(files_with_gate(
            self.dir.path().join("archive"),
            gate.clone(),
        ));
        let url = format!("{}/files/{DAY}/{name}", server.url());
        self.served
            .borrow_mut()
            .push(format!("{}/files/", server.url()));
        let mut cmd = bin::command("queuer");
        cmd.args(["--checkout", self.checkout().to_str().unwrap()])
            .args(extra)
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            writeln!(stdin, "{url}").unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(stdout(&out).contains("queued 1"), "{out:?}");
        Gated {
            gate,
            url,
            _server: server,
        }
    }
}

/// A world with one job queued from behind a closed gate (stride 1 over 60 frames).
fn gated_job_world() -> (World, Gated) {
    let name = "CAMHDA301-20170614T150000.mov";
    let world = World::new(&[(name, 60)]);
    let gated = world.queue_gated(name, &["--stride", "1"], Gate::closed_from(0.75));
    (world, gated)
}

#[test]
fn sigterm_lets_a_running_job_finish_within_the_grace_period() {
    let (world, gated) = gated_job_world();
    let mut f = world.filter_with_grace("filter-graceful", 600);
    // The frames in the first three quarters of the file pass, the rest are held: the
    // first blocks' pairs are done, and the job is held mid-way.
    gated.gate.wait_held(1, HOLD_LIMIT);
    let start = Instant::now();
    loop {
        let s = world.status();
        let w = &s["workers"][0];
        if w["frames_done"].as_u64().unwrap_or(0) > 0 {
            assert_eq!(s["workers"].as_array().unwrap().len(), 1, "{s}");
            assert_eq!(w["frames_total"], 59, "{s}");
            assert!(w["video"]
                .as_str()
                .unwrap()
                .ends_with("CAMHDA301-20170614T150000.mov"));
            assert_eq!(w["stale"], false);
            let mut cmd = bin::command("gridctl");
            cmd.arg("status");
            for (k, v) in world.env() {
                cmd.env(k, v);
            }
            let table = stdout(&cmd.output().unwrap());
            assert!(
                table.contains("workers (1):") && table.contains("CAMHDA301-20170614T150000.mov: "),
                "{table}"
            );
            assert!(table.contains("/59 frames ("), "{table}");
            break;
        }
        // The heartbeat is renewed every touch (1 s here); the progress is already made.
        assert!(
            start.elapsed() < HOLD_LIMIT,
            "no progress in the heartbeat: {s}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    f.signal("-TERM");
    // Still mid-job after the signal (its frames are held): the grace lets it finish.
    assert_eq!(gated.gate.held(), 1);
    gated.gate.open();
    assert!(
        f.wait(Duration::from_secs(120)).success(),
        "exit 0 after finishing"
    );
    let s = world.status();
    assert_eq!(s["results"]["ready"], 1, "the result was delivered: {s}");
    for state in ["ready", "reserved", "buried"] {
        assert_eq!(s["jobs"][state], 0, "jobs {state}: {s}");
    }
    assert_eq!(s["jobs"]["awaiting_commit"], 1, "{s}");
}

#[test]
fn sigterm_releases_a_job_when_the_grace_runs_out_and_a_second_signal_at_once() {
    let (world, gated) = gated_job_world();
    for (i, (name, grace, second)) in [
        ("filter-short-grace", 1, false),
        ("filter-twice", 600, true),
    ]
    .into_iter()
    .enumerate()
    {
        let mut f = world.filter_with_grace(name, grace);
        // A read of a filter that gave up stays held, so this one's is the (i+1)-th; its
        // log says it holds the job (the held count alone could be the last one's).
        f.wait_log(&format!("attempt={}", i + 1), HOLD_LIMIT);
        gated.gate.wait_held(i + 1, HOLD_LIMIT);
        f.signal("-TERM");
        if second {
            f.signal("-INT");
        }
        // The frames stay held: the job can only end by being given back.
        assert!(f.wait(Duration::from_secs(60)).success(), "{name}: exit 0");
        let s = world.status();
        assert_eq!(
            (s["jobs"]["ready"].as_u64(), s["jobs"]["reserved"].as_u64()),
            (Some(1), Some(0)),
            "{name}: released: {s}"
        );
        assert_eq!(s["results"]["ready"], 0, "{name}: {s}");
        let log = f.log();
        let why = if second {
            "second signal"
        } else {
            "grace period over"
        };
        assert!(log.contains(why), "{name}: {log}");
    }
}

#[test]
fn a_server_restart_mid_job_still_delivers_the_result() {
    let (mut world, gated) = gated_job_world();
    let mut f = world.filter_with_grace("filter-restart", 60);
    gated.gate.wait_held(1, HOLD_LIMIT);
    world.server.restart().unwrap();
    gated.gate.open();
    assert!(f.wait(Duration::from_secs(180)).success());
    let s = world.status();
    assert_eq!(
        s["results"]["ready"], 1,
        "delivered after reconnecting: {s}"
    );
    assert_eq!(
        s["jobs"]["ready"], 0,
        "and the job it answers is not ready: {s}"
    );
    assert!(
        f.log().contains("reconnected to the server"),
        "the log says the server is back: {}",
        f.log()
    );
}

#[test]
fn an_unreachable_video_is_retried_with_backoff_then_buried_with_its_records() {
    use common::beanstalk::{Client, PutOptions};
    use common::wire::Job;
    let world = World::new(&[]);
    let port = testkit::free_port().unwrap();
    let job = Job::new(
        format!("http://127.0.0.1:{port}/files/a/b.mov"),
        "a/b_optical_flow.json",
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let id = rt.block_on(async {
        let mut c = Client::connect(&world.server.addr()).await.unwrap();
        c.use_tube("e2e.jobs").await.unwrap();
        c.put(&job.encode(), PutOptions::default()).await.unwrap()
    });
    let allowed = format!("http://127.0.0.1:{port}/files/");
    let mut f = world.filter_with(
        "filter-retry",
        5,
        &[
            "--max-attempts",
            "2",
            "--backoff",
            "1",
            "--allow-source",
            &allowed,
        ],
    );
    assert!(f.wait(Duration::from_secs(60)).success());
    let s = world.status();
    assert_eq!(s["jobs"]["buried"], 1, "buried after the last attempt: {s}");
    let records = failure_records(&world);
    assert_eq!(records.len(), 2, "{records:?}");
    assert!(records
        .iter()
        .all(|r| r.job_id == id && r.error.contains("cannot reach")));
    assert!(
        matches!(records[0].action, Action::Released { .. }),
        "{:?}",
        records[0]
    );
    assert_eq!((records[0].attempt, records[1].attempt), (1, 2));
    assert_eq!(records[1].action, Action::Buried);
}

/// Every failure record in the world's failures tube, in the order they were put.
fn failure_records(world: &World) -> Vec<common::wire::Failure> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = common::beanstalk::Client::connect(&world.server.addr())
            .await
            .unwrap();
        c.watch("e2e.failures").await.unwrap();
        let mut out = Vec::new();
        while let Ok(j) = c.reserve_with_timeout(0).await {
            out.push(common::wire::Failure::decode(&j.body).unwrap());
        }
        out
    })
}

#[test]
fn a_video_past_its_deadline_is_a_failed_attempt_retried_then_buried() {
    // The gate never lets a frame go: only the deadline ends each attempt.
    let (world, gated) = gated_job_world();
    let mut f = world.filter_with(
        "filter-deadline",
        5,
        &[
            "--video-deadline",
            "2",
            "--max-attempts",
            "2",
            "--backoff",
            "1",
        ],
    );
    assert!(f.wait(Duration::from_secs(120)).success());
    gated.gate.open();
    let s = world.status();
    assert_eq!(s["jobs"]["buried"], 1, "buried after the last attempt: {s}");
    let records = failure_records(&world);
    assert_eq!(records.len(), 2, "{records:?}");
    for r in &records {
        assert!(r.error.contains("deadline of 2 s"), "{r:?}");
    }
    assert!(
        matches!(records[0].action, Action::Released { .. }),
        "{records:?}"
    );
    assert_eq!(records[1].action, Action::Buried);
}

/// `GET /metrics` from a process's `--metrics` endpoint, if it is up yet.
fn scrape(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    Some(text)
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.parse().ok())
}

#[test]
fn filter_and_sink_serve_prometheus_metrics() {
    let world = World::new(&[("CAMHDA301-20170614T180000.mov", 45)]);
    assert!(stdout(&world.queue(&[])).contains("queued 1"));
    let (fp, sp) = (testkit::free_port().unwrap(), testkit::free_port().unwrap());
    let fm = format!("127.0.0.1:{fp}");
    let _filter = world.filter_with("filter-metrics", 30, &["--metrics", &fm]);
    let co = world.checkout();
    let sm = format!("127.0.0.1:{sp}");
    let sargs = [
        "--checkout",
        co.to_str().unwrap(),
        "--commit-every",
        "1",
        "--exit-when-idle",
        "30",
        "--metrics",
        &sm,
    ];
    let _sink = Proc::start("sink-metrics", "sink", &sargs, &world.env(), &world.logs());
    let start = Instant::now();
    loop {
        let done = scrape(fp).and_then(|f| metric(&f, "camhd_filter_jobs_done_total"));
        let committed = scrape(sp).and_then(|s| metric(&s, "camhd_sink_results_committed_total"));
        if (done, committed) == (Some(1.0), Some(1.0)) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "metrics never showed the job"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let f = scrape(fp).unwrap();
    assert!(f.starts_with("HTTP/1.1 200 OK"), "{f}");
    assert_eq!(
        metric(&f, "camhd_filter_frames_analysed_total"),
        Some(5.0),
        "{f}"
    );
    assert_eq!(
        metric(&f, "camhd_filter_video_seconds_count"),
        Some(1.0),
        "{f}"
    );
    assert_eq!(
        metric(&f, "camhd_filter_jobs_failed_total"),
        Some(0.0),
        "{f}"
    );
    let s = scrape(sp).unwrap();
    assert_eq!(
        metric(&s, "camhd_sink_commit_seconds_count"),
        Some(1.0),
        "{s}"
    );
    assert!(
        metric(&s, "camhd_sink_commit_seconds_sum").unwrap_or(0.0) > 0.0,
        "{s}"
    );
}

#[test]
fn a_video_whose_result_waits_for_the_sink_stays_in_flight_until_its_commit() {
    let name = "CAMHDA301-20170614T210000.mov";
    let world = World::new(&[(name, 45)]);
    assert!(stdout(&world.queue(&[])).contains("queued 1"));
    assert!(world
        .filter("filter-no-sink", 2)
        .wait(Duration::from_secs(120))
        .success());
    // The result waits in the results tube (no sink yet); its job waits, delayed, for it.
    let s = world.status();
    assert_eq!(s["results"]["ready"], 1, "{s}");
    assert_eq!(
        (
            &s["jobs"]["delayed"],
            &s["jobs"]["awaiting_commit"],
            &s["jobs"]["retrying"]
        ),
        (&1.into(), &1.into(), &0.into()),
        "{s}"
    );
    let again = world.queuer();
    assert!(
        stdout(&again).contains("queued 0, already done 0, in flight 1"),
        "the waiting video is not queued again: {}",
        stdout(&again)
    );

    assert!(world.sink(3).wait(Duration::from_secs(60)).success());
    assert_empty(&world.status());
    let json = format!("{DAY}/{}", name.replace(".mov", "_optical_flow.json"));
    assert!(world.checkout().join(&json).exists());
    let third = world.queuer();
    assert!(
        stdout(&third).contains("queued 0, already done 1, in flight 0"),
        "{}",
        stdout(&third)
    );
}

#[test]
fn a_killed_filters_heartbeat_is_shown_dead_and_never_as_working() {
    use common::beanstalk::{Client, PutOptions};
    use common::wire::Heartbeat;
    let (world, gated) = gated_job_world();
    // A heartbeat a filter left an hour ago: the next filter to start sweeps it away.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let old = Heartbeat {
        version: 1,
        host: "gone".into(),
        pid: 1,
        slot: 0,
        job_id: None,
        video: None,
        frames_done: 0,
        frames_total: 0,
        every_seconds: Some(10),
        refusing: None,
        at: chrono::Utc::now() - chrono::Duration::hours(1),
    };
    rt.block_on(async {
        let mut c = Client::connect(&world.server.addr()).await.unwrap();
        c.use_tube("e2e.status.gone.1.0").await.unwrap();
        c.put(&old.encode(), PutOptions::default()).await.unwrap();
    });
    assert_eq!(world.status()["dead_workers"].as_array().unwrap().len(), 1);

    let mut f = world.filter("filter-doomed", 30);
    gated.gate.wait_held(1, HOLD_LIMIT);
    let s = world.status();
    assert_eq!(s["workers"].as_array().unwrap().len(), 1, "{s}");
    assert_eq!(s["dead_workers"], serde_json::json!([]), "swept: {s}");
    f.kill();
    // Its heartbeat (renewed every second here) stays in its tube; after three missed
    // renewals it is dead. Until then it may show as working; after, never again.
    let start = Instant::now();
    loop {
        let s = world.status();
        if s["dead_workers"].as_array().unwrap().len() == 1 {
            assert_eq!(s["workers"], serde_json::json!([]), "{s}");
            assert!(
                s["dead_workers"][0]["job_id"].is_u64(),
                "it was on the job: {s}"
            );
            break;
        }
        assert!(start.elapsed() < HOLD_LIMIT, "never shown dead: {s}");
        std::thread::sleep(Duration::from_millis(250));
    }
    let mut cmd = bin::command("gridctl");
    cmd.arg("status");
    for (k, v) in world.env() {
        cmd.env(k, v);
    }
    let table = stdout(&cmd.output().unwrap());
    assert!(table.contains("workers (0):"), "{table}");
    assert!(table.contains("dead (1):"), "{table}");
}

#[test]
fn a_job_whose_filters_keep_dying_is_buried_and_the_next_job_analysed() {
    let poisonous = "CAMHDA301-20170614T220000.mov";
    let good = "CAMHDA301-20170614T230000.mov";
    let world = World::new(&[(poisonous, 45), (good, 45)]);
    let gated = world.queue_gated(poisonous, &[], Gate::closed());
    // Two filters die while analysing it (SIGKILL with its frames held). Each must have
    // reserved it before it dies: its own log says which attempt it is on. (The held
    // count alone cannot tell: a dead filter's last reads may still reach the gate after
    // the next one starts.)
    for i in 0..2 {
        let before = gated.gate.held();
        let mut f = world.filter_with(&format!("filter-dies-{i}"), 30, &["--max-attempts", "2"]);
        f.wait_log(&format!("attempt={}", i + 1), HOLD_LIMIT);
        gated.gate.wait_held(before + 1, HOLD_LIMIT);
        f.kill();
    }
    // …the good video is queued behind it (the poisonous one is in flight, not again)…
    let queued = world.queue(&[]);
    assert!(
        stdout(&queued).contains("queued 1, already done 0, in flight 1"),
        "{}",
        stdout(&queued)
    );
    // …and the third filter buries it unanalysed, then analyses the good one.
    let mut f = world.filter_with("filter-third", 3, &["--max-attempts", "2"]);
    let mut sink = world.sink(6);
    assert!(f.wait(Duration::from_secs(120)).success());
    assert!(sink.wait(Duration::from_secs(60)).success());
    assert!(
        !f.log().contains(&format!("analysing video={}", gated.url)),
        "the third filter never analysed it: {}",
        f.log()
    );
    let s = world.status();
    assert_eq!(s["jobs"]["buried"], 1, "{s}");
    let good_json = world
        .checkout()
        .join(DAY)
        .join(good.replace(".mov", "_optical_flow.json"));
    assert!(good_json.exists(), "the job behind it was analysed");
    let mut cmd = bin::command("gridctl");
    cmd.args(["failed", "--json"]);
    for (k, v) in world.env() {
        cmd.env(k, v);
    }
    let failed = stdout(&cmd.output().unwrap());
    assert!(
        failed.contains("reserved 3 times without finishing"),
        "{failed}"
    );
}

#[test]
fn a_spooled_result_is_offered_only_to_its_own_grid_and_job() {
    use common::beanstalk::{Client, PutOptions};
    use common::wire::Job;
    let name = "CAMHDA301-20170614T130000.mov";
    let server = Beanstalkd::builder().max_job_size(4096).start().unwrap();
    let world = World::with_server(server, &[(name, 60)]);
    assert!(stdout(&world.queue(&["--stride", "1"])).contains("queued 1"));
    assert!(world
        .filter("filter-small-z", 2)
        .wait(Duration::from_secs(60))
        .success());
    let spool = world.dir.path().join("spool");
    assert_eq!(spooled(&spool), 1);

    // A second grid on another server, whose job with the same id is another video
    // (delayed, so that no filter takes it here).
    let other = Beanstalkd::start().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let a_id = rt.block_on(async {
        let mut c = Client::connect(&world.server.addr()).await.unwrap();
        c.use_tube("e2e.jobs").await.unwrap();
        c.peek_buried().await.unwrap().id
    });
    let b_id = rt.block_on(async {
        let mut c = Client::connect(&other.addr()).await.unwrap();
        c.use_tube("e2e.jobs").await.unwrap();
        let delayed = PutOptions {
            delay: 3600,
            ..PutOptions::default()
        };
        loop {
            let job = Job::new("/elsewhere/other.mov", "x/other_optical_flow.json");
            let id = c.put(&job.encode(), delayed).await.unwrap();
            if id >= a_id {
                break id;
            }
        }
    });
    assert_eq!(a_id, b_id, "the same id on both servers");
    let other_env = [
        ("GRID_SERVER", other.addr()),
        ("GRID_NAMESPACE", "e2e".to_owned()),
    ];
    let spool_dir = spool.to_str().unwrap().to_owned();
    let run_b = |name: &str| {
        let args = [
            "--exit-when-idle",
            "2",
            "--spool",
            &spool_dir,
            "--ttr-touch",
            "1",
        ];
        let mut p = Proc::start(name, "filter", &args, &other_env, &world.logs());
        assert!(p.wait(Duration::from_secs(60)).success());
        p
    };
    run_b("filter-grid-b");
    // Its own grid's folder is empty: the other grid's result is neither offered nor
    // touched, and its job with the same id is left alone.
    let b_state = || {
        rt.block_on(async {
            let mut c = Client::connect(&other.addr()).await.unwrap();
            let results = c
                .stats_tube("e2e.results")
                .await
                .map_or(0, |s| s.total_jobs);
            (results, c.stats_job(b_id).await.unwrap().state)
        })
    };
    let (results, state) = b_state();
    assert_eq!(results, 0, "nothing delivered to the second grid");
    assert_eq!(state, common::beanstalk::JobState::Delayed);
    assert_eq!(
        spooled(&spool),
        1,
        "the first grid's result is still spooled"
    );

    // Even a result lying in the second grid's own folder (the old shared layout) is
    // offered only if the job with its id is still its job: here it is not; set aside.
    let key = |addr: &str| format!("{}-e2e", addr.replace(':', "_"));
    let a_file = spool
        .join(key(&world.server.addr()))
        .join(format!("{a_id}.result.json"));
    let b_dir = spool.join(key(&other.addr()));
    std::fs::create_dir_all(&b_dir).unwrap();
    std::fs::copy(&a_file, b_dir.join(format!("{a_id}.result.json"))).unwrap();
    let p = run_b("filter-grid-b-again");
    let (results, state) = b_state();
    assert_eq!((results, state), (0, common::beanstalk::JobState::Delayed));
    assert!(b_dir
        .join("aside")
        .join(format!("{a_id}.result.json"))
        .exists());
    let log = p.log();
    assert!(log.contains("another video now"), "{log}");
}

#[test]
fn a_filter_fetches_nothing_from_loopback_link_local_or_outside_its_allowed_sources() {
    use common::beanstalk::{Client, PutOptions};
    use common::wire::Job;
    use testkit::http::Response;
    let world = World::new(&[]);
    let target = HttpServer::start(|_| Response::not_found());
    let t = target.url();
    let redirector = HttpServer::start({
        let to = format!("{t}/files/d/x.mov");
        move |_| {
            let mut r = Response::new(302, "text/plain", "");
            r.headers.push(("Location".into(), to.clone()));
            r
        }
    });
    let port = t.rsplit(':').next().unwrap().to_owned();
    let put = |video: String, output: &str| {
        let job = Job::new(video, output);
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let mut c = Client::connect(&world.server.addr()).await.unwrap();
            c.use_tube("e2e.jobs").await.unwrap();
            c.put(&job.encode(), PutOptions::default()).await.unwrap()
        })
    };
    put(format!("{t}/files/a/x.mov"), "a/x_optical_flow.json");
    put(
        format!("http://localhost:{port}/files/b/x.mov"),
        "b/x_optical_flow.json",
    );
    put(
        "http://169.254.169.254/latest/meta-data/x.mov".into(),
        "c/x_optical_flow.json",
    );
    // A filter with no allowed sources: any host but loopback, link-local, unspecified.
    let args = ["--exit-when-idle", "2", "--ttr-touch", "1"];
    let mut f = Proc::start(
        "filter-public",
        "filter",
        &args,
        &world.env(),
        &world.logs(),
    );
    assert!(f.wait(Duration::from_secs(60)).success());
    assert_eq!(world.status()["jobs"]["buried"], 3);
    assert_eq!(
        target.requests(),
        0,
        "no request reached the loopback server"
    );

    // A filter that may fetch only from the redirector: its redirect out is refused.
    put(
        format!("{}/files/d/x.mov", redirector.url()),
        "d/x_optical_flow.json",
    );
    let allowed = format!("{}/", redirector.url());
    let args = ["--exit-when-idle", "2", "--allow-source", &allowed];
    let mut f = Proc::start(
        "filter-allowed",
        "filter",
        &args,
        &world.env(),
        &world.logs(),
    );
    assert!(f.wait(Duration::from_secs(60)).success());
    assert_eq!(world.status()["jobs"]["buried"], 4);
    assert_eq!(redirector.requests(), 1);
    assert_eq!(target.requests(), 0, "the redirect was not followed");

    let mut cmd = bin::command("gridctl");
    cmd.args(["failed", "--json"]);
    for (k, v) in world.env() {
        cmd.env(k, v);
    }
    let failed: Vec<serde_json::Value> =
        serde_json::from_slice(&cmd.output().unwrap().stdout).unwrap();
    assert_eq!(failed.len(), 4);
    for f in &failed {
        let error = f["last_error"].as_str().unwrap();
        assert!(error.contains("refused"), "{error}");
    }
}

#[test]
fn a_signed_grid_accepts_only_what_its_keys_signed() {
    use common::beanstalk::{Client, PutOptions};
    use common::sign::{Key, Keys, Kind};
    use common::wire::{ComputedBy, Job, JobResult};
    let (good, unsigned) = (
        "CAMHDA301-20170614T010000.mov",
        "CAMHDA301-20170614T020000.mov",
    );
    let world = World::new(&[(good, 45), (unsigned, 45)]);
    let ((old, _), (new, _)) = (world.keygen("old.key"), world.keygen("new.key"));
    let video = |name: &str| format!("{}/{DAY}/{name}", world.archive());
    let output = |name: &str| format!("{DAY}/{}", name.replace(".mov", "_optical_flow.json"));

    // A Python producer signs a job with the old key (the grid is rotating to the new).
    let py = std::process::Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/put-signed-job.py"))
        .args([&world.server.addr(), "e2e", old.to_str().unwrap()])
        .args([&video(good), &output(good)])
        .output()
        .unwrap();
    assert!(py.status.success(), "{py:?}");
    // An unsigned job, and two results no key of this grid signed.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = Client::connect(&world.server.addr()).await.unwrap();
        c.use_tube("e2e.jobs").await.unwrap();
        let job = Job::new(video(unsigned), output(unsigned));
        c.put(&job.encode(), PutOptions::default()).await.unwrap();
        c.use_tube("e2e.results").await.unwrap();
        let now = chrono::Utc::now();
        let result = |name: &str| {
            let document = serde_json::json!({
                "contents": {"movie": "1.0", "frameStats": {"opticalFlow": "1.1"}},
                "movie": {}, "frameStats": []
            });
            let computed_by = ComputedBy {
                host: "forger".into(),
                software: "x".into(),
                started_at: now,
                finished_at: now,
                elapsed_seconds: 0.0,
            };
            JobResult::new(
                Job::new(video(name), output(name)),
                None,
                &document,
                computed_by,
            )
            .unwrap()
        };
        let forger = Keys::new("e2e", Key::new(vec![7; 32]), vec![]);
        let forged = forger.seal(
            Kind::Result,
            &result("CAMHDA301-20170614T040000.mov").encode(),
        );
        c.put(&forged, PutOptions::default()).await.unwrap();
        let plain = result("CAMHDA301-20170614T050000.mov").encode();
        c.put(&plain, PutOptions::default()).await.unwrap();
    });

    let mut env = world.env();
    env.push(("GRID_KEY_FILE", new.to_string_lossy().into_owned()));
    let mut filter_env = env.clone();
    filter_env.push((
        "GRID_ALSO_ACCEPT_KEY_FILES",
        old.to_string_lossy().into_owned(),
    ));
    let archive = world.archive();
    let fargs = [
        "--exit-when-idle",
        "3",
        "--scale",
        "0.5",
        "--allow-source",
        &archive,
    ];
    let mut f = Proc::start("filter-keyed", "filter", &fargs, &filter_env, &world.logs());
    assert!(f.wait(Duration::from_secs(120)).success());
    let co = world.checkout();
    let sargs = [
        "--checkout",
        co.to_str().unwrap(),
        "--commit-every",
        "1",
        "--exit-when-idle",
        "3",
    ];
    let mut sink = Proc::start("sink-keyed", "sink", &sargs, &env, &world.logs());
    assert!(sink.wait(Duration::from_secs(60)).success());

    let committed = git(&co, &["log", "--name-only", "--format="]);
    let files: Vec<&str> = committed.lines().filter(|l| l.ends_with(".json")).collect();
    assert_eq!(
        files,
        [output(good)],
        "only the signed job's result is committed"
    );

    let failed = |key: Option<&Path>| {
        let mut cmd = bin::command("gridctl");
        cmd.args(["failed", "--json"]);
        for (k, v) in world.env() {
            cmd.env(k, v);
        }
        if let Some(k) = key {
            cmd.env("GRID_KEY_FILE", k);
        }
        let out = cmd.output().unwrap();
        serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap()
    };
    let listed = failed(Some(&new));
    assert_eq!(listed.len(), 3, "{listed:#?}");
    let errors: Vec<&str> = listed
        .iter()
        .map(|f| f["last_error"].as_str().unwrap())
        .collect();
    assert_eq!(
        errors.iter().filter(|e| e.contains("unsigned")).count(),
        2,
        "{errors:?}"
    );
    assert_eq!(
        errors
            .iter()
            .filter(|e| e.contains("not one of this grid's keys"))
            .count(),
        1,
        "{errors:?}"
    );
    assert!(
        listed.iter().all(|f| f["record"] == "signed"),
        "records are signed"
    );
    assert!(failed(None).iter().all(|f| f["record"] == "unchecked"));
}

#[test]
fn a_signature_holds_only_for_its_own_namespace_and_kind() {
    use common::beanstalk::{Client, PutOptions};
    use common::sign::{Key, Keys, Kind};
    use common::wire::{Heartbeat, Job};
    let world = World::new(&[]);
    let key_file = world.dir.path().join("grid.key");
    let out = bin::command("gridctl")
        .args(["keygen", key_file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let key = Key::load(&key_file).unwrap();
    let ours = Keys::new("e2e", key.clone(), vec![]);
    let alpha = Keys::new("alpha", key, vec![]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = Client::connect(&world.server.addr()).await.unwrap();
        c.use_tube("e2e.jobs").await.unwrap();
        // Signed with the grid's key, but for another namespace, and as another kind.
        let job = |n: &str| Job::new(format!("/data/{n}.mov"), format!("{n}_optical_flow.json"));
        c.put(
            &alpha.seal(Kind::Job, &job("a").encode()),
            PutOptions::default(),
        )
        .await
        .unwrap();
        c.put(
            &ours.seal(Kind::Result, &job("b").encode()),
            PutOptions::default(),
        )
        .await
        .unwrap();
        // A well-signed envelope around an envelope whose HMAC nobody checked.
        let inner = format!(
            r#"{{"signed":2,"kid":"00000000","ns":"e2e","kind":"job","hmac":"00","body":{}}}"#,
            serde_json::to_string(&String::from_utf8(job("c").encode()).unwrap()).unwrap()
        );
        c.put(
            &ours.seal(Kind::Job, inner.as_bytes()),
            PutOptions::default(),
        )
        .await
        .unwrap();
        // Heartbeats of workers that do not exist: unsigned, and signed with a key
        // the grid does not have.
        let beat = |host: &str| Heartbeat {
            version: 1,
            host: host.into(),
            pid: 1,
            slot: 0,
            job_id: Some(1),
            video: Some("x.mov".into()),
            frames_done: 1,
            frames_total: 2,
            every_seconds: Some(3600),
            refusing: None,
            at: chrono::Utc::now(),
        };
        c.use_tube("e2e.status.ghost.1.0").await.unwrap();
        c.put(&beat("ghost").encode(), PutOptions::default())
            .await
            .unwrap();
        c.use_tube("e2e.status.forger.1.0").await.unwrap();
        let forger = Keys::new("e2e", Key::new(vec![7; 32]), vec![]);
        c.put(
            &forger.seal(Kind::Heartbeat, &beat("forger").encode()),
            PutOptions::default(),
        )
        .await
        .unwrap();
    });

    let mut env = world.env();
    env.push(("GRID_KEY_FILE", key_file.to_string_lossy().into_owned()));
    let args = ["--exit-when-idle", "2"];
    let mut f = Proc::start("filter-placed", "filter", &args, &env, &world.logs());
    assert!(f.wait(Duration::from_secs(60)).success());
    assert_eq!(world.status()["jobs"]["buried"], 3);
    let mut cmd = bin::command("gridctl");
    cmd.args(["failed", "--json"]);
    for (k, v) in &env {
        cmd.env(k, v);
    }
    let failed: Vec<serde_json::Value> =
        serde_json::from_slice(&cmd.output().unwrap().stdout).unwrap();
    let mut errors: Vec<String> = failed
        .iter()
        .map(|f| f["last_error"].as_str().unwrap().to_owned())
        .collect();
    errors.sort();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors[0].contains("an envelope inside an envelope"),
        "{errors:?}"
    );
    assert!(
        errors[1].contains("misplaced: signed as a job of namespace \"alpha\""),
        "{errors:?}"
    );
    assert!(
        errors[2].contains("misplaced: signed as a result"),
        "{errors:?}"
    );

    // gridctl with the key lists the invented workers apart, never as workers.
    let status = |with_key: bool| {
        let mut cmd = bin::command("gridctl");
        cmd.args(["status", "--json"]);
        let vars = if with_key { env.clone() } else { world.env() };
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let keyed = status(true);
    assert_eq!(keyed["workers"].as_array().unwrap().len(), 0, "{keyed}");
    let untrusted = keyed["untrusted_workers"].as_array().unwrap();
    let mut marks: Vec<&str> = untrusted
        .iter()
        .map(|w| w["signature"].as_str().unwrap())
        .collect();
    marks.sort();
    assert_eq!(marks, ["other key", "unsigned"], "{keyed}");
    let keyless = status(false);
    assert_eq!(keyless["untrusted_workers"].as_array().unwrap().len(), 0);
    assert!(keyless["workers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|w| w["signature"] != "signed"));

    // A key file others may read is refused before anything starts.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut cmd = bin::command("filter");
    cmd.args(["--exit-when-idle", "1"]);
    for (k, v) in &env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("chmod 600"), "{stderr}");
}

#[test]
fn the_whole_grid_runs_through_stunnel_with_mutual_tls() {
    use testkit::stunnel::{Pki, Stunnel};
    let name = "CAMHDA301-20170614T033000.mov";
    let mut world = World::new(&[(name, 45)]);
    let pki = Pki::new(world.dir.path(), "grid");
    let stunnel = Stunnel::start(&pki, &world.server.addr(), true);
    let file = |f: &str| pki.file(f).to_string_lossy().into_owned();
    world.extra_env = vec![
        ("GRID_SERVER", stunnel.server()),
        ("GRID_CA_FILE", file("ca.pem")),
        ("GRID_CERT_FILE", file("client.pem")),
        ("GRID_CERT_KEY_FILE", file("client.key")),
    ];
    let queued = world.queuer();
    assert!(stdout(&queued).contains("queued 1"), "{queued:?}");
    assert!(world
        .filter("filter-tls", 2)
        .wait(Duration::from_secs(120))
        .success());
    assert!(world.sink(2).wait(Duration::from_secs(60)).success());
    let json = world
        .checkout()
        .join(DAY)
        .join(name.replace(".mov", "_optical_flow.json"));
    assert!(json.exists(), "committed through TLS");
    assert_empty(&world.status());

    let gridctl = |env: &[(&str, String)]| {
        let mut cmd = bin::command("gridctl");
        cmd.arg("status");
        cmd.env("GRID_SERVER", stunnel.server());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    // Without a client certificate the terminator refuses the connection.
    let out = gridctl(&[("GRID_CA_FILE", file("ca.pem"))]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{err}");
    assert!(
        err.contains("alert"),
        "the server's refusal is named: {err}"
    );
    // A server certificate from another CA is refused, and the error says where to look.
    let other = Pki::new(world.dir.path(), "other");
    let out = gridctl(&[
        (
            "GRID_CA_FILE",
            other.file("ca.pem").to_string_lossy().into_owned(),
        ),
        ("GRID_CERT_FILE", file("client.pem")),
        ("GRID_CERT_KEY_FILE", file("client.key")),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{err}");
    assert!(
        err.contains("TLS with") && err.contains("GRID_CA_FILE"),
        "{err}"
    );
}

#[test]
fn a_filter_whose_key_the_grid_rotated_away_from_releases_its_jobs_untouched_and_exits_2() {
    let names = [
        "CAMHDA301-20170614T010000.mov",
        "CAMHDA301-20170614T020000.mov",
    ];
    let world = World::new(&[(names[0], 30), (names[1], 30)]);
    let ((grid_key, grid_id), (stale_key, stale_id)) =
        (world.keygen("grid.key"), world.keygen("stale.key"));
    let with_key = |key: &Path| {
        let mut env = world.env();
        env.push(("GRID_KEY_FILE", key.to_string_lossy().into_owned()));
        env
    };
    let start_stale = |name: &str| {
        let archive = world.archive();
        let args = [
            "--exit-when-idle",
            "20",
            "--scale",
            "0.5",
            "--allow-source",
            &archive,
        ];
        Proc::start(name, "filter", &args, &with_key(&stale_key), &world.logs())
    };
    // Started before anything is queued: no key marker yet, so the filter learns it from
    // the first job it reserves (or, if the queuer was quicker, at its start).
    let mut early = start_stale("filter-stale-early");
    // The grid rotates to a new key, still accepting the old: its marker is signed
    // with the new key and co-signed with the old, which the stale filters can check.
    let mut queue = bin::command("queuer");
    queue
        .args(["--checkout", world.checkout().to_str().unwrap()])
        .arg(world.archive());
    for (k, v) in with_key(&grid_key) {
        queue.env(k, v);
    }
    queue.env("GRID_ALSO_ACCEPT_KEY_FILES", &stale_key);
    let queued = queue.output().unwrap();
    assert!(stdout(&queued).contains("queued 2"), "{queued:?}");
    // Started after: the key marker says so at once.
    let mut late = start_stale("filter-stale-late");
    for f in [&mut early, &mut late] {
        assert_eq!(
            f.wait(Duration::from_secs(60)).code(),
            Some(2),
            "{}",
            f.log()
        );
        let log = f.log();
        assert!(
            log.contains(&format!("signed with key {grid_id}")) && log.contains(&stale_id),
            "names the grid's key and its own: {log}"
        );
    }
    let s = world.status();
    assert_eq!(s["jobs"]["ready"], 2, "released untouched: {s}");
    assert_eq!(s["jobs"]["buried"], 0, "{s}");
    assert!(world.failed().is_empty(), "no failure recorded");
    // The operator sees why: the heartbeat a stale filter leaves says so.
    let said: Vec<&serde_json::Value> = ["workers", "dead_workers"]
        .iter()
        .flat_map(|k| s[*k].as_array().unwrap())
        .filter(|w| {
            w["refusing"]
                .as_str()
                .is_some_and(|r| r.contains("stale key"))
        })
        .collect();
    assert!(!said.is_empty(), "a stale filter leaves its reason: {s}");
    // A filter with the grid's key analyses them.
    let archive = world.archive();
    let args = [
        "--exit-when-idle",
        "3",
        "--scale",
        "0.5",
        "--allow-source",
        &archive,
    ];
    let mut good = Proc::start(
        "filter-good",
        "filter",
        &args,
        &with_key(&grid_key),
        &world.logs(),
    );
    assert!(
        good.wait(Duration::from_secs(120)).success(),
        "{}",
        good.log()
    );
    assert_eq!(world.status()["results"]["ready"], 2);
}

/// Puts `n` key markers no key of the grid made (an unknown key id, an HMAC of zeros,
/// delayed less than the real one) and a job signed with that unknown key.
fn put_fake_markers_and_a_job(world: &World, n: usize, video: &str, output: &str) -> String {
    use common::beanstalk::{Client, PutOptions};
    use common::sign::{Key, Keys, Kind};
    let intruder = Keys::new("e2e", Key::new(vec![9; 32]), vec![]);
    let kid = intruder.signing_id().unwrap().to_owned();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = Client::connect(&world.server.addr()).await.unwrap();
        c.use_tube("e2e.key").await.unwrap();
        for i in 0..n {
            let fake = serde_json::json!({
                "signed": 2, "kid": kid, "ns": "e2e", "kind": "marker",
                "hmac": "00".repeat(32), "body": format!("{{\"key\":\"{kid}\",\"n\":{i}}}")
            });
            let options = PutOptions {
                priority: 0,
                delay: 1_000_000 + i as u32,
                ttr: 60,
            };
            c.put(fake.to_string().as_bytes(), options).await.unwrap();
        }
        c.use_tube("e2e.jobs").await.unwrap();
        let job = common::wire::Job::new(video.to_owned(), output.to_owned());
        // After the grid's own jobs (a larger priority number comes later).
        let options = PutOptions {
            priority: 5000,
            ..PutOptions::default()
        };
        c.put(&intruder.seal(Kind::Job, &job.encode()), options)
            .await
            .unwrap();
    });
    kid
}

#[test]
fn key_markers_nobody_can_verify_stop_no_filter_and_the_queuer_removes_them() {
    let name = "CAMHDA301-20170614T010000.mov";
    let world = World::new(&[(name, 30)]);
    let (grid_key, grid_id) = world.keygen("grid.key");
    let mut env = world.env();
    env.push(("GRID_KEY_FILE", grid_key.to_string_lossy().into_owned()));
    let queue = || {
        let mut q = bin::command("queuer");
        q.args(["--checkout", world.checkout().to_str().unwrap()])
            .arg(world.archive());
        for (k, v) in &env {
            q.env(k, v);
        }
        q.output().unwrap()
    };
    let marker_said = || {
        let mut cmd = bin::command("gridctl");
        cmd.args(["status", "--json"]);
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let s: serde_json::Value = serde_json::from_slice(&cmd.output().unwrap().stdout).unwrap();
        s["key_marker"].as_str().unwrap_or_default().to_owned()
    };
    assert!(stdout(&queue()).contains("queued 1"));
    // Six fakes ahead of the real marker (once one more than a queuer pass removed),
    // and a job "signed" by their key.
    let video = format!("{}/{DAY}/{name}", world.archive());
    let fake = put_fake_markers_and_a_job(&world, 6, &video, "x_optical_flow.json");
    let marker = marker_said();
    assert!(
        marker.contains("UNVERIFIED") && marker.contains(&fake),
        "status reports the fake: {marker}"
    );
    // A filter with the grid's key neither stops nor buries: it analyses the grid's
    // job and gives the unverifiable one back untouched.
    let archive = world.archive();
    let args = [
        "--exit-when-idle",
        "3",
        "--scale",
        "0.5",
        "--allow-source",
        &archive,
    ];
    let mut f = Proc::start("filter-1", "filter", &args, &env, &world.logs());
    assert_eq!(
        f.wait(Duration::from_secs(120)).code(),
        Some(0),
        "{}",
        f.log()
    );
    let s = world.status();
    assert_eq!(s["results"]["ready"], 1, "{s}");
    assert_eq!(s["jobs"]["buried"], 0, "given back, not buried: {s}");
    assert!(world.failed().is_empty());
    // The queuer's next pass removes every fake; then the junk is known for junk.
    let again = queue();
    assert!(again.status.success(), "{again:?}");
    let marker = marker_said();
    assert!(
        marker.contains(&grid_id) && marker.ends_with("verified"),
        "{marker}"
    );
    let mut f = Proc::start("filter-2", "filter", &args, &env, &world.logs());
    assert_eq!(
        f.wait(Duration::from_secs(120)).code(),
        Some(0),
        "{}",
        f.log()
    );
    assert_eq!(world.status()["jobs"]["buried"], 1);
    let failed = world.failed();
    let error = failed[0]["last_error"].as_str().unwrap();
    assert!(error.contains(&fake), "{error}");
}

#[test]
fn a_filter_with_a_stale_key_and_no_marker_gives_jobs_back_untouched_and_says_so() {
    use common::beanstalk::Client;
    let name = "CAMHDA301-20170614T010000.mov";
    let world = World::new(&[(name, 30)]);
    let ((grid_key, _), (stale_key, stale_id)) =
        (world.keygen("grid.key"), world.keygen("stale.key"));
    let with_key = |key: &Path| {
        let mut env = world.env();
        env.push(("GRID_KEY_FILE", key.to_string_lossy().into_owned()));
        env
    };
    let mut q = bin::command("queuer");
    q.args(["--checkout", world.checkout().to_str().unwrap()])
        .arg(world.archive());
    for (k, v) in with_key(&grid_key) {
        q.env(k, v);
    }
    assert!(stdout(&q.output().unwrap()).contains("queued 1"));
    // The marker deleted (anyone who reaches the server can).
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = Client::connect(&world.server.addr()).await.unwrap();
        c.use_tube("e2e.key").await.unwrap();
        let marker = c.peek_delayed().await.unwrap();
        c.delete(marker.id).await.unwrap();
    });
    let archive = world.archive();
    let args = ["--scale", "0.5", "--allow-source", &archive];
    let mut f = Proc::start(
        "filter-stale",
        "filter",
        &args,
        &with_key(&stale_key),
        &world.logs(),
    );
    // It says why it is idle, in its heartbeat.
    let started = Instant::now();
    let refusing = loop {
        let s = world.status();
        if let Some(why) = s["workers"][0]["refusing"].as_str() {
            break why.to_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{s}\n{}",
            f.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(refusing.contains(&stale_id), "{refusing}");
    f.signal("-TERM");
    assert!(f.wait(Duration::from_secs(60)).success(), "{}", f.log());
    let s = world.status();
    assert_eq!(
        (s["jobs"]["ready"].as_u64(), s["jobs"]["buried"].as_u64()),
        (Some(1), Some(0)),
        "{s}"
    );
    assert!(world.failed().is_empty());
}

#[test]
fn a_queuer_as_root_over_the_services_checkout_queues_nothing_and_one_without_the_key_is_warned() {
    let world = World::new(&[("CAMHDA301-20170614T010000.mov", 10)]);
    let (grid_key, grid_id) = world.keygen("grid.key");
    let with_key = |key: Option<&Path>| {
        let mut cmd = bin::command("queuer");
        cmd.args(["--checkout", world.checkout().to_str().unwrap()])
            .arg(world.archive());
        for (k, v) in world.env() {
            cmd.env(k, v);
        }
        if let Some(key) = key {
            cmd.env("GRID_KEY_FILE", key);
        }
        cmd
    };
    // The grid's queuer signs; its marker says with which key.
    let first = with_key(Some(&grid_key))
        .arg("--limit")
        .arg("0")
        .output()
        .unwrap();
    assert!(first.status.success(), "{first:?}");

    // As root over a checkout the services own: refused, naming the user to run it as.
    assert!(
        rustix::process::geteuid().is_root(),
        "this spec runs as root, as CI does"
    );
    let checkout = world.checkout();
    std::os::unix::fs::chown(&checkout, Some(65534), None).unwrap();
    let as_root = with_key(Some(&grid_key)).output().unwrap();
    let err = String::from_utf8_lossy(&as_root.stderr);
    assert_eq!(as_root.status.code(), Some(2), "{err}");
    assert!(err.contains("runuser -u "), "{err}");
    assert_eq!(world.status()["jobs"]["ready"], 0, "nothing queued");
    std::os::unix::fs::chown(&checkout, Some(0), None).unwrap();

    // By hand, without the services' settings: it cannot tell the grid's marker from a
    // fake anyone could put (which once stopped every unkeyed queuer), so it queues,
    // saying what that risks and naming the key to give.
    let keyless = with_key(None).output().unwrap();
    let err = String::from_utf8_lossy(&keyless.stderr);
    assert!(keyless.status.success(), "{err}");
    assert!(
        err.contains(&grid_id) && err.contains("GRID_KEY_FILE"),
        "{err}"
    );
    assert!(stdout(&keyless).contains("queued 1"), "{keyless:?}");
}

#[test]
fn a_running_jobs_progress_shows_between_touches() {
    let (world, gated) = gated_job_world();
    // Touches minutes apart: the progress must not wait for them.
    let mut f = world.filter_touching("filter-slow-touch", 2, 250, &[]);
    gated.gate.wait_held(1, HOLD_LIMIT);
    let start = Instant::now();
    loop {
        let s = world.status();
        let w = &s["workers"][0];
        if w["frames_done"].as_u64().unwrap_or(0) > 0 {
            assert_eq!(w["frames_total"], 59, "{s}");
            break;
        }
        assert!(
            start.elapsed() < HOLD_LIMIT,
            "no progress in the heartbeat while the job is held: {s}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    gated.gate.open();
    assert!(f.wait(Duration::from_secs(120)).success(), "{}", f.log());
}

#[test]
fn filters_sharing_a_grid_archive_budget_never_have_more_requests_at_the_archive_than_it() {
    // Three filters of two slots against nginx, which refuses (503) a fourth request in
    // flight from this one client address (each reply at 20 KB/s, so they overlap):
    // with GRID_ARCHIVE_CONNECTIONS=3 (the sink keeps the tokens) it never has to.
    // Without the budget, 22 of 64 requests were refused (and retried).
    let names: Vec<String> = (0..6)
        .map(|i| format!("CAMHDA301-20170614T0{i}0000.mov"))
        .collect();
    let clips: Vec<(&str, u32)> = names.iter().map(|n| (n.as_str(), 40)).collect();
    let mut world = World::new(&clips);
    let nginx = testkit::Nginx::start(
        &world.dir.path().join("archive"),
        &testkit::NginxOptions {
            connections_per_client: Some(3),
            bytes_per_second_per_reply: Some(20_000),
            ..Default::default()
        },
    );
    world
        .served
        .borrow_mut()
        .push(format!("{}/files/", nginx.url()));
    world
        .extra_env
        .push(("GRID_ARCHIVE_CONNECTIONS", "3".to_owned()));
    let mut sink = world.sink(6);
    let mut q = bin::command("queuer");
    q.args(["--checkout", world.checkout().to_str().unwrap(), "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in world.env() {
        q.env(k, v);
    }
    let mut child = q.spawn().unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        for name in &names {
            writeln!(stdin, "{}/files/{DAY}/{name}", nginx.url()).unwrap();
        }
    }
    let queued = child.wait_with_output().unwrap();
    assert!(stdout(&queued).contains("queued 6"), "{queued:?}");
    let mut filters: Vec<Proc> = (0..3)
        .map(|i| world.filter_with(&format!("filter-{i}"), 4, &["--jobs", "2"]))
        .collect();
    for f in &mut filters {
        assert!(f.wait(Duration::from_secs(180)).success(), "{}", f.log());
    }
    assert!(
        sink.wait(Duration::from_secs(120)).success(),
        "{}",
        sink.log()
    );
    let statuses = nginx.statuses();
    let refused = statuses.iter().filter(|&&s| s == 503).count();
    assert!(statuses.len() > 30, "{} requests", statuses.len());
    assert_eq!(refused, 0, "requests beyond the budget reached the archive");
    let s = world.status();
    assert_eq!(s["archive"]["total"], 3, "{s}");
    assert_eq!(s["archive"]["in_use"], 0, "every token given back: {s}");
    let committed = git(&world.checkout(), &["log", "--name-only", "--format="]);
    assert_eq!(
        committed.matches("_optical_flow.json").count(),
        6,
        "{committed}"
    );
}

#[test]
fn a_video_discarded_for_good_is_not_queued_again() {
    use common::beanstalk::Client;
    let world = World::new(&[("CAMHDA301-20170614T010000.mov", 10)]);
    assert!(stdout(&world.queuer()).contains("queued 1"));
    // Its job failed for good (buried, as a filter buries one).
    let rt = tokio::runtime::Runtime::new().unwrap();
    let id = rt.block_on(async {
        let mut c = Client::connect(&world.server.addr()).await.unwrap();
        c.watch("e2e.jobs").await.unwrap();
        let job = c.reserve_with_timeout(5).await.unwrap();
        c.bury(job.id, 0).await.unwrap();
        job.id
    });
    let checkout = world.checkout();
    let out = world.run(
        "gridctl",
        &[
            "discard",
            "--forever",
            "--checkout",
            checkout.to_str().unwrap(),
            &id.to_string(),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout(&out).contains("skipped for good: 1 video(s)"),
        "{out:?}"
    );
    // The next pass leaves it alone (issue 35: it came straight back before).
    let again = world.queuer();
    assert!(
        stdout(&again).contains("queued 0") && stdout(&again).contains("skipped for good 1"),
        "{again:?}"
    );
    assert_eq!(world.status()["jobs"]["ready"], 0);
}
