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
pub fn parse<P: clap::Parser>() -> P {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == FLAG) {
        // Nothing else runs yet (no logging, no threads), so exiting here skips nothing.
        let code = match generate(P::command(), &args[2..]) {
            Ok(()) => crate::cli::exit::OK,
            Err(err) => {
                eprintln!("error: {err:#}");
                crate::cli::exit_code_for(&err)
            }
        };
        std::process::exit(code.into());
    }
    P::parse()
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
    clap_mangen::generate_to(cmd, dir)
        .with_context(|| format!("writing man pages into {}", dir.display()))?;
    Ok(())
}

/// Prints the completion script of `shell` to stdout.
fn completion(mut cmd: clap::Command, shell: clap_complete::Shell) -> anyhow::Result<()> {
    let name = cmd.get_name().to_owned();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut out);
    std::io::stdout()
        .lock()
        .write_all(&out)
        .context("writing the completion script to stdout")?;
    Ok(())
}
