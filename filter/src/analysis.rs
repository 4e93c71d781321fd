//! The analysis of one video: plan the pairs, fetch the needed frames on a prefetch
//! thread, decode them and estimate each pair's motion on a pool of worker threads, and
//! assemble the `_optical_flow.json` document.
//!
//! Work goes in blocks of pairs, so memory stays bounded by the block size whatever the
//! video's length; a decoded frame is kept only until the last pair that uses it is done.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use rayon::prelude::*;

use crate::decode::{DecoderChoice, FetchChoice, GreyImage};
use crate::document::*;
use crate::frame_decoder::FrameDecoder;
use crate::frame_error::FrameError;
use crate::motion::{self, Estimate, MotionConfig, Prepared, Similarity};
use crate::plan::{plan, Pair, Plan, PlanError};
use crate::source::{
    Deadline, Fetched, FrameSource, FrameStream, Payload, ReadError, VideoInfo, Window,
};
use crate::AnalysisError;
use flowdoc::limits::implausible_movie;

/// Frames between `fromFrame` and `toFrame`, as the original.
pub const PAIR_GAP: u64 = 10;

/// What to analyse and how.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Sample every `stride`-th frame.
    pub stride: u32,
    /// First sampled frame (1-based).
    pub start: u64,
    /// One past the last sampled frame; -1: the number of frames.
    pub stop: i64,
    /// The analysis scale (0.25: 480x270 for 1080p).
    pub img_scale: f64,
    /// Worker threads.
    pub threads: usize,
    /// Which ProRes decoder to use.
    pub decoder: DecoderChoice,
    /// Whether to fetch only the parts of frames the reduced decoder reads.
    pub fetch: FetchChoice,
    /// The video's time budget, fetching included (`--video-deadline`); an automatic
    /// one is fitted to the video by [`auto_budget`] once its plan is known.
    pub deadline: Option<Deadline>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            stride: 10,
            start: 1,
            stop: -1,
            img_scale: 0.25,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            decoder: DecoderChoice::Auto,
            fetch: FetchChoice::Auto,
            deadline: None,
        }
    }
}

/// How far an analysis has got.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Pairs estimated.
    pub pairs_done: usize,
    /// Pairs in the plan.
    pub pairs_total: usize,
    /// Time since the start.
    pub elapsed: Duration,
    /// Bytes fetched from the source.
    pub bytes_fetched: u64,
}

/// Counters of a finished run, for logs and benchmarks.
#[derive(Debug, Clone)]
pub struct RunStats {
    /// Frames decoded.
    pub frames_decoded: usize,
    /// Bytes fetched from the source.
    pub bytes_fetched: u64,
    /// Wall-clock time.
    pub elapsed: Duration,
}

/// A finished analysis.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// The `_optical_flow.json` document.
    pub document: OpticalFlowDocument,
    /// Counters.
    pub stats: RunStats,
}

/// A decoded frame prepared for its pairs, or why it could not be had.
type Frame = Arc<Result<Prepared, FrameError>>;

/// Analyses the video behind `source`, calling `progress` after each block.
pub fn analyze(
    source: Box<dyn FrameSource>,
    settings: &Settings,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Analysis, AnalysisError> {
    let started = Instant::now();
    let start_time = Utc::now();
    let mut run = Pipeline::start(source, settings)?;
    let info = run.info.clone();
    let blocks: Vec<&[Pair]> = run.plan.pairs.chunks(run.block).collect();
    let frame_lists = frames_per_block(&blocks, &run.plan.needed);
    let motion_cfg = MotionConfig::new(info.width, info.height, settings.img_scale);

    // Block i's frames are decoded while block i-1's pairs, whose frames are all
    // decoded by then, are estimated: one pool, no idle barrier between the two.
    let mut cache: BTreeMap<u64, Frame> = BTreeMap::new();
    let mut stats = Vec::with_capacity(run.plan.pairs.len());
    let mut frames_decoded = 0;
    let mut frame_errors = FrameErrors::default();
    let estimate = |pairs: &[Pair], cache: &BTreeMap<u64, Frame>| -> Vec<FrameStat> {
        pairs
            .par_iter()
            .map(|p| frame_stat(p, &cache[&p.from], &cache[&p.to], &motion_cfg, settings))
            .collect()
    };
    for i in 0..=blocks.len() {
        let fetched = match frame_lists.get(i) {
            Some(list) => take(
                &mut run.stream,
                &info.cache_url,
                list.len(),
                settings.deadline.as_ref(),
            )?,
            None => Vec::new(),
        };
        frames_decoded += fetched.len();
        let previous: &[Pair] = if i > 0 { blocks[i - 1] } else { &[] };
        let decoder = &run.decoder;
        let (decoded, done) = run.pool.install(|| {
            rayon::join(
                || {
                    fetched
                        .into_par_iter()
                        .map(|(n, payload)| (n, prepare(decoder, &payload, &motion_cfg)))
                        .collect::<Vec<_>>()
                },
                || estimate(previous, &cache),
            )
        });
        let decoded = frame_errors.count(decoded)?;
        stats.extend(done);
        if let Some(d) = &settings.deadline {
            d.check(&info.cache_url)?;
        }
        if let Some(block) = blocks.get(i) {
            let keep_from = block[0].from;
            cache.retain(|&n, _| n >= keep_from);
        }
        cache.extend(decoded);
        if i > 0 {
            progress(&Progress {
                pairs_done: stats.len(),
                pairs_total: run.plan.pairs.len(),
                elapsed: started.elapsed(),
                bytes_fetched: run.stream.bytes_fetched(),
            });
        }
    }
    frame_errors.log(&info.cache_url);

    let elapsed = started.elapsed();
    let took = RunTime {
        start: start_time,
        elapsed,
    };
    let document = run.document(settings, stats, took);
    Ok(Analysis {
        document,
        stats: RunStats {
            frames_decoded,
            bytes_fetched: run.stream.bytes_fetched(),
            elapsed,
        },
    })
}

/// Fetches and decodes the frames the analysis of `source` would need, and nothing else:
/// the floor under the analysis's cost, for benchmarks and for telling I/O from decoding.
pub fn decode_only(
    source: Box<dyn FrameSource>,
    settings: &Settings,
) -> Result<RunStats, AnalysisError> {
    let started = Instant::now();
    let mut run = Pipeline::start(source, settings)?;
    let mut frames_decoded = 0;
    let mut left = run.plan.needed.len();
    while left > 0 {
        let n = left.min(run.block);
        left -= n;
        let video = &run.info.cache_url;
        let fetched = take(&mut run.stream, video, n, settings.deadline.as_ref())?;
        let decoder = &run.decoder;
        let outcomes: Vec<Result<GreyImage, FrameError>> = run.pool.install(|| {
            fetched
                .into_par_iter()
                .map(|(_, payload)| decoder.decode(&payload))
                .collect()
        });
        if outcomes
            .iter()
            .any(|o| o.as_ref().is_err_and(FrameError::is_fetch))
        {
            return Err(first_fetch_error(outcomes.into_iter()));
        }
        frames_decoded += outcomes.iter().filter(|o| o.is_ok()).count();
    }
    Ok(RunStats {
        frames_decoded,
        bytes_fetched: run.stream.bytes_fetched(),
        elapsed: started.elapsed(),
    })
}

/// What every run over a video's frames sets up: the plan, the decoder (asking the
/// source for parts when it reads them), the frames streaming in ahead of their use,
/// and the worker threads.
struct Pipeline {
    info: VideoInfo,
    plan: Plan,
    /// Pairs per block.
    block: usize,
    decoder: FrameDecoder,
    stream: FrameStream,
    pool: rayon::ThreadPool,
}

impl Pipeline {
    fn start(
        mut source: Box<dyn FrameSource>,
        settings: &Settings,
    ) -> Result<Pipeline, AnalysisError> {
        let info = source.info().clone();
        if let Some(why) = implausible_movie(info.num_frames as f64, Some(info.duration)) {
            return Err(implausible(&info, why));
        }
        let plan = plan_for(&info, settings)?;
        if let Some(d) = &settings.deadline {
            fit_deadline(d, &info, plan.needed.len() as u64)?;
        }
        let threads = settings.threads.max(1);
        let block = block_size(threads, &info);
        let pool = worker_pool(threads)?;
        let mut decoder = FrameDecoder::new(&info, settings.decoder, settings.img_scale, threads);
        decoder.fetch_parts_from(source.as_mut(), settings.fetch);
        // Three blocks of frames ahead: one being decoded, two on their way.
        let window = Window::frames(3 * 2 * block);
        let mut stream = source.stream(plan.needed.clone(), window);
        decoder.complete_with(stream.reader());
        Ok(Pipeline {
            info,
            plan,
            block,
            decoder,
            stream,
            pool,
        })
    }
}

/// The next `n` frames of `video`, waiting no longer than the deadline allows.
fn take(
    stream: &mut FrameStream,
    video: &str,
    n: usize,
    deadline: Option<&Deadline>,
) -> Result<Vec<Fetched>, AnalysisError> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        match stream.next(deadline, video) {
            Some(frame) => out.push(frame?),
            None => {
                return Err(AnalysisError::Internal(
                    "the read-ahead stopped before the last frame".into(),
                ))
            }
        }
    }
    Ok(out)
}

/// The most frame pairs (document entries) one analysis makes: 500,000 is stride 1 over
/// a 5-hour video, and keeps `filter analyze` well under 500 MB.
pub const MAX_PAIRS: u64 = flowdoc::limits::MAX_ENTRIES as u64;

/// The compressed bytes the analysis may hold at once: up to three blocks of frames are
/// in flight (one decoding, two fetched ahead).
const BLOCK_BYTES: u64 = 96 << 20;

/// Pairs per block: enough to keep every thread busy, few enough that three blocks of
/// the video's largest frames stay within [`BLOCK_BYTES`] (a hostile index can claim
/// frames of tens of megabytes; a CamHD frame is ~0.6 MB).
fn block_size(threads: usize, info: &VideoInfo) -> usize {
    let wanted = (threads * 8).clamp(16, 64);
    // Each pair needs at most two new frames.
    let per_pair = info.max_frame_bytes.max(1).saturating_mul(2);
    let affordable = (BLOCK_BYTES / 3 / per_pair).max(1) as usize;
    wanted.min(affordable)
}

/// The error of the first frame whose fetching failed (the others gave up after it).
fn first_fetch_error<T>(frames: impl Iterator<Item = Result<T, FrameError>>) -> AnalysisError {
    let mut fetch_errors = frames.filter_map(Result::err).filter(FrameError::is_fetch);
    match fetch_errors.find(|e| matches!(e, FrameError::Fetch(_))) {
        Some(FrameError::Fetch(e)) => e.into(),
        _ => AnalysisError::Internal("frames abandoned without a failed request".into()),
    }
}

/// The frames of a video that could not be had, counted by kind with the first message
/// of each kind, for one log line per kind.
#[derive(Default)]
struct FrameErrors(BTreeMap<&'static str, (u64, String)>);

impl FrameErrors {
    /// Counts the failed frames of a decoded block and wraps each frame for sharing; a
    /// frame whose source failed fails the video (a failed attempt, as when the first
    /// fetch fails), never an invalid entry.
    fn count(
        &mut self,
        decoded: Vec<(u64, Result<Prepared, FrameError>)>,
    ) -> Result<Vec<(u64, Frame)>, AnalysisError> {
        if decoded
            .iter()
            .any(|(_, f)| f.as_ref().is_err_and(FrameError::is_fetch))
        {
            return Err(first_fetch_error(decoded.into_iter().map(|(_, f)| f)));
        }
        let mut out = Vec::with_capacity(decoded.len());
        for (n, frame) in decoded {
            if let Err(e) = &frame {
                let (count, first) = self.0.entry(e.kind()).or_default();
                if *count == 0 {
                    *first = format!("frame {n}: {e}");
                }
                *count += 1;
            }
            out.push((n, Arc::new(frame)));
        }
        Ok(out)
    }

    fn log(&self, video: &str) {
        for (kind, (count, first)) in &self.0 {
            tracing::warn!(video, count, kind, first = %first, "frames that could not be had");
        }
    }
}

/// The analysis's plan for a video, or why there is nothing to analyse.
fn plan_for(info: &VideoInfo, settings: &Settings) -> Result<Plan, AnalysisError> {
    let stop = if settings.stop < 0 {
        info.num_frames
    } else {
        (settings.stop as u64).min(info.num_frames)
    };
    let pairs = stop
        .saturating_sub(settings.start)
        .div_ceil(u64::from(settings.stride.max(1)));
    if pairs > MAX_PAIRS {
        return Err(AnalysisError::PlanTooLarge {
            pairs,
            max: MAX_PAIRS,
        });
    }
    plan(
        info.num_frames,
        settings.start,
        settings.stop,
        settings.stride,
        PAIR_GAP,
    )
    .map_err(|e| match e {
        PlanError::TooShort { needed } => AnalysisError::TooShort {
            what: info.cache_url.clone(),
            frames: info.num_frames,
            needed,
        },
        PlanError::Empty(why) => AnalysisError::NothingToDo(why),
    })
}

/// The pool that decodes frames and estimates pairs; OpenCV inside it runs single-threaded.
fn worker_pool(threads: usize) -> Result<rayon::ThreadPool, AnalysisError> {
    single_threaded_opencv();
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("analysis-{i}"))
        .build()
        .map_err(|e| AnalysisError::Internal(format!("starting worker threads: {e}")))
}

/// Makes every OpenCV call run on its calling thread, once per process. Pairs run in
/// parallel on our pool; OpenCV's own thread pool inside each call would only contend
/// with it (measured: flow took twice as long with it on). Call it before any other
/// OpenCV use: reconfiguring OpenCV's pool while another thread is inside one of its
/// parallel loops crashes the process (seen as a SIGSEGV in libtbb when two analyses
/// started at once).
pub fn single_threaded_opencv() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Err(e) = opencv::core::set_num_threads(1) {
            tracing::warn!(error = %e, "could not limit OpenCV to one thread per call");
        }
    });
}

/// For each block, the needed frames it is the first to need.
fn frames_per_block(blocks: &[&[Pair]], needed: &[u64]) -> Vec<Vec<u64>> {
    let mut rest = needed;
    blocks
        .iter()
        .map(|pairs| {
            let last = pairs.iter().map(|p| p.to).max().unwrap_or(0);
            let n = rest.partition_point(|&f| f <= last);
            let (mine, later) = rest.split_at(n);
            rest = later;
            mine.to_vec()
        })
        .collect()
}

/// The automatic time budget of a video whose analysis needs `frames`: five minutes,
/// plus 50 ms a frame for fetching and decoding (ten times what a 2-core machine takes
/// for a 1080p ProRes frame), plus the frames' share of the file at 1 MiB/s (a slow link
/// to the archive); a frame server's PNGs get 250 ms a frame instead. A 27,000-frame
/// CamHD video at stride 10 gets about 35 minutes (it takes 11 s here).
pub fn auto_budget(info: &VideoInfo, frames: u64) -> Duration {
    let per_frame = if info.codec == *b"png " { 0.25 } else { 0.05 };
    let share = if info.num_frames > 0 {
        info.bytes as f64 * frames.min(info.num_frames) as f64 / info.num_frames as f64
    } else {
        0.0
    };
    Duration::from_secs_f64(300.0 + frames as f64 * per_frame + share / f64::from(1 << 20))
}

/// The error for a video whose facts are not a real video's.
fn implausible(info: &VideoInfo, detail: String) -> AnalysisError {
    ReadError::Implausible {
        what: info.cache_url.clone(),
        detail,
    }
    .into()
}

/// Fits an automatic deadline to the video's plan. A video that cannot say its size
/// (lazycache without `FileSize`) may not be granted more than [`Deadline::OPENING`],
/// the allowance its frame count was held to when opened: a claim that would need more
/// is refused now, with its figures, not after an hour.
fn fit_deadline(d: &Deadline, info: &VideoInfo, frames: u64) -> Result<(), AnalysisError> {
    let budget = auto_budget(info, frames);
    if d.is_auto() && info.bytes == 0 && budget > Deadline::OPENING {
        return Err(implausible(
            info,
            format!(
                "NumFrames {} without a FileSize: its {frames} frames to analyse would get {} s, more than the {} s a video that cannot say its size may take (set --video-deadline if it is real)",
                info.num_frames,
                budget.as_secs(),
                Deadline::OPENING.as_secs()
            ),
        ));
    }
    d.fit(budget);
    tracing::debug!(video = %info.cache_url, seconds = d.budget().as_secs(), "deadline");
    Ok(())
}

/// Decodes a frame and prepares it for the motion estimate.
fn prepare(
    decoder: &FrameDecoder,
    payload: &Result<Payload, String>,
    cfg: &MotionConfig,
) -> Result<Prepared, FrameError> {
    let image = decoder.decode(payload)?;
    motion::prepare(&image, cfg).map_err(|e| FrameError::Prepare(e.to_string()))
}

fn frame_stat(
    pair: &Pair,
    from: &Frame,
    to: &Frame,
    cfg: &MotionConfig,
    settings: &Settings,
) -> FrameStat {
    let t = Instant::now();
    let estimate = match (from.as_ref(), to.as_ref()) {
        (Ok(a), Ok(b)) => motion::estimate(a, b, cfg).unwrap_or_else(|e| {
            tracing::warn!(frame = pair.frame, error = %e, "OpenCV failed on a pair");
            Estimate::Invalid(format!("OpenCV: {e}"))
        }),
        (Err(e), _) => Estimate::Invalid(format!("frame {}: {e}", pair.from)),
        (_, Err(e)) => Estimate::Invalid(format!("frame {}: {e}", pair.to)),
    };
    let (similarity, valid) = match estimate {
        Estimate::Valid { similarity, .. } => (similarity, true),
        Estimate::Invalid(why) => {
            tracing::debug!(frame = pair.frame, reason = %why, "invalid entry");
            (Similarity::IDENTITY, false)
        }
    };
    let elapsed = t.elapsed().as_secs_f64();
    FrameStat {
        frame_number: pair.frame,
        duration_seconds: elapsed,
        optical_flow: OpticalFlow {
            from_frame: pair.from,
            to_frame: pair.to,
            img_scale: settings.img_scale,
            flow_scale: 1.0,
            center: [
                -(cfg.full_width as f64) / 2.0,
                -(cfg.full_height as f64) / 2.0,
            ],
            similarity: similarity.to_array(),
            valid,
            performance: EntryPerformance {
                timing: EntryTiming {
                    elapsed_seconds: elapsed,
                },
            },
        },
    }
}

/// When a run started, by the clock, and how long it took.
#[derive(Debug, Clone, Copy)]
struct RunTime {
    start: chrono::DateTime<Utc>,
    elapsed: Duration,
}

impl Pipeline {
    /// The document of this run: its entries sorted, the movie, timing, host and method.
    fn document(
        &self,
        settings: &Settings,
        mut stats: Vec<FrameStat>,
        took: RunTime,
    ) -> OpticalFlowDocument {
        let (info, decoder) = (&self.info, self.decoder.name());
        let RunTime {
            start: start_time,
            elapsed,
        } = took;
        stats.sort_by_key(|s| s.frame_number);
        let valid_entries = stats.iter().filter(|s| s.optical_flow.valid).count();
        let end_time = start_time + chrono::Duration::from_std(elapsed).unwrap_or_default();
        OpticalFlowDocument {
        contents: Contents::default(),
        frame_stats: stats,
        movie: Movie {
            url: info.url.clone(),
            cache_url: info.cache_url.clone(),
            duration: info.duration,
            num_frames: info.num_frames,
        },
        performance: Performance {
            timing: RunTiming {
                elapsed_seconds: elapsed.as_secs_f64(),
                start_time: start_time.to_rfc3339_opts(SecondsFormat::Millis, true),
                end_time: end_time.to_rfc3339_opts(SecondsFormat::Millis, true),
            },
            hostinfo: HostInfo {
                hostname: hostname(),
                cpu: cpu_model(),
            },
        },
        analysis: AnalysisInfo {
            software: "camhd-grid filter".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            method: "Shi-Tomasi corners; a similarity from 40 of them tracked through a Lucas-Kanade pyramid seeds all of them, tracked both ways at full resolution; RANSAC partial-affine fit (OpenCV)".into(),
            stride: settings.stride,
            start: settings.start,
            stop: settings.stop,
            pair_gap: PAIR_GAP,
            img_scale: settings.img_scale,
            decoder: decoder.into(),
            valid_entries,
        },
    }
    }
}
