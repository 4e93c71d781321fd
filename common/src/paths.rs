//! Paths of the metadata checkout: a video's path below the archive root, the JSON that
//! mirrors it, the date in it, and the checks that keep a hostile output path from
//! writing anywhere but inside the checkout.

use std::path::{Component, Path, PathBuf};

use chrono::NaiveDate;

/// The suffix every output path has.
pub const OUTPUT_SUFFIX: &str = "_optical_flow.json";

/// The video's path below the archive root: the part after the last `/files/` of an
/// archive or lazycache URL or path, without a query.
pub fn archive_relative(video: &str) -> Option<String> {
    let clean = video.split(['?', '#']).next().unwrap_or(video);
    let (_, rel) = clean.rsplit_once("/files/")?;
    (!rel.is_empty()).then(|| rel.to_owned())
}

/// `DIR/NAME.mov` → `DIR/NAME_optical_flow.json`; `None` unless it ends in `.mov`.
pub fn output_for(rel_video: &str) -> Option<String> {
    let stem = rel_video
        .strip_suffix(".mov")
        .or_else(|| rel_video.strip_suffix(".MOV"))?;
    Some(format!("{stem}{OUTPUT_SUFFIX}"))
}

/// The recording date in an archive path (`…/YYYY/MM/DD/…`).
pub fn archive_date(rel: &str) -> Option<NaiveDate> {
    let parts: Vec<&str> = rel.split('/').collect();
    parts.windows(3).rev().find_map(|w| {
        let digits = |s: &str, n| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
        if digits(w[0], 4) && digits(w[1], 2) && digits(w[2], 2) {
            NaiveDate::from_ymd_opt(w[0].parse().ok()?, w[1].parse().ok()?, w[2].parse().ok()?)
        } else {
            None
        }
    })
}

/// Why an output path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refusing output path {path:?}: {reason}")]
pub struct UnsafePath {
    /// The path given.
    pub path: String,
    /// The rule it breaks.
    pub reason: &'static str,
}

/// Checks a job's output path and returns where it lands inside `checkout`. It must be
/// relative, free of `..`, outside `.git`, end in `_optical_flow.json`, and no folder on
/// the way may be a symbolic link (which could lead out of the tree).
pub fn resolve_output(checkout: &Path, output: &str) -> Result<PathBuf, UnsafePath> {
    let refuse = |reason| UnsafePath {
        path: output.to_owned(),
        reason,
    };
    if !output.ends_with(OUTPUT_SUFFIX) || output.len() == OUTPUT_SUFFIX.len() {
        return Err(refuse("it must end in _optical_flow.json"));
    }
    if output.contains('\0') || output.contains('\\') {
        return Err(refuse("it contains a NUL or a backslash"));
    }
    let rel = Path::new(output);
    let mut here = checkout.to_path_buf();
    for (i, c) in rel.components().enumerate() {
        match c {
            Component::Normal(name) => {
                if i == 0 && name == ".git" {
                    return Err(refuse("it points into .git"));
                }
                here.push(name);
                if here
                    .symlink_metadata()
                    .is_ok_and(|m| m.file_type().is_symlink())
                {
                    return Err(refuse("a folder or file on the way is a symbolic link"));
                }
            }
            Component::ParentDir => return Err(refuse("it contains '..'")),
            Component::RootDir | Component::Prefix(_) => return Err(refuse("it must be relative")),
            Component::CurDir => return Err(refuse("it contains '.'")),
        }
    }
    Ok(here)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_urls_and_paths_map_to_output_paths() {
        let rel = "RS03ASHS/PN03B/06-CAMHDA301/2017/06/14/CAMHDA301-20170614T231900.mov";
        for video in [
            format!("https://rawdata.oceanobservatories.org/files/{rel}"),
            format!("http://cache:8080/v1/org/oceanobservatories/rawdata/files/{rel}?x"),
            format!("/mnt/archive/files/{rel}"),
        ] {
            assert_eq!(archive_relative(&video).as_deref(), Some(rel), "{video}");
        }
        assert_eq!(archive_relative("/data/a.mov"), None);
        assert_eq!(
            output_for(rel).unwrap(),
            "RS03ASHS/PN03B/06-CAMHDA301/2017/06/14/CAMHDA301-20170614T231900_optical_flow.json"
        );
        assert_eq!(output_for("a.mp4"), None);
    }

    #[test]
    fn the_date_is_read_from_the_archive_path() {
        let d = archive_date("RS03ASHS/PN03B/06-CAMHDA301/2017/06/14/x.mov").unwrap();
        assert_eq!(d, NaiveDate::from_ymd_opt(2017, 6, 14).unwrap());
        assert_eq!(archive_date("a/b/x.mov"), None);
        assert_eq!(archive_date("2017/13/40/x.mov"), None);
    }

    #[test]
    fn hostile_output_paths_are_refused() {
        let dir = tempfile_dir();
        let ok = resolve_output(&dir, "RS03ASHS/2017/x_optical_flow.json").unwrap();
        assert!(ok.starts_with(&dir));
        for bad in [
            "/etc/passwd_optical_flow.json",
            "../x_optical_flow.json",
            "a/../../x_optical_flow.json",
            ".git/hooks/x_optical_flow.json",
            "./x_optical_flow.json",
            "x.json",
            "_optical_flow.json",
            "a\\..\\x_optical_flow.json",
        ] {
            assert!(resolve_output(&dir, bad).is_err(), "{bad}");
        }
        std::os::unix::fs::symlink("/tmp", dir.join("escape")).unwrap();
        let err = resolve_output(&dir, "escape/x_optical_flow.json").unwrap_err();
        assert!(err.reason.contains("symbolic link"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("paths-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
