//! Renders ProRes 422 (`apcn`) clips of a random texture seen by a camera moving along a
//! scripted path, and gives the exact similarity between any two frames.
//!
//! Frame pixel p (index coordinates relative to (W/2, H/2)) shows world point q with
//! `p = S * R(theta) * (q - c)`, `R(t) = [[cos t, sin t], [-sin t, cos t]]`. So from frame
//! a to frame b: scale `S_b/S_a`, rotation `theta_b - theta_a`, translation
//! `S_b * R(theta_b) * (c_a - c_b)` — the convention of the `_optical_flow.json` files.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use opencv::core::{Mat, Scalar, Size, CV_8UC1};
use opencv::prelude::*;

/// The camera for one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pose {
    /// Zoom (content scale).
    pub scale: f64,
    /// Roll, radians.
    pub theta: f64,
    /// Camera position in the world, pixels.
    pub cx: f64,
    /// Camera position in the world, pixels.
    pub cy: f64,
    /// The frame is black (lights off).
    pub black: bool,
}

/// The exact `[scale, theta, tx, ty]` from frame pose `a` to `b`.
pub fn truth(a: &Pose, b: &Pose) -> [f64; 4] {
    let (dx, dy) = (a.cx - b.cx, a.cy - b.cy);
    let (c, s) = (b.theta.cos(), b.theta.sin());
    [
        b.scale / a.scale,
        b.theta - a.theta,
        b.scale * (c * dx + s * dy),
        b.scale * (-s * dx + c * dy),
    ]
}

/// The scripted path used by the tests (frame n is 1-based), in units of the frame
/// width so it means the same at every resolution: pan right, tilt down, zoom in, zoom
/// out, roll, hold still, lights off.
pub fn scripted(n: u64, width: u32) -> Pose {
    let u = width as f64 / 640.0; // pixels per "640-wide" pixel
    let mut p = Pose {
        scale: 1.0,
        theta: 0.0,
        cx: 0.0,
        cy: 0.0,
        black: false,
    };
    for k in 1..n {
        match k {
            1..=59 => p.cx += 3.0 * u,     // pan: content moves left
            60..=119 => p.cy += 2.0 * u,   // tilt: content moves up
            120..=169 => p.scale *= 1.004, // zoom in
            170..=219 => p.scale /= 1.005, // zoom out
            220..=259 => p.theta += 0.003, // roll
            _ => {}                        // still
        }
    }
    p.black = (291..=300).contains(&n);
    p
}

/// Renders `frames` frames of `width` x `height` along `path` into a ProRes 422 `.mov`.
pub fn render(path: &Path, width: u32, height: u32, frames: u64, pose: impl Fn(u64) -> Pose) {
    // Before any OpenCV call here: other test threads run analyses at the same time.
    filter::analysis::single_threaded_opencv();
    let texture = texture(width as i32 * 3, height as i32 * 3, 7);
    let mut ffmpeg = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
        ])
        .args([
            "-s",
            &format!("{width}x{height}"),
            "-r",
            "30000/1001",
            "-i",
            "-",
        ])
        .args(["-c:v", "prores_ks", "-profile:v", "2", "-vendor", "apl0"])
        .args(["-pix_fmt", "yuv422p10le"])
        .arg(path)
        .stdin(Stdio::piped())
        .spawn()
        .expect("ffmpeg (install it: scripts/install-deps)");
    {
        let mut stdin = ffmpeg.stdin.take().expect("ffmpeg stdin");
        for n in 1..=frames {
            let frame = view(&texture, &pose(n), width as i32, height as i32);
            stdin
                .write_all(frame.data_bytes().expect("frame bytes"))
                .expect("feeding ffmpeg");
        }
    }
    assert!(
        ffmpeg.wait().expect("ffmpeg").success(),
        "ffmpeg failed to encode {path:?}"
    );
}

/// The frame the camera sees in `pose`.
fn view(texture: &Mat, pose: &Pose, w: i32, h: i32) -> Mat {
    let mut out = Mat::new_rows_cols_with_default(h, w, CV_8UC1, Scalar::all(0.0)).expect("mat");
    if pose.black {
        return out;
    }
    let (c, s) = (pose.theta.cos() / pose.scale, pose.theta.sin() / pose.scale);
    let (tw, th) = (texture.cols() as f64, texture.rows() as f64);
    let (hw, hh) = (w as f64 / 2.0, h as f64 / 2.0);
    // dst(x, y) = texture(M [x, y, 1]): q = R(-theta) p / S + c, shifted to the texture's centre.
    let m = Mat::from_slice_2d(&[
        [c, -s, -(c * hw - s * hh) + pose.cx + tw / 2.0],
        [s, c, -(s * hw + c * hh) + pose.cy + th / 2.0],
    ])
    .expect("affine matrix");
    opencv::imgproc::warp_affine(
        texture,
        &mut out,
        &m,
        Size::new(w, h),
        opencv::imgproc::INTER_LINEAR | opencv::imgproc::WARP_INVERSE_MAP,
        opencv::core::BORDER_REFLECT,
        Scalar::all(0.0),
    )
    .expect("warp");
    out
}

/// A seeded random texture with blobs at two scales: plenty of corners, no repetition.
fn texture(w: i32, h: i32, seed: u64) -> Mat {
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut noise = |cols: i32, rows: i32| {
        let data: Vec<u8> = (0..cols * rows)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                (rng >> 56) as u8
            })
            .collect();
        let small = Mat::new_rows_cols_with_data(rows, cols, &data)
            .expect("noise")
            .try_clone()
            .expect("clone");
        let mut big = Mat::default();
        opencv::imgproc::resize(
            &small,
            &mut big,
            Size::new(w, h),
            0.0,
            0.0,
            opencv::imgproc::INTER_CUBIC,
        )
        .expect("resize");
        big
    };
    let coarse = noise(w / 24, h / 24);
    let fine = noise(w / 6, h / 6);
    let mut mixed = Mat::default();
    opencv::core::add_weighted(&coarse, 0.6, &fine, 0.4, 0.0, &mut mixed, -1).expect("mix");
    mixed
}
