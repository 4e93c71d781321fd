//! The camera motion between two grey frames as a similarity (scale, theta, tx, ty) about
//! the image centre, in full-resolution pixels.
//!
//! Corners are tracked with pyramidal Lucas-Kanade, seeded with the global shift that
//! phase correlation finds on a reduced image (LK alone loses track beyond about 20
//! analysis pixels; pans move 50), kept only if tracking them back lands where they
//! started, and a RANSAC partial-affine fit turns the survivors into the similarity. A pair that is dark, textureless or inconsistent is reported invalid rather
//! than guessed.

use opencv::core::{
    no_array, Mat, Point2f, Size, TermCriteria, TermCriteria_Type, ToInputArray, Vector,
};
use opencv::prelude::*;

use crate::decode::GreyImage;

/// Mean grey below which a frame is dark (the camera off or lights out), as the original.
pub const DARK_MEAN: f64 = 5.0;

/// How the motion is estimated; the defaults are what the benchmarks and tests measured.
#[derive(Debug, Clone, Copy)]
pub struct MotionConfig {
    /// Full-resolution frame width.
    pub full_width: u32,
    /// Full-resolution frame height.
    pub full_height: u32,
    /// The analysis images' scale relative to full resolution (0.25: 480x270).
    pub img_scale: f64,
    /// Corners tracked at most.
    pub max_corners: i32,
    /// Inliers needed for a valid estimate.
    pub min_inliers: usize,
}

impl MotionConfig {
    /// The defaults for a frame size and analysis scale.
    pub fn new(full_width: u32, full_height: u32, img_scale: f64) -> MotionConfig {
        MotionConfig {
            full_width,
            full_height,
            img_scale,
            max_corners: 300,
            min_inliers: 20,
        }
    }
}

/// `[scale, theta, tx, ty]`: a point p (relative to the centre, full-resolution pixels, y
/// down) in the first frame appears at `scale * R(theta) * p + (tx, ty)` in the second,
/// with `R(theta) = [[cos, sin], [-sin, cos]]` (positive theta: counter-clockwise on
/// screen), as in the original's model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    /// Content grows (zoom in) when above 1.
    pub scale: f64,
    /// Radians, counter-clockwise on screen.
    pub theta: f64,
    /// Content moves right when positive (full-resolution pixels).
    pub tx: f64,
    /// Content moves down when positive (full-resolution pixels).
    pub ty: f64,
}

impl Similarity {
    /// No motion: what invalid entries carry.
    pub const IDENTITY: Similarity = Similarity {
        scale: 1.0,
        theta: 0.0,
        tx: 0.0,
        ty: 0.0,
    };

    /// As the document's `similarity` array.
    pub fn to_array(self) -> [f64; 4] {
        [self.scale, self.theta, self.tx, self.ty]
    }
}

/// The outcome for one frame pair.
#[derive(Debug, Clone, PartialEq)]
pub enum Estimate {
    /// A confident estimate.
    Valid {
        /// The motion.
        similarity: Similarity,
        /// Points that agreed with it.
        inliers: usize,
    },
    /// No confident estimate, and why.
    Invalid(String),
}

/// Estimates the motion from `a` to `b`.
pub fn estimate(a: &GreyImage, b: &GreyImage, cfg: &MotionConfig) -> opencv::Result<Estimate> {
    for (img, which) in [(a, "first"), (b, "second")] {
        let mean = img.mean();
        if mean < DARK_MEAN {
            return Ok(Estimate::Invalid(format!(
                "{which} frame is dark (mean grey {mean:.1})"
            )));
        }
    }
    let (ma, mb) = (a.as_mat()?.try_clone()?, b.as_mat()?.try_clone()?);
    let mut corners = Vector::<Point2f>::new();
    opencv::imgproc::good_features_to_track(
        &ma,
        &mut corners,
        cfg.max_corners,
        0.01,
        7.0,
        &no_array(),
        7,
        false,
        0.04,
    )?;
    if corners.len() < cfg.min_inliers {
        return Ok(Estimate::Invalid(format!(
            "too little texture ({} corners)",
            corners.len()
        )));
    }
    let seed = global_shift(&ma, &mb)?;
    let (mut src, mut dst) = track_both_ways(&ma, &mb, &corners, seed)?;
    if src.len() < cfg.min_inliers && seed != (0.0, 0.0) {
        // A misleading seed (repetitive texture, say): try from no motion instead.
        (src, dst) = track_both_ways(&ma, &mb, &corners, (0.0, 0.0))?;
    }
    if src.len() < cfg.min_inliers {
        return Ok(Estimate::Invalid(format!(
            "too few points tracked ({} of {})",
            src.len(),
            corners.len()
        )));
    }
    fit(&src, &dst, cfg)
}

/// The Lucas-Kanade window. With the phase-correlation seed, LK only refines a residual
/// of a few pixels, so a small window is enough; it costs about a third of the usual
/// 21x21 (measured: 3.7 ms against 6.5 ms each way per pair at 480x270).
const LK_WINDOW: i32 = 13;

/// Times the image is halved before phase correlation: 480x270 becomes 120x68, where
/// it costs a fraction of a millisecond instead of six.
const SHIFT_LEVELS: usize = 2;

/// The dominant translation from `a` to `b` in analysis pixels, by phase correlation on
/// reduced images. Blind to zoom and roll, which is fine for a seed.
fn global_shift(a: &Mat, b: &Mat) -> opencv::Result<(f32, f32)> {
    let reduce = |img: &Mat| -> opencv::Result<Mat> {
        let mut cur = img.clone();
        for _ in 0..SHIFT_LEVELS {
            let mut next = Mat::default();
            opencv::imgproc::pyr_down_def(&cur, &mut next)?;
            cur = next;
        }
        let mut float = Mat::default();
        cur.convert_to(&mut float, opencv::core::CV_32F, 1.0, 0.0)?;
        Ok(float)
    };
    let (ra, rb) = (reduce(a)?, reduce(b)?);
    let mut window = Mat::default();
    opencv::imgproc::create_hanning_window(&mut window, ra.size()?, opencv::core::CV_32F)?;
    let mut response = 0.0;
    let shift = opencv::imgproc::phase_correlate(&ra, &rb, &window, &mut response)?;
    let factor = a.cols() as f64 / ra.cols() as f64;
    Ok(((shift.x * factor) as f32, (shift.y * factor) as f32))
}

/// Tracks `corners` from `a` to `b` (starting from `seed`) and back; keeps those that
/// return within half a pixel.
fn track_both_ways(
    a: &impl ToInputArray,
    b: &impl ToInputArray,
    corners: &Vector<Point2f>,
    (dx, dy): (f32, f32),
) -> opencv::Result<(Vec<Point2f>, Vec<Point2f>)> {
    let guess: Vector<Point2f> = corners
        .iter()
        .map(|p| Point2f::new(p.x + dx, p.y + dy))
        .collect();
    let forward = track(a, b, corners, guess)?;
    let back_guess: Vector<Point2f> = forward
        .0
        .iter()
        .map(|p| Point2f::new(p.x - dx, p.y - dy))
        .collect();
    let back = track(b, a, &forward.0, back_guess)?;
    let mut src = Vec::new();
    let mut dst = Vec::new();
    for i in 0..corners.len() {
        let (p, q, r) = (corners.get(i)?, forward.0.get(i)?, back.0.get(i)?);
        let ok = forward.1.get(i)? == 1 && back.1.get(i)? == 1;
        let fb = ((r.x - p.x).powi(2) + (r.y - p.y).powi(2)).sqrt();
        if ok && fb < 0.5 {
            src.push(p);
            dst.push(q);
        }
    }
    Ok((src, dst))
}

fn track(
    from: &impl ToInputArray,
    to: &impl ToInputArray,
    points: &Vector<Point2f>,
    mut next: Vector<Point2f>,
) -> opencv::Result<(Vector<Point2f>, Vector<u8>)> {
    let mut status = Vector::<u8>::new();
    let mut err = Vector::<f32>::new();
    let criteria = TermCriteria::new(
        TermCriteria_Type::COUNT as i32 + TermCriteria_Type::EPS as i32,
        30,
        0.01,
    )?;
    opencv::video::calc_optical_flow_pyr_lk(
        from,
        to,
        points,
        &mut next,
        &mut status,
        &mut err,
        Size::new(LK_WINDOW, LK_WINDOW),
        3,
        criteria,
        opencv::video::OPTFLOW_USE_INITIAL_FLOW,
        1e-4,
    )?;
    Ok((next, status))
}

/// Fits the similarity in centred full-resolution coordinates, so that its translation
/// is the motion at the image centre in full-resolution pixels.
fn fit(src: &[Point2f], dst: &[Point2f], cfg: &MotionConfig) -> opencv::Result<Estimate> {
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
