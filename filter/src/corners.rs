//! Shi-Tomasi corners picked exactly as OpenCV's `goodFeaturesToTrack` picks them, but
//! without sorting every candidate: on a busy 480x270 image there are thousands of local
//! maxima and OpenCV sorts them all to keep 300, which took half of the corners' time.

use opencv::core::{no_array, Mat, Point2f, ToInputArray, Vector};
use opencv::prelude::*;

/// The strongest corners of `image` (8-bit grey), at most `max_corners`, none closer
/// than `min_distance` to a stronger one, each at least `quality` times the strongest;
/// the same points, in the same order, as
/// `good_features_to_track(image, max_corners, quality, min_distance, no mask,
/// block_size, gradient size 3, no Harris)`.
pub fn good_features(
    image: &impl ToInputArray,
    max_corners: usize,
    quality: f64,
    min_distance: f64,
    block_size: i32,
) -> opencv::Result<Vector<Point2f>> {
    let mut eig = Mat::default();
    opencv::imgproc::corner_min_eigen_val(
        image,
        &mut eig,
        block_size,
        3,
        opencv::core::BORDER_DEFAULT,
    )?;
    // OpenCV's own steps up to the list of candidates (its threshold and dilate are
    // vectorised): keep what is above `quality` times the strongest, then the 3x3 maxima.
    let mut strongest = 0.0;
    opencv::core::min_max_loc(&eig, None, Some(&mut strongest), None, None, &no_array())?;
    let mut kept = Mat::default();
    opencv::imgproc::threshold(
        &eig,
        &mut kept,
        strongest * quality,
        0.0,
        opencv::imgproc::THRESH_TOZERO,
    )?;
    let mut dilated = Mat::default();
    opencv::imgproc::dilate_def(&kept, &mut dilated, &no_array())?;
    let (rows, cols) = (kept.rows() as usize, kept.cols() as usize);
    let candidates = local_maxima(continuous(&kept)?, continuous(&dilated)?, cols, rows);
    Ok(pick(candidates, cols, rows, max_corners, min_distance))
}

/// A float Mat's values, row after row.
fn continuous(m: &Mat) -> opencv::Result<&[f32]> {
    if !m.is_continuous() {
        return Err(opencv::Error::new(
            opencv::core::StsBadArg,
            "a response image with row padding",
        ));
    }
    m.data_typed()
}

/// Every pixel off the image's edge whose response is non-zero and the largest of its
/// 3x3 neighbourhood (equal to its `dilated` value): as `(response, offset)`.
fn local_maxima(kept: &[f32], dilated: &[f32], cols: usize, rows: usize) -> Vec<(f32, u32)> {
    let mut out = Vec::new();
    for y in 1..rows.saturating_sub(1) {
        let row = &kept[y * cols..(y + 1) * cols];
        let max = &dilated[y * cols..(y + 1) * cols];
        for x in 1..cols - 1 {
            let v = row[x];
            if v != 0.0 && v == max[x] {
                out.push((v, (y * cols + x) as u32));
            }
        }
    }
    out
}

/// OpenCV's order: stronger first, and between equals the later pixel first.
fn stronger(a: &(f32, u32), b: &(f32, u32)) -> std::cmp::Ordering {
    b.0.partial_cmp(&a.0)
        .unwrap_or(std::cmp::Ordering::Equal)
        .then(b.1.cmp(&a.1))
}

/// Takes candidates strongest first, skipping any within `min_distance` of one taken,
/// until `max_corners`; only as many candidates as that needs are sorted.
fn pick(
    mut candidates: Vec<(f32, u32)>,
    cols: usize,
    rows: usize,
    max_corners: usize,
    min_distance: f64,
) -> Vector<Point2f> {
    let cell = (min_distance.round() as usize).max(1);
    let (grid_w, grid_h) = (cols.div_ceil(cell), rows.div_ceil(cell));
    let mut grid: Vec<Vec<Point2f>> = vec![Vec::new(); grid_w * grid_h];
    let min_sq = (min_distance * min_distance) as f32;
    let mut corners = Vector::<Point2f>::new();
    let mut rest = &mut candidates[..];
    // Sort a batch a few times the corners still wanted; rarely is a second needed.
    while !rest.is_empty() && corners.len() < max_corners {
        let batch = ((max_corners - corners.len()) * 8).max(64).min(rest.len());
        if batch < rest.len() {
            rest.select_nth_unstable_by(batch - 1, stronger);
        }
        let (head, tail) = rest.split_at_mut(batch);
        head.sort_unstable_by(stronger);
        for &(_, offset) in head.iter() {
            let (x, y) = (offset as usize % cols, offset as usize / cols);
            let (cx, cy) = (x / cell, y / cell);
            let p = Point2f::new(x as f32, y as f32);
            let near = (cy.saturating_sub(1)..=(cy + 1).min(grid_h - 1)).any(|gy| {
                (cx.saturating_sub(1)..=(cx + 1).min(grid_w - 1)).any(|gx| {
                    grid[gy * grid_w + gx].iter().any(|q| {
                        let (dx, dy) = (p.x - q.x, p.y - q.y);
                        dx * dx + dy * dy < min_sq
                    })
                })
            });
            if near {
                continue;
            }
            grid[cy * grid_w + cx].push(p);
            corners.push(p);
            if corners.len() == max_corners {
                break;
            }
        }
        rest = tail;
    }
    corners
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opencv_corners(img: &Mat, max: i32) -> Vec<Point2f> {
        let mut out = Vector::<Point2f>::new();
        opencv::imgproc::good_features_to_track(
            img,
            &mut out,
            max,
            0.01,
            7.0,
            &no_array(),
            7,
            false,
            0.04,
        )
        .unwrap();
        out.to_vec()
    }

    fn ours(img: &Mat, max: usize) -> Vec<Point2f> {
        good_features(img, max, 0.01, 7.0, 7).unwrap().to_vec()
    }

    /// A blurred pseudo-random texture, as busy as the benchmark clip.
    fn texture(width: i32, height: i32, seed: u64) -> Mat {
        let mut state = seed;
        let data: Vec<u8> = (0..width * height)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 56) as u8
            })
            .collect();
        let raw = Mat::new_rows_cols_with_data(height, width, &data)
            .unwrap()
            .try_clone()
            .unwrap();
        let mut out = Mat::default();
        opencv::imgproc::gaussian_blur_def(&raw, &mut out, opencv::core::Size::new(5, 5), 1.5)
            .unwrap();
        out
    }

    #[test]
    fn the_corners_are_opencvs_on_busy_textures() {
        for seed in 1..=4 {
            let img = texture(480, 270, seed);
            for max in [300, 1000, 5] {
                assert_eq!(
                    ours(&img, max),
                    opencv_corners(&img, max as i32),
                    "seed {seed}"
                );
            }
        }
    }

    #[test]
    fn equal_responses_are_taken_in_opencvs_order() {
        // A checkerboard: every crossing answers exactly alike, so only the tie-break
        // decides which are taken.
        let (w, h) = (240usize, 135usize);
        let data: Vec<u8> = (0..w * h)
            .map(|i| {
                if ((i % w) / 10 + (i / w) / 10) % 2 == 0 {
                    40
                } else {
                    210
                }
            })
            .collect();
        let img = Mat::new_rows_cols_with_data(h as i32, w as i32, &data)
            .unwrap()
            .try_clone()
            .unwrap();
        let expected = opencv_corners(&img, 50);
        assert!(expected.len() == 50);
        assert_eq!(ours(&img, 50), expected);
    }

    #[test]
    fn an_image_with_a_few_corners_gives_just_those() {
        // Three squares on grey: a dozen candidates, fewer than one sorted batch.
        let (w, h) = (160usize, 120usize);
        let inside = |x: usize, y: usize, x0: usize, y0: usize| {
            (x0..x0 + 12).contains(&x) && (y0..y0 + 12).contains(&y)
        };
        let data: Vec<u8> = (0..w * h)
            .map(|i| {
                let (x, y) = (i % w, i / w);
                if inside(x, y, 20, 20) || inside(x, y, 90, 30) || inside(x, y, 60, 80) {
                    200
                } else {
                    60
                }
            })
            .collect();
        let img = Mat::new_rows_cols_with_data(h as i32, w as i32, &data)
            .unwrap()
            .try_clone()
            .unwrap();
        let expected = opencv_corners(&img, 300);
        assert!((1..64).contains(&expected.len()), "{}", expected.len());
        assert_eq!(ours(&img, 300), expected);
    }

    #[test]
    fn a_flat_image_has_no_corners() {
        let img = Mat::new_rows_cols_with_default(
            120,
            160,
            opencv::core::CV_8UC1,
            opencv::core::Scalar::all(90.0),
        )
        .unwrap();
        assert_eq!(ours(&img, 300), opencv_corners(&img, 300));
        assert!(ours(&img, 300).is_empty());
    }
}
