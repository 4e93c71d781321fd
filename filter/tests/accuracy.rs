//! The motion estimate against exact ground truth: clips rendered along a scripted camera
//! path (pan, tilt, zoom in and out, roll, still, black frames), encoded as ProRes 422.

mod support;

use filter::decode::DecoderChoice;
use filter::document::OpticalFlowDocument;
use filter::source::{self, SourceKind};
use filter::{analyze, Settings};
use support::synth::{render, scripted, truth, Pose};
use support::{clip, clips};

/// Worst errors seen, per component, and their means over the valid entries (the worst
/// hangs on one pair; the means are what tell two versions of the estimate apart).
#[derive(Debug, Default)]
struct Errors {
    scale: f64,
    theta: f64,
    translation: f64,
    mean_scale: f64,
    mean_theta: f64,
    mean_translation: f64,
    valid: usize,
    invalid_but_lit: usize,
}

fn run(path: &std::path::Path, stride: u32, scale: f64) -> OpticalFlowDocument {
    run_with(path, stride, scale, DecoderChoice::Auto)
}

fn run_with(
    path: &std::path::Path,
    stride: u32,
    scale: f64,
    decoder: DecoderChoice,
) -> OpticalFlowDocument {
    let video = source::open(path.to_str().expect("utf-8 path"), SourceKind::File, scale)
        .expect("opening the clip");
    let settings = Settings {
        stride,
        img_scale: scale,
        decoder,
        ..Settings::default()
    };
    analyze(video, &settings, &mut |_| {})
        .expect("analysis")
        .document
}

/// Compares every entry with the scripted path's truth; black pairs must be invalid.
fn errors(doc: &OpticalFlowDocument, width: u32) -> Errors {
    errors_along(doc, |n| scripted(n, width))
}

/// Compares every entry with the truth of the camera path `pose`.
fn errors_along(doc: &OpticalFlowDocument, pose: impl Fn(u64) -> Pose) -> Errors {
    let mut e = Errors::default();
    for stat in &doc.frame_stats {
        let of = &stat.optical_flow;
        let (a, b) = (pose(of.from_frame), pose(of.to_frame));
        if a.black || b.black {
            assert!(
                !of.valid,
                "frame {} spans a black frame but is valid",
                stat.frame_number
            );
            assert_eq!(of.similarity, [1.0, 0.0, 0.0, 0.0]);
            continue;
        }
        if !of.valid {
            e.invalid_but_lit += 1;
            continue;
        }
        e.valid += 1;
        let t = truth(&a, &b);
        let s = of.similarity;
        e.scale = e.scale.max((s[0] - t[0]).abs());
        e.theta = e.theta.max((s[1] - t[1]).abs());
        e.translation = e.translation.max((s[2] - t[2]).hypot(s[3] - t[3]));
        e.mean_scale += (s[0] - t[0]).abs();
        e.mean_theta += (s[1] - t[1]).abs();
        e.mean_translation += (s[2] - t[2]).hypot(s[3] - t[3]);
    }
    let n = e.valid.max(1) as f64;
    e.mean_scale /= n;
    e.mean_theta /= n;
    e.mean_translation /= n;
    e
}

#[test]
fn a_640x360_clip_at_half_scale_matches_the_ground_truth() {
    let path = clip("scripted-640.mov", 640, 360, 300);
    // Stride 5 as the other specs; stride 1 gives every pair of the path (290 of them).
    for (stride, entries) in [(5, 60), (1, 299)] {
        let doc = run(&path, stride, 0.5);
        assert_eq!(doc.movie.num_frames, 300);
        assert_eq!(doc.frame_stats.len(), entries);
        let e = errors(&doc, 640);
        eprintln!("640x360 @0.5, stride {stride}: {e:?}");
        assert_eq!(e.invalid_but_lit, 0, "every lit pair has texture: {e:?}");
        // A quarter of an analysis pixel (2 full-resolution pixels each at scale 0.5);
        // scale and theta to 1e-3, about a pixel at the corner of a 1080p frame.
        // Measured: 0.02 px, 2e-4.
        assert!(e.translation < 0.5, "{e:?}");
        assert!(e.scale < 1e-3, "{e:?}");
        assert!(e.theta < 1e-3, "{e:?}");
    }
}

#[test]
fn a_1080p_clip_at_the_default_scale_matches_the_ground_truth() {
    // Short: pan, tilt and the start of the zoom, as CamHD's own moves are.
    let path = clip("scripted-1080.mov", 1920, 1080, 140);
    // The default decoder here is the reduced one; libav is the reference.
    for (decoder, name) in [
        (DecoderChoice::Auto, "reduced-dct"),
        (DecoderChoice::Libav, "libav"),
    ] {
        let doc = run_with(&path, 10, 0.25, decoder);
        assert_eq!(doc.analysis.decoder, name);
        let e = errors(&doc, 1920);
        eprintln!("1920x1080 @0.25 with {name}: {e:?}");
        assert_eq!(e.invalid_but_lit, 0, "{name}: {e:?}");
        // A quarter of an analysis pixel (4 full-resolution pixels each). Measured: 0.10 px.
        assert!(e.translation < 1.0, "{name}: {e:?}");
        assert!(e.scale < 1e-3, "{name}: {e:?}");
        assert!(e.theta < 1e-3, "{name}: {e:?}");
    }
}

#[test]
fn a_fast_pan_of_200_full_hd_pixels_across_the_pair_is_tracked() {
    // 960x540 at scale 0.5 gives the 480x270 analysis image of 1080p at 0.25; 10 px a
    // frame here is 100 px across the pair, i.e. 200 px at 1080p.
    let path = clips().path().join("fast-pan.mov");
    let pose = |n: u64| support::synth::Pose {
        scale: 1.0,
        theta: 0.0,
        cx: 10.0 * n as f64,
        cy: -3.0 * n as f64,
        black: false,
    };
    render(&path, 960, 540, 40, pose);
    let doc = run(&path, 5, 0.5);
    for stat in &doc.frame_stats {
        let of = &stat.optical_flow;
        assert!(of.valid, "frame {} invalid", stat.frame_number);
        let t = truth(&pose(of.from_frame), &pose(of.to_frame));
        let err = (of.similarity[2] - t[2]).hypot(of.similarity[3] - t[3]);
        assert!(
            err < 0.5,
            "frame {}: {:?} vs {t:?}",
            stat.frame_number,
            of.similarity
        );
    }
}

#[test]
fn a_fast_zoom_and_roll_are_tracked_to_the_edges() {
    // 960x540 at scale 0.5: the 480x270 analysis image of 1080p at 0.25. A zoom of 5%
    // across the pair (as CamHD's zooms, ~4x in ten seconds) moves the corners of the
    // analysis image 14 px away from where the global shift puts them; a roll of 0.03 rad,
    // 8 px. Every pair must stay valid and right.
    let path = clips().path().join("fast-zoom.mov");
    let pose = |n: u64| Pose {
        scale: 1.005f64.powi(n.min(40) as i32) / 1.005f64.powi(n.saturating_sub(40) as i32),
        theta: 0.003 * n as f64,
        cx: 2.0 * n as f64,
        cy: 0.0,
        black: false,
    };
    render(&path, 960, 540, 80, pose);
    let doc = run(&path, 5, 0.5);
    let e = errors_along(&doc, pose);
    eprintln!("fast zoom and roll, 960x540 @0.5: {e:?}");
    assert_eq!(e.invalid_but_lit, 0, "{e:?}");
    assert_eq!(e.valid, 16, "{e:?}");
    assert!(e.translation < 0.5, "{e:?}");
    assert!(e.scale < 1e-3, "{e:?}");
    assert!(e.theta < 1e-3, "{e:?}");
}

#[test]
fn the_answer_does_not_depend_on_timing() {
    // Each frame is shared by the two pairs it belongs to, which run at once on
    // different threads: nothing they share may change under them. At 640x360 and scale
    // 0.5 the phase-correlation images (80x45) need no DFT padding, where OpenCV once
    // windowed a shared image in place. Six analyses at once, every one the same.
    let path = clip("scripted-640.mov", 640, 360, 300);
    let runs: Vec<_> = (0..6)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || run(&path, 10, 0.5))
        })
        .collect();
    let docs: Vec<_> = runs.into_iter().map(|r| r.join().unwrap()).collect();
    let entries = |d: &OpticalFlowDocument| -> Vec<[f64; 4]> {
        d.frame_stats
            .iter()
            .map(|s| s.optical_flow.similarity)
            .collect()
    };
    for d in &docs[1..] {
        assert_eq!(entries(d), entries(&docs[0]));
    }
}
