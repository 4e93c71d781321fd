//! Child processes (git, ffmpeg) run the same careful way everywhere: stdout and stderr
//! drained on their own threads so a chatty child never blocks, the command line and its
//! stderr in any error, and the child killed and reaped if we give up on it.

use std::io::Read;
use std::process::{Child, Command, Output, Stdio};
use std::thread::JoinHandle;

/// A child process that failed to start or exited unsuccessfully.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// It could not be started.
    #[error("could not run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It exited with a failure status.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// The exit status.
        status: std::process::ExitStatus,
        /// What it wrote to stderr, trimmed.
        stderr: String,
        /// What it wrote to stdout.
        stdout: String,
    },
}

/// A running child that is killed and reaped if dropped before it is waited for.
#[derive(Debug)]
struct Guard(Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The command line as a shell user would type it, for messages.
pub fn command_line(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` to completion and returns its output, or an error holding the command line
/// and stderr when it cannot start or exits unsuccessfully; `input`, if any, is written
/// to the child's standard input (on a thread, so a child that writes much before
/// reading cannot deadlock with us).
pub fn run_with_input(cmd: &mut Command, input: Option<Vec<u8>>) -> Result<Output, ProcessError> {
    let command = command_line(cmd);
    let stdin = if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    let mut child = cmd
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ProcessError::Spawn {
            command: command.clone(),
            source,
        })?;
    let feeder = child.stdin.take().zip(input).map(|(mut pipe, bytes)| {
        std::thread::spawn(move || {
            let _ = std::io::Write::write_all(&mut pipe, &bytes);
        })
    });
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let mut guard = Guard(Some(child));
    let status = match guard.0.as_mut().map(Child::wait) {
        Some(Ok(status)) => status,
        Some(Err(source)) => return Err(ProcessError::Spawn { command, source }),
        None => unreachable!("the guard holds the child until here"),
    };
    guard.0 = None;
    if let Some(f) = feeder {
        let _ = f.join();
    }
    let output = Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    };
    if output.status.success() {
        Ok(output)
    } else {
        Err(ProcessError::Failed {
            command,
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        })
    }
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buf);
        }
        buf
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_command_reports_its_command_line_and_stderr() {
        let err = run_with_input(
            Command::new("sh").args(["-c", "echo oops >&2; exit 3"]),
            None,
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("sh -c echo oops >&2; exit 3"), "{text}");
        assert!(text.contains("oops"), "{text}");
        assert!(text.contains("exit status: 3"), "{text}");
    }

    #[test]
    fn a_missing_program_is_a_spawn_error() {
        let err = run_with_input(&mut Command::new("/nonexistent/tool"), None).unwrap_err();
        assert!(matches!(err, ProcessError::Spawn { .. }), "{err}");
    }

    #[test]
    fn output_is_captured_even_when_large() {
        let out = run_with_input(
            Command::new("sh").args([
                "-c",
                "head -c 1000000 /dev/zero; head -c 300000 /dev/zero >&2",
            ]),
            None,
        )
        .unwrap();
        assert_eq!((out.stdout.len(), out.stderr.len()), (1_000_000, 300_000));
    }
}
