//! The regions module against the original: every flow document in tests/regions/flow
//! (hand-made edge cases, seeded random walks, real analyses of generated clips) must
//! give the regions CamHD_motion_metadata's own scripts gave for it (tests/regions/expected,
//! made by make-expected.py under Python 3.6): the same bounds, types and sizes, and
//! means within 1e-9 relative, or no regions file where the original wrote none.

use std::path::{Path, PathBuf};

use flowdoc::regions::{derive, NoRegions, Source};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/regions")
}

fn flow_documents() -> Vec<PathBuf> {
    let mut docs: Vec<PathBuf> = std::fs::read_dir(fixtures().join("flow"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with("_optical_flow.json"))
        .collect();
    docs.sort();
    docs
}

fn close(ours: &Value, theirs: &Value) -> bool {
    match (ours.as_f64(), theirs.as_f64()) {
        (Some(a), Some(b)) => a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()),
        _ => ours.is_null() && theirs.is_null(),
    }
}

#[test]
fn regions_are_those_the_original_scripts_find() {
    let docs = flow_documents();
    assert!(docs.len() >= 16, "fixtures missing: {docs:?}");
    let (mut regions, mut means, mut exact) = (0, 0, 0);
    for path in docs {
        let name = path.file_name().unwrap().to_str().unwrap();
        let stem = name.strip_suffix(".json").unwrap();
        let flow = std::fs::read(&path).unwrap();
        let source = Source {
            flow_path: name,
            flow_commit: "COMMIT",
            version: "test",
        };
        let derived = derive(&flow, source);
        let expected = fixtures().join(format!("expected/{stem}_regions.json"));
        if fixtures().join(format!("expected/{stem}.none")).exists() {
            assert_eq!(derived, Err(NoRegions::NoValidEntries), "{name}");
            continue;
        }
        let ours: Value = serde_json::from_slice(&derived.unwrap()).unwrap();
        let theirs: Value =
            serde_json::from_slice(&std::fs::read(&expected).expect("expected file")).unwrap();
        for key in ["movie", "versions", "depends"] {
            assert_eq!(ours[key], theirs[key], "{name}: {key}");
        }
        assert_eq!(ours["contents"]["regions"], theirs["contents"]["regions"]);
        let (o, t) = (
            ours["regions"].as_array().unwrap(),
            theirs["regions"].as_array().unwrap(),
        );
        let bounds = |r: &Vec<Value>| -> Vec<(Value, Value, Value, Value)> {
            r.iter()
                .map(|r| {
                    let size = r["stats"]["size"].clone();
                    (
                        r["startFrame"].clone(),
                        r["endFrame"].clone(),
                        r["type"].clone(),
                        size,
                    )
                })
                .collect()
        };
        assert_eq!(
            bounds(o),
            bounds(t),
            "{name}: bounds, types or sizes differ"
        );
        for (i, (a, b)) in o.iter().zip(t).enumerate() {
            for mean in ["scaleMean", "txMean", "tyMean"] {
                let (x, y) = (&a["stats"][mean], &b["stats"][mean]);
                assert!(
                    close(x, y),
                    "{name}: region {i} {mean}: ours {x}, the original's {y}"
                );
                means += 1;
                exact += usize::from(x == y);
            }
        }
        regions += o.len();
    }
    assert!(regions >= 40, "too few regions compared: {regions}");
    eprintln!("{regions} regions equal; {exact} of {means} means equal to the last bit");
}
