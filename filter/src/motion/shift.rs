//! The seed of the tracking: the dominant translation between two frames, by phase
//! correlation on images reduced four times (LK alone loses track beyond about 20
//! analysis pixels; pans move 50).

use opencv::core::{no_array, Mat, ToInputArray};
use opencv::prelude::*;

use super::Ready;

/// Times the image is halved before phase correlation: 480x270 becomes 120x68, where
/// it costs a fraction of a millisecond instead of six.
const SHIFT_LEVELS: usize = 2;

/// What phase correlation reads of an image: halved [`SHIFT_LEVELS`] times, as floats,
/// times a Hanning window. The window is applied here, once per frame, and never by
/// `phase_correlate`: given a window, OpenCV multiplies it into its input in place when
/// the input's size needs no padding for the DFT (80x45 does, 120x68 does not), which
/// on a frame shared by two pairs running at once made the answer depend on timing.
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
    let mut window = Mat::default();
    opencv::imgproc::create_hanning_window(&mut window, float.size()?, opencv::core::CV_32F)?;
    // The window first, as OpenCV's own multiplication has it: the same products.
    let mut windowed = Mat::default();
    opencv::core::multiply(&window, &float, &mut windowed, 1.0, -1)?;
    Ok(windowed)
}

/// The dominant translation from `a` to `b` in analysis pixels. Blind to zoom and roll,
/// which the tracking's first stage measures.
pub(super) fn global_shift(a: &Ready, b: &Ready) -> opencv::Result<(f32, f32)> {
    let (ra, rb) = (&a.reduced, &b.reduced);
    let mut response = 0.0;
    let shift = opencv::imgproc::phase_correlate(ra, rb, &no_array(), &mut response)?;
    let factor = a.width as f64 / ra.cols() as f64;
    Ok(((shift.x * factor) as f32, (shift.y * factor) as f32))
}
