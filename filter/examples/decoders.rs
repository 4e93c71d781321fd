//! Compares the reduced ProRes decoder with libav's on a real video: how far apart the
//! grey images are and how long each takes per frame.
//!
//!     cargo run --release -p filter --example decoders -- VIDEO.mov [FACTOR] [FRAMES]
//!
//! With `DUMP=DIR`, both images of every frame are written there as PGM to look at.

use std::time::Instant;

use filter::decode::ProresDecoder;
use filter::prores::ReducedDecoder;
use filter::source::{self, Payload, SourceKind};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let video = args.first().map(String::as_str).unwrap_or_else(|| {
        eprintln!("usage: decoders VIDEO.mov [FACTOR] [FRAMES]");
        std::process::exit(2)
    });
    let factor: usize = args.get(1).map_or(Ok(4), |s| s.parse())?;
    let count: u64 = args.get(2).map_or(Ok(20), |s| s.parse())?;
    let scale = 1.0 / factor as f64;
    let mut src = source::open(video, SourceKind::Auto, scale)?;
    let info = src.info().clone();
    let step = (info.num_frames / count).max(1);
    let frames: Vec<u64> = (0..count)
        .map(|i| 1 + i * step)
        .filter(|&f| f <= info.num_frames)
        .collect();
    let mut libav = ProresDecoder::new(info.codec, info.width, info.height, scale)?;
    let reduced = ReducedDecoder::new(factor, info.width, info.height)?;
    let (mut t_libav, mut t_reduced) = (0.0, 0.0);
    let (mut sum, mut sum_signed, mut n, mut max) = (0f64, 0f64, 0usize, 0i32);
    for (frame, payload) in src.fetch(&frames)? {
        let Ok(Payload::Prores(bytes)) = payload else {
            continue;
        };
        let t = Instant::now();
        let a = libav.decode(&bytes).map_err(anyhow::Error::msg)?;
        t_libav += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let b = reduced.decode(&bytes)?;
        t_reduced += t.elapsed().as_secs_f64();
        anyhow::ensure!(
            (a.width, a.height) == (b.width, b.height),
            "frame {frame}: sizes differ"
        );
        if let Some(dir) = std::env::var_os("DUMP") {
            for (name, img) in [("libav", &a), ("reduced", &b)] {
                let path = std::path::Path::new(&dir).join(format!("{frame}-{name}.pgm"));
                let mut pgm = format!("P5 {} {} 255\n", img.width, img.height).into_bytes();
                pgm.extend_from_slice(&img.data);
                std::fs::write(path, pgm)?;
            }
        }
        for (&x, &y) in a.data.iter().zip(&b.data) {
            let d = y as i32 - x as i32;
            sum += d.abs() as f64;
            sum_signed += d as f64;
            max = max.max(d.abs());
            n += 1;
        }
    }
    let k = frames.len() as f64;
    println!(
        "{} frames {}x{} -> 1/{factor}: mean |diff| {:.3}, mean diff {:+.3}, max {max} grey levels; libav {:.2} ms/frame, reduced {:.2} ms/frame",
        frames.len(), info.width, info.height, sum / n as f64, sum_signed / n as f64,
        1e3 * t_libav / k, 1e3 * t_reduced / k
    );
    Ok(())
}
