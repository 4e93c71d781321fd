//! The sink against crafted results on a real beanstalkd and git: it writes only inside
//! the checkout, buries what it must not write, changes nothing for a duplicate, and
//! refuses a folder that is not the metadata checkout.

use std::path::Path;
use std::process::Output;

use common::beanstalk::{Client, PutOptions};
use common::wire::{ComputedBy, Job, JobResult};
use testkit::git::{git, metadata_checkout};
use testkit::{bin, Beanstalkd};

fn result(output: &str, marker: u64, force: bool) -> Vec<u8> {
    result_of(output, flow_document(marker), force)
}

fn result_of(output: &str, document: serde_json::Value, force: bool) -> Vec<u8> {
    let job = Job {
        force,
        ..Job::new("/data/files/x.mov", output)
    };
    let now = chrono::Utc::now();
    let computed_by = ComputedBy {
        host: "t".into(),
        software: "test".into(),
        started_at: now,
        finished_at: now,
        elapsed_seconds: 0.0,
    };
    JobResult::new(job, None, &document, computed_by)
        .unwrap()
        .encode()
}

/// The smallest document the sink accepts as an `_optical_flow.json`, marked.
fn flow_document(marker: u64) -> serde_json::Value {
    testkit::flow_document(marker, "/data/files/x.mov")
}

fn sink(server: &Beanstalkd, co: &Path) -> Output {
    sink_with(server, co, &[])
}

fn sink_with(server: &Beanstalkd, co: &Path, extra: &[&str]) -> Output {
    bin::command("sink")
        .args([
            "--checkout",
            co.to_str().unwrap(),
            "--commit-every",
            "1",
            "--exit-when-idle",
            "2",
        ])
        .args(extra)
        .env("GRID_SERVER", server.addr())
        .env("GRID_NAMESPACE", "s")
        .output()
        .unwrap()
}

async fn put_all(server: &Beanstalkd, bodies: &[Vec<u8>]) -> Client {
    let mut c = Client::connect(&server.addr()).await.unwrap();
    c.use_tube("s.results").await.unwrap();
    for b in bodies {
        c.put(b, PutOptions::default()).await.unwrap();
    }
    c
}

#[tokio::test]
async fn the_sink_writes_only_what_is_safe_and_new() {
    let server = Beanstalkd::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let co = metadata_checkout(dir.path());
    let good = "RS03ASHS/2017/06/14/a_optical_flow.json";
    let mut c = put_all(
        &server,
        &[
            result(good, 1, false),
            result("../escape_optical_flow.json", 2, false),
            result(".git/hooks/x_optical_flow.json", 3, false),
            b"not json".to_vec(),
            result(good, 4, false), // duplicate: the first stays
        ],
    )
    .await;
    let out = sink(&server, &co);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(co.join(good)).unwrap()).unwrap();
    assert_eq!(written["marker"], 1);
    assert!(!dir.path().join("escape_optical_flow.json").exists());
    assert!(!co.join(".git/hooks/x_optical_flow.json").exists());
    let stats = c.stats_tube("s.results").await.unwrap();
    assert_eq!(
        (stats.current_jobs_ready, stats.current_jobs_buried),
        (0, 3)
    );
    assert_eq!(
        git(&co, &["log", "--oneline"]).lines().count(),
        2,
        "one commit for the batch"
    );
    the_operator_sees_why_each_result_was_parked(&server);

    // A forced result replaces the file in a new commit; an unforced one changes nothing.
    c.put(&result(good, 5, true), PutOptions::default())
        .await
        .unwrap();
    c.put(&result(good, 6, false), PutOptions::default())
        .await
        .unwrap();
    assert!(sink(&server, &co).status.success());
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(co.join(good)).unwrap()).unwrap();
    assert_eq!(written["marker"], 5);
    assert_eq!(git(&co, &["log", "--oneline"]).lines().count(), 3);
    assert!(git(&co, &["status", "--porcelain"]).is_empty());
}

/// `gridctl failed` lists the three buried results with the sink's reasons.
fn the_operator_sees_why_each_result_was_parked(server: &Beanstalkd) {
    let out = bin::command("gridctl")
        .args(["failed", "--json"])
        .env("GRID_SERVER", server.addr())
        .env("GRID_NAMESPACE", "s")
        .output()
        .unwrap();
    assert!(out.status.success());
    let failed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut seen: Vec<(&str, &str)> = failed
        .iter()
        .map(|f| {
            assert_eq!(f["kind"], "result", "{f}");
            (
                f["video"].as_str().unwrap(),
                f["last_error"].as_str().unwrap(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(seen.len(), 3, "{failed:?}");
    assert_eq!(seen[0].0, "(unreadable)");
    assert!(seen[0].1.starts_with("malformed result"), "{}", seen[0].1);
    for (video, error) in &seen[1..] {
        assert_eq!(*video, "/data/files/x.mov");
        assert!(
            error.contains("\"output\" is invalid") && error.contains("refusing output path"),
            "{error}"
        );
    }
}

#[test]
fn the_sink_refuses_anything_but_a_metadata_checkout() {
    let server = Beanstalkd::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    let out = sink(&server, &plain);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a git work tree"));

    let co = metadata_checkout(dir.path());
    std::fs::remove_file(co.join("README.md")).unwrap();
    let out = sink(&server, &co);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no README.md"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn only_one_sink_may_write_a_checkout() {
    let server = Beanstalkd::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let co = metadata_checkout(dir.path());
    let mut first = bin::command("sink")
        .args(["--checkout", co.to_str().unwrap(), "--exit-when-idle", "5"])
        .env("GRID_SERVER", server.addr())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Start the second only once the first holds the lock: it takes it before it
    // connects, so once it watches the results tube it holds it.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let start = std::time::Instant::now();
    while rt.block_on(async {
        let mut c = common::beanstalk::Client::connect(&server.addr())
            .await
            .unwrap();
        c.stats_tube("camhd.results")
            .await
            .map_or(0, |s| s.current_watching)
    }) == 0
    {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "the first sink never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let second = sink(&server, &co);
    let _ = first.kill();
    let _ = first.wait();
    assert_eq!(second.status.code(), Some(75), "EX_TEMPFAIL");
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("another sink holds"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
}

/// A bare repository beside `co`, added to it as `origin`.
fn bare_origin(parent: &Path, co: &Path) -> std::path::PathBuf {
    let bare = parent.join("remote.git");
    git(parent, &["init", "-q", "--bare", bare.to_str().unwrap()]);
    git(co, &["remote", "add", "origin", bare.to_str().unwrap()]);
    bare
}

#[tokio::test]
async fn the_sink_pushes_after_committing_and_survives_a_broken_remote() {
    let server = Beanstalkd::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let co = metadata_checkout(dir.path());
    let bare = bare_origin(dir.path(), &co);
    git(&co, &["remote", "add", "broken", "/nonexistent/remote.git"]);
    let run = |remote: &str| sink_with(&server, &co, &["--push", remote]);
    put_all(&server, &[result("a/b_optical_flow.json", 1, false)]).await;
    let out = run("origin");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SINK_AUTHOR"),
        "pushing as the default author is pointed out"
    );
    let head = git(&co, &["rev-parse", "HEAD"]);
    assert_eq!(
        git(&bare, &["rev-parse", "HEAD"]),
        head,
        "the remote has the commit"
    );

    put_all(&server, &[result("a/c_optical_flow.json", 2, false)]).await;
    let out = sink_with(&server, &co, &["--push", "broken", "--push-wait", "2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(4),
        "idle with its commits unpushed: {stderr}"
    );
    assert!(stderr.contains("push failed"), "{stderr}");
    assert!(
        stderr.contains("commit(s) not pushed to broken") && stderr.contains("Add"),
        "names the commits: {stderr}"
    );
    // The operator sees it without reading the sink's log.
    let status = bin::command("gridctl")
        .args(["status", "--json"])
        .env("GRID_SERVER", server.addr())
        .env("GRID_NAMESPACE", "s")
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["sink"]["remote"], "broken", "{status}");
    // "broken" never had any: the whole history (three commits) is not there.
    assert_eq!(status["sink"]["unpushed_count"], 3, "{status}");
    assert!(status["sink"]["push_error"]
        .as_str()
        .unwrap()
        .contains("nonexistent"));
    let table = bin::command("gridctl")
        .arg("status")
        .env("GRID_SERVER", server.addr())
        .env("GRID_NAMESPACE", "s")
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("RECORD BEHIND: 3 commit(s) not pushed to broken"),
        "{table}"
    );
    assert!(co.join("a/c_optical_flow.json").exists());
    assert_eq!(
        git(&co, &["log", "--oneline"]).lines().count(),
        3,
        "committed all the same"
    );
}

#[tokio::test]
async fn a_sink_killed_at_any_moment_loses_nothing_and_commits_nothing_twice() {
    let server = Beanstalkd::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let co = metadata_checkout(dir.path());
    let outputs: Vec<String> = (0..40)
        .map(|i| format!("d/v{i:02}_optical_flow.json"))
        .collect();
    let bodies: Vec<Vec<u8>> = outputs
        .iter()
        .enumerate()
        .map(|(i, o)| result(o, i as u64, false))
        .collect();
    let mut c = put_all(&server, &bodies).await;
    let start = |idle: &str| {
        bin::command("sink")
            .args([
                "--checkout",
                co.to_str().unwrap(),
                "--batch",
                "3",
                "--commit-every",
                "1",
            ])
            .args(["--exit-when-idle", idle])
            .env("GRID_SERVER", server.addr())
            .env("GRID_NAMESPACE", "s")
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    // SIGKILL at moments that land before, inside and after writes, commits and deletes.
    for ms in [40, 120, 260, 500, 90, 700] {
        let mut sink = start("30");
        std::thread::sleep(std::time::Duration::from_millis(ms));
        sink.kill().unwrap();
        sink.wait().unwrap();
    }
    assert!(start("2").wait().unwrap().success());

    for o in &outputs {
        assert!(co.join(o).exists(), "{o} is missing");
        let commits = git(&co, &["log", "--oneline", "--", o]);
        assert_eq!(
            commits.lines().count(),
            1,
            "{o} committed {} times",
            commits.lines().count()
        );
    }
    assert!(
        git(&co, &["status", "--porcelain"]).is_empty(),
        "nothing left uncommitted"
    );
    let s = c.stats_tube("s.results").await.unwrap();
    assert_eq!(
        s.current_jobs_ready + s.current_jobs_reserved + s.current_jobs_buried,
        0
    );
}

/// A flow document of the regions fixtures (flowdoc/tests/regions).
fn fixture(name: &str) -> serde_json::Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("flowdoc/tests/regions");
    serde_json::from_slice(&std::fs::read(dir.join(name)).unwrap()).unwrap()
}

#[tokio::test]
async fn the_sink_commits_a_regions_file_beside_each_flow_file() {
    let server = Beanstalkd::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let co = metadata_checkout(dir.path());
    let pans = "RS03ASHS/2017/06/14/CAMHDA301-20170614T001500_optical_flow.json";
    let dark = "RS03ASHS/2017/06/14/CAMHDA301-20170614T031500_optical_flow.json";
    let doc = fixture("flow/clip_pans_optical_flow.json");
    let mut c = put_all(
        &server,
        &[
            result_of(pans, doc.clone(), false),
            result_of(dark, fixture("flow/no_valid_optical_flow.json"), false),
        ],
    )
    .await;
    let out = sink(&server, &co);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Two commits: the flow files, then the regions naming it.
    let regions_rel = pans.replace("_optical_flow.json", "_optical_flow_regions.json");
    let flow_commit = git(&co, &["log", "-n1", "--format=%H", "--", pans]);
    let regions_commit = git(&co, &["log", "-n1", "--format=%H", "--", &regions_rel]);
    assert_eq!(
        git(&co, &["rev-parse", "HEAD"]).trim(),
        regions_commit.trim()
    );
    assert_eq!(
        git(&co, &["rev-parse", "HEAD~1"]).trim(),
        flow_commit.trim()
    );
    let regions: serde_json::Value =
        serde_json::from_slice(&std::fs::read(co.join(&regions_rel)).unwrap()).unwrap();
    assert_eq!(regions["depends"]["opticalFlow"][pans], flow_commit.trim());
    assert_eq!(regions["movie"], doc["movie"]);
    let expected = fixture("expected/clip_pans_optical_flow_regions.json");
    assert_eq!(regions["regions"], expected["regions"]);

    // A flow file without valid entries is committed; it has no regions, and says why.
    assert!(co.join(dark).is_file());
    assert!(!co.join(dark.replace(".json", "_regions.json")).exists());
    let message = git(&co, &["log", "-n1", "--format=%B"]);
    assert!(
        message.starts_with("Add regions for 1 video(s)"),
        "{message}"
    );
    assert!(message.contains("No regions for 1 video(s):"), "{message}");
    assert!(message.contains("no valid entry"), "{message}");
    assert!(git(&co, &["status", "--porcelain"]).is_empty());

    // The committed regions file is kept for an unforced result, remade for a forced one.
    std::fs::write(co.join(&regions_rel), "{}\n").unwrap();
    git(&co, &["commit", "-qam", "a scientist edits the regions"]);
    c.put(&result_of(pans, doc.clone(), false), PutOptions::default())
        .await
        .unwrap();
    assert!(sink(&server, &co).status.success());
    assert_eq!(
        std::fs::read_to_string(co.join(&regions_rel)).unwrap(),
        "{}\n"
    );
    c.put(&result_of(pans, doc, true), PutOptions::default())
        .await
        .unwrap();
    assert!(sink(&server, &co).status.success());
    let remade: serde_json::Value =
        serde_json::from_slice(&std::fs::read(co.join(&regions_rel)).unwrap()).unwrap();
    assert_eq!(remade["regions"], expected["regions"]);
}

#[tokio::test]
async fn a_batch_waits_for_its_regions_no_longer_than_its_budget() {
    let server = Beanstalkd::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let co = metadata_checkout(dir.path());
    let pans = "RS03ASHS/2017/06/14/CAMHDA301-20170614T001500_optical_flow.json";
    let c = put_all(
        &server,
        &[result_of(
            pans,
            fixture("flow/clip_pans_optical_flow.json"),
            false,
        )],
    )
    .await;
    // No time at all for regions: the flow file is committed and its result deleted,
    // the regions file is left for `sink regions`, and the log says so.
    let out = sink_with(&server, &co, &["--regions-budget", "0"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(co.join(pans).is_file());
    let regions_rel = pans.replace("_optical_flow.json", "_optical_flow_regions.json");
    assert!(!co.join(&regions_rel).exists());
    assert!(
        log.contains("budget") && log.contains("sink regions"),
        "{log}"
    );
    drop(c);
    let mut c = Client::connect(&server.addr()).await.unwrap();
    let left = c.stats_tube_if_any("s.results").await.unwrap();
    assert_eq!(
        left.map_or(0, |s| s.current_jobs_ready),
        0,
        "the result was deleted"
    );
    let made = bin::command("sink")
        .args(["regions", "--checkout", co.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(made.status.success());
    assert!(co.join(&regions_rel).is_file(), "made later");
}

#[test]
fn sink_regions_fills_in_a_checkout_of_flow_files_only() {
    let dir = tempfile::tempdir().unwrap();
    let co = metadata_checkout(dir.path());
    let day = "RS03ASHS/PN03B/06-CAMHDA301/2017/06/14";
    let names = [
        "clip_pans",
        "clip_zooms",
        "random_1",
        "random_4",
        "no_valid",
    ];
    for n in names {
        std::fs::create_dir_all(co.join(day)).unwrap();
        let flow = serde_json::to_vec(&fixture(&format!("flow/{n}_optical_flow.json"))).unwrap();
        std::fs::write(co.join(format!("{day}/{n}_optical_flow.json")), flow).unwrap();
        git(&co, &["add", "."]);
        git(&co, &["commit", "-qm", n]);
    }
    // A regions file a scientist made by hand is kept.
    let kept = format!("{day}/random_1_optical_flow_regions.json");
    std::fs::write(co.join(&kept), "{\"regions\": []}\n").unwrap();
    git(&co, &["add", "."]);
    git(&co, &["commit", "-qm", "by hand"]);
    let head = git(&co, &["rev-parse", "HEAD"]);

    let regions = |args: &[&str]| {
        let out = bin::command("sink")
            .args(["regions", "--checkout", co.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        assert!(out.status.success(), "{}", text(&out.stderr));
        (text(&out.stdout), text(&out.stderr))
    };
    let (listed, stderr) = regions(&["--dry-run"]);
    let mut lines: Vec<&str> = listed.lines().collect();
    let summary = lines.pop().unwrap();
    assert_eq!(lines.len(), 3, "{listed}");
    assert!(
        summary.starts_with(
            "would write 3 regions files in 0 commits (5 flow files, 1 left without regions)"
        ),
        "{summary}"
    );
    assert!(
        stderr.contains("no_valid_optical_flow.json: no valid entry"),
        "{stderr}"
    );
    assert_eq!(
        git(&co, &["rev-parse", "HEAD"]),
        head,
        "a dry run commits nothing"
    );
    assert!(git(&co, &["status", "--porcelain"]).is_empty());

    let (done, _) = regions(&["--per-commit", "2"]);
    assert!(
        done.starts_with("wrote 3 regions files in 2 commits"),
        "{done}"
    );
    for n in ["clip_pans", "clip_zooms", "random_4"] {
        let flow = format!("{day}/{n}_optical_flow.json");
        let file = co.join(format!("{day}/{n}_optical_flow_regions.json"));
        let ours: serde_json::Value =
            serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
        let expected = fixture(&format!("expected/{n}_optical_flow_regions.json"));
        assert_eq!(ours["regions"], expected["regions"], "{n}");
        let flow_commit = git(&co, &["log", "-n1", "--format=%H", "--", &flow]);
        assert_eq!(
            ours["depends"]["opticalFlow"][&flow],
            flow_commit.trim(),
            "{n}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(co.join(&kept)).unwrap(),
        "{\"regions\": []}\n"
    );
    assert!(git(&co, &["status", "--porcelain"]).is_empty());

    let (again, _) = regions(&[]);
    assert!(
        again.starts_with("wrote 0 regions files in 0 commits"),
        "{again}"
    );
    let (forced, _) = regions(&["--force", &format!("./{day}/random_1_optical_flow.json")]);
    assert!(
        forced.starts_with("wrote 1 regions file in 1 commit (1 flow file"),
        "{forced}"
    );
    assert_ne!(
        std::fs::read_to_string(co.join(&kept)).unwrap(),
        "{\"regions\": []}\n"
    );
}

#[tokio::test]
async fn a_remote_that_moved_is_merged_and_pushed_and_keeps_an_edit_made_there() {
    // The record is public: a person pushes to it while the grid commits.
    let server = Beanstalkd::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let co = metadata_checkout(dir.path());
    let bare = bare_origin(dir.path(), &co);
    let flow = "RS03ASHS/2017/06/14/b_optical_flow.json";
    let regions = "RS03ASHS/2017/06/14/b_optical_flow_regions.json";
    put_all(
        &server,
        &[result_of(
            flow,
            fixture("flow/clip_pans_optical_flow.json"),
            false,
        )],
    )
    .await;
    let out = sink_with(&server, &co, &["--push", "origin"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Someone clones the record, edits the README and a flow file the grid wrote, and
    // pushes.
    let person = dir.path().join("person");
    git(
        dir.path(),
        &[
            "clone",
            "-q",
            bare.to_str().unwrap(),
            person.to_str().unwrap(),
        ],
    );
    std::fs::write(
        person.join("README.md"),
        "# CamHD motion metadata\n\nEdited.\n",
    )
    .unwrap();
    std::fs::write(person.join(flow), "{\"edited\": \"by hand\"}\n").unwrap();
    git(&person, &["add", "README.md", flow]);
    testkit::git::commit(&person, "A person's edit");
    git(&person, &["push", "-q", "origin", "HEAD"]);

    // The grid recomputes that video (forced: a regions file of its own again) and a new one.
    let new = "RS03ASHS/2017/06/14/c_optical_flow.json";
    put_all(
        &server,
        &[
            result_of(flow, fixture("flow/clip_zooms_optical_flow.json"), true),
            result(new, 3, false),
        ],
    )
    .await;
    let out = sink_with(&server, &co, &["--push", "origin", "--push-wait", "30"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pushed after merging: {stderr}");
    assert_eq!(
        git(&bare, &["rev-parse", "HEAD"]),
        git(&co, &["rev-parse", "HEAD"]),
        "the remote has every commit"
    );
    let log = git(&bare, &["log", "--format=%s"]);
    assert!(log.contains("A person's edit"), "never lost: {log}");
    let shown = |path: &str| git(&bare, &["show", &format!("HEAD:{path}")]);
    assert!(shown("README.md").contains("Edited."));
    assert!(
        shown(flow).contains("by hand"),
        "the person's edit of a file the grid wrote is kept: {}",
        shown(flow)
    );
    assert!(
        shown(new).contains("\"marker\": 3"),
        "the new video is there"
    );
    // Regions always match the flow file at HEAD: those derived from the grid's version
    // went with it (issue 34: they were pushed beside the person's file).
    assert!(
        git(&bare, &["ls-tree", "-r", "--name-only", "HEAD"])
            .lines()
            .all(|p| p != regions),
        "a regions file of a flow file that is not the grid's"
    );
    // The grid's own version is in the history, and a record says what happened.
    let ours = git(
        &co,
        &["log", "--full-history", "-p", "--format=", "--", flow],
    );
    let zooms = fixture("flow/clip_zooms_optical_flow.json");
    let a_zoom = zooms["frameStats"][0]["opticalFlow"]["similarity"][0].to_string();
    assert!(ours.contains(&a_zoom), "the grid's forced version: {ours}");
    assert!(
        !git(&co, &["log", "--format=%H", "--", regions])
            .trim()
            .is_empty(),
        "the grid had committed regions for it"
    );
    let mut c = Client::connect(&server.addr()).await.unwrap();
    c.watch("s.failures").await.unwrap();
    let record = c.reserve_with_timeout(1).await.expect("a failure record");
    let record = String::from_utf8_lossy(&record.body);
    assert!(
        record.contains(flow) && record.contains("edited on origin"),
        "{record}"
    );
    assert!(
        !record.contains("after the grid wrote"),
        "nothing says which came first: {record}"
    );
}

#[tokio::test]
async fn a_rewritten_remote_history_is_not_merged_back_and_says_record_diverged() {
    // A force-push removed the grid's commits: merging would resurrect them (issue 34).
    let server = Beanstalkd::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let co = metadata_checkout(dir.path());
    let bare = bare_origin(dir.path(), &co);
    let old = "RS03ASHS/2017/06/14/a_optical_flow.json";
    put_all(&server, &[result(old, 1, false)]).await;
    let out = sink_with(&server, &co, &["--push", "origin"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Someone rewrites the record without the grid's commit and force-pushes.
    let person = dir.path().join("person");
    git(
        dir.path(),
        &[
            "clone",
            "-q",
            bare.to_str().unwrap(),
            person.to_str().unwrap(),
        ],
    );
    git(&person, &["reset", "-q", "--hard", "HEAD~1"]);
    std::fs::write(
        person.join("README.md"),
        "# Rewritten
",
    )
    .unwrap();
    git(&person, &["add", "README.md"]);
    testkit::git::commit(&person, "A history without the grid's file");
    git(&person, &["push", "-q", "--force", "origin", "HEAD"]);
    let rewritten = git(&bare, &["rev-parse", "HEAD"]);

    put_all(
        &server,
        &[result("RS03ASHS/2017/06/14/b_optical_flow.json", 2, false)],
    )
    .await;
    let out = sink_with(&server, &co, &["--push", "origin", "--push-wait", "2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(4),
        "idle with its commits unpushed: {stderr}"
    );
    assert!(stderr.contains("RECORD DIVERGED"), "{stderr}");
    assert_eq!(
        git(&bare, &["rev-parse", "HEAD"]),
        rewritten,
        "nothing pushed"
    );
    assert!(
        git(&bare, &["ls-tree", "-r", "--name-only", "HEAD"])
            .lines()
            .all(|p| p != old),
        "the removed file did not come back"
    );
    let table = bin::command("gridctl")
        .arg("status")
        .env("GRID_SERVER", server.addr())
        .env("GRID_NAMESPACE", "s")
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.contains("RECORD DIVERGED:"), "{table}");
}

#[test]
fn sink_regions_reads_only_regular_files() {
    // A flow file replaced by a FIFO (git cannot track one; the work tree can hold
    // one) would hang a plain open for ever, even for a dry run.
    let dir = tempfile::tempdir().unwrap();
    let co = metadata_checkout(dir.path());
    let day = co.join("RS03ASHS/2017/06/14");
    std::fs::create_dir_all(&day).unwrap();
    let flow = serde_json::to_vec(&fixture("flow/clip_pans_optical_flow.json")).unwrap();
    std::fs::write(day.join("fifo_optical_flow.json"), &flow).unwrap();
    git(&co, &["add", "."]);
    git(&co, &["commit", "-qm", "a flow file"]);
    let fifo = day.join("fifo_optical_flow.json");
    std::fs::remove_file(&fifo).unwrap();
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let mut child = bin::command("sink")
        .args(["regions", "--dry-run", "--checkout", co.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > std::time::Duration::from_secs(60) {
            let _ = child.kill();
            panic!("sink regions hung on a FIFO");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("not a regular file"), "{stderr}");
}
