//! The camera motion between two grey frames as a similarity (scale, theta, tx, ty) about
//! the image centre, in full-resolution pixels: Shi-Tomasi corners tracked with
//! Lucas-Kanade in two stages (see `track`), checked by tracking them back, and a RANSAC
//! partial-affine fit of the survivors (`fit`). A pair that is dark, textureless or
//! inconsistent is reported invalid rather than guessed.

mod fit;
mod shift;
mod track;

use opencv::core::{Mat, Point2f, Size, Vector};
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
    pub max_corners: usize,
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

/// One frame made ready for the pairs it belongs to. Each frame is in two pairs (the
/// second of one, the first of the next) and each pair tracks both ways, so what the
/// estimate needs of a frame (its mean, corners, Lucas-Kanade pyramid with derivatives
/// and the reduced image phase correlation reads) is computed here once, on the decoding
/// threads, instead of in every pair and direction.
pub struct Prepared {
    mean: f64,
    /// `None` for a dark frame: no pair with it is estimated.
    ready: Option<Ready>,
}

struct Ready {
    /// Shi-Tomasi corners, where tracking from this frame starts.
    corners: Vector<Point2f>,
    /// Levels and their Scharr derivatives, as `calc_optical_flow_pyr_lk` builds them.
    pyramid: Vector<Mat>,
    /// What phase correlation reads of the frame (see `shift`).
    reduced: Mat,
    /// The analysis image's width, which shifts on `reduced` are scaled to.
    width: i32,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("mean", &self.mean)
            .field("dark", &self.ready.is_none())
            .finish()
    }
}

/// Prepares `image` for [`estimate`].
pub fn prepare(image: &GreyImage, cfg: &MotionConfig) -> opencv::Result<Prepared> {
    let mean = image.mean();
    if mean < DARK_MEAN {
        return Ok(Prepared { mean, ready: None });
    }
    let mat = image.as_mat()?;
    let corners = crate::corners::good_features(&mat, cfg.max_corners, 0.01, 7.0, 7)?;
    let mut pyramid = Vector::<Mat>::new();
    opencv::video::build_optical_flow_pyramid(
        &mat,
        &mut pyramid,
        Size::new(track::WINDOW, track::WINDOW),
        track::LEVELS,
        true,
        opencv::core::BORDER_REFLECT_101,
        opencv::core::BORDER_CONSTANT,
        true,
    )?;
    Ok(Prepared {
        mean,
        ready: Some(Ready {
            corners,
            pyramid,
            reduced: shift::reduce(&mat)?,
            width: mat.cols(),
        }),
    })
}

/// Estimates the motion from `a` to `b`.
pub fn estimate(a: &Prepared, b: &Prepared, cfg: &MotionConfig) -> opencv::Result<Estimate> {
    let (ra, rb) = match (&a.ready, &b.ready) {
        (Some(ra), Some(rb)) => (ra, rb),
        _ => {
            let (which, mean) = match a.ready {
                None => ("first", a.mean),
                Some(_) => ("second", b.mean),
            };
            return Ok(Estimate::Invalid(format!(
                "{which} frame is dark (mean grey {mean:.1})"
            )));
        }
    };
    let corners = &ra.corners;
    if corners.len() < cfg.min_inliers {
        return Ok(Estimate::Invalid(format!(
            "too little texture ({} corners)",
            corners.len()
        )));
    }
    let seed = shift::global_shift(ra, rb)?;
    let mut tracked = track::track_pair(ra, rb, seed, cfg.min_inliers)?;
    if tracked.0.len() < cfg.min_inliers && seed != (0.0, 0.0) {
        // A misleading seed (repetitive texture, say): try from no motion instead.
        tracked = track::track_pair(ra, rb, (0.0, 0.0), cfg.min_inliers)?;
    }
    let (src, dst) = tracked;
    if src.len() < cfg.min_inliers {
        return Ok(Estimate::Invalid(format!(
            "too few points tracked ({} of {})",
            src.len(),
            corners.len()
        )));
    }
    fit::fit(&src, &dst, cfg)
}

/// Estimates the motion between two images, preparing both (for tests and one-off
/// pairs; the analysis prepares each frame once).
pub fn estimate_images(
    a: &GreyImage,
    b: &GreyImage,
    cfg: &MotionConfig,
) -> opencv::Result<Estimate> {
    estimate(&prepare(a, cfg)?, &prepare(b, cfg)?, cfg)
}
