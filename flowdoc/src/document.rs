//! The document as the filter writes it, version 1.1, exactly as the scientists' scripts
//! read it (keys in the order of the files in CamHD_motion_metadata), plus an `analysis`
//! object, declared in `contents`, that records how it was made.

use serde::Serialize;

/// The whole document.
#[derive(Debug, Clone, Serialize)]
pub struct OpticalFlowDocument {
    /// Version strings of each part.
    pub contents: Contents,
    /// One entry per sampled frame, sorted by `frameNumber`.
    #[serde(rename = "frameStats")]
    pub frame_stats: Vec<FrameStat>,
    /// The video.
    pub movie: Movie,
    /// Run time and host.
    pub performance: Performance,
    /// How the analysis was made (new in camhd-grid).
    pub analysis: AnalysisInfo,
}

/// `contents`.
#[derive(Debug, Clone, Serialize)]
pub struct Contents {
    /// "1.0".
    pub movie: &'static str,
    /// `{"opticalFlow": "1.1"}`.
    #[serde(rename = "frameStats")]
    pub frame_stats: FrameStatsVersion,
    /// `{"timing": "1.0", "hostinfo": "1.1"}`.
    pub performance: PerformanceVersion,
    /// "1.0".
    pub analysis: &'static str,
}

/// `contents.frameStats`.
#[derive(Debug, Clone, Serialize)]
pub struct FrameStatsVersion {
    /// "1.1".
    #[serde(rename = "opticalFlow")]
    pub optical_flow: &'static str,
}

/// `contents.performance`.
#[derive(Debug, Clone, Serialize)]
pub struct PerformanceVersion {
    /// "1.0".
    pub timing: &'static str,
    /// "1.1".
    pub hostinfo: &'static str,
}

impl Default for Contents {
    fn default() -> Self {
        Contents {
            movie: "1.0",
            frame_stats: FrameStatsVersion {
                optical_flow: "1.1",
            },
            performance: PerformanceVersion {
                timing: "1.0",
                hostinfo: "1.1",
            },
            analysis: "1.0",
        }
    }
}

/// One entry of `frameStats`.
#[derive(Debug, Clone, Serialize)]
pub struct FrameStat {
    /// The sampled frame.
    #[serde(rename = "frameNumber")]
    pub frame_number: u64,
    /// Wall time spent on this entry.
    #[serde(rename = "durationSeconds")]
    pub duration_seconds: f64,
    /// The estimate.
    #[serde(rename = "opticalFlow")]
    pub optical_flow: OpticalFlow,
}

/// `frameStats[].opticalFlow`.
#[derive(Debug, Clone, Serialize)]
pub struct OpticalFlow {
    /// f - 5, clamped to 1.
    #[serde(rename = "fromFrame")]
    pub from_frame: u64,
    /// f + 5, clamped to the last frame.
    #[serde(rename = "toFrame")]
    pub to_frame: u64,
    /// The scale the flow was computed at.
    #[serde(rename = "imgScale")]
    pub img_scale: f64,
    /// Always 1.0.
    #[serde(rename = "flowScale")]
    pub flow_scale: f64,
    /// Minus half the full-resolution size.
    pub center: [f64; 2],
    /// `[scale, theta, tx, ty]`; `[1, 0, 0, 0]` when invalid.
    pub similarity: [f64; 4],
    /// False when a frame was dark, missing or undecodable, or the fit was not confident.
    pub valid: bool,
    /// Timing of this entry.
    pub performance: EntryPerformance,
}

/// `frameStats[].opticalFlow.performance`.
#[derive(Debug, Clone, Serialize)]
pub struct EntryPerformance {
    /// Timing.
    pub timing: EntryTiming,
}

/// `frameStats[].opticalFlow.performance.timing`.
#[derive(Debug, Clone, Serialize)]
pub struct EntryTiming {
    /// Seconds spent estimating this pair.
    #[serde(rename = "elapsedSeconds")]
    pub elapsed_seconds: f64,
}

/// `movie`.
#[derive(Debug, Clone, Serialize)]
pub struct Movie {
    /// The video's path below the archive root, or the path or URL given.
    #[serde(rename = "URL")]
    pub url: String,
    /// Where the frames were read from.
    #[serde(rename = "cacheURL")]
    pub cache_url: String,
    /// Seconds.
    #[serde(rename = "Duration")]
    pub duration: f64,
    /// Frames in the video.
    #[serde(rename = "NumFrames")]
    pub num_frames: u64,
}

/// `performance`.
#[derive(Debug, Clone, Serialize)]
pub struct Performance {
    /// Whole-run timing.
    pub timing: RunTiming,
    /// Where it ran.
    pub hostinfo: HostInfo,
}

/// `performance.timing`.
#[derive(Debug, Clone, Serialize)]
pub struct RunTiming {
    /// Wall-clock seconds of the whole analysis.
    #[serde(rename = "elapsedSeconds")]
    pub elapsed_seconds: f64,
    /// RFC 3339.
    #[serde(rename = "startTime")]
    pub start_time: String,
    /// RFC 3339.
    #[serde(rename = "endTime")]
    pub end_time: String,
}

/// `performance.hostinfo`.
#[derive(Debug, Clone, Serialize)]
pub struct HostInfo {
    /// The machine's name.
    pub hostname: String,
    /// The processor's model name.
    pub cpu: String,
}

/// `analysis`: what the original never recorded.
#[derive(Debug, Clone, Serialize)]
pub struct AnalysisInfo {
    /// e.g. "camhd-grid filter".
    pub software: String,
    /// The software's version.
    pub version: String,
    /// How the similarity was estimated.
    pub method: String,
    /// Every `stride`-th frame was sampled.
    pub stride: u32,
    /// The first sampled frame.
    pub start: u64,
    /// One past the last sampled frame, as given (-1: the number of frames).
    pub stop: i64,
    /// Frames between `fromFrame` and `toFrame`.
    #[serde(rename = "pairGap")]
    pub pair_gap: u64,
    /// The analysis scale.
    #[serde(rename = "imgScale")]
    pub img_scale: f64,
    /// The ProRes decoder: "reduced-dct" (luma from its lowest DCT frequencies, libav
    /// for frames it declines) or "libav".
    pub decoder: String,
    /// Entries with `valid: true`.
    #[serde(rename = "validEntries")]
    pub valid_entries: usize,
}

impl OpticalFlowDocument {
    /// The document as the repository's files are written: 2-space indentation and a
    /// trailing newline.
    pub fn to_json_pretty(&self) -> String {
        let mut text = serde_json::to_string_pretty(self)
            .unwrap_or_else(|e| panic!("the document failed to serialise: {e}"));
        text.push('\n');
        text
    }
}
