//! Paths of the metadata checkout: a video's path below the archive root, the JSON that
//! mirrors it, the date in it, and the checks that keep a hostile output path from
//! writing anywhere but inside the checkout.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;

/// The path by which lazycache URLs are recognised (lazycache mirrors the raw archive's
/// `files/` below it).
pub const LAZYCACHE_MARKER: &str = "/v1/org/oceanobservatories/rawdata/files/";

/// The suffix every output path has.
pub const OUTPUT_SUFFIX: &str = "_optical_flow.json";

/// The end of a regions file's name, beside its flow file.
pub const REGIONS_SUFFIX: &str = "_optical_flow_regions.json";

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

/// The longest output path, in bytes.
pub const MAX_OUTPUT_BYTES: usize = 1024;
/// The longest component of an output path, in bytes (most file systems' limit).
pub const MAX_COMPONENT_BYTES: usize = 255;

/// Why an output path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refusing output path {path:?}: {reason}")]
pub struct UnsafePath {
    /// The path given (cut to 200 characters for messages).
    pub path: String,
    /// The rule it breaks.
    pub reason: &'static str,
}

/// The one path policy of the grid, kept by the queuer (it refuses to queue), the filter
/// (it buries the job) and the sink (it buries the result): a relative path of at most
/// [`MAX_OUTPUT_BYTES`] bytes whose every component is made of `A–Z a–z 0–9 . _ -`, does
/// not start with `.` and has at most [`MAX_COMPONENT_BYTES`] bytes, ending in
/// `_optical_flow.json`. Every CamHD archive name fits it; nothing that git or a shell
/// reads specially (`.git`, `:(magic)`, `-option`, spaces, control characters) does.
pub fn check_output(output: &str) -> Result<(), UnsafePath> {
    let refuse = |reason| UnsafePath {
        path: output.chars().take(200).collect(),
        reason,
    };
    if output.len() > MAX_OUTPUT_BYTES {
        return Err(refuse("it is longer than 1024 bytes"));
    }
    if !output.ends_with(OUTPUT_SUFFIX) {
        return Err(refuse("it must end in _optical_flow.json"));
    }
    if output.starts_with('/') {
        return Err(refuse("it must be relative"));
    }
    for component in output.split('/') {
        if component.is_empty() {
            return Err(refuse("it has an empty component (// or a trailing /)"));
        }
        if component.starts_with('.') {
            return Err(refuse(
                "a component starts with '.' (., .., .git, hidden files)",
            ));
        }
        if component.len() > MAX_COMPONENT_BYTES {
            return Err(refuse("a component is longer than 255 bytes"));
        }
        let allowed = |b: u8| b.is_ascii_alphanumeric() || b"._-".contains(&b);
        if !component.bytes().all(allowed) {
            return Err(refuse("only A-Z a-z 0-9 . _ - and / are allowed"));
        }
    }
    if output.rsplit('/').next() == Some(OUTPUT_SUFFIX) {
        return Err(refuse("the file name is only _optical_flow.json"));
    }
    Ok(())
}

/// Checks a job's output path against [`check_output`] and returns where it lands inside
/// `checkout`; no folder or file on the way may be a symbolic link (which could lead out
/// of the tree).
pub fn resolve_output(checkout: &Path, output: &str) -> Result<PathBuf, UnsafePath> {
    check_output(output)?;
    no_links_on_the_way(checkout, output)
}

/// The regions file beside the flow file `output` (`X_optical_flow.json` →
/// `X_optical_flow_regions.json`, as CamHD_motion_metadata names them): its path
/// relative to the checkout, and where it lands inside `checkout`, under the same
/// policy as [`resolve_output`].
pub fn resolve_regions(checkout: &Path, output: &str) -> Result<(String, PathBuf), UnsafePath> {
    check_output(output)?;
    let stem = &output[..output.len() - OUTPUT_SUFFIX.len()];
    let rel = format!("{stem}{REGIONS_SUFFIX}");
    if rel
        .rsplit('/')
        .next()
        .is_some_and(|name| name.len() > MAX_COMPONENT_BYTES)
    {
        return Err(UnsafePath {
            path: rel.chars().take(200).collect(),
            reason: "a component is longer than 255 bytes",
        });
    }
    let path = no_links_on_the_way(checkout, &rel)?;
    Ok((rel, path))
}

/// `rel` inside `checkout`, if no folder or file on the way is a symbolic link.
fn no_links_on_the_way(checkout: &Path, output: &str) -> Result<PathBuf, UnsafePath> {
    let mut here = checkout.to_path_buf();
    for name in output.split('/') {
        here.push(name);
        if here
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
        {
            return Err(UnsafePath {
                path: output.to_owned(),
                reason: "a folder or file on the way is a symbolic link",
            });
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
            "a/.GIT/x_optical_flow.json",
            "sub/.git/x_optical_flow.json",
            ":/x_optical_flow.json",
            ":(exclude)x_optical_flow.json",
            "a b_optical_flow.json",
            "a//x_optical_flow.json",
            "a/x_optical_flow.json/",
            "a/\u{1b}[2Jx_optical_flow.json",
        ] {
            assert!(resolve_output(&dir, bad).is_err(), "{bad}");
        }
        std::os::unix::fs::symlink("/tmp", dir.join("escape")).unwrap();
        let err = resolve_output(&dir, "escape/x_optical_flow.json").unwrap_err();
        assert!(err.reason.contains("symbolic link"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_archive_name_fits_the_policy_and_the_lengths_are_bounded() {
        check_output(
            "RS03ASHS/PN03B/06-CAMHDA301/2017/06/14/CAMHDA301-20170614T231900_optical_flow.json",
        )
        .unwrap();
        check_output(
            "RS03ASHS/PN03B/06-CAMHDA301/2016/09/01/CAMHDA301-20160901T000000Z_optical_flow.json",
        )
        .unwrap();
        let long = format!("{}_optical_flow.json", "a".repeat(255 - 18));
        check_output(&long).unwrap();
        assert!(
            check_output(&format!("a{long}")).is_err(),
            "256-byte component"
        );
        let deep = format!("{}x_optical_flow.json", "abcdefgh/".repeat(112));
        assert!(deep.len() > 1024 && check_output(&deep).is_err());
    }

    #[test]
    fn a_regions_file_sits_beside_its_flow_file_under_the_same_policy() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let (rel, path) = resolve_regions(
            &dir,
            "RS03ASHS/2016/CAMHDA301-20160101T000000Z_optical_flow.json",
        )
        .unwrap();
        assert_eq!(
            rel,
            "RS03ASHS/2016/CAMHDA301-20160101T000000Z_optical_flow_regions.json"
        );
        assert_eq!(path, dir.join(&rel));
        assert!(resolve_regions(&dir, "../x_optical_flow.json").is_err());
        // A flow file name that fits is no guarantee its regions file's name does.
        let long = format!("{}_optical_flow.json", "a".repeat(255 - 18));
        let err = resolve_regions(&dir, &long).unwrap_err();
        assert!(err.reason.contains("255"), "{err:?}");
        std::os::unix::fs::symlink("/tmp", dir.join("escape")).unwrap();
        assert!(resolve_regions(&dir, "escape/x_optical_flow.json").is_err());
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("paths-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
