//! The queuer against real servers: an Apache-style directory index and a lazycache
//! directory listing, with --dry-run, --since, --limit, de-duplication across runs and
//! the exit code for rejected entries.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use testkit::http::{HttpServer, Request, Response};
use testkit::Beanstalkd;

const VIDEOS: [&str; 4] = [
    "RS03ASHS/PN03B/06-CAMHDA301/2016/01/01/CAMHDA301-20160101T000000Z.mov",
    "RS03ASHS/PN03B/06-CAMHDA301/2017/06/14/CAMHDA301-20170614T000000.mov",
    "RS03ASHS/PN03B/06-CAMHDA301/2017/06/14/CAMHDA301-20170614T030000.mov",
    "RS03ASHS/PN03B/06-CAMHDA301/2017/06/15/CAMHDA301-20170615T000000.mov",
];

struct World {
    server: Beanstalkd,
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        for v in VIDEOS {
            let p = dir.path().join("files").join(v);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, b"not really a video").unwrap();
        }
        std::fs::write(dir.path().join("files/RS03ASHS/notes.txt"), b"x").unwrap();
        std::fs::create_dir_all(dir.path().join("checkout/.git")).unwrap();
        World {
            server: Beanstalkd::start().unwrap(),
            dir,
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    fn queuer(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_queuer"))
            .args([
                "--checkout",
                self.dir.path().join("checkout").to_str().unwrap(),
            ])
            .args(args)
            .env("GRID_SERVER", self.server.addr())
            .env("GRID_NAMESPACE", "q")
            .env("GRID_LOG", "warn")
            .output()
            .unwrap()
    }
}

fn summary(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned()
}

/// Asserts that a dry run succeeded (its stderr if not) and would queue `n` new videos,
/// none done, in flight, out of range or rejected.
fn assert_would_queue(out: &Output, n: usize) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        summary(out),
        format!("would queue {n}, already done 0, in flight 0, out of date range 0, rejected 0")
    );
}

/// Apache-style autoindex pages: parent and sort links, folders with a trailing slash.
fn autoindex(root: PathBuf) -> impl Fn(&Request) -> Response {
    move |req| {
        let path = root.join(req.path().trim_start_matches('/'));
        if !req.path().ends_with('/') || !path.is_dir() {
            return Response::not_found();
        }
        let mut html = String::from(
            r#"<html><body><a href="?C=N;O=D">Name</a> <a href="../">Parent Directory</a>"#,
        );
        let mut names: Vec<_> = std::fs::read_dir(&path).unwrap().flatten().collect();
        names.sort_by_key(|e| e.file_name());
        for e in names {
            let name = e.file_name().to_string_lossy().into_owned();
            let slash = if e.path().is_dir() { "/" } else { "" };
            html.push_str(&format!(r#"<a href="{name}{slash}">{name}{slash}</a>"#));
        }
        Response::new(200, "text/html", html + "</body></html>")
    }
}

/// lazycache's directory JSON.
fn lazycache(root: PathBuf) -> impl Fn(&Request) -> Response {
    move |req| {
        let rel = req
            .path()
            .strip_prefix("/v1/org/oceanobservatories/rawdata/")
            .unwrap_or("");
        let path = root.join(rel);
        if !path.is_dir() {
            return Response::new(200, "application/json", r#"{"Error": "not found"}"#);
        }
        let (mut files, mut dirs) = (Vec::new(), Vec::new());
        for e in std::fs::read_dir(&path).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.path().is_dir() {
                dirs.push(name)
            } else {
                files.push(name)
            }
        }
        let body = serde_json::json!({"Path": rel, "Files": files, "Directories": dirs});
        Response::new(200, "application/json", body.to_string())
    }
}

fn exists(dir: &Path, rel: &str) -> bool {
    dir.join(rel).exists()
}

#[test]
fn an_http_directory_index_is_followed_into_subfolders() {
    let world = World::new();
    let http = HttpServer::start(autoindex(world.root()));
    let url = format!("{}/files/RS03ASHS/", http.url());

    let dry = world.queuer(&["--dry-run", &url]);
    assert_would_queue(&dry, 4);
    let first = String::from_utf8_lossy(&dry.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        first,
        format!("would queue {}/files/{}", http.url(), VIDEOS[0])
    );

    let since = world.queuer(&["--since", "2017-06-15", &url]);
    assert_eq!(
        summary(&since),
        "queued 1, already done 0, in flight 0, out of date range 3, rejected 0"
    );
    let all = world.queuer(&[&url]);
    assert_eq!(
        summary(&all),
        "queued 3, already done 0, in flight 1, out of date range 0, rejected 0"
    );
    assert!(
        !exists(&world.root(), "checkout/RS03ASHS"),
        "the queuer writes nothing into the checkout"
    );
}

#[test]
fn a_busy_archive_answering_503_is_waited_out_not_rejected() {
    // Every listing page is refused once (503, Retry-After: 1), as a busy Apache does;
    // the queuer waits as told, asks again, and lists everything.
    let world = World::new();
    let index = autoindex(world.root());
    let refused = std::sync::Mutex::new(std::collections::HashSet::new());
    let http = HttpServer::start(move |req| {
        if refused.lock().unwrap().insert(req.path().to_owned()) {
            let mut busy = Response::new(503, "text/plain", "busy");
            busy.headers.push(("Retry-After".into(), "1".into()));
            return busy;
        }
        index(req)
    });
    let url = format!("{}/files/RS03ASHS/", http.url());
    let dry = world.queuer(&["--dry-run", &url]);
    assert_would_queue(&dry, 4);
    // Each page was asked twice: refused, then served.
    assert_eq!(http.requests() % 2, 0, "{} requests", http.requests());
}

#[test]
fn a_lazycache_directory_is_listed_and_limit_caps_the_queue() {
    let world = World::new();
    let cache = HttpServer::start(lazycache(world.root()));
    let url = format!(
        "{}/v1/org/oceanobservatories/rawdata/files/RS03ASHS/",
        cache.url()
    );
    assert_eq!(
        summary(&world.queuer(&["--limit", "2", &url])),
        "queued 2, already done 0, in flight 0, out of date range 0, rejected 0"
    );
    assert_eq!(
        summary(&world.queuer(&[&url])),
        "queued 2, already done 0, in flight 2, out of date range 0, rejected 0"
    );
    // A JSON in the checkout counts as done.
    let done = world
        .root()
        .join("checkout")
        .join(VIDEOS[3].replace(".mov", "_optical_flow.json"));
    std::fs::create_dir_all(done.parent().unwrap()).unwrap();
    std::fs::write(&done, "{}").unwrap();
    let again = world.queuer(&[&url]);
    assert_eq!(
        summary(&again),
        "queued 0, already done 1, in flight 3, out of date range 0, rejected 0"
    );
}

#[test]
fn rejected_entries_are_listed_and_exit_3() {
    let world = World::new();
    let list = world.root().join("list.txt");
    std::fs::write(
        &list,
        format!(
            "/nowhere/a.mov\nhttps://h/files/{}\nhttps://h/files/x.txt\nhttps://h/files/RS03/.git/a b.mov\n",
            VIDEOS[1]
        ),
    )
    .unwrap();
    let out = world.queuer(&[list.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        summary(&out),
        "queued 1, already done 0, in flight 0, out of date range 0, rejected 3"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("rejected: https://h/files/RS03/.git/a b.mov: refusing output path"),
        "{stderr}"
    );
    assert!(
        stderr.contains("rejected: /nowhere/a.mov: no /files/"),
        "{stderr}"
    );
    let port = testkit::free_port().unwrap();
    let down = world.queuer(&[&format!("http://127.0.0.1:{port}/files/")]);
    assert_eq!(down.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&down.stderr).contains("cannot reach"));
}

#[test]
fn verify_rejects_videos_that_cannot_be_opened() {
    let world = World::new();
    let folder = world.root().join("files");
    let out = world.queuer(&["--verify", folder.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        summary(&out),
        "queued 0, already done 0, in flight 0, out of date range 0, rejected 4"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a QuickTime"));
}

/// Listings held at the server: how many are in flight now, the most ever, and whether
/// the test has let them go.
type Held = std::sync::Arc<(std::sync::Mutex<(usize, usize, bool)>, std::sync::Condvar)>;

/// A queuer's dry run over a hundred day folders whose listings the server holds until
/// the test lets go, once `held` of them are in flight at once (so the listings in flight
/// are counted without betting on speed). Returns the most ever in flight, and the run.
fn list_a_hundred_days_holding(
    world: &World,
    held: usize,
    env: &[(&'static str, &'static str)],
) -> (usize, Output) {
    let days: Vec<String> = (0..100)
        .map(|i| {
            let (month, day) = (6 + i / 30, 1 + i % 30);
            format!("RS03ASHS/PN03B/06-CAMHDA301/2018/{month:02}/{day:02}")
        })
        .collect();
    for d in &days {
        let p = world.root().join("files").join(d);
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("CAMHDA301-20180601T000000.mov"), b"x").unwrap();
    }
    let gate: Held = Default::default();
    let index = autoindex(world.root());
    let at_server = gate.clone();
    let http = HttpServer::start(move |req| {
        let is_day = req.path().matches('/').count() == 8 && req.path().contains("/2018/");
        if is_day {
            let (lock, cv) = &*at_server;
            let mut g = lock.lock().unwrap();
            g.0 += 1;
            g.1 = g.1.max(g.0);
            cv.notify_all();
            while !g.2 {
                g = cv.wait(g).unwrap();
            }
            g.0 -= 1;
        }
        index(req)
    });
    let url = format!("{}/files/RS03ASHS/PN03B/06-CAMHDA301/2018/", http.url());
    let run = {
        let (root, server) = (world.root(), world.server.addr());
        let env = env.to_vec();
        std::thread::spawn(move || {
            Command::new(env!("CARGO_BIN_EXE_queuer"))
                .args(["--checkout", root.join("checkout").to_str().unwrap()])
                .args(["--dry-run", &url])
                .env("GRID_SERVER", server)
                .env("GRID_NAMESPACE", "q")
                .env("GRID_LOG", "warn")
                .envs(env)
                .output()
                .unwrap()
        })
    };
    {
        let (lock, cv) = &*gate;
        let mut g = lock.lock().unwrap();
        let started = std::time::Instant::now();
        while g.0 < held {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(60),
                "only {} listings at once",
                g.0
            );
            g = cv
                .wait_timeout(g, std::time::Duration::from_millis(100))
                .unwrap()
                .0;
        }
        g.2 = true;
        cv.notify_all();
    }
    let out = run.join().unwrap();
    assert_would_queue(&out, 100);
    let listed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("would queue "))
        .filter(|l| l.contains("/2018/"))
        .map(str::to_owned)
        .collect();
    let expected: Vec<String> = days
        .iter()
        .map(|d| format!("{}/files/{d}/CAMHDA301-20180601T000000.mov", http.url()))
        .collect();
    assert_eq!(
        listed, expected,
        "in the order of the index, folder by folder"
    );
    let most = gate.0.lock().unwrap().1;
    (most, out)
}

#[test]
fn an_http_index_is_listed_many_folders_at_a_time_in_order_within_the_hosts_budget() {
    // The default: as many listings at once as a filter has requests to one host (24).
    let (most, _) = list_a_hundred_days_holding(&World::new(), 24, &[]);
    assert_eq!(most, 24, "listings in flight at most, by default");
    // An operator's lower budget for the archive.
    let env = [("QUEUER_HTTP_CONNECTIONS", "5")];
    let (most, _) = list_a_hundred_days_holding(&World::new(), 5, &env);
    assert_eq!(
        most, 5,
        "listings in flight at most, QUEUER_HTTP_CONNECTIONS=5"
    );
}

#[test]
fn with_a_grid_archive_budget_the_queuer_lists_within_its_tokens_and_gives_them_back() {
    use common::beanstalk::{Client, PutOptions};
    let world = World::new();
    // The grid's budget: three tokens (the sink keeps them; here the test puts them).
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tube_now = |rt: &tokio::runtime::Runtime| {
        rt.block_on(async {
            let mut c = Client::connect(&world.server.addr()).await.unwrap();
            let s = c.stats_tube("q.archive").await.unwrap();
            (s.current_jobs_ready, s.current_jobs_reserved)
        })
    };
    rt.block_on(async {
        let mut c = Client::connect(&world.server.addr()).await.unwrap();
        c.use_tube("q.archive").await.unwrap();
        for _ in 0..3 {
            let options = PutOptions {
                priority: 0,
                delay: 0,
                ttr: 60,
            };
            c.put(br#"{"archive_token": 1}"#, options).await.unwrap();
        }
    });
    let env = [("GRID_ARCHIVE_CONNECTIONS", "3")];
    let (most, _) = list_a_hundred_days_holding(&world, 3, &env);
    assert_eq!(
        most, 3,
        "never more listings in flight than the grid's tokens"
    );
    assert_eq!(tube_now(&rt), (3, 0), "every token given back, none lost");
}

#[test]
fn an_https_index_is_listed_trusting_only_the_ca_file() {
    let world = World::new();
    let pki = testkit::stunnel::Pki::new(world.dir.path(), "archive");
    let nginx = testkit::Nginx::start(
        &world.root(),
        &testkit::NginxOptions {
            tls: Some((pki.file("server.pem"), pki.file("server.key"))),
            autoindex: true,
            ..Default::default()
        },
    );
    let url = format!("{}/files/RS03ASHS/", nginx.url());

    // The public web's CAs by default: the page is rejected, saying what to do.
    let untrusted = world.queuer(&["--dry-run", &url]);
    assert_eq!(untrusted.status.code(), Some(3), "{}", summary(&untrusted));
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert!(stderr.contains("--http-ca-file"), "{stderr}");

    let ca = pki.file("ca.pem");
    let trusted = world.queuer(&["--dry-run", "--http-ca-file", ca.to_str().unwrap(), &url]);
    assert_would_queue(&trusted, 4);
}
