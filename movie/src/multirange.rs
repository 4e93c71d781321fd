//! HTTP multi-range requests: the `Range` header for several byte ranges, and a bounded
//! parser of the `multipart/byteranges` reply (RFC 9110, 14.6). Hand-written because no
//! maintained crate parses this one body type without a whole HTTP stack around it; it
//! is small, and everything in it is checked: every part must be exactly one of the
//! ranges asked, each once, with at most [`MAX_PART_HEADERS`] header lines of at most
//! [`MAX_LINE`] bytes, and the body is held to what was asked by the caller first.

/// Most ranges in one request: Apache answers more than its `MaxRanges` (200 by default)
/// with the whole file. Fewer ranges a request means more requests, each a round trip.
pub const MAX_RANGES: usize = 200;

/// The longest `Range` header sent: servers refuse header lines over 8 KiB (Apache's
/// `LimitRequestFieldSize` of 8190 bytes, nginx's 8 KiB `large_client_header_buffers`),
/// the name and the rest of the request line included. 200 ranges in a 15 GB file take
/// about 4,800 bytes.
pub const MAX_HEADER: usize = 7000;

/// The most header lines one part may have (a server sends two).
pub const MAX_PART_HEADERS: usize = 16;

/// The longest header line of a part, and the longest preamble.
pub const MAX_LINE: usize = 1024;

/// Bytes a reply may carry beyond the ranges: every part's headers and boundaries.
pub fn overhead_allowed(parts: usize) -> u64 {
    (parts as u64 + 1) * (MAX_LINE as u64)
}

/// The `Range` header value asking for `ranges` (inclusive `(first, last)` pairs).
pub fn header(ranges: &[(u64, u64)]) -> String {
    let specs: Vec<String> = ranges.iter().map(|(a, b)| format!("{a}-{b}")).collect();
    format!("bytes={}", specs.join(","))
}

/// The boundary of a `multipart/byteranges` content type, if that is what it is.
pub fn boundary(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/byteranges") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let v = v.trim().trim_matches('"');
        // RFC 2046: 1 to 70 characters, none of them a line break.
        ((1..=70).contains(&v.len()) && !v.contains(['\r', '\n'])).then(|| v.to_owned())
    })
}

/// What was wrong with a `multipart/byteranges` reply; its text ends up in a
/// [`crate::ReadError::NoMultiRange`], so the fetch falls back to other requests.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Malformed {
    #[error("expected {0}")]
    Expected(&'static str),
    #[error("a part for bytes {a}-{b}/{stated} of a {total}-byte file")]
    WrongTotal {
        a: u64,
        b: u64,
        stated: u64,
        total: u64,
    },
    #[error("a part for bytes {a}-{b}, which were not asked for")]
    NotAsked { a: u64, b: u64 },
    #[error("bytes {a}-{b} sent twice")]
    Twice { a: u64, b: u64 },
    #[error("the part for bytes {a}-{b} is cut short")]
    CutShort { a: u64, b: u64 },
    #[error("{seen} of the {asked} ranges asked came")]
    Missing { seen: usize, asked: usize },
    #[error("a part header line too long or cut short")]
    LongLine,
    #[error("a part header that is not text")]
    NotText,
    #[error("a part without a Content-Range")]
    NoContentRange,
    #[error("a part with Content-Range {0:?}")]
    BadContentRange(String),
    #[error("a part with more than {MAX_PART_HEADERS} header lines")]
    TooManyHeaders,
}

/// The bytes of each range in `asked` (inclusive, in the order asked) from a
/// `multipart/byteranges` `body` with `boundary`; `total` is the resource's length,
/// which every part must state. Any other shape is an error saying what was wrong.
pub fn parse(
    body: &[u8],
    boundary: &str,
    asked: &[(u64, u64)],
    total: u64,
) -> Result<Vec<Vec<u8>>, Malformed> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let first = find(body, delimiter)
        .filter(|&at| at <= MAX_LINE)
        .ok_or(Malformed::Expected("a boundary at the start of the body"))?;
    let mut at = first + delimiter.len();
    let mut parts: Vec<Option<Vec<u8>>> = vec![None; asked.len()];
    let mut seen = 0;
    loop {
        if body[at..].starts_with(b"--") {
            break; // the close delimiter
        }
        at = expect(body, at, b"\r\n", "a line break after the boundary")?;
        let ((a, b, stated), data_at) = part_headers(body, at)?;
        if stated != total || b >= total {
            return Err(Malformed::WrongTotal {
                a,
                b,
                stated,
                total,
            });
        }
        if !asked.contains(&(a, b)) {
            return Err(Malformed::NotAsked { a, b });
        }
        let slot = asked.iter().position(|&r| r == (a, b)).unwrap_or(0);
        if parts[slot].is_some() {
            return Err(Malformed::Twice { a, b });
        }
        let len = (b - a + 1) as usize;
        let data = body
            .get(data_at..data_at + len)
            .ok_or(Malformed::CutShort { a, b })?;
        parts[slot] = Some(data.to_vec());
        seen += 1;
        at = expect(body, data_at + len, b"\r\n", "a line break after a part")?;
        at = expect(body, at, delimiter, "the boundary after a part")?;
    }
    if seen != asked.len() {
        return Err(Malformed::Missing {
            seen,
            asked: asked.len(),
        });
    }
    Ok(parts.into_iter().flatten().collect())
}

/// The part's `Content-Range` and where its data starts, from the header lines at `at`.
fn part_headers(body: &[u8], mut at: usize) -> Result<((u64, u64, u64), usize), Malformed> {
    let mut range = None;
    for _ in 0..=MAX_PART_HEADERS {
        let end = find(&body[at..body.len().min(at + MAX_LINE + 2)], b"\r\n")
            .ok_or(Malformed::LongLine)?;
        let line = &body[at..at + end];
        at += end + 2;
        if line.is_empty() {
            return range.map(|r| (r, at)).ok_or(Malformed::NoContentRange);
        }
        let line = std::str::from_utf8(line).map_err(|_| Malformed::NotText)?;
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-range") {
                range = Some(
                    content_range(value)
                        .ok_or_else(|| Malformed::BadContentRange(value.trim().to_owned()))?,
                );
            }
        }
    }
    Err(Malformed::TooManyHeaders)
}

/// `bytes A-B/TOTAL` as `(A, B, TOTAL)` when it is well formed.
fn content_range(value: &str) -> Option<(u64, u64, u64)> {
    let (range, total) = value.trim().strip_prefix("bytes ")?.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    let (a, b): (u64, u64) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a <= b).then_some((a, b, total.trim().parse().ok()?))
}

fn expect(body: &[u8], at: usize, what: &[u8], name: &'static str) -> Result<usize, Malformed> {
    match body.get(at..at + what.len()) {
        Some(s) if s == what => Ok(at + what.len()),
        _ => Err(Malformed::Expected(name)),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply body as Apache writes one.
    fn body(parts: &[((u64, u64), &[u8])], total: u64) -> Vec<u8> {
        let mut out = Vec::new();
        for ((a, b), data) in parts {
            out.extend_from_slice(b"\r\n--XyZ\r\nContent-Type: video/quicktime\r\n");
            out.extend_from_slice(
                format!("Content-Range: bytes {a}-{b}/{total}\r\n\r\n").as_bytes(),
            );
            out.extend_from_slice(data);
        }
        out.extend_from_slice(b"\r\n--XyZ--\r\n");
        out
    }

    #[test]
    fn the_range_header_lists_every_range() {
        assert_eq!(header(&[(0, 9), (100, 199)]), "bytes=0-9,100-199");
    }

    #[test]
    fn the_boundary_is_read_from_the_content_type() {
        assert_eq!(
            boundary("multipart/byteranges; boundary=3d6b6a416f9b5").as_deref(),
            Some("3d6b6a416f9b5")
        );
        assert_eq!(
            boundary("Multipart/ByteRanges;boundary=\"a b\"").as_deref(),
            Some("a b")
        );
        assert_eq!(boundary("video/quicktime"), None);
        assert_eq!(boundary("multipart/mixed; boundary=x"), None);
        assert_eq!(
            boundary(&format!(
                "multipart/byteranges; boundary={}",
                "x".repeat(71)
            )),
            None
        );
    }

    #[test]
    fn parts_come_back_in_the_order_asked_whatever_order_they_were_sent() {
        let asked = [(0, 3), (10, 11)];
        let b = body(&[((10, 11), b"kl"), ((0, 3), b"abcd")], 20);
        assert_eq!(
            parse(&b, "XyZ", &asked, 20).unwrap(),
            vec![b"abcd".to_vec(), b"kl".to_vec()]
        );
    }

    #[test]
    fn any_reply_other_than_exactly_the_ranges_asked_is_refused() {
        let asked = [(0, 3), (10, 11)];
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("missing", body(&[((0, 3), b"abcd")], 20)),
            ("other", body(&[((0, 3), b"abcd"), ((12, 13), b"mn")], 20)),
            ("coalesced", body(&[((0, 11), b"abcdefghijkl")], 20)),
            (
                "twice",
                body(
                    &[((0, 3), b"abcd"), ((0, 3), b"abcd"), ((10, 11), b"kl")],
                    20,
                ),
            ),
            ("short", {
                let mut b = body(&[((0, 3), b"abcd"), ((10, 11), b"kl")], 20);
                b.truncate(b.len() - 20);
                b
            }),
            ("no boundary", b"abcdkl".to_vec()),
            (
                "longer part",
                body(&[((0, 3), b"abcdEXTRA"), ((10, 11), b"kl")], 20),
            ),
            (
                "another total",
                body(&[((0, 3), b"abcd"), ((10, 11), b"kl")], 11),
            ),
            ("many headers", {
                let mut b = b"\r\n--XyZ\r\n".to_vec();
                for _ in 0..100 {
                    b.extend_from_slice(b"X-Junk: 1\r\n");
                }
                b
            }),
            ("a long line", {
                let mut b = b"\r\n--XyZ\r\nX-Junk: ".to_vec();
                b.extend(std::iter::repeat_n(b'a', 5000));
                b
            }),
        ];
        for (name, b) in cases {
            assert!(parse(&b, "XyZ", &asked, 20).is_err(), "{name} was accepted");
        }
        let b = body(&[((0, 3), b"abcd"), ((10, 11), b"kl")], 11);
        assert!(
            parse(&b, "XyZ", &asked, 11).is_err(),
            "a range past the end"
        );
    }
}
