//! The seed of the tracking: the dominant translation between two frames, by phase
//! correlation on images reduced four times (LK alone loses track beyond about 20
//! analysis pixels; pans move 50).

use opencv::core::{Mat, ToInputArray};
use opencv::prelude::*;

use super::Ready;

/// Times the image is halved before phase correlation: 480x270 becomes 120x68, where
/// it costs a fraction of a millisecond instead of six.
const SHIFT_LEVELS: usize = 2;

/// What phase correlation reads of an image: halved [`SHIFT_LEVELS`] times, as floats.
pub(super) fn reduce(img: &impl ToInputArray) -> opencv::Result<Mat> {
    let mut cur = Mat::default();
    opencv::imgproc::pyr_down_def(img, &mut cur)?;
    for _ in 1..SHIFT_LEVELS {
        let mut next = Mat::default();
        opencv::imgproc::pyr_down_def(&cur, &mut next)?;
        cur = next;
    }
    let mut float = Mat::default();
    cur.convert_to(&mut float, opencv::core::CV_32F, 1.0, 0.0)?;
    Ok(float)
}

/// The dominant translation from `a` to `b` in analysis pixels. Blind to zoom and roll,
/// which the tracking's first stage measures.
pub(super) fn global_shift(a: &Ready, b: &Ready) -> opencv::Result<(f32, f32)> {
    let (ra, rb) = (&a.reduced, &b.reduced);
    let mut window = Mat::default();
    opencv::imgproc::create_hanning_window(&mut window, ra.size()?, opencv::core::CV_32F)?;
    let mut response = 0.0;
    let shift = opencv::imgproc::phase_correlate(ra, rb, &window, &mut response)?;
    let factor = a.width as f64 / ra.cols() as f64;
    Ok(((shift.x * factor) as f32, (shift.y * factor) as f32))
}
