//! Random-access byte sources: a local file or an HTTP(S) URL read with Range requests.
//! Both count the bytes they fetch, so a test can prove only needed bytes were read.

use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// How many of `ranges` (at least one) one [`ByteSource::read_request`] takes.
    fn ranges_per_request(&self, ranges: &[(u64, usize)]) -> usize {
        ranges.len().max(1)
    }
    /// The bytes of `ranges` (sorted, apart, at most [`ByteSource::ranges_per_request`]
    /// of them) in one request: one round trip over a network.
    fn read_request(&mut self, ranges: &[(u64, usize)]) -> Result<Vec<Vec<u8>>, ReadError> {
        self.read_ranges(ranges)
    }
    /// True for bytes read over a network.
    fn is_remote(&self) -> bool {
        true
    }
    /// The shortest round trip a request has taken so far (none for a local file): how
    /// long a reader waits for each request.
    fn round_trip(&self) -> Option<Duration> {
        None
    }
    /// How many requests to keep in flight when fetching ahead.
    fn requests_in_flight(&self) -> usize {
        1
    }
    /// Another reader of the same bytes, for reading from another thread, when the
    /// source can make one. Clones count their bytes together.
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
    /// Bytes read by this reader and its clones.
    fetched: Arc<AtomicU64>,
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
            fetched: Arc::default(),
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
        self.fetched.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn bytes_fetched(&self) -> u64 {
        self.fetched.load(Ordering::Relaxed)
    }

    fn name(&self) -> &str {
        &self.path
    }

    fn is_remote(&self) -> bool {
        false
    }

    /// Two: a local disk gains nothing from more, and one read waits on the other only
    /// for the page cache.
    fn requests_in_flight(&self) -> usize {
        2
    }

    fn try_clone(&self) -> Option<Box<dyn ByteSource>> {
        // The same open file (already checked against the allowed sources), not the path.
        let file = self.file.try_clone().ok()?;
        Some(Box::new(FileBytes {
            file,
            len: self.len,
            path: self.path.clone(),
            fetched: Arc::clone(&self.fetched),
        }))
    }
}

/// How often a failed Range read is retried before the error is returned.
const HTTP_RETRIES: u32 = 3;

/// Connections one reader uses at once for the requests of one `read_ranges`.
const PARALLEL_REQUESTS: usize = 6;

/// What opening a resource reads: its first bytes, which hold a QuickTime file's first
/// atom headers and the first frame's header (the index reader and the first-frame check
/// then need no request of their own).
const OPEN_BYTES: u64 = 4096;

/// A read smaller than this fetches this much (to the end of the resource at most), and
/// later small reads inside it are served from memory: the index reader walks atom
/// headers, each a read of 16 bytes, and a `moov` at the end of a file is read with its
/// header in one request.
const READ_AHEAD: u64 = 256 << 10;

/// One request's outcome: the bytes of each of its ranges.
type Outcome = Result<Vec<Vec<u8>>, ReadError>;

/// An HTTP(S) resource read with Range requests over keep-alive connections, every
/// request within its limits.
#[derive(Debug)]
pub struct HttpBytes {
    http: Http,
    url: String,
    len: u64,
    /// Bytes fetched by this reader and its clones.
    fetched: Arc<AtomicU64>,
    /// The shortest time a request took to its reply's head, in microseconds (`u64::MAX`
    /// before any), by this reader and its clones.
    round_trip: Arc<AtomicU64>,
    /// The resource's first bytes, read when it was opened.
    prefix: Arc<Vec<u8>>,
    /// The bytes of the last read-ahead, and where they start.
    ahead: Option<(u64, Arc<Vec<u8>>)>,
}

impl HttpBytes {
    /// Learns the resource's length with a Range request for its first bytes, which
    /// also proves the server honours Range.
    pub fn open(url: &str, limits: HttpLimits) -> Result<HttpBytes, ReadError> {
        let mut this = HttpBytes {
            http: Http::new(limits),
            url: url.into(),
            len: 0,
            fetched: Arc::default(),
            round_trip: Arc::new(AtomicU64::new(u64::MAX)),
            prefix: Arc::default(),
            ahead: None,
        };
        let reply = this.get(0, OPEN_BYTES - 1)?;
        let (first, last, total) = content_range(&reply).ok_or_else(|| {
            this.transport("the reply to a Range request has no usable Content-Range".into())
        })?;
        // A resource shorter than what was asked for is sent whole.
        if first != 0 || total == 0 || last != (OPEN_BYTES - 1).min(total - 1) {
            return Err(this.transport(format!(
                "asked for bytes 0-{}, the server sent {:?}",
                OPEN_BYTES - 1,
                reply.header("Content-Range").unwrap_or("no Content-Range")
            )));
        }
        this.len = total;
        this.prefix = Arc::new(this.body_of(reply, last + 1)?);
        Ok(this)
    }

    /// GETs `first..=last` (a 206 with a Content-Range is required; a 200 would stream
    /// the whole file, and is dropped unread), timing it.
    fn get(&self, first: u64, last: u64) -> Result<Reply, ReadError> {
        let started = Instant::now();
        let reply = self
            .http
            .get(&self.url, Some((first, last)), last - first + 1)?;
        self.saw_round_trip(started.elapsed());
        if reply.status != 206 {
            return Err(ReadError::NoRangeSupport {
                url: self.url.clone(),
            });
        }
        Ok(reply)
    }

    /// A 206 for exactly `first..=last`; anything else is an error.
    fn get_range(&self, first: u64, last: u64) -> Result<Reply, ReadError> {
        let reply = self.get(first, last)?;
        if content_range(&reply).map(|(a, b, _)| (a, b)) != Some((first, last)) {
            return Err(self.transport(format!(
                "asked for bytes {first}-{last}, the server sent {:?}",
                reply.header("Content-Range").unwrap_or("no Content-Range")
            )));
        }
        Ok(reply)
    }

    /// The body of `reply`, exactly `len` bytes, counted.
    fn body_of(&self, reply: Reply, len: u64) -> Result<Vec<u8>, ReadError> {
        let body = reply.body(len)?;
        self.fetched.fetch_add(body.len() as u64, Ordering::Relaxed);
        if body.len() as u64 != len {
            return Err(self.transport(format!(
                "asked for {len} bytes, the server sent {}",
                body.len()
            )));
        }
        Ok(body)
    }

    fn saw_round_trip(&self, took: Duration) {
        self.round_trip
            .fetch_min(took.as_micros() as u64, Ordering::Relaxed);
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
        use std::sync::atomic::AtomicUsize;
        let next = AtomicUsize::new(0);
        let slots: Vec<std::sync::Mutex<Option<Outcome>>> = requests
            .iter()
            .map(|_| std::sync::Mutex::default())
            .collect();
        let workers = requests.len().min(PARALLEL_REQUESTS);
        std::thread::scope(|scope| {
            for _ in 0..workers {
                let mut worker = self.clone_reader();
                let (next, slots) = (&next, &slots);
                scope.spawn(move || loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(chunk) = requests.get(i) else { break };
                    let outcome = worker.read_request(chunk);
                    let failed = outcome.is_err();
                    *slots[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
                    if failed {
                        // The others finish what they hold; nothing more is asked.
                        next.store(requests.len(), Ordering::Relaxed);
                    }
                });
            }
        });
        slots
            .into_iter()
            .map(|s| s.into_inner().unwrap_or_else(|p| p.into_inner()))
            .collect()
    }

    /// A reader sharing this one's connections, limits and counters.
    fn clone_reader(&self) -> HttpBytes {
        HttpBytes {
            http: self.http.clone(),
            url: self.url.clone(),
            len: self.len,
            fetched: Arc::clone(&self.fetched),
            round_trip: Arc::clone(&self.round_trip),
            prefix: Arc::clone(&self.prefix),
            ahead: None,
        }
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
        let started = Instant::now();
        let reply = self
            .http
            .get_with_range(&self.url, Some(&multirange::header(&asked)), max)?;
        self.saw_round_trip(started.elapsed());
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
            self.fetched.fetch_add(max + 1, Ordering::Relaxed);
            return Err(refused(format!(
                "more than the {max} bytes {} ranges and their headers take",
                ranges.len()
            )));
        };
        self.fetched.fetch_add(body.len() as u64, Ordering::Relaxed);
        multirange::parse(&body, &boundary, &asked, self.len).map_err(|e| refused(e.to_string()))
    }

    /// Exactly `buf.len()` bytes at `offset`, in one request.
    fn read_once(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        let last = offset + buf.len() as u64 - 1;
        let reply = self.get_range(offset, last)?;
        buf.copy_from_slice(&self.body_of(reply, buf.len() as u64)?);
        Ok(())
    }

    /// Fills `buf` from the bytes read when opening or the last read-ahead, if either
    /// holds those bytes.
    fn held_ahead(&self, offset: u64, buf: &mut [u8]) -> bool {
        let held = |at: u64, bytes: &[u8]| {
            let start = usize::try_from(offset.checked_sub(at)?).ok()?;
            bytes
                .get(start..start.checked_add(buf.len())?)
                .map(<[u8]>::to_vec)
        };
        let found = held(0, &self.prefix).or_else(|| {
            let (at, bytes) = self.ahead.as_ref()?;
            held(*at, bytes)
        });
        match found {
            Some(bytes) => {
                buf.copy_from_slice(&bytes);
                true
            }
            None => false,
        }
    }

    fn check_bounds(&self, offset: u64, len: usize) -> Result<(), ReadError> {
        if offset + len as u64 > self.len {
            return Err(ReadError::Corrupt {
                what: self.url.clone(),
                detail: format!("resource ends before byte {}", offset + len as u64),
            });
        }
        Ok(())
    }
}

impl ByteSource for HttpBytes {
    fn size(&self) -> u64 {
        self.len
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        if buf.is_empty() || self.held_ahead(offset, buf) {
            return Ok(());
        }
        self.check_bounds(offset, buf.len())?;
        if (buf.len() as u64) < READ_AHEAD {
            let len = READ_AHEAD.min(self.len - offset) as usize;
            let mut ahead = vec![0; len];
            self.with_retries(|this| this.read_once(offset, &mut ahead))?;
            self.ahead = Some((offset, Arc::new(ahead)));
            if self.held_ahead(offset, buf) {
                return Ok(());
            }
        }
        self.with_retries(|this| this.read_once(offset, buf))
    }

    fn bytes_fetched(&self) -> u64 {
        self.fetched.load(Ordering::Relaxed)
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

    fn ranges_per_request(&self, ranges: &[(u64, usize)]) -> usize {
        ranges_per_request(ranges)
    }

    /// One range as a plain Range request, several as one multi-range request; a
    /// request the server could not be reached for is tried again (a few times).
    fn read_request(&mut self, ranges: &[(u64, usize)]) -> Result<Vec<Vec<u8>>, ReadError> {
        if let [(offset, len)] = ranges {
            self.check_bounds(*offset, *len)?;
            if *len == 0 {
                return Ok(vec![Vec::new()]);
            }
            // The body is the frame: read into one buffer, never copied.
            let last = offset + *len as u64 - 1;
            let body = self.with_retries(|this| {
                let reply = this.get_range(*offset, last)?;
                this.body_of(reply, *len as u64)
            })?;
            return Ok(vec![body]);
        }
        self.with_retries(|this| this.read_several(ranges))
    }

    fn round_trip(&self) -> Option<Duration> {
        match self.round_trip.load(Ordering::Relaxed) {
            u64::MAX => None,
            micros => Some(Duration::from_micros(micros)),
        }
    }

    fn requests_in_flight(&self) -> usize {
        requests_for(self.round_trip(), self.http.limits().connections())
    }

    fn try_clone(&self) -> Option<Box<dyn ByteSource>> {
        Some(Box::new(self.clone_reader()))
    }
}

/// How many requests to keep in flight for a round trip: enough requests of parts
/// (~60 KB each) to keep a 50 MB/s link busy, which takes twice its bandwidth-delay
/// product in flight (each request's own transfer adds to its round trip): 64 at 40 ms.
/// A few at least, `cap` at most.
pub fn requests_for(round_trip: Option<Duration>, cap: usize) -> usize {
    let ms = round_trip.map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    ((4.0 + ms * 1.5).round() as usize).clamp(2, cap.max(2))
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

/// `(a, b, total)` from `Content-Range: bytes a-b/total`.
fn content_range(reply: &Reply) -> Option<(u64, u64, u64)> {
    let value = reply
        .header("Content-Range")?
        .trim()
        .strip_prefix("bytes ")?;
    let (range, total) = value.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    let number = |s: &str| s.trim().parse::<u64>().ok();
    let (a, b, total) = (number(a)?, number(b)?, number(total)?);
    (a <= b && b < total).then_some((a, b, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_requests_in_flight_grow_with_the_round_trip() {
        assert_eq!(requests_for(None, 64), 4);
        assert_eq!(requests_for(Some(Duration::from_millis(1)), 64), 6);
        assert_eq!(requests_for(Some(Duration::from_millis(10)), 64), 19);
        assert_eq!(requests_for(Some(Duration::from_millis(40)), 64), 64);
        assert_eq!(requests_for(Some(Duration::from_millis(80)), 64), 64);
        assert_eq!(requests_for(Some(Duration::from_millis(80)), 1), 2);
    }

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
