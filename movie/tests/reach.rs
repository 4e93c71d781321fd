//! Allowed sources cannot be walked out of, however a hostile job spells its video:
//! property tests over generated spellings, each accepted source checked against what a
//! server (or the file system) would really serve for it.

use movie::{FileBytes, Reach};
use proptest::prelude::*;

/// What a lenient server would serve for `url`: its path percent-decoded, backslashes
/// taken as slashes, dot segments resolved.
fn served_path(url: &url::Url) -> String {
    let decoded = percent_decode(url.path()).replace('\\', "/");
    let mut out: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

const PIECES: &[&str] = &[
    "..",
    ".",
    "%2e%2e",
    "%2E.",
    ".%2e",
    "%2e",
    "plain",
    "more",
    "x.mov",
    "%2f",
    "..%2f",
    "%5c",
    "%5c..",
    "\\..",
    "",
    ";x",
    "%00",
    "%252e%252e",
    "%",
    "a%2",
    "@",
    "%40",
];
const AUTHORITIES: &[&str] = &[
    "127.0.0.1:1808",
    "127.0.0.1:1808@127.0.0.1:18090",
    "u@127.0.0.1:1808",
    "u:p@127.0.0.1:1808",
    "127.0.0.1:18090",
    "127.0.0.1:1808.",
    "0x7f.0.0.1:1808",
    "2130706433:1808",
    "[::ffff:127.0.0.1]:1808",
    "localhost:1808",
    "127.0.0.1:01808",
    "127.0.0.1:1808:80",
    "169.254.169.254",
    "[fd00:ec2::254]",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn an_accepted_url_is_served_from_inside_the_allowed_prefix(
        scheme in prop::sample::select(vec!["http", "HTTP", "https", "hTtP"]),
        authority in prop::sample::select(AUTHORITIES.to_vec()),
        pieces in prop::collection::vec(prop::sample::select(PIECES.to_vec()), 0..8),
        slash in prop::sample::select(vec!["/", "\\", "//", "/./"]),
    ) {
        let reach = Reach::allowing(&["http://127.0.0.1:1808/plain/".into()]).unwrap();
        let raw = format!("{scheme}://{authority}{slash}plain/{}", pieces.join("/"));
        if let Ok(url) = reach.check_url(&raw) {
            prop_assert_eq!(url.scheme(), "http");
            prop_assert_eq!(url.host_str(), Some("127.0.0.1"));
            prop_assert_eq!(url.port_or_known_default(), Some(1808));
            prop_assert_eq!(url.username(), "");
            let served = served_path(&url);
            prop_assert!(
                served == "/plain" || served.starts_with("/plain/"),
                "{raw} was accepted as {url}, which a server serves as {served}"
            );
        }
    }

    #[test]
    fn an_accepted_local_path_is_a_file_inside_the_allowed_folder(
        pieces in prop::collection::vec(
            prop::sample::select(vec!["..", ".", "day", "link", "uplink", "a.mov", "secret.mov", "", "archive"]),
            1..7,
        ),
        from_root in any::<bool>(),
    ) {
        let root = fixture();
        let archive = root.path().join("archive");
        let reach = Reach::allowing(&[format!("{}/", archive.display())]).unwrap();
        let base = if from_root { root.path().to_owned() } else { archive.clone() };
        let path = format!("{}/{}", base.display(), pieces.join("/"));
        if FileBytes::open_within(&path, &reach).is_ok() {
            let real = std::fs::canonicalize(&path).unwrap();
            prop_assert!(
                real.starts_with(std::fs::canonicalize(&archive).unwrap()),
                "{path} was opened, and it is {}", real.display()
            );
        }
    }
}

/// root/secret.mov, root/archive/a.mov, root/archive/day/a.mov, and links out:
/// archive/link -> ../secret.mov, archive/day/uplink -> ../../ (the root).
fn fixture() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let archive = root.path().join("archive");
    std::fs::create_dir_all(archive.join("day")).unwrap();
    for f in ["secret.mov", "archive/a.mov", "archive/day/a.mov"] {
        std::fs::write(root.path().join(f), b"not a movie").unwrap();
    }
    std::os::unix::fs::symlink(root.path().join("secret.mov"), archive.join("link")).unwrap();
    std::os::unix::fs::symlink(root.path(), archive.join("day/uplink")).unwrap();
    root
}

#[test]
fn the_walks_out_of_issue_15_are_refused() {
    let reach = Reach::allowing(&["http://127.0.0.1:1808".into()]).unwrap();
    for raw in [
        "http://127.0.0.1:1808@127.0.0.1:18090/x.mov",
        "http://127.0.0.1:18090/x.mov",
    ] {
        assert!(reach.check_url(raw).is_err(), "{raw}");
    }
    let reach = Reach::allowing(&["http://127.0.0.1:1808/plain/".into()]).unwrap();
    for raw in [
        "http://127.0.0.1:1808/plain/../more/x.mov",
        "http://127.0.0.1:1808/plain/%2e%2e/more/x.mov",
        "http://127.0.0.1:1808/plainly/x.mov",
    ] {
        assert!(reach.check_url(raw).is_err(), "{raw}");
    }
    let root = fixture();
    let archive = root.path().join("archive");
    let reach = Reach::allowing(&[format!("{}/", archive.display())]).unwrap();
    let out = format!("{}/../secret.mov", archive.display());
    let err = FileBytes::open_within(&out, &reach).unwrap_err();
    assert!(
        err.to_string()
            .contains("inside none of the allowed sources"),
        "{err}"
    );
    FileBytes::open_within(&format!("{}/day/../a.mov", archive.display()), &reach).unwrap();
}
