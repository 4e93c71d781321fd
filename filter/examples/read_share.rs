//! How much of each ProRes frame the reduced decoder reads (issue 20, item 2a): the frame
//! and picture headers, the slice table, every slice's header and its luma bitstream up
//! to the last coefficient used; chroma and the rest of the luma are never looked at.
//!
//!     cargo run --release -p filter --example read_share -- VIDEO.mov [FACTOR] [FRAMES]
//!
//! Prints bytes read against whole frames (and against the luma alone) over FRAMES
//! frames spread through the video (default 100), at reduction FACTOR (default 4, the
//! analysis's default scale 0.25).

use filter::prores::{ReadShare, ReducedDecoder};
use filter::source::{self, Payload, SourceKind};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let video = args.first().map(String::as_str).unwrap_or_else(|| {
        eprintln!("usage: read_share VIDEO.mov [FACTOR] [FRAMES]");
        std::process::exit(2)
    });
    let factor: usize = args.get(1).map_or(Ok(4), |s| s.parse())?;
    let count: u64 = args.get(2).map_or(Ok(100), |s| s.parse())?;
    let mut src = source::open(video, SourceKind::Auto, 1.0 / factor as f64)?;
    let info = src.info().clone();
    let step = (info.num_frames / count).max(1);
    let frames: Vec<u64> = (0..count)
        .map(|i| 1 + i * step)
        .filter(|&f| f <= info.num_frames)
        .collect();
    let decoder = ReducedDecoder::new(factor, info.width, info.height)?;
    let mut sum = ReadShare::default();
    let mut n = 0;
    for (_, payload) in src.fetch(&frames)? {
        let Ok(Payload::Prores(bytes)) = payload else {
            continue;
        };
        let s = decoder.bytes_read(&bytes)?;
        sum.read += s.read;
        sum.luma += s.luma;
        sum.total += s.total;
        n += 1;
    }
    anyhow::ensure!(n > 0, "no ProRes frame decoded");
    let pct = |a: usize, b: usize| 100.0 * a as f64 / b.max(1) as f64;
    println!(
        "{video}: {}x{} {}, factor {factor}, {n} frames of {:.0} KB: read {:.1}% of the frame \
         ({:.0} KB), luma is {:.1}% of it, read {:.1}% of the luma",
        info.width,
        info.height,
        String::from_utf8_lossy(&info.codec),
        sum.total as f64 / n as f64 / 1e3,
        pct(sum.read, sum.total),
        sum.read as f64 / n as f64 / 1e3,
        pct(sum.luma, sum.total),
        pct(sum.read, sum.luma),
    );
    Ok(())
}
