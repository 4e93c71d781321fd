//! What a document may say: the bounds of a camera's motion between two frames and of a
//! video's facts. The sink refuses a document outside them (`check`), the filter refuses
//! to analyse a video whose facts fall outside them, and plots and region finding rely
//! on them.

/// The most entries one document may hold: stride 1 over a 5-hour video (the filter
/// plans no more pairs).
pub const MAX_ENTRIES: usize = 500_000;

/// The most frames a video may have (as the filter's frame sources accept: a 14-minute
/// CamHD file has ~25,000).
pub const MAX_FRAMES: u64 = 5_000_000;

/// The scale between two frames: a camera zooms at most a few percent a frame; the filter
/// calls anything outside 0.5..2 invalid. Far beyond that is not a measurement.
pub const SCALE: std::ops::RangeInclusive<f64> = 0.01..=100.0;

/// The largest rotation between two frames, in radians (a whole turn).
pub const MAX_THETA: f64 = std::f64::consts::TAU;

/// The largest translation between two frames, in full-resolution pixels: fifty widths
/// of a 1080p frame.
pub const MAX_TRANSLATION: f64 = 100_000.0;

/// Frames per second of a real video: CamHD records 29.97.
pub const FPS: std::ops::RangeInclusive<f64> = 0.1..=1000.0;

/// Why a similarity `[scale, theta, tx, ty]` is not one a camera can give, if it is not.
pub fn implausible_similarity(s: &[f64; 4]) -> Option<String> {
    let [scale, theta, tx, ty] = *s;
    if !s.iter().all(|x| x.is_finite()) {
        Some("not four finite numbers".into())
    } else if !SCALE.contains(&scale) {
        Some(format!(
            "scale {scale:?} is outside {}..={}",
            SCALE.start(),
            SCALE.end()
        ))
    } else if theta.abs() > MAX_THETA {
        Some(format!("theta {theta:?} is more than a whole turn"))
    } else if tx.abs().max(ty.abs()) > MAX_TRANSLATION {
        Some(format!(
            "translation ({tx:?}, {ty:?}) is more than {MAX_TRANSLATION} pixels"
        ))
    } else {
        None
    }
}

/// Why a video of `frames` frames lasting `seconds` is not a real one, if it is not: a
/// frame count from 1 to [`MAX_FRAMES`] and, with a duration, a frame rate in [`FPS`].
pub fn implausible_movie(frames: f64, seconds: Option<f64>) -> Option<String> {
    if !(frames >= 1.0 && frames <= MAX_FRAMES as f64 && frames.fract() == 0.0) {
        return Some(format!(
            "NumFrames {frames:?} is not a whole number from 1 to {MAX_FRAMES}"
        ));
    }
    let seconds = seconds?;
    let fps = frames / seconds;
    if !(seconds.is_finite() && seconds > 0.0 && FPS.contains(&fps)) {
        return Some(format!(
            "Duration {seconds:?} s for {frames:?} frames is not a frame rate from {} to {} per second",
            FPS.start(),
            FPS.end()
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_camera_moves_within_bounds() {
        assert_eq!(implausible_similarity(&[1.0, 0.0, 0.0, 0.0]), None);
        assert_eq!(implausible_similarity(&[1.02, -0.03, 55.0, -80.0]), None);
        for bad in [
            [1.7e308, 0.0, 0.0, 0.0],
            [-1.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0],
            [1.0, 7.0, 0.0, 0.0],
            [1.0, 0.0, -1.7e308, 0.0],
            [1.0, 0.0, 0.0, f64::NAN],
        ] {
            assert!(implausible_similarity(&bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn a_movie_has_a_real_frame_count_and_rate() {
        assert_eq!(implausible_movie(25_000.0, Some(834.166)), None);
        assert_eq!(implausible_movie(27.0, None), None);
        for (frames, seconds) in [
            (5e-324, Some(1e308)),
            (0.0, None),
            (1.5, None),
            (6e6, None),
            (100.0, Some(1e308)),
            (100.0, Some(0.0)),
            (100.0, Some(-3.0)),
            (100.0, Some(f64::INFINITY)),
            (1_000_000.0, Some(1.0)),
        ] {
            assert!(
                implausible_movie(frames, seconds).is_some(),
                "{frames} {seconds:?}"
            );
        }
    }
}
