//! Random-access byte sources: a local file or an HTTP(S) URL read with Range requests.
//! Both count the bytes they fetch, so a test can prove only needed bytes were read.

use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::time::Duration;

use crate::http::{Http, HttpLimits, Reply};
use crate::multirange;
use crate::reach::Reach;
use crate::ReadError;

/// Bytes at offsets, from wherever the video lives.
pub trait ByteSource: Send {
    /// Total length in bytes.
    fn size(&self) -> u64;
    /// Fills `buf` with the bytes at `offset`.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), ReadError>;
    /// Bytes fetched so far (body bytes only).
    fn bytes_fetched(&self) -> u64;
    /// The path or URL, for messages.
    fn name(&self) -> &str;
    /// The bytes of each `(offset, length)` range, in order (sorted, not overlapping).
    /// A file reads each; HTTP asks for many in one request.
    fn read_ranges(&mut self, ranges: &[(u64, usize)]) -> Result<Vec<Vec<u8>>, ReadError> {
        ranges
            .iter()
            .map(|&(offset, len)| {
                let mut buf = vec![0; len];
                self.read_at(offset, &mut buf)?;
                Ok(buf)
            })
            .collect()
    }
    /// True for bytes read over a network.
    fn is_remote(&self) -> bool {
        true
    }
    /// Another reader of the same bytes, for reading from another thread (counting on
    /// its own), when the source can make one.
    fn try_clone(&self) -> Option<Box<dyn ByteSource>> {
        None
    }
}

/// A local file.
#[derive(Debug)]
pub struct FileBytes {
    file: File,
    len: u64,
    path: String,
    fetched: u64,
}

impl FileBytes {
    /// Opens `path`, which must be a regular file: a FIFO would block the open (and the
    /// slot) for ever, a device read for ever. It is checked before opening, and the
    /// open itself does not block, in case the path changed in between.
    pub fn open(path: &str) -> Result<FileBytes, ReadError> {
        FileBytes::open_within(path, &Reach::Any)
    }

    /// [`FileBytes::open`], for a path that `reach` must allow: checked by its real path
    /// before opening, and by the real path of what was opened after.
    pub fn open_within(path: &str, reach: &Reach) -> Result<FileBytes, ReadError> {
        reach.check_path(path)?;
        match std::fs::metadata(path) {
            Ok(m) if !m.is_file() => return Err(ReadError::NotRegular { path: path.into() }),
            _ => {}
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::NotFound => ReadError::NotFound { path: path.into() },
                _ => ReadError::Io {
                    path: path.into(),
                    source,
                },
            })?;
        let meta = file.metadata().map_err(|source| ReadError::Io {
            path: path.into(),
            source,
        })?;
        if !meta.is_file() {
            return Err(ReadError::NotRegular { path: path.into() });
        }
        reach.check_opened(path, &file)?;
        Ok(FileBytes {
            file,
            len: meta.len(),
            path: path.into(),
            fetched: 0,
        })
    }
}

impl ByteSource for FileBytes {
    fn size(&self) -> u64 {
        self.len
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        self.file
            .read_exact_at(buf, offset)
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::UnexpectedEof => ReadError::Corrupt {
                    what: self.path.clone(),
                    detail: format!("file ends before byte {}", offset + buf.len() as u64),
                },
                _ => ReadError::Io {
                    path: self.path.clone(),
                    source,
                },
            })?;
        self.fetched += buf.len() as u64;
        Ok(())
    }

    fn bytes_fetched(&self) -> u64 {
        self.fetched
    }

    fn name(&self) -> &str {
        &self.path
    }

    fn is_remote(&self) -> bool {
        false
    }

    fn try_clone(&self) -> Option<Box<dyn ByteSource>> {
        // The same open file (already checked against the allowed sources), not the path.
        let file = self.file.try_clone().ok()?;
        Some(Box::new(FileBytes {
            file,
            len: self.len,
            path: self.path.clone(),
            fetched: 0,
        }))
    }
}

/// How often a failed Range read is retried before the error is returned.
const HTTP_RETRIES: u32 = 3;

/// Connections one reader uses at once for the requests of one `read_ranges`.
const PARALLEL_REQUESTS: usize = 6;

/// One request's outcome: the bytes of each of its ranges.
type Outcome = Result<Vec<Vec<u8>>, ReadError>;

/// An HTTP(S) resource read with Range requests over keep-alive connections, every
/// request within its limits.
#[derive(Debug)]
pub struct HttpBytes {
    http: Http,
    url: String,
    len: u64,
    fetched: u64,
}

impl HttpBytes {
    /// Learns the resource's length with a one-byte Range request, which also proves the
    /// server honours Range.
    pub fn open(url: &str, limits: HttpLimits) -> Result<HttpBytes, ReadError> {
        let mut this = HttpBytes {
            http: Http::new(limits),
            url: url.into(),
            len: 0,
            fetched: 0,
        };
        let reply = this.get_range(0, 0)?;
        this.len = total_length(&reply).ok_or_else(|| ReadError::Unreachable {
            url: url.into(),
            detail: "the reply to a Range request has no usable Content-Range".into(),
        })?;
        let one = reply.body(1)?;
        this.fetched += one.len() as u64;
        Ok(this)
    }

    /// A 206 for exactly `first..=last`; anything else is an error.
    fn get_range(&self, first: u64, last: u64) -> Result<Reply, ReadError> {
        let reply = self
            .http
            .get(&self.url, Some((first, last)), last - first + 1)?;
        if reply.status != 206 {
            // A 200 would stream the whole file; drop it unread.
            return Err(ReadError::NoRangeSupport {
                url: self.url.clone(),
            });
        }
        let range = reply
            .header("Content-Range")
            .and_then(|r| r.trim().strip_prefix("bytes "))
            .and_then(|r| r.split_once('/'))
            .and_then(|(r, _)| r.split_once('-'))
            .and_then(|(a, b)| {
                Some((a.trim().parse::<u64>().ok()?, b.trim().parse::<u64>().ok()?))
            });
        if range != Some((first, last)) {
            return Err(self.transport(format!(
                "asked for bytes {first}-{last}, the server sent {:?}",
                reply.header("Content-Range").unwrap_or("no Content-Range")
            )));
        }
        Ok(reply)
    }

    fn transport(&self, detail: String) -> ReadError {
        ReadError::Unreachable {
            url: self.url.clone(),
            detail,
        }
    }

    /// Makes `requests` on up to [`PARALLEL_REQUESTS`] connections at once (a frame's
    /// ranges need several, and one after another each would wait a round trip); their
    /// outcomes in order, `None` for those not made once one failed.
    fn in_parallel(&mut self, requests: &[&[(u64, usize)]]) -> Vec<Option<Outcome>> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let next = AtomicUsize::new(0);
        let slots: Vec<std::sync::Mutex<Option<Outcome>>> = requests
            .iter()
            .map(|_| std::sync::Mutex::default())
            .collect();
        let workers = requests.len().min(PARALLEL_REQUESTS);
        let fetched: u64 = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    let mut worker = self.clone_reader();
                    let (next, slots) = (&next, &slots);
                    scope.spawn(move || {
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(chunk) = requests.get(i) else { break };
                            let outcome = worker.read_chunk(chunk);
                            let failed = outcome.is_err();
                            *slots[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
                            if failed {
                                // The others finish what they hold; nothing more is asked.
                                next.store(requests.len(), Ordering::Relaxed);
                            }
                        }
                        worker.fetched
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
        });
        self.fetched += fetched;
        slots
            .into_iter()
            .map(|s| s.into_inner().unwrap_or_else(|p| p.into_inner()))
            .collect()
    }

    /// A reader sharing this one's connections and limits, counting on its own.
    fn clone_reader(&self) -> HttpBytes {
        HttpBytes {
            http: self.http.clone(),
            url: self.url.clone(),
            len: self.len,
            fetched: 0,
        }
    }

    /// One request's ranges: one range as a plain Range request, several as one
    /// multi-range request.
    fn read_chunk(&mut self, chunk: &[(u64, usize)]) -> Result<Vec<Vec<u8>>, ReadError> {
        if let [(offset, len)] = chunk {
            let mut buf = vec![0; *len];
            self.read_at(*offset, &mut buf)?;
            return Ok(vec![buf]);
        }
        self.with_retries(|this| this.read_several(chunk))
    }

    /// Runs `read`, again after a pause when the server could not be reached.
    fn with_retries<T>(
        &mut self,
        mut read: impl FnMut(&mut Self) -> Result<T, ReadError>,
    ) -> Result<T, ReadError> {
        let mut attempt = 0;
        loop {
            match read(self) {
                Err(e @ ReadError::Unreachable { .. }) if attempt < HTTP_RETRIES => {
                    attempt += 1;
                    tracing::debug!(url = %self.url, attempt, error = %e, "retrying a Range read");
                    std::thread::sleep(Duration::from_millis(200 << attempt));
                }
                other => return other,
            }
        }
    }

    /// Several ranges in one request, answered as `multipart/byteranges`. Anything else
    /// (the whole file, one range, other ranges) is [`ReadError::NoMultiRange`], and a
    /// whole file is dropped unread.
    fn read_several(&mut self, ranges: &[(u64, usize)]) -> Result<Vec<Vec<u8>>, ReadError> {
        let mut asked = Vec::with_capacity(ranges.len());
        for &(offset, len) in ranges {
            let last = offset + len as u64;
            if len == 0 || last > self.len || asked.last().is_some_and(|&(_, b)| offset <= b) {
                return Err(ReadError::Corrupt {
                    what: self.url.clone(),
                    detail: format!("a range {offset}+{len} outside the resource or out of order"),
                });
            }
            asked.push((offset, last - 1));
        }
        let wanted: u64 = ranges.iter().map(|&(_, len)| len as u64).sum();
        let max = wanted + multirange::overhead_allowed(ranges.len());
        let reply = self
            .http
            .get_with_range(&self.url, Some(&multirange::header(&asked)), max)?;
        let refused = |detail: String| ReadError::NoMultiRange {
            url: self.url.clone(),
            detail,
        };
        if reply.status != 206 {
            return Err(refused(format!("HTTP {} (the whole file)", reply.status)));
        }
        let Some(boundary) = multirange::boundary(reply.content_type_header()) else {
            return Err(refused(format!(
                "one range ({}) for {} asked",
                reply.header("Content-Range").unwrap_or("no Content-Range"),
                ranges.len()
            )));
        };
        let Some(body) = reply.body_within(max)? else {
            self.fetched += max + 1;
            return Err(refused(format!(
                "more than the {max} bytes {} ranges and their headers take",
                ranges.len()
            )));
        };
        self.fetched += body.len() as u64;
        multirange::parse(&body, &boundary, &asked, self.len).map_err(refused)
    }

    fn read_once(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        let last = offset + buf.len() as u64 - 1;
        let body = self.get_range(offset, last)?.body(buf.len() as u64)?;
        if body.len() != buf.len() {
            return Err(self.transport(format!(
                "asked for {} bytes, the server sent {}",
                buf.len(),
                body.len()
            )));
        }
        buf.copy_from_slice(&body);
        self.fetched += buf.len() as u64;
        Ok(())
    }
}

impl ByteSource for HttpBytes {
    fn size(&self) -> u64 {
        self.len
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        if buf.is_empty() {
            return Ok(());
        }
        if offset + buf.len() as u64 > self.len {
            return Err(ReadError::Corrupt {
                what: self.url.clone(),
                detail: format!("resource ends before byte {}", offset + buf.len() as u64),
            });
        }
        self.with_retries(|this| this.read_once(offset, buf))
    }

    fn bytes_fetched(&self) -> u64 {
        self.fetched
    }

    fn name(&self) -> &str {
        &self.url
    }

    fn read_ranges(&mut self, ranges: &[(u64, usize)]) -> Result<Vec<Vec<u8>>, ReadError> {
        let mut requests = Vec::new();
        let mut rest = ranges;
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(ranges_per_request(rest));
            requests.push(chunk);
            rest = tail;
        }
        let results = self.in_parallel(&requests);
        let mut out = Vec::with_capacity(ranges.len());
        for result in results {
            match result {
                Some(Ok(parts)) => out.extend(parts),
                Some(Err(e)) => return Err(e),
                None => {
                    return Err(self.transport("a request was never made".into()));
                }
            }
        }
        Ok(out)
    }

    fn try_clone(&self) -> Option<Box<dyn ByteSource>> {
        Some(Box::new(self.clone_reader()))
    }
}

/// How many of `ranges` (at least one) go in the next request: at most
/// [`multirange::MAX_RANGES`], within [`multirange::MAX_HEADER`] bytes of header.
fn ranges_per_request(ranges: &[(u64, usize)]) -> usize {
    let mut header = "bytes=".len();
    let mut n = 0;
    let digits = |n: u64| n.checked_ilog10().map_or(1, |d| d as usize + 1);
    for &(offset, len) in ranges.iter().take(multirange::MAX_RANGES) {
        // `A-B,` as `multirange::header` writes it.
        let spec = digits(offset) + 1 + digits(offset + len.max(1) as u64 - 1) + 1;
        if n > 0 && header + spec > multirange::MAX_HEADER {
            break;
        }
        header += spec;
        n += 1;
    }
    n.max(1)
}

/// The total from `Content-Range: bytes a-b/TOTAL`.
fn total_length(response: &Reply) -> Option<u64> {
    response
        .header("Content-Range")?
        .rsplit_once('/')?
        .1
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_of(ranges: &[(u64, usize)]) -> String {
        let asked: Vec<(u64, u64)> = ranges.iter().map(|&(o, l)| (o, o + l as u64 - 1)).collect();
        multirange::header(&asked)
    }

    #[test]
    fn a_request_takes_as_many_ranges_as_the_caps_allow() {
        // Offsets from 1 to 11 digits: the header fills before the range count does.
        let ranges: Vec<(u64, usize)> = (0..300u64)
            .map(|i| (i * 1_000_000_007 + 9, 100 + i as usize))
            .collect();
        let mut rest = &ranges[..];
        while !rest.is_empty() {
            let n = ranges_per_request(rest);
            assert!(n <= multirange::MAX_RANGES);
            assert!(header_of(&rest[..n]).len() <= multirange::MAX_HEADER);
            if n < rest.len() && n < multirange::MAX_RANGES {
                assert!(
                    header_of(&rest[..n + 1]).len() > multirange::MAX_HEADER,
                    "{n}"
                );
            }
            rest = &rest[n..];
        }
        let small: Vec<(u64, usize)> = (0..300u64).map(|i| (i * 10, 5)).collect();
        assert_eq!(ranges_per_request(&small), multirange::MAX_RANGES);
    }
}
