//! What fetching only the bytes the reduced decoder reads would cost on the wire (issue
//! 20, item 2b): each slice's prefix as one HTTP byte range, ranges closer than a gap
//! merged, each range a part of a `multipart/byteranges` reply with its own headers, and
//! at most `multirange::MAX_RANGES` ranges per request (what the filter sends; Apache's
//! own limit is 200).
//!
//!     cargo run --release -p filter --example fetch_plan -- VIDEO.mov [FRAMES]
//!
//! Prints, per merge gap: ranges per frame, the bytes of the ranges, the bytes on the wire
//! (with every part's headers), the Range header's size, and the requests a 2,700-frame
//! analysis (stride 10 of a CamHD video) would make; the predicted variant sizes each
//! prefix from the same slice of the frame before, with a margin, and counts the misses
//! that would need a second request.

use filter::prores::{FrameSpans, ReducedDecoder};
use filter::source::{self, Payload, SourceKind};

/// Bytes of one part's headers in a `multipart/byteranges` body: the boundary line,
/// `Content-Type: video/quicktime` and `Content-Range: bytes A-B/TOTAL` (11-digit
/// offsets, as in a 15 GB file), and the blank line.
const PART_HEADERS: usize = 2 + 2 + 20 + 2 + 31 + 2 + 50 + 2 + 2;
/// Bytes one range adds to the request's `Range` header: `A-B,` with 11-digit offsets.
const RANGE_SPEC: usize = 24;
/// The decoder looks up to 32 bits past the last bit it uses.
const LOOKAHEAD: usize = 4;
use filter::source::multirange::MAX_RANGES;

struct Plan {
    ranges: usize,
    bytes: usize,
    misses: usize,
}

/// Ranges over one frame: the head, then each slice's prefix of `want(i)` bytes, merged
/// when the gap between two is below `gap`.
fn plan(f: &FrameSpans, gap: usize, want: impl Fn(usize) -> usize) -> Plan {
    let (mut ranges, mut bytes, mut misses) = (1, 0, 0);
    let (mut start, mut end) = (0usize, f.head);
    for (i, s) in f.slices.iter().enumerate() {
        let asked = want(i).min(s.size);
        if asked < (s.read + LOOKAHEAD).min(s.size) {
            misses += 1;
        }
        let (a, b) = (s.offset, s.offset + asked);
        if a.saturating_sub(end) < gap {
            end = b;
        } else {
            bytes += end - start;
            ranges += 1;
            (start, end) = (a, b);
        }
    }
    bytes += end - start;
    Plan {
        ranges,
        bytes,
        misses,
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let video = args.first().map(String::as_str).unwrap_or_else(|| {
        eprintln!("usage: fetch_plan VIDEO.mov [FRAMES]");
        std::process::exit(2)
    });
    let count: u64 = args.get(1).map_or(Ok(100), |s| s.parse())?;
    let mut src = source::open(video, SourceKind::Auto, 0.25)?;
    let info = src.info().clone();
    let frames: Vec<u64> = (0..count)
        .map(|i| 1 + i * 10)
        .filter(|&f| f <= info.num_frames)
        .collect();
    let decoder = ReducedDecoder::new(4, info.width, info.height)?;
    let mut spans = Vec::new();
    let mut total = 0usize;
    for (_, payload) in src.fetch(&frames)? {
        let Ok(Payload::Prores(bytes)) = payload else {
            anyhow::bail!("not a ProRes video");
        };
        total += bytes.len();
        spans.push(decoder.spans(&bytes)?);
    }
    let n = spans.len();
    anyhow::ensure!(n > 1, "too few frames");
    let per_video = 2_700.0;
    println!(
        "{video}: {n} frames of {:.0} KB, {} slices each; per frame:",
        total as f64 / n as f64 / 1e3,
        spans[0].slices.len()
    );
    println!(
        "{:>10} {:>9} {:>8} {:>8} {:>9} {:>12} {:>9}",
        "", "gap <", "ranges", "bytes", "on wire", "Range hdr", "requests"
    );
    for predicted in [false, true] {
        for gap in [0, 128, 256, 512, 1024, 2048] {
            let (mut ranges, mut bytes, mut misses) = (0, 0, 0);
            for (k, f) in spans.iter().enumerate() {
                let p = if predicted {
                    // As `filter::spans` asks: what the same slice of the frame before
                    // needed, an eighth more and 64 bytes.
                    let prev = &spans[k.saturating_sub(1)];
                    plan(f, gap, |i| {
                        prev.slices.get(i).map_or(usize::MAX, |s| {
                            let n = s.read + LOOKAHEAD;
                            n + n / 8 + 64
                        })
                    })
                } else {
                    plan(f, gap, |i| f.slices[i].read + LOOKAHEAD)
                };
                ranges += p.ranges;
                bytes += p.bytes;
                misses += p.misses;
            }
            let wire = bytes + ranges * PART_HEADERS;
            println!(
                "{:>10} {:>9} {:>8.0} {:>7.1}% {:>8.1}% {:>9.1} KB {:>9.0}{}",
                if predicted { "predicted" } else { "exact" },
                gap,
                ranges as f64 / n as f64,
                100.0 * bytes as f64 / total as f64,
                100.0 * wire as f64 / total as f64,
                (ranges * RANGE_SPEC) as f64 / n as f64 / 1e3,
                (ranges as f64 / n as f64 * per_video / MAX_RANGES as f64).ceil(),
                if predicted {
                    format!("  ({:.1} misses a frame)", misses as f64 / n as f64)
                } else {
                    String::new()
                }
            );
        }
    }
    println!("whole frames: 1 range, 100% ({per_video} requests a video, one a frame, as now)");
    Ok(())
}
