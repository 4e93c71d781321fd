//! The similarity that the tracked points agree on, by OpenCV's RANSAC partial-affine
//! fit in centred full-resolution coordinates.

use opencv::core::{Mat, Point2f, Vector};
use opencv::prelude::*;

use super::{Estimate, MotionConfig, Similarity};

/// Fits the similarity in centred full-resolution coordinates, so that its translation
/// is the motion at the image centre in full-resolution pixels.
pub(super) fn fit(
    src: &[Point2f],
    dst: &[Point2f],
    cfg: &MotionConfig,
) -> opencv::Result<Estimate> {
    let (cx, cy) = (cfg.full_width as f64 / 2.0, cfg.full_height as f64 / 2.0);
    let s = cfg.img_scale;
    // Analysis pixel x covers full-resolution [x/s, (x+1)/s): its centre is (x+0.5)/s.
    let to_full = |p: &Point2f| {
        Point2f::new(
            ((p.x as f64 + 0.5) / s - 0.5 - cx) as f32,
            ((p.y as f64 + 0.5) / s - 0.5 - cy) as f32,
        )
    };
    let from: Vector<Point2f> = src.iter().map(to_full).collect();
    let to: Vector<Point2f> = dst.iter().map(to_full).collect();
    let mut inliers = Mat::default();
    let threshold = 1.0 / s; // one analysis pixel
    let m = opencv::calib3d::estimate_affine_partial_2d(
        &from,
        &to,
        &mut inliers,
        opencv::calib3d::RANSAC,
        threshold,
        2000,
        0.995,
        10,
    )?;
    if m.empty() {
        return Ok(Estimate::Invalid("no consistent motion found".into()));
    }
    let count = opencv::core::count_non_zero(&inliers)? as usize;
    let needed = cfg.min_inliers.max(from.len() * 3 / 10);
    if count < needed {
        return Ok(Estimate::Invalid(format!(
            "too few points agree ({count} of {})",
            from.len()
        )));
    }
    let (a, b) = (*m.at_2d::<f64>(0, 0)?, *m.at_2d::<f64>(1, 0)?);
    let similarity = Similarity {
        scale: a.hypot(b),
        theta: (-b).atan2(a),
        tx: *m.at_2d::<f64>(0, 2)?,
        ty: *m.at_2d::<f64>(1, 2)?,
    };
    if !(0.5..=2.0).contains(&similarity.scale) {
        return Ok(Estimate::Invalid(format!(
            "implausible scale {:.3}",
            similarity.scale
        )));
    }
    Ok(Estimate::Valid {
        similarity,
        inliers: count,
    })
}
