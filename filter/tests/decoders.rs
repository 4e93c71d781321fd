//! The reduced ProRes decoder against libav's full decode (area-averaged to the same
//! size) on rendered clips: the same picture, odd frame sizes included; interlaced
//! frames declined so the analysis falls back to libav; damaged frames refused without
//! a panic.

mod support;

use std::path::Path;
use std::process::Command;

use filter::decode::{GreyImage, ProresDecoder};
use filter::prores::{PartsError, ProresError, ReducedDecoder};
use filter::source::{self, FrameSource, Payload, SourceKind};
use filter::{analyze, Settings};
use support::{clip, clips, parts_of};

/// Every frame's ProRes packet, with the video's facts.
fn packets(path: &Path) -> (Vec<Vec<u8>>, source::VideoInfo) {
    let mut src: Box<dyn FrameSource> =
        source::open(path.to_str().unwrap(), SourceKind::File, 0.25).unwrap();
    let info = src.info().clone();
    let frames: Vec<u64> = (1..=info.num_frames).collect();
    let packets = src
        .fetch(&frames)
        .unwrap()
        .into_iter()
        .map(|(_, p)| match p.unwrap() {
            Payload::Prores(bytes) => bytes,
            other => panic!("a file read whole gives ProRes frames: {other:?}"),
        })
        .collect();
    (packets, info)
}

/// Mean and largest absolute difference in grey levels.
fn difference(a: &GreyImage, b: &GreyImage) -> (f64, u8) {
    assert_eq!((a.width, a.height), (b.width, b.height));
    let diffs = a.data.iter().zip(&b.data).map(|(x, y)| x.abs_diff(*y));
    let (sum, max) = diffs.fold((0u64, 0u8), |(s, m), d| (s + d as u64, m.max(d)));
    (sum as f64 / a.data.len() as f64, max)
}

/// Decodes every frame both ways at 1/`factor` and returns the worst mean and largest
/// differences.
fn compare(path: &Path, factor: usize) -> (f64, u8) {
    let (packets, info) = packets(path);
    let scale = 1.0 / factor as f64;
    let mut libav = ProresDecoder::new(info.codec, info.width, info.height, scale).unwrap();
    let reduced = ReducedDecoder::new(factor, info.width, info.height).unwrap();
    let mut worst = (0.0f64, 0u8);
    for p in &packets {
        let (mean, max) = difference(&libav.decode(p).unwrap(), &reduced.decode(p).unwrap());
        worst = (worst.0.max(mean), worst.1.max(max));
    }
    worst
}

#[test]
fn at_an_eighth_the_reduced_decoder_gives_libavs_block_means() {
    // The mean of an 8x8 block is its DC coefficient: exact up to rounding.
    let (mean, max) = compare(&clip("dec-1080.mov", 1920, 1080, 3), 8);
    eprintln!("1/8: mean {mean:.3}, max {max}");
    assert!(mean < 0.1 && max <= 1, "mean {mean}, max {max}");
}

#[test]
fn at_a_quarter_the_reduced_decoder_is_a_close_low_pass() {
    // From the 2x2 lowest frequencies of each block, against libav's 4x4 area means:
    // the same picture, a touch softer at sharp edges.
    let (mean, max) = compare(&clip("dec-1080.mov", 1920, 1080, 3), 4);
    eprintln!("1/4: mean {mean:.3}, max {max}");
    // Measured: 0.33 and 3 here; 0.14-0.8 and 25 on busier test patterns.
    assert!(mean < 0.5 && max <= 8, "mean {mean}, max {max}");
}

#[test]
fn frame_sizes_that_are_not_whole_macroblocks_or_slices_decode() {
    // 1000x200: 62.5 macroblocks a row (slices of 8, 4, 2 and 1), 12.5 rows.
    let (mean, max) = compare(&clip("dec-odd.mov", 1000, 200, 2), 4);
    eprintln!("1000x200 at 1/4: mean {mean:.3}, max {max}");
    assert!(mean < 0.5 && max <= 8, "mean {mean}, max {max}");
}

#[test]
fn interlaced_frames_are_left_to_libav() {
    // The scripted clip again, coded as interlaced ProRes.
    let progressive = clip("dec-640.mov", 640, 360, 12);
    let path = clips().path().join("interlaced.mov");
    let ok = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(&progressive)
        .args(["-c:v", "prores_ks", "-profile:v", "2", "-flags", "+ildct"])
        .args(["-field_order", "tt"])
        .arg(&path)
        .status()
        .expect("ffmpeg");
    assert!(ok.success());
    let (packets, info) = packets(&path);
    assert_eq!(
        ReducedDecoder::new(4, info.width, info.height)
            .unwrap()
            .decode(&packets[0])
            .unwrap_err(),
        ProresError::Unsupported("interlaced frame")
    );
    // The analysis still decodes every frame, through libav, and follows the pan.
    let video = source::open(path.to_str().unwrap(), SourceKind::File, 0.25).unwrap();
    let settings = Settings {
        stride: 1,
        threads: 1,
        ..Settings::default()
    };
    let analysis = analyze(video, &settings, &mut |_| {}).unwrap();
    assert_eq!(analysis.stats.frames_decoded, 12);
    let doc = analysis.document;
    assert_eq!(doc.analysis.valid_entries, doc.frame_stats.len());
}

#[test]
fn damaged_frames_are_refused_not_panicked_on() {
    let (packets, _) = packets(&clip("dec-odd.mov", 1000, 200, 2));
    let reduced = ReducedDecoder::new(4, 1000, 200).unwrap();
    let frame = &packets[0];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..500 {
        let mut bad = frame.clone();
        match next() % 3 {
            0 => bad.truncate((next() as usize) % frame.len()),
            _ => {
                for _ in 0..1 + next() % 8 {
                    let at = (next() as usize) % bad.len();
                    bad[at] = next() as u8;
                }
            }
        }
        // Either an image of the right size or an error; never a panic.
        if let Ok(image) = reduced.decode(&bad) {
            assert_eq!((image.width, image.height), (250, 50));
        }
    }
}

#[test]
fn the_reduced_decoder_reads_a_prefix_of_each_slice_and_less_the_more_it_reduces() {
    let (packets, info) = packets(&clip("dec-1080.mov", 1920, 1080, 3));
    let share = |factor| {
        let d = ReducedDecoder::new(factor, info.width, info.height).unwrap();
        let s = d.bytes_read(&packets[0]).unwrap();
        assert!(s.read <= s.total && s.luma < s.total, "{s:?}");
        s.read
    };
    let (eighth, quarter, half) = (share(8), share(4), share(2));
    assert!(
        0 < eighth && eighth < quarter && quarter < half,
        "{eighth} < {quarter} < {half}"
    );
}

#[test]
fn a_frame_decoded_from_its_parts_is_the_frame_decoded_whole() {
    let (packets, info) = packets(&clip("scripted-960-parts.mov", 960, 540, 8));
    let d = ReducedDecoder::new(4, info.width, info.height).unwrap();
    let mut needs = Vec::new();
    for packet in &packets {
        let whole = d.decode(packet).unwrap();
        // Generous prefixes: decoded at once, and what each slice needed is told.
        let frame = parts_of(packet, &d, 0.9, 64);
        assert!(frame.fetched() < packet.len());
        assert_eq!(d.decode_parts(&frame, &mut needs).unwrap(), whole);
        let spans = d.spans(packet).unwrap();
        assert_eq!(needs.len(), spans.slices.len());
        for (need, slice) in needs.iter().zip(&spans.slices) {
            assert!(*need as usize >= slice.read && *need as usize <= slice.size);
        }
        // Exactly what was needed: enough.
        let mut exact = parts_of(packet, &d, 0.0, 0);
        let prefixes: Vec<_> = spans
            .slices
            .iter()
            .zip(&needs)
            .map(|(s, &n)| (s.offset, packet[s.offset..s.offset + n as usize].to_vec()))
            .collect();
        exact.add(prefixes);
        assert_eq!(d.decode_parts(&exact, &mut Vec::new()).unwrap(), whole);
        // Prefixes cut short: those slices are named, nothing is guessed; with what
        // they name added, the frame decodes as whole.
        let mut short = parts_of(packet, &d, 0.02, 8);
        let Err(PartsError::Short(missing)) = d.decode_parts(&short, &mut Vec::new()) else {
            panic!("a frame with 2% of each slice decoded");
        };
        assert!(!missing.is_empty());
        short.add(
            missing
                .iter()
                .map(|&(o, l)| (o, packet[o..o + l].to_vec()))
                .collect(),
        );
        assert_eq!(d.decode_parts(&short, &mut Vec::new()).unwrap(), whole);
    }
}
