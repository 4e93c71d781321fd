//! `filter analyze VIDEO`: one video, no queue; the document goes to a file or stdout,
//! progress to stderr.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use filter::source::{self, SourceKind};
use filter::{analyze, AnalysisError, Progress, Settings};

const EXIT_CODES: &str = "\
Exit codes:
   0  done
   1  internal error (libav, OpenCV, writing the output)
   2  bad arguments
  10  no such file           11  file cannot be read
  12  HTTP error status      13  server unreachable
  14  no HTTP Range support  15  lazycache reported an error
  16  not a QuickTime file   17  corrupt or truncated video
  18  no video frames        19  too few frames for one pair
  20  not ProRes             21  the frame range selects nothing
  22  server too slow        23  a redirect refused (not http(s), or too many)
  24  not a regular file     25  more frames than any video has
  26  a frame too large      27  sizes contradict the file (or lazycache's FileSize)
  28  index and frame disagree on the picture size
  29  a frame image too large                       30  more pairs than one document holds
  31  a source the filter may not fetch (grid workers only)
  32  the video's deadline passed (--video-deadline)
  33  no token of the grid's archive budget in time (grid workers only)";

/// Analyse one video and write its _optical_flow.json (to FILE or stdout).
///
/// VIDEO is a local path, a file:// URL, an http(s):// URL of a .mov on a server with
/// Range support (only the bytes of the frames analysed are fetched), or a lazycache URL
/// (.../v1/org/oceanobservatories/rawdata/files/....mov; frames are scaled on the server).
#[derive(Debug, clap::Args)]
#[command(after_long_help = EXIT_CODES)]
pub struct AnalyzeArgs {
    /// The video: path, file://, http(s):// or lazycache URL.
    video: String,

    /// Analyse every N-th frame.
    #[arg(long, env = "FILTER_STRIDE", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    stride: u32,

    /// First sampled frame (frames are numbered from 1).
    #[arg(long, env = "FILTER_START", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    start: u64,

    /// One past the last sampled frame; -1 means the number of frames.
    #[arg(long, env = "FILTER_STOP", default_value_t = -1, allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(-1..))]
    stop: i64,

    /// Worker threads [default: all cores].
    #[arg(long, env = "FILTER_THREADS", value_parser = clap::value_parser!(u32).range(1..1024))]
    threads: Option<u32>,

    /// Scale of the images the motion is computed on (0.25: 480x270 for 1080p).
    #[arg(long, env = "FILTER_SCALE", default_value_t = 0.25, value_parser = parse_scale)]
    scale: f64,

    #[command(flatten)]
    frames: crate::frame_args::FrameArgs,

    /// How to read VIDEO: auto, file, http or lazycache.
    #[arg(long, env = "FILTER_SOURCE", default_value = "auto")]
    source: SourceKind,

    #[command(flatten)]
    http: crate::http_args::HttpArgs,

    /// Write the document here (atomically) instead of stdout.
    #[arg(long, short)]
    output: Option<PathBuf>,

    /// Also plot the motion (scale, theta, tx, ty against time) into this SVG or PNG file.
    #[arg(long, value_name = "FILE.svg|FILE.png")]
    plot: Option<PathBuf>,

    /// Only fetch and decode the frames the analysis would need, then print one JSON line
    /// of counts and timing instead of the document: the floor under the analysis's cost.
    #[arg(long)]
    decode_only: bool,
}

fn parse_scale(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 1.0 => Ok(v),
        _ => Err(format!("{s:?} is not a scale in (0, 1]")),
    }
}

/// Runs the command and maps an analysis error to its own exit code.
pub fn main(args: AnalyzeArgs) -> ExitCode {
    let outcome = run(&args);
    // One line for benchmarks and tests that bound the memory whatever the input.
    tracing::info!(
        peak_rss_mb = common::host::peak_rss_mb().unwrap_or(0.0),
        "filter analyze finished"
    );
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            let code = match err.downcast_ref::<AnalysisError>() {
                Some(e) => e.exit_code(),
                None if err.is::<common::cli::exit::Usage>() => common::cli::exit::USAGE,
                None => common::cli::exit::FAILURE,
            };
            ExitCode::from(code)
        }
    }
}

fn run(args: &AnalyzeArgs) -> anyhow::Result<()> {
    if let Some(plot) = &args.plot {
        // Before the analysis, not after an hour of it.
        flowdoc::plot::Format::of(plot)?;
    }
    let mut settings = Settings {
        stride: args.stride,
        start: args.start,
        stop: args.stop,
        img_scale: args.scale,
        decoder: args.frames.decoder,
        fetch: args.frames.fetch,
        deadline: Some(source::Deadline::starting_now(args.http.video_budget())),
        ..Settings::default()
    };
    if let Some(t) = args.threads {
        settings.threads = t as usize;
    }
    let limits = args.http.limits()?;
    let video = source::open_with(
        &args.video,
        args.source,
        settings.img_scale,
        &limits.within(settings.deadline.as_ref().expect("set above")),
    )
    .map_err(AnalysisError::from)?;
    let info = video.info().clone();
    tracing::info!(
        video = %args.video,
        frames = info.num_frames,
        width = info.width,
        height = info.height,
        threads = settings.threads,
        "analysing"
    );
    if args.decode_only {
        let stats = filter::decode_only(video, &settings)?;
        let summary = serde_json::json!({
            "frames_decoded": stats.frames_decoded,
            "bytes_fetched": stats.bytes_fetched,
            "seconds": stats.elapsed.as_secs_f64(),
        });
        common::cli::out_line(format_args!("{summary}"))?;
        return Ok(());
    }
    let mut bar = ProgressLine::new();
    let analysis = analyze(video, &settings, &mut |p| bar.show(p))?;
    bar.finish();
    let s = &analysis.stats;
    tracing::info!(
        video = %args.video,
        entries = analysis.document.frame_stats.len(),
        valid = analysis.document.analysis.valid_entries,
        frames_decoded = s.frames_decoded,
        bytes_fetched = s.bytes_fetched,
        seconds = format!("{:.2}", s.elapsed.as_secs_f64()),
        "done"
    );
    let text = analysis.document.to_json_pretty();
    match &args.output {
        Some(path) => write_output(path, text.as_bytes())?,
        None => std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .context("writing the document to stdout")?,
    }
    // After the document, so a plot that cannot be written loses no analysis.
    if let Some(plot) = &args.plot {
        flowdoc::plot::plot(
            text.as_bytes(),
            plot,
            flowdoc::plot::Axis::Time,
            &args.video,
        )?;
    }
    Ok(())
}

/// Writes the document whole or not at all (a temporary file beside it and a rename).
/// A device or pipe (`/dev/null`, `/dev/stdout`) is written in place: renaming onto it
/// would replace it.
fn write_output(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if path.exists() && !path.is_file() {
        return std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()));
    }
    common::files::write_atomically(path, bytes, None)
        .with_context(|| format!("writing {}", path.display()))
}

/// Progress on stderr, redrawn in place, only when stderr is a terminal.
struct ProgressLine {
    tty: bool,
}

impl ProgressLine {
    fn new() -> Self {
        ProgressLine {
            tty: std::io::stderr().is_terminal(),
        }
    }

    fn show(&mut self, p: &Progress) {
        if !self.tty || p.pairs_total == 0 {
            return;
        }
        let secs = p.elapsed.as_secs_f64().max(1e-3);
        let rate = p.pairs_done as f64 / secs;
        let left = (p.pairs_total - p.pairs_done) as f64 / rate.max(1e-9);
        eprint!(
            "\r\x1b[2K{}/{} frames ({:.0}%)  {:.1}/s  {:.1} MB read  ETA {}",
            p.pairs_done,
            p.pairs_total,
            100.0 * p.pairs_done as f64 / p.pairs_total as f64,
            rate,
            p.bytes_fetched as f64 / 1e6,
            clock(Duration::from_secs_f64(left)),
        );
    }

    fn finish(&mut self) {
        if self.tty {
            eprintln!();
        }
    }
}

fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}
