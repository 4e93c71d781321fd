//! Small ProRes clips for tests, made by ffmpeg: its `testsrc2` pattern, or a camera
//! panning over a texture.

use std::path::Path;
use std::process::Command;

/// Writes a `frames`-frame ProRes (proxy) clip of `size` (`WxH`) at 29.97 fps to `path`;
/// panics if ffmpeg fails.
pub fn prores(path: &Path, size: &str, frames: u32) {
    prores_profile(path, size, frames, 0);
}

/// [`prores`] in ProRes `profile` (prores_ks: 0 proxy, 1 LT, 2 standard, 3 HQ).
pub fn prores_profile(path: &Path, size: &str, frames: u32, profile: u8) {
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"])
        .arg("-i")
        .arg(format!("testsrc2=size={size}:rate=30000/1001"))
        .args(["-frames:v", &frames.to_string()])
        .args(["-c:v", "prores_ks", "-profile:v", &profile.to_string()])
        .arg(path)
        .status()
        .expect("running ffmpeg");
    assert!(status.success(), "ffmpeg could not make {}", path.display());
}

/// A `frames`-frame ProRes clip of `size` (`WxH`) at 29.97 fps of a camera panning
/// steadily right over a blurred random texture: motion the analysis finds valid, and a
/// move region finding names. Panics if ffmpeg fails.
pub fn panning(path: &Path, size: &str, frames: u32) {
    let (w, h) = size.split_once('x').expect("a WxH size");
    // One textured frame, looped, cropped further right each frame.
    let graph = format!(
        "nullsrc=s=1280x720:r=30000/1001,geq=lum='random(1)*255':cb=128:cr=128,\
         gblur=sigma=1.5,trim=end_frame=1,loop=loop=-1:size=1,\
         crop={w}:{h}:x='100+3*n':y=200"
    );
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"])
        .arg("-i")
        .arg(graph)
        .args(["-frames:v", &frames.to_string()])
        .args([
            "-c:v",
            "prores_ks",
            "-profile:v",
            "2",
            "-pix_fmt",
            "yuv422p10le",
        ])
        .arg(path)
        .status()
        .expect("running ffmpeg");
    assert!(status.success(), "ffmpeg could not make {}", path.display());
}
