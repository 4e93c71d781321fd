//! What a package installs beside each binary, generated from the same clap definition
//! that parses its arguments: `BIN --generate man DIR` writes its man pages (one per
//! subcommand too), `BIN --generate complete-bash|complete-zsh|complete-fish` prints a
//! completion script. `scripts/package` calls them; they are hidden from `--help`.

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;

use anyhow::Context;

/// The first argument that asks for generated files instead of a normal run.
const FLAG: &str = "--generate";

/// Parses the command line of binary `P`, unless its first argument is `--generate`:
/// then writes what was asked for and exits. The check comes before clap's own, because
/// a binary's required arguments (a checkout, a source) mean nothing to a packager.
///
/// `offline` names the subcommands that never meet the grid (`gridctl plot`, `filter
/// analyze`): the grid's flags, global to every subcommand, are hidden from their help,
/// man pages and completions (still accepted, so a grid.env in the environment is no
/// error there).
pub fn parse<P: clap::Parser>(offline: &[&str]) -> P {
    // clap reads a variable when the command is made: blanks go before that.
    blank_means_unset(&shaped(P::command(), offline));
    let cmd = shaped(P::command(), offline);
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == FLAG) {
        // Nothing else runs yet (no logging, no threads), so exiting here skips nothing.
        let code = match generate(cmd, &args[2..]) {
            Ok(()) => crate::cli::exit::OK,
            Err(err) => {
                eprintln!("error: {err:#}");
                crate::cli::exit_code_for(&err)
            }
        };
        std::process::exit(code.into());
    }
    let matches = cmd.get_matches();
    P::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// A setting blanked in an environment file (`GRID_ALSO_ACCEPT_KEY_FILES=`, the natural
/// way to end a key rotation) means "none", as if it were not set: every variable a
/// flag of `cmd` reads that is set but empty is unset before parsing (clap would
/// refuse it with "a value is required", and the services would not start). Nothing
/// else runs yet, so changing the environment here races with nothing.
fn blank_means_unset(cmd: &clap::Command) {
    for arg in cmd.get_arguments() {
        if let Some(name) = arg.get_env() {
            if std::env::var_os(name).is_some_and(|v| v.is_empty()) {
                std::env::remove_var(name);
            }
        }
    }
    for sub in cmd.get_subcommands() {
        blank_means_unset(sub);
    }
}

/// `cmd` with the grid's flags hidden in the `offline` subcommands.
pub fn shaped(mut cmd: clap::Command, offline: &[&str]) -> clap::Command {
    use clap::Args;
    // A global flag reaches a subcommand when the command is built, unless the
    // subcommand has one of that name: these hidden copies.
    let grid = crate::config::GridArgs::augment_args(clap::Command::new("grid"));
    let hidden: Vec<clap::Arg> = grid.get_arguments().map(|a| a.clone().hide(true)).collect();
    for name in offline {
        cmd = cmd.mut_subcommand(*name, |sub| sub.args(hidden.iter().cloned()));
    }
    cmd
}

/// Writes what `args` (after `--generate`) ask for.
fn generate(cmd: clap::Command, args: &[OsString]) -> anyhow::Result<()> {
    let usage = || {
        crate::cli::usage(format!(
            "{FLAG} takes `man DIR` or one of complete-bash, complete-zsh, complete-fish"
        ))
    };
    let kind = args.first().and_then(|a| a.to_str()).ok_or_else(usage)?;
    match (kind, &args[1..]) {
        ("man", [dir]) => man_pages(cmd, Path::new(dir)),
        (kind, []) => {
            let shell = match kind {
                "complete-bash" => clap_complete::Shell::Bash,
                "complete-zsh" => clap_complete::Shell::Zsh,
                "complete-fish" => clap_complete::Shell::Fish,
                _ => return Err(usage().into()),
            };
            completion(cmd, shell)
        }
        _ => Err(usage().into()),
    }
}

/// Writes `BIN.1` and `BIN-SUBCOMMAND.1` for every subcommand into `dir`.
fn man_pages(cmd: clap::Command, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let files = files_of(cmd.get_name());
    write_pages(&cmd, dir, &files)
        .with_context(|| format!("writing man pages into {}", dir.display()))
}

/// One page for `cmd` and one for each of its subcommands, as clap_mangen writes them,
/// with ENVIRONMENT (every setting's variable) and FILES sections added.
fn write_pages(cmd: &clap::Command, dir: &Path, files: &[(&str, &str)]) -> std::io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir, files)?;
    }
    let man = clap_mangen::Man::new(cmd.clone());
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut page)?;
    }
    if cmd.has_subcommands() {
        man.render_subcommands_section(&mut page)?;
    }
    let mut environment = environment_section(cmd);
    if cmd.get_version().is_some() {
        environment.push_str(".TP\n\\fBGRID_LOG\\fR\nWhat is logged to stderr: error, warn, info (the default), debug, per module too (as tracing's EnvFilter reads it).\n");
    }
    page.extend(environment.into_bytes());
    page.extend(files_section(files).into_bytes());
    if cmd.get_version().or(cmd.get_long_version()).is_some() {
        man.render_version_section(&mut page)?;
    }
    std::fs::write(dir.join(man.get_filename()), page)
}

/// ENVIRONMENT: the variable that stands in for each shown flag.
fn environment_section(cmd: &clap::Command) -> String {
    let mut out = String::new();
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        let (Some(env), Some(long)) = (arg.get_env(), arg.get_long()) else {
            continue;
        };
        if out.is_empty() {
            out.push_str(".SH ENVIRONMENT\n");
        }
        let env = roff_text(&env.to_string_lossy());
        out.push_str(&format!(
            ".TP\n\\fB{env}\\fR\nStands in for \\fB\\-\\-{}\\fR when the flag is not given.\n",
            roff_text(long)
        ));
    }
    out
}

/// FILES: what the package puts where, for the programs that read it.
fn files_section(files: &[(&str, &str)]) -> String {
    if files.is_empty() {
        return String::new();
    }
    let mut out = String::from(".SH FILES\n");
    for (path, what) in files {
        out.push_str(&format!(
            ".TP\n\\fI{}\\fR\n{}\n",
            roff_text(path),
            roff_text(what)
        ));
    }
    out
}

/// The files a binary meets when run by the package's units.
fn files_of(binary: &str) -> Vec<(&'static str, &'static str)> {
    let mut files = vec![
        ("/etc/camhd-grid/grid.env", "The settings every camhd-grid service reads (its units' EnvironmentFile): the variables under ENVIRONMENT."),
        ("/etc/camhd-grid/grid.key", "The grid key (GRID_KEY_FILE), mode 640, group camhd-grid."),
    ];
    match binary {
        "queuer" => files.extend([
            ("/etc/camhd-grid/queuer/NAME.env", "The settings of the data source NAME, read by camhd-grid-queuer@NAME.service after grid.env."),
            ("CHECKOUT/.git/camhd-grid-queued-NAMESPACE.json", "The ledger of queued jobs (QUEUER_LEDGER)."),
        ]),
        "sink" => files.extend([
            ("/var/lib/camhd-grid/checkout", "The CamHD_motion_metadata checkout by default (SINK_CHECKOUT)."),
            ("CHECKOUT/.git/camhd-grid-sink.lock", "Held while a sink writes the checkout: one sink per checkout."),
        ]),
        "filter" => files.push(("/var/lib/camhd-grid/spool", "Results not yet put into the results tube (FILTER_SPOOL).")),
        "gridctl" => files.push(("/lib/systemd/system/camhd-grid-dashboard.service", "Runs `gridctl serve` as the service user (GRIDCTL_LISTEN).")),
        _ => {}
    }
    files.push((
        "/usr/share/doc/camhd-grid/deploy.md",
        "How a grid is deployed, machine by machine.",
    ));
    files
}

/// `text` safe as roff text: backslashes doubled, hyphens escaped, no leading dot.
fn roff_text(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    match escaped.chars().next() {
        Some('.' | '\'') => format!("\\&{escaped}"),
        _ => escaped,
    }
}

/// Prints the completion script of `shell` to stdout.
fn completion(mut cmd: clap::Command, shell: clap_complete::Shell) -> anyhow::Result<()> {
    let name = cmd.get_name().to_owned();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, name.clone(), &mut out);
    if shell == clap_complete::Shell::Bash {
        out.extend_from_slice(bash_paths(&cmd, &name).as_bytes());
    }
    std::io::stdout()
        .lock()
        .write_all(&out)
        .context("writing the completion script to stdout")?;
    Ok(())
}

/// clap_complete's bash script offers only options where a positional argument goes
/// (`gridctl plot <TAB>` listed flags, never files): a wrapper offers files there, for
/// the commands whose positional argument is a path.
fn bash_paths(cmd: &clap::Command, name: &str) -> String {
    let takes_path = |c: &clap::Command| {
        c.get_positionals().any(|a| {
            matches!(
                a.get_value_hint(),
                clap::ValueHint::FilePath | clap::ValueHint::DirPath | clap::ValueHint::AnyPath
            )
        })
    };
    let mut patterns: Vec<String> = cmd
        .get_subcommands()
        .filter(|c| takes_path(c))
        .map(|c| format!("*\" {} \"*", c.get_name()))
        .collect();
    if takes_path(cmd) {
        patterns.push("*".into());
    }
    if patterns.is_empty() {
        return String::new();
    }
    let function = format!("_{}", name.replace('-', "__"));
    format!(
        r#"
# Files where a path goes: clap_complete offers only options there.
{function}_paths() {{
    {function} "$@"
    local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    [[ $cur == -* || $prev == -* || $COMP_CWORD -lt 2 && "{root}" != yes ]] && return 0
    case " ${{COMP_WORDS[*]:1:COMP_CWORD-1}} " in
        {patterns}) COMPREPLY=( $(compgen -f -- "$cur") ); compopt -o filenames 2>/dev/null ;;
    esac
}}
complete -F {function}_paths -o bashdefault -o default {name}
"#,
        root = if takes_path(cmd) { "yes" } else { "no" },
        patterns = patterns.join("|"),
    )
}
