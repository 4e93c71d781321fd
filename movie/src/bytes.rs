//! Random-access byte sources: a local file or an HTTP(S) URL read with Range requests.
//! Both count the bytes they fetch, so a test can prove only needed bytes were read.

use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::time::Duration;

use crate::http::{Http, HttpLimits, Reply};
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
}

/// How often a failed Range read is retried before the error is returned.
const HTTP_RETRIES: u32 = 3;

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
        let mut attempt = 0;
        loop {
            match self.read_once(offset, buf) {
                Err(e @ ReadError::Unreachable { .. }) if attempt < HTTP_RETRIES => {
                    attempt += 1;
                    tracing::debug!(url = %self.url, attempt, error = %e, "retrying a Range read");
                    std::thread::sleep(Duration::from_millis(200 << attempt));
                }
                other => return other,
            }
        }
    }

    fn bytes_fetched(&self) -> u64 {
        self.fetched
    }

    fn name(&self) -> &str {
        &self.url
    }
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
