//! The `_optical_flow.json` document the filter writes: its types live in the `flowdoc`
//! crate, beside the sink's check and the plots' reader; what only a filter knows (its
//! host, its processor, and the facts of its run) is here, with the document of a run.

use std::time::Duration;

use chrono::{SecondsFormat, Utc};

use crate::settings::{Settings, PAIR_GAP};
use crate::source::VideoInfo;

pub use flowdoc::document::*;

pub use common::host::hostname;

/// The processor's model name, for `hostinfo`.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned())
}

/// What the document of one run says besides its entries.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunFacts<'a> {
    /// The video.
    pub info: &'a VideoInfo,
    /// How it was analysed.
    pub settings: &'a Settings,
    /// The frame decoder's name.
    pub decoder: &'a str,
    /// When the run started, by the clock.
    pub start: chrono::DateTime<Utc>,
    /// How long it took.
    pub elapsed: Duration,
}

impl RunFacts<'_> {
    /// The document of the run with entries `stats`: sorted, with the movie, timing,
    /// host and method.
    pub(crate) fn document(&self, mut stats: Vec<FrameStat>) -> OpticalFlowDocument {
        let RunFacts {
            info,
            settings,
            decoder,
            start: start_time,
            elapsed,
        } = *self;
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
