//! Small ProRes clips for tests, made by ffmpeg from its `testsrc2` pattern.

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
