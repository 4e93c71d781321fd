//! Specs of what every binary shares: the `--server` and `--namespace` flags with their
//! `GRID_SERVER` and `GRID_NAMESPACE` fallbacks, the same words for the same mistakes, and
//! exit codes scripts can rely on.

use std::process::Output;

use testkit::{bin, Beanstalkd};

const BINARIES: [&str; 4] = ["queuer", "filter", "sink", "gridctl"];

fn run(name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = bin::command(name);
    cmd.args(args)
        .env_remove("GRID_SERVER")
        .env_remove("GRID_NAMESPACE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running the binary")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// gridctl needs a subcommand before it looks at the server.
fn args_for<'a>(name: &str, args: &[&'a str]) -> Vec<&'a str> {
    let mut all = args.to_vec();
    if name == "gridctl" {
        all.push("status");
    }
    all
}

#[test]
fn every_binary_explains_the_shared_flags_in_its_help() {
    for name in BINARIES {
        let out = run(name, &["--help"], &[]);
        assert!(out.status.success(), "{name} --help failed");
        let help = String::from_utf8_lossy(&out.stdout);
        for needle in [
            "--server",
            "GRID_SERVER",
            "127.0.0.1:11300",
            "--namespace",
            "GRID_NAMESPACE",
            "camhd",
        ] {
            assert!(
                help.contains(needle),
                "{name} --help lacks {needle}:\n{help}"
            );
        }
    }
}

#[test]
fn a_bad_server_is_a_usage_error_with_the_same_words_everywhere() {
    let mut messages = Vec::new();
    for name in BINARIES {
        let out = run(name, &args_for(name, &["--server", "localhost"]), &[]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("expected HOST:PORT"), "{name}: {err}");
        messages.push(err.lines().next().unwrap_or_default().to_owned());
    }
    assert!(messages.windows(2).all(|w| w[0] == w[1]), "{messages:#?}");
}

#[test]
fn the_environment_stands_in_for_the_flags() {
    for name in BINARIES {
        let out = run(name, &args_for(name, &[]), &[("GRID_SERVER", "nope")]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        assert!(
            stderr(&out).contains("\"nope\" has no port"),
            "{name}: {}",
            stderr(&out)
        );

        let out = run(name, &args_for(name, &[]), &[("GRID_NAMESPACE", "-bad")]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        assert!(stderr(&out).contains("is not a namespace"), "{name}");
    }
}

#[test]
fn gridctl_reports_an_unreachable_server_with_exit_code_69() {
    let server = Beanstalkd::start().unwrap();
    let addr = server.addr();
    drop(server);
    let out = run("gridctl", &["--server", &addr, "status"], &[]);
    assert_eq!(out.status.code(), Some(69), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.starts_with("error: cannot reach the grid's server"),
        "{err}"
    );
    assert!(err.contains(&addr), "{err}");
}

#[test]
fn a_setting_blanked_in_the_environment_means_none() {
    // Rotation's last step blanks GRID_ALSO_ACCEPT_KEY_FILES=; it once stopped the sink,
    // the dashboard, filters and gridctl with exit 2 (issue 35).
    let server = Beanstalkd::start().unwrap();
    let addr = server.addr();
    drop(server);
    for var in [
        "GRID_ALSO_ACCEPT_KEY_FILES",
        "GRID_KEY_FILE",
        "GRID_CA_FILE",
        "GRID_ARCHIVE_CONNECTIONS",
    ] {
        let out = run("gridctl", &["--server", &addr, "status"], &[(var, "")]);
        assert_eq!(out.status.code(), Some(69), "{var}=: {}", stderr(&out));
    }
    // A setting of its own blanked, too: the analysis starts (and finds no such file).
    let out = run(
        "filter",
        &["analyze", "/nonexistent/x.mov"],
        &[
            ("GRID_ALSO_ACCEPT_KEY_FILES", ""),
            ("FILTER_HTTP_CONNECTIONS", ""),
        ],
    );
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
}

#[test]
fn gridctl_status_counts_the_namespace_tubes() {
    use common::beanstalk::{Client, PutOptions};
    let server = Beanstalkd::start().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = Client::connect(&server.addr()).await.unwrap();
        c.use_tube("survey.jobs").await.unwrap();
        for _ in 0..3 {
            c.put(b"{}", PutOptions::default()).await.unwrap();
        }
        c.watch("survey.jobs").await.unwrap();
        let job = c.reserve().await.unwrap();
        c.bury(job.id, 0).await.unwrap();
    });
    let out = run(
        "gridctl",
        &["status", "--json"],
        &[
            ("GRID_SERVER", &server.addr()),
            ("GRID_NAMESPACE", "survey"),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["jobs"]["tube"], "survey.jobs");
    assert_eq!(v["jobs"]["ready"], 2);
    assert_eq!(v["jobs"]["buried"], 1);
    assert_eq!(v["results"]["exists"], false);
    assert_eq!(v["binlog"], true);

    let table = run(
        "gridctl",
        &[
            "--server",
            &server.addr(),
            "--namespace",
            "survey",
            "status",
        ],
        &[],
    );
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("survey.jobs") && text.contains("(no such tube"),
        "{text}"
    );
}

#[test]
fn gridctl_status_of_a_namespace_the_server_lacks_says_so_and_exits_3() {
    use common::beanstalk::{Client, PutOptions};
    let server = Beanstalkd::start().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = Client::connect(&server.addr()).await.unwrap();
        c.use_tube("survey.jobs").await.unwrap();
        c.put(b"{}", PutOptions::default()).await.unwrap();
    });
    let out = run(
        "gridctl",
        &["--server", &server.addr(), "--namespace", "nope", "status"],
        &[],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("namespace \"nope\" has no tubes"), "{err}");
    assert!(err.contains("namespaces there: survey"), "{err}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nope.jobs"),
        "the table is still printed"
    );
}

#[test]
fn tls_files_without_a_tls_server_are_refused_not_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let checkout = dir.path().to_str().unwrap();
    for name in BINARIES {
        let args: Vec<&str> = match name {
            "queuer" => vec!["--checkout", checkout, "-"],
            "sink" => vec!["--checkout", checkout],
            "gridctl" => vec!["status"],
            _ => vec![],
        };
        let out = run(
            name,
            &args,
            &[
                ("GRID_SERVER", "127.0.0.1:1"),
                ("GRID_CA_FILE", "/etc/ssl/certs/ca-certificates.crt"),
            ],
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(
            err.contains(
                "--ca-file (GRID_CA_FILE) given, but --server 127.0.0.1:1 is not a tls:// address"
            ),
            "{name}: {err}"
        );
    }
}

#[test]
fn every_binary_names_its_version_and_commit() {
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    for name in BINARIES {
        let out = run(name, &["--version"], &[]);
        assert!(out.status.success(), "{name}");
        let said = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let expected = format!(
            "{name} {} (commit {})",
            env!("CARGO_PKG_VERSION"),
            head.as_deref().unwrap_or("unknown")
        );
        assert_eq!(said, expected, "{name}");
    }
}

#[test]
fn every_binary_generates_its_man_pages_and_completions_from_its_flags() {
    let dir = tempfile::tempdir().unwrap();
    for name in BINARIES {
        // Without the arguments a run would need (a checkout, a source, a subcommand).
        let out = run(
            name,
            &["--generate", "man", dir.path().to_str().unwrap()],
            &[],
        );
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let page = std::fs::read_to_string(dir.path().join(format!("{name}.1"))).unwrap();
        assert!(page.starts_with(".ie"), "{name}: not roff: {page:.60}");
        assert!(
            page.contains("namespace"),
            "{name}: the shared flags are missing"
        );
        for shell in ["bash", "zsh", "fish"] {
            let out = run(name, &["--generate", &format!("complete-{shell}")], &[]);
            assert!(out.status.success(), "{name} {shell}: {}", stderr(&out));
            let script = String::from_utf8_lossy(&out.stdout);
            assert!(script.contains("--server"), "{name} {shell}: {script:.200}");
        }
    }
    // A page for every subcommand, named as man(1) finds them: `man gridctl-status`.
    for page in ["gridctl-status.1", "gridctl-retry.1", "filter-analyze.1"] {
        assert!(dir.path().join(page).is_file(), "{page} missing");
    }
    let out = run("sink", &["--generate", "complete-tcsh"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("complete-bash"), "{}", stderr(&out));
}

#[test]
fn commands_that_never_meet_the_grid_do_not_list_its_flags() {
    let offline: [(&str, &[&str]); 4] = [
        ("gridctl", &["keygen"]),
        ("gridctl", &["plot"]),
        ("filter", &["analyze"]),
        ("sink", &["regions"]),
    ];
    for (name, sub) in offline {
        let mut args = sub.to_vec();
        args.push("--help");
        let out = run(name, &args, &[]);
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name} {sub:?}: {}", stderr(&out));
        for flag in [
            "--server",
            "--namespace",
            "--key-file",
            "--ca-file",
            "--cert-file",
        ] {
            let listed = format!("{flag} <");
            assert!(
                !help.contains(&listed),
                "{name} {sub:?} lists {flag}:\n{help}"
            );
        }
    }
    // Where they mean something they are listed, under a heading of their own.
    let out = run("gridctl", &["status", "--help"], &[]);
    let help = String::from_utf8_lossy(&out.stdout);
    let heading = help
        .find("The grid (")
        .expect("a heading for the grid's flags");
    assert!(help[heading..].contains("--server"), "{help}");
    assert!(!help[..heading].contains("--server"), "{help}");
    // Still accepted there, as the environment gives them to every process.
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k");
    let out = run(
        "gridctl",
        &["keygen", "--server", "127.0.0.1:1", key.to_str().unwrap()],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn man_pages_name_every_variable_and_the_files_the_package_installs() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        "filter",
        &["--generate", "man", dir.path().to_str().unwrap()],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let page = std::fs::read_to_string(dir.path().join("filter.1")).unwrap();
    let environment = page
        .find(".SH ENVIRONMENT")
        .expect("an ENVIRONMENT section");
    let files = page.find(".SH FILES").expect("a FILES section");
    for var in ["FILTER_THREADS", "GRID_SERVER", "GRID_LOG", "FILTER_FETCH"] {
        assert!(
            page[environment..files].contains(var),
            "{var} missing:\n{}",
            &page[environment..]
        );
    }
    assert!(
        page[files..].contains("/etc/camhd\\-grid/grid.env"),
        "{}",
        &page[files..]
    );
    let analyze = std::fs::read_to_string(dir.path().join("filter-analyze.1")).unwrap();
    assert!(analyze.contains("FILTER_DECODER"), "{analyze}");
    assert!(!analyze.contains("GRID_SERVER"), "offline: {analyze}");
}

#[test]
fn a_reader_that_stops_reading_ends_the_command_quietly_with_0() {
    use std::io::{BufRead, Write};
    let server = Beanstalkd::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".git")).unwrap();
    let mut queuer = bin::command("queuer")
        .args(["--dry-run", "--checkout", dir.path().to_str().unwrap(), "-"])
        .env("GRID_SERVER", server.addr())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let list: String = (0..20_000)
        .map(|i| format!("https://archive.example/files/RS03ASHS/PN03B/06-CAMHDA301/2017/06/14/CAMHDA301-{i:06}.mov\n"))
        .collect();
    queuer
        .stdin
        .take()
        .unwrap()
        .write_all(list.as_bytes())
        .unwrap();
    // Like `| head -1`: one line, then the pipe is closed.
    let mut first = String::new();
    std::io::BufReader::new(queuer.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("would queue "), "{first}");
    let out = queuer.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("error") && !err.contains("panicked"), "{err}");
}

#[test]
fn bash_completes_a_file_where_a_command_takes_one() {
    // clap_complete's script offered only flags after `gridctl plot ` (issue 35).
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a_optical_flow.json"), "{}").unwrap();
    let script = run("gridctl", &["--generate", "complete-bash"], &[]);
    assert!(script.status.success());
    std::fs::write(dir.path().join("gridctl.bash"), &script.stdout).unwrap();
    let complete = |words: &str, cword: u32| {
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source gridctl.bash; COMP_WORDS=({words}); COMP_CWORD={cword}; _gridctl_paths gridctl \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; echo \"${{COMPREPLY[@]}}\""
            ))
            .current_dir(dir.path())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let offered = complete("gridctl plot \"\"", 2);
    assert!(offered.contains("a_optical_flow.json"), "{offered}");
    assert!(
        complete("gridctl \"\"", 1).contains("status"),
        "subcommands as before"
    );
    assert!(complete("gridctl plot --\"\"", 2).contains("--output"));
}
