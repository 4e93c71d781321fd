//! The queuer is crash-safe: killed at any moment it never queues again what it already
//! put (its ledger is a journal written as it goes), and a second queuer on the same
//! checkout is refused while the first runs, so no video is ever queued twice.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::beanstalk::{Client, PutOptions};
use common::wire::Job;
use testkit::Beanstalkd;

struct World {
    server: Beanstalkd,
    dir: tempfile::TempDir,
}

impl World {
    /// A checkout and a list of `n` archive URLs (never opened without --verify).
    fn new(n: usize) -> World {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("checkout/.git")).unwrap();
        let list: String = (0..n)
            .map(|i| {
                format!(
                    "https://archive.example/files/RS03ASHS/PN03B/06-CAMHDA301/2017/06/14/CAMHDA301-{i:06}.mov\n"
                )
            })
            .collect();
        std::fs::write(dir.path().join("list.txt"), list).unwrap();
        World {
            server: Beanstalkd::start().unwrap(),
            dir,
        }
    }

    fn list(&self) -> PathBuf {
        self.dir.path().join("list.txt")
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_queuer"));
        cmd.args([
            "--checkout",
            self.dir.path().join("checkout").to_str().unwrap(),
            self.list().to_str().unwrap(),
        ])
        .env("GRID_SERVER", self.server.addr())
        .env("GRID_NAMESPACE", "q")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        cmd
    }

    /// Started with its output discarded: a pipe nobody reads would stall it.
    fn spawn(&self) -> Child {
        self.command()
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    fn run(&self) -> Output {
        self.command().output().unwrap()
    }

    fn rt(&self) -> tokio::runtime::Runtime {
        tokio::runtime::Runtime::new().unwrap()
    }

    /// Jobs put into q.jobs so far (a count that only grows).
    fn total_put(&self) -> u64 {
        self.rt().block_on(async {
            let mut c = Client::connect(&self.server.addr()).await.unwrap();
            c.stats_tube("q.jobs").await.map_or(0, |s| s.total_jobs)
        })
    }

    /// Every job in q.jobs: (how many, how many distinct outputs).
    fn jobs(&self) -> (usize, usize) {
        self.rt().block_on(async {
            let mut c = Client::connect(&self.server.addr()).await.unwrap();
            c.watch("q.jobs").await.unwrap();
            let (mut n, mut outputs) = (0, HashSet::new());
            while let Ok(j) = c.reserve_with_timeout(0).await {
                n += 1;
                outputs.insert(Job::decode(&j.body).unwrap().output);
            }
            (n, outputs.len())
        })
    }
}

fn summary(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or("")
        .to_owned()
}

#[test]
fn a_queuer_killed_at_any_moment_never_queues_a_video_twice() {
    let world = World::new(4000);
    // Kill it as soon as it has made some progress, three times at growing points; how
    // fast it queues does not matter, only that each kill lands mid-pass.
    for at_least in [300, 1500, 2800] {
        let mut q = world.spawn();
        let start = Instant::now();
        while world.total_put() < at_least {
            if q.try_wait().unwrap().is_some() {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "no progress");
            std::thread::sleep(Duration::from_millis(2));
        }
        q.kill().unwrap(); // SIGKILL
        q.wait().unwrap();
    }
    let last = world.run();
    assert!(
        last.status.success(),
        "{}",
        String::from_utf8_lossy(&last.stderr)
    );
    let (n, distinct) = world.jobs();
    assert_eq!(
        (n, distinct),
        (4000, 4000),
        "every video queued exactly once"
    );
    assert_eq!(
        world.total_put(),
        4000,
        "and never put twice: {}",
        summary(&last)
    );
}

#[test]
fn a_put_made_just_before_the_kill_is_found_and_not_repeated() {
    let world = World::new(2);
    let ledger = world
        .dir
        .path()
        .join("checkout/.git/camhd-grid-queued-q.json");
    let output = "RS03ASHS/PN03B/06-CAMHDA301/2017/06/14/CAMHDA301-000001_optical_flow.json";
    // What a queuer killed between its put and the line recording the id leaves: the
    // job in the tube, and in the journal only the intent.
    let id = world.rt().block_on(async {
        let mut c = Client::connect(&world.server.addr()).await.unwrap();
        c.use_tube("q.jobs").await.unwrap();
        let job = Job::new(
            "https://archive.example/files/RS03ASHS/PN03B/06-CAMHDA301/2017/06/14/CAMHDA301-000001.mov",
            output,
        );
        c.put(b"noise", PutOptions::default()).await.unwrap();
        c.put(&job.encode(), PutOptions::default()).await.unwrap()
    });
    std::fs::write(
        &ledger,
        format!(
            "{{\"server\":\"{}\"}}\n{{\"intent\":\"{output}\",\"after\":0}}\n",
            world.server.addr()
        ),
    )
    .unwrap();
    let out = world.run();
    assert_eq!(
        summary(&out),
        "queued 1, already done 0, in flight 1, out of date range 0, rejected 0",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let journal = std::fs::read_to_string(&ledger).unwrap();
    assert!(
        journal.contains(&format!("{{\"put\":\"{output}\",\"id\":{id}}}")),
        "{journal}"
    );
}

#[test]
fn a_second_queuer_on_the_same_checkout_is_refused_while_the_first_runs() {
    let world = World::new(3000);
    let first = world.command().stdout(Stdio::null()).spawn().unwrap();
    // Start the second only once the first is surely running (it has queued something).
    let start = Instant::now();
    while world.total_put() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "first never started"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let second = world.run();
    let first = first.wait_with_output().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    if second.status.success() {
        // The first had already finished: the second found everything in flight.
        assert_eq!(
            summary(&second),
            "queued 0, already done 0, in flight 3000, out of date range 0, rejected 0"
        );
    } else {
        assert_eq!(second.status.code(), Some(75), "EX_TEMPFAIL");
        let err = String::from_utf8_lossy(&second.stderr);
        assert!(err.contains("another queuer is using the ledger"), "{err}");
    }
    assert_eq!(world.jobs(), (3000, 3000), "no video queued twice");
}

#[test]
fn the_ledger_belongs_to_the_grid_not_to_how_the_server_is_spelled() {
    let world = World::new(300);
    assert!(world.run().status.success());
    assert_eq!(world.total_put(), 300);
    // The same server by another name: nothing is queued twice.
    let port = world.server.addr().rsplit(':').next().unwrap().to_owned();
    let out = world
        .command()
        .env("GRID_SERVER", format!("localhost:{port}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        world.total_put(),
        300,
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Without its ledger, the queuer learns what is in flight from the server.
    let ledger = world
        .dir
        .path()
        .join("checkout/.git/camhd-grid-queued-q.json");
    std::fs::remove_file(&ledger).unwrap();
    let out = world.run();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("queued 0, already done 0, in flight 300"),
        "{out:?}"
    );
    assert_eq!(world.total_put(), 300);
    // A damaged one is rebuilt too, however long its lines.
    let mut junk = b"{\"grid\":\"x\"}\n{\"put\":\"".to_vec();
    junk.extend(std::iter::repeat_n(b'a', 20 << 20));
    std::fs::write(&ledger, junk).unwrap();
    let out = world.run();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(world.total_put(), 300);
    assert!(std::fs::metadata(&ledger).unwrap().len() < 100_000);
}

#[test]
fn a_namespace_that_could_leave_the_checkout_is_refused_before_any_file_is_written() {
    let world = World::new(1);
    for ns in ["../../../../tmp/x", "a/b", ".."] {
        let out = world
            .command()
            .args(["--dry-run"])
            .env("GRID_NAMESPACE", ns)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{ns}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("is not a namespace"),
            "{out:?}"
        );
    }
    let written: Vec<_> = std::fs::read_dir(world.dir.path().join("checkout/.git"))
        .unwrap()
        .collect();
    assert!(written.is_empty(), "{written:?}");
}

/// Puts and deletes `n` jobs in a tube of their own: ids used up, as a busy server's are.
fn churn(world: &World, n: usize) {
    world.rt().block_on(async {
        let mut c = Client::connect(&world.server.addr()).await.unwrap();
        c.use_tube("churn").await.unwrap();
        for _ in 0..n {
            let id = c.put(b"x", PutOptions::default()).await.unwrap();
            c.delete(id).await.unwrap();
        }
    })
}

#[test]
fn a_rebuild_stops_at_the_oldest_job_in_the_tube_whatever_junk_it_holds() {
    let world = World::new(3);
    let ledger = world
        .dir
        .path()
        .join("checkout/.git/camhd-grid-queued-q.json");
    let stats_jobs = || {
        world.rt().block_on(async {
            let mut c = Client::connect(&world.server.addr()).await.unwrap();
            c.stats().await.unwrap().cmd_stats_job
        })
    };
    let put = |tube: &'static str, delay: u32| {
        world.rt().block_on(async {
            let mut c = Client::connect(&world.server.addr()).await.unwrap();
            c.use_tube(tube).await.unwrap();
            let options = PutOptions {
                delay,
                ..PutOptions::default()
            };
            c.put(b"junk", options).await.unwrap()
        })
    };
    // Junk in the marker tube is cleaned, never a reason to stop.
    for _ in 0..6 {
        put("q.grid", 3600);
    }
    // The grid's marker is made first, its jobs come after many ids used elsewhere.
    std::fs::write(world.list(), "").unwrap();
    assert!(world.run().status.success());
    churn(&world, 3000);
    std::fs::write(
        world.list(),
        (0..3)
            .map(|i| format!("https://archive.example/files/RS03ASHS/PN03B/06-CAMHDA301/2017/06/14/CAMHDA301-{i:06}.mov\n"))
            .collect::<String>(),
    )
    .unwrap();
    let first = world.run();
    assert!(summary(&first).starts_with("queued 3"), "{first:?}");
    put("q.jobs", 0);

    // Without its ledger, the queuer finds its three jobs (and the junk) in the newest
    // ids and stops there, rather than walking every id below them.
    std::fs::remove_file(&ledger).unwrap();
    let before = stats_jobs();
    let again = world.run();
    assert!(summary(&again).contains("queued 0"), "{again:?}");
    let asked = stats_jobs() - before;
    assert!(
        asked <= 1_000,
        "{asked} ids looked at for 4 jobs above 3,000 unused ids"
    );

    // With its marker deleted too (a new grid id), nothing is queued twice: the walk
    // goes down as far as it must.
    churn(&world, 2000);
    world.rt().block_on(async {
        let mut c = Client::connect(&world.server.addr()).await.unwrap();
        c.use_tube("q.grid").await.unwrap();
        let marker = c.peek_delayed().await.unwrap();
        c.delete(marker.id).await.unwrap();
    });
    let after = world.run();
    assert!(summary(&after).contains("queued 0"), "{after:?}");
    assert_eq!(world.total_put(), 4, "three jobs and the junk, none twice");
}
