//! The analysis of one video: plan the pairs, fetch the needed frames on a prefetch
//! thread (`pipeline`), decode them and estimate each pair's motion on a pool of worker
//! threads, and make the `_optical_flow.json` document of the entries (`document`).
//!
//! Work goes in blocks of pairs, so memory stays bounded by the block size whatever the
//! video's length; a decoded frame is kept only until the last pair that uses it is done.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use rayon::prelude::*;

use crate::decode::GreyImage;
use crate::document::{
    EntryPerformance, EntryTiming, FrameStat, OpticalFlow, OpticalFlowDocument, RunFacts,
};
use crate::frame_decoder::FrameDecoder;
use crate::frame_error::{first_fetch_error, FrameError, FrameErrors, Shared};
use crate::motion::{self, Estimate, MotionConfig, Prepared, Similarity};
use crate::pipeline::{frames_per_block, take, Pipeline};
use crate::plan::Pair;
use crate::source::{FrameSource, Payload};
use crate::AnalysisError;

pub use crate::pipeline::{auto_budget, single_threaded_opencv, MAX_PAIRS};

pub use crate::settings::{Settings, PAIR_GAP};

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
type Frame = Shared<Prepared>;

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
                        .map(|(n, payload)| {
                            (n, payload.and_then(|p| prepare(decoder, &p, &motion_cfg)))
                        })
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
    let facts = RunFacts {
        info: &info,
        settings,
        decoder: run.decoder.name(),
        start: start_time,
        elapsed,
    };
    let document = facts.document(stats);
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
                .map(|(_, payload)| payload.and_then(|p| decoder.decode(&p)))
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

/// Decodes a frame and prepares it for the motion estimate.
fn prepare(
    decoder: &FrameDecoder,
    payload: &Payload,
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
