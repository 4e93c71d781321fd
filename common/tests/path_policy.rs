//! Property test of the one path policy: whatever string a job names as its output, the
//! policy never panics, and a path it lets through, written the way the sink writes,
//! lands inside the checkout and nowhere else.

use std::path::Path;

use common::paths::{check_output, resolve_output};
use proptest::prelude::*;

/// Strings built from the pieces hostile paths are made of.
fn hostile_path() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("/".to_owned()),
        Just(".".to_owned()),
        Just("..".to_owned()),
        Just(".git".to_owned()),
        Just(".GIT".to_owned()),
        Just(":(exclude)".to_owned()),
        Just(":/".to_owned()),
        Just("\\".to_owned()),
        Just("\0".to_owned()),
        Just("\n".to_owned()),
        Just("link".to_owned()),
        Just("é".to_owned()),
        Just("_optical_flow.json".to_owned()),
        "[a-zA-Z0-9_-]{1,12}",
        any::<String>(),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|v| v.concat())
}

/// Every file below `dir`, as paths.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn no_output_path_writes_outside_the_checkout(output in hostile_path()) {
        let dir = tempfile::tempdir().unwrap();
        let co = dir.path().join("checkout");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&co).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, co.join("link")).unwrap();
        let checked = check_output(&output);
        match resolve_output(&co, &output) {
            Ok(path) => {
                prop_assert!(checked.is_ok());
                prop_assert!(path.starts_with(&co));
                prop_assert!(output.len() <= 1024 && output.is_ascii());
                if let Some(parent) = path.parent() {
                    if std::fs::create_dir_all(parent).is_ok() {
                        let _ = std::fs::write(&path, b"{}");
                    }
                }
            }
            Err(e) => prop_assert!(!e.reason.is_empty()),
        }
        prop_assert!(files(&outside).is_empty(), "{output:?} wrote outside");
        for f in files(dir.path()) {
            prop_assert!(f.starts_with(&co) || f.starts_with(&outside), "{f:?}");
        }
    }
}
