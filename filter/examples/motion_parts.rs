//! Where a pair's time goes: the analysis's steps timed one by one, single-threaded, over
//! the stride-10 pairs of a real video (docs/benchmarks.md, issue 20).
//!
//!     cargo run --release -p filter --example motion_parts -- VIDEO.mov [PAIRS]

use std::time::Instant;

use filter::motion::{self, MotionConfig};
use filter::prores::ReducedDecoder;
use filter::source::{self, Payload, SourceKind};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let video = args.first().map(String::as_str).unwrap_or_else(|| {
        eprintln!("usage: motion_parts VIDEO.mov [PAIRS]");
        std::process::exit(2)
    });
    let pairs: u64 = args.get(1).map_or(Ok(100), |s| s.parse())?;
    filter::analysis::single_threaded_opencv();
    let mut src = source::open(video, SourceKind::Auto, 0.25)?;
    let info = src.info().clone();
    let cfg = MotionConfig::new(info.width, info.height, 0.25);
    let reduced = ReducedDecoder::new(4, info.width, info.height)?;
    let frames: Vec<u64> = (0..=pairs)
        .map(|i| 1 + i * 10)
        .filter(|&f| f <= info.num_frames)
        .collect();

    let t = Instant::now();
    let fetched = src.fetch(&frames)?;
    let fetch = t.elapsed().as_secs_f64();
    let (mut decode, mut corners, mut prepare, mut estimate) = (0.0, 0.0, 0.0, 0.0);
    let mut prepared = Vec::new();
    for (_, payload) in fetched {
        let Ok(Payload::Prores(bytes)) = payload else {
            anyhow::bail!("not a ProRes video");
        };
        let t = Instant::now();
        let image = reduced.decode(&bytes)?;
        decode += t.elapsed().as_secs_f64();
        let t = Instant::now();
        prepared.push(motion::prepare(&image, &cfg)?);
        prepare += t.elapsed().as_secs_f64();
        // Again on its own, now that the image is in cache as it was for `prepare`.
        let t = Instant::now();
        filter::corners::good_features(&image.as_mat()?, cfg.max_corners, 0.01, 7.0, 7)?;
        corners += t.elapsed().as_secs_f64();
    }
    let mut valid = 0;
    for w in prepared.windows(2) {
        let t = Instant::now();
        let e = motion::estimate(&w[0], &w[1], &cfg)?;
        estimate += t.elapsed().as_secs_f64();
        valid += matches!(e, motion::Estimate::Valid { .. }) as usize;
    }
    let (n, f) = ((prepared.len() - 1) as f64, prepared.len() as f64);
    println!(
        "{} frames, {} pairs ({valid} valid), per frame or pair:",
        f, n
    );
    println!("  fetch (read)          {:6.3} ms/frame", fetch * 1e3 / f);
    println!("  decode (reduced)      {:6.3} ms/frame", decode * 1e3 / f);
    println!(
        "  prepare               {:6.3} ms/frame (corners {:.3}, pyramid and seed image {:.3})",
        prepare * 1e3 / f,
        corners * 1e3 / f,
        (prepare - corners) * 1e3 / f
    );
    println!(
        "  estimate              {:6.3} ms/pair (seed, both tracking stages, fit)",
        estimate * 1e3 / n
    );
    Ok(())
}
