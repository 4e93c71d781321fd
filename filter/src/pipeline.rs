//! What every run over a video's frames sets up, checked before any frame is fetched:
//! the plan of pairs (within what a video and the deadline allow), the block size that
//! bounds memory, the frame decoder (asking the source for parts when it reads them),
//! the frames streaming in ahead of their use, and the worker threads.

use std::time::Duration;

use crate::frame_decoder::FrameDecoder;
use crate::frame_error::FrameError;
use crate::plan::{plan, Pair, Plan, PlanError};
use crate::settings::{Settings, PAIR_GAP};
use crate::source::{Deadline, FrameSource, FrameStream, Payload, ReadError, VideoInfo, Window};
use crate::AnalysisError;
use flowdoc::limits::implausible_movie;

/// What every run over a video's frames sets up: the plan, the decoder (asking the
/// source for parts when it reads them), the frames streaming in ahead of their use,
/// and the worker threads.
pub(crate) struct Pipeline {
    pub(crate) info: VideoInfo,
    pub(crate) plan: Plan,
    /// Pairs per block.
    pub(crate) block: usize,
    pub(crate) decoder: FrameDecoder,
    pub(crate) stream: FrameStream,
    pub(crate) pool: rayon::ThreadPool,
}

impl Pipeline {
    /// Everything a run over `source` needs, checked against what a video can be and
    /// the deadline.
    pub(crate) fn start(
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

/// A frame as the pipeline hands it on: its number, and its payload or why the source
/// could not produce it.
pub(crate) type Taken = (u64, Result<Payload, FrameError>);

/// The next `n` frames of `video`, waiting no longer than the deadline allows.
pub(crate) fn take(
    stream: &mut FrameStream,
    video: &str,
    n: usize,
    deadline: Option<&Deadline>,
) -> Result<Vec<Taken>, AnalysisError> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        match stream.next(deadline, video) {
            Some(frame) => {
                let (number, payload) = frame?;
                out.push((number, payload.map_err(FrameError::Source)));
            }
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
pub(crate) fn frames_per_block(blocks: &[&[Pair]], needed: &[u64]) -> Vec<Vec<u64>> {
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
