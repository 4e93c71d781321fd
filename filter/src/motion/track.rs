//! Lucas-Kanade tracking of a pair's corners in two stages. First a few of them are
//! tracked through the whole pyramid from the phase-correlation seed, and the similarity
//! they agree on (zoom and roll included, which the seed is blind to) predicts where
//! every corner lands. Then all of them are tracked there and back at full resolution
//! only: from so close a guess the coarse levels add nothing but time. A point is kept
//! when tracking it back lands within [`RETURN_LIMIT`] of where it started.
//!
//! Measured (docs/benchmarks.md, issue 20): a third less time per video than tracking
//! every corner through four levels each way, with smaller errors against the ground
//! truth; where the first stage finds no similarity, every corner goes through the
//! whole pyramid as before.

use opencv::core::{
    no_array, Mat, Point2f, Size, TermCriteria, TermCriteria_Type, ToInputArray, Vector,
};
use opencv::prelude::*;

use super::Ready;

/// The Lucas-Kanade window. Seeded, LK only refines a residual of a few pixels, so a
/// small window is enough; it costs about a third of the usual 21x21 (measured: 3.7 ms
/// against 6.5 ms each way per pair at 480x270).
pub(super) const WINDOW: i32 = 13;

/// The pyramid's top level (four levels: 480x270 down to 60x34), for the first stage
/// and for the fallback.
pub(super) const LEVELS: i32 = 3;

/// Corners the first stage tracks: enough for a similarity that RANSAC can trust, few
/// enough to cost a sixth of tracking them all.
const COARSE_POINTS: usize = 40;

/// How far (analysis pixels) a point tracked there and back may land from where it
/// started. Measured against 0.5: every accuracy spec's mean error falls (issue 20).
const RETURN_LIMIT: f32 = 0.25;

/// The points of `a` and where they are in `b`, those that survived the check. With
/// fewer than `needed` from the predicted similarity, every corner is tracked again
/// through the whole pyramid from `shift`, as a pair the first stage misjudged needs.
pub(super) fn track_pair(
    a: &Ready,
    b: &Ready,
    shift: (f32, f32),
    needed: usize,
) -> opencv::Result<(Vec<Point2f>, Vec<Point2f>)> {
    let (pa, pb, corners) = (&a.pyramid, &b.pyramid, &a.corners);
    let seed = Model::shift(shift);
    if let Some(model) = coarse_model(pa, pb, corners, seed)? {
        let tracked = both_ways(pa, pb, corners, model, 0)?;
        if tracked.0.len() >= needed {
            return Ok(tracked);
        }
    }
    both_ways(pa, pb, corners, seed, LEVELS)
}

/// A 2x3 affine map of analysis pixels: where a point of the first frame is expected in
/// the second.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Model([f64; 6]);

impl Model {
    fn shift((dx, dy): (f32, f32)) -> Model {
        Model([1.0, 0.0, dx as f64, 0.0, 1.0, dy as f64])
    }

    fn apply(&self, p: Point2f) -> Point2f {
        let m = &self.0;
        let (x, y) = (p.x as f64, p.y as f64);
        Point2f::new(
            (m[0] * x + m[1] * y + m[2]) as f32,
            (m[3] * x + m[4] * y + m[5]) as f32,
        )
    }

    /// The map back, when there is one.
    fn inverse(&self) -> Option<Model> {
        let m = &self.0;
        let det = m[0] * m[4] - m[1] * m[3];
        if !det.is_finite() || det.abs() < 1e-9 {
            return None;
        }
        let (a, b, c, d) = (m[4] / det, -m[1] / det, -m[3] / det, m[0] / det);
        Some(Model([
            a,
            b,
            -(a * m[2] + b * m[5]),
            c,
            d,
            -(c * m[2] + d * m[5]),
        ]))
    }
}

/// The first stage: [`COARSE_POINTS`] corners (every k-th by strength, so spread over
/// the picture as the corners are) tracked forward through the whole pyramid from
/// `seed`, and the similarity at least half of them agree on within a pixel.
fn coarse_model(
    a: &impl ToInputArray,
    b: &impl ToInputArray,
    corners: &Vector<Point2f>,
    seed: Model,
) -> opencv::Result<Option<Model>> {
    let step = (corners.len() / COARSE_POINTS).max(1);
    let subset: Vector<Point2f> = corners.iter().step_by(step).collect();
    let guess: Vector<Point2f> = subset.iter().map(|p| seed.apply(p)).collect();
    let (moved, status) = track(a, b, &subset, guess, LEVELS)?;
    let (mut from, mut to) = (Vector::<Point2f>::new(), Vector::<Point2f>::new());
    for ((p, q), ok) in subset.iter().zip(moved.iter()).zip(status.iter()) {
        if ok == 1 {
            from.push(p);
            to.push(q);
        }
    }
    if from.len() < 6 {
        return Ok(None);
    }
    let mut inliers = Mat::default();
    let m = opencv::calib3d::estimate_affine_partial_2d(
        &from,
        &to,
        &mut inliers,
        opencv::calib3d::RANSAC,
        1.0,
        2000,
        0.99,
        0,
    )?;
    if m.empty() || (opencv::core::count_non_zero(&inliers)? as usize) * 2 < from.len() {
        return Ok(None);
    }
    let mut v = [0f64; 6];
    for (i, x) in v.iter_mut().enumerate() {
        *x = *m.at_2d::<f64>((i / 3) as i32, (i % 3) as i32)?;
    }
    Ok(Some(Model(v)))
}

/// Tracks `corners` from `a` to `b`, starting where `model` puts them, and back from
/// where the inverse puts them; keeps those that return within [`RETURN_LIMIT`].
fn both_ways(
    a: &impl ToInputArray,
    b: &impl ToInputArray,
    corners: &Vector<Point2f>,
    model: Model,
    levels: i32,
) -> opencv::Result<(Vec<Point2f>, Vec<Point2f>)> {
    let Some(back_model) = model.inverse() else {
        return Ok((Vec::new(), Vec::new()));
    };
    let guess: Vector<Point2f> = corners.iter().map(|p| model.apply(p)).collect();
    let (forward, fwd_ok) = track(a, b, corners, guess, levels)?;
    let back_guess: Vector<Point2f> = forward.iter().map(|q| back_model.apply(q)).collect();
    let (back, back_ok) = track(b, a, &forward, back_guess, levels)?;
    let mut src = Vec::new();
    let mut dst = Vec::new();
    for i in 0..corners.len() {
        let (p, q, r) = (corners.get(i)?, forward.get(i)?, back.get(i)?);
        let ok = fwd_ok.get(i)? == 1 && back_ok.get(i)? == 1;
        let returned = ((r.x - p.x).powi(2) + (r.y - p.y).powi(2)).sqrt();
        if ok && returned < RETURN_LIMIT {
            src.push(p);
            dst.push(q);
        }
    }
    Ok((src, dst))
}

/// OpenCV's pyramidal Lucas-Kanade from `guess`, using levels 0 to `levels`.
fn track(
    from: &impl ToInputArray,
    to: &impl ToInputArray,
    points: &Vector<Point2f>,
    mut guess: Vector<Point2f>,
    levels: i32,
) -> opencv::Result<(Vector<Point2f>, Vector<u8>)> {
    let mut status = Vector::<u8>::new();
    let criteria = TermCriteria::new(
        TermCriteria_Type::COUNT as i32 + TermCriteria_Type::EPS as i32,
        30,
        0.01,
    )?;
    opencv::video::calc_optical_flow_pyr_lk(
        from,
        to,
        points,
        &mut guess,
        &mut status,
        // No error output: it costs a pass over every window and nothing reads it.
        &mut no_array(),
        Size::new(WINDOW, WINDOW),
        levels,
        criteria,
        opencv::video::OPTFLOW_USE_INITIAL_FLOW,
        1e-4,
    )?;
    Ok((guess, status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_and_its_inverse_undo_each_other() {
        let (s, t) = (1.05f64, 0.03f64);
        let m = Model([
            s * t.cos(),
            -s * t.sin(),
            12.5,
            s * t.sin(),
            s * t.cos(),
            -7.0,
        ]);
        let back = m.inverse().expect("invertible");
        for p in [Point2f::new(0.0, 0.0), Point2f::new(479.0, 269.0)] {
            let q = back.apply(m.apply(p));
            assert!(
                (q.x - p.x).abs() < 1e-3 && (q.y - p.y).abs() < 1e-3,
                "{p:?} {q:?}"
            );
        }
        assert_eq!(Model([0.0; 6]).inverse(), None);
        assert_eq!(Model([f64::NAN, 0.0, 0.0, 0.0, 1.0, 0.0]).inverse(), None);
    }
}
