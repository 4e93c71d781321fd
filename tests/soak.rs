//! A chaos soak of the whole grid on one machine: real beanstalkd with a binlog, four
//! filters (through a proxy that cuts and blackholes their connections) and the sink,
//! while a chaos loop SIGKILLs filters and the sink, restarts beanstalkd and runs the
//! queuer again. It ends by itself and reports; the spec is 0 lost, 0 committed twice
//! and empty tubes. `scripts/soak` runs the long version (SOAK_JOBS, default 1,000);
//! the suite runs 100 jobs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use std::time::{Duration, Instant};

use testkit::git::git;
use testkit::{bin, Proc, Proxy};

/// The soak's knobs, from the environment.
#[derive(Debug)]
struct Settings {
    jobs: usize,
    filters: usize,
    /// Pause between two chaos events.
    chaos_every: Duration,
    /// How long the chaos goes on (it also stops once everything is committed).
    chaos_for: Duration,
    /// How long the grid may take to settle after the chaos, before the soak fails.
    settle_limit: Duration,
    seed: u64,
}

impl Settings {
    fn from_env() -> Settings {
        let num = |k: &str, d: u64| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(d)
        };
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Settings {
            jobs: num("SOAK_JOBS", 100) as usize,
            filters: num("SOAK_FILTERS", 4) as usize,
            chaos_every: Duration::from_millis(num("SOAK_CHAOS_MS", 100)),
            chaos_for: Duration::from_secs(num("SOAK_CHAOS_SECS", 20)),
            settle_limit: Duration::from_secs(num("SOAK_SETTLE_SECS", 240)),
            seed: num("SOAK_SEED", seed).max(1),
        }
    }
}

/// xorshift64*: enough randomness for chaos, and a seed that replays a run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

struct Grid {
    settings: Settings,
    /// The server, the checkout and the logs.
    base: testkit::World,
    proxy: Proxy,
    filters: Vec<Proc>,
    sink: Option<Proc>,
    started: u64,
    queued_lines: Vec<String>,
}

impl Grid {
    fn new(settings: Settings) -> Grid {
        let base = testkit::World::new("soak");
        let proxy = Proxy::start(&base.server.addr()).unwrap();
        let dir = &base.dir;
        let day = dir
            .path()
            .join("archive/files/RS03ASHS/PN03B/06-CAMHDA301/2017/06/14");
        std::fs::create_dir_all(&day).unwrap();
        // One small clip, hard-linked under as many names as there are jobs.
        let clip = dir.path().join("clip.mov");
        testkit::clip::prores(&clip, "192x108", 30);
        for i in 0..settings.jobs {
            std::fs::hard_link(&clip, day.join(format!("CAMHDA301-20170614T{i:06}.mov"))).unwrap();
        }
        Grid {
            settings,
            base,
            proxy,
            filters: Vec::new(),
            sink: None,
            started: 0,
            queued_lines: Vec::new(),
        }
    }

    fn checkout(&self) -> PathBuf {
        self.base.checkout()
    }

    fn spawn(&mut self, program: &str, args: &[&str], server: &str) -> Proc {
        self.started += 1;
        let name = format!("{program}-{}", self.started);
        let env = [
            ("GRID_SERVER", server.to_owned()),
            ("GRID_NAMESPACE", "soak".to_owned()),
        ];
        Proc::start(&name, program, args, &env, &self.base.logs())
    }

    fn filter(&mut self) -> Proc {
        let spool = self.base.dir.path().join("spool");
        let args = [
            "--scale",
            "0.5",
            "--threads",
            "1",
            "--ttr-touch",
            "1",
            // Kills are the chaos here, not the video: never bury for them.
            "--max-attempts",
            "1000",
            "--backoff",
            "1",
            "--await-commit",
            "30",
            "--spool",
            spool.to_str().unwrap(),
        ];
        let proxy = self.proxy.addr();
        self.spawn("filter", &args, &proxy)
    }

    fn sink(&mut self) -> Proc {
        let co = self.checkout();
        let args = [
            "--checkout",
            co.to_str().unwrap(),
            "--commit-every",
            "1",
            "--batch",
            "50",
        ];
        let server = self.base.server.addr();
        self.spawn("sink", &args, &server)
    }

    /// One queuer pass over the archive; its `queued ID VIDEO` lines are kept.
    fn queue(&mut self) {
        let co = self.checkout();
        let archive = self.base.dir.path().join("archive/files");
        let out = bin::command("queuer")
            .args([
                "--checkout",
                co.to_str().unwrap(),
                "--ttr",
                "5",
                "--stride",
                "5",
            ])
            .arg(&archive)
            .env("GRID_SERVER", self.base.server.addr())
            .env("GRID_NAMESPACE", "soak")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        self.queued_lines.extend(
            text.lines()
                .filter(|l| l.starts_with("queued ") && l.ends_with(".mov"))
                .map(str::to_owned),
        );
    }

    fn committed(&self) -> usize {
        count_json(&self.checkout())
    }

    /// `gridctl status --json` of the soak's namespace (null while the server restarts).
    fn status(&self) -> serde_json::Value {
        let out = bin::command("gridctl")
            .args(["status", "--json"])
            .env("GRID_SERVER", self.base.server.addr())
            .env("GRID_NAMESPACE", "soak")
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    }

    /// Every tube of the namespace empty (results, jobs in every state).
    fn tubes_empty(&self) -> bool {
        let s = self.status();
        !s.is_null()
            && ["jobs", "results"].iter().all(|t| {
                ["ready", "reserved", "delayed", "buried"]
                    .iter()
                    .all(|st| s[t][st] == 0)
            })
    }

    fn buried(&self) -> u64 {
        let s = self.status();
        s["jobs"]["buried"].as_u64().unwrap_or(0) + s["results"]["buried"].as_u64().unwrap_or(0)
    }

    /// One chaos event, picked at random; returns what it was.
    fn chaos(&mut self, rng: &mut Rng) -> &'static str {
        match rng.below(100) {
            0..=29 => {
                let i = rng.below(self.filters.len() as u64) as usize;
                let fresh = self.filter();
                self.filters[i] = fresh; // the old one is SIGKILLed on drop
                "kill a filter"
            }
            30..=44 => {
                self.sink = None;
                self.sink = Some(self.sink());
                "kill the sink"
            }
            45..=54 => {
                self.base.server.restart().unwrap();
                "restart beanstalkd"
            }
            55..=64 => {
                self.queue();
                "queuer pass"
            }
            65..=84 => {
                self.proxy.cut_all();
                "cut filter connections"
            }
            _ => {
                self.proxy.blackhole_all();
                "blackhole filter connections"
            }
        }
    }
}

fn count_json(dir: &Path) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.file_name().is_some_and(|f| f == ".git") {
            continue;
        }
        if path.is_dir() {
            n += count_json(&path);
        } else if path.to_string_lossy().ends_with("_optical_flow.json") {
            n += 1;
        }
    }
    n
}

/// Videos whose result a filter delivered more than once (from the filters' logs).
fn analysed_twice(logs: &Path) -> usize {
    let mut delivered: HashMap<String, usize> = HashMap::new();
    for entry in std::fs::read_dir(logs).unwrap().flatten() {
        if !entry.file_name().to_string_lossy().starts_with("filter-") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for line in text.lines().filter(|l| l.contains("result delivered")) {
            if let Some(video) = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("video="))
            {
                *delivered.entry(video.to_owned()).or_default() += 1;
            }
        }
    }
    delivered.values().filter(|&&n| n > 1).count()
}

#[test]
fn a_chaos_soak_loses_nothing_and_commits_nothing_twice() {
    let settings = Settings::from_env();
    eprintln!("soak settings: {settings:?}");
    let mut rng = Rng(settings.seed);
    let start = Instant::now();
    let mut grid = Grid::new(settings);
    grid.queue();
    for _ in 0..grid.settings.filters {
        let f = grid.filter();
        grid.filters.push(f);
    }
    grid.sink = Some(grid.sink());

    let mut events: HashMap<&'static str, u32> = HashMap::new();
    let chaos_end = Instant::now() + grid.settings.chaos_for;
    while Instant::now() < chaos_end && grid.committed() < grid.settings.jobs {
        std::thread::sleep(grid.settings.chaos_every);
        *events.entry(grid.chaos(&mut rng)).or_default() += 1;
    }
    // Settle: everything committed and every tube empty.
    let settle_end = Instant::now() + grid.settings.settle_limit;
    while !(grid.committed() == grid.settings.jobs && grid.tubes_empty()) {
        if Instant::now() > settle_end {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    grid.queue(); // a last pass must find nothing to do
    let wall = start.elapsed();
    grid.filters.clear();
    grid.sink = None;

    let queued_videos: std::collections::HashSet<&str> = grid
        .queued_lines
        .iter()
        .filter_map(|l| l.splitn(3, ' ').nth(2))
        .collect();
    let committed = grid.committed();
    let log = git(&grid.checkout(), &["log", "--name-only", "--format="]);
    let mut commits: HashMap<&str, usize> = HashMap::new();
    for f in log.lines().filter(|l| l.ends_with("_optical_flow.json")) {
        *commits.entry(f).or_default() += 1;
    }
    let twice = commits.values().filter(|&&n| n > 1).count();
    let empty = grid.tubes_empty();
    let buried = grid.buried();
    let analysed_twice = analysed_twice(&grid.base.dir.path().join("logs"));
    let mut events: Vec<_> = events.into_iter().collect();
    events.sort();
    println!(
        "soak: seed {}, {} jobs, {} filters, chaos every {:?} for up to {:?}: {events:?}",
        grid.settings.seed,
        grid.settings.jobs,
        grid.settings.filters,
        grid.settings.chaos_every,
        grid.settings.chaos_for
    );
    println!(
        "soak: queued {} ({} puts), committed {committed}, lost {}, committed more than once {twice}, analysed more than once {analysed_twice}, buried {buried}, tubes empty {empty}, wall {:.1}s",
        queued_videos.len(),
        grid.queued_lines.len(),
        grid.settings.jobs - committed.min(grid.settings.jobs),
        wall.as_secs_f64()
    );
    if committed != grid.settings.jobs || twice != 0 || !empty {
        eprintln!("--- beanstalkd ---\n{}", grid.base.server.logs());
        for entry in std::fs::read_dir(grid.base.dir.path().join("logs"))
            .unwrap()
            .flatten()
        {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            eprintln!(
                "--- {} (last 30 lines) ---",
                entry.file_name().to_string_lossy()
            );
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
    }
    assert_eq!(committed, grid.settings.jobs, "lost videos");
    assert_eq!(twice, 0, "committed more than once");
    assert_eq!(
        queued_videos.len(),
        grid.settings.jobs,
        "queued every video"
    );
    assert_eq!(grid.queued_lines.len(), grid.settings.jobs, "and each once");
    assert!(empty, "tubes empty at the end");
    assert_eq!(buried, 0);
}
