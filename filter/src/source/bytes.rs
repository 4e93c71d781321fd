//! Random-access byte sources: a local file or an HTTP(S) URL read with Range requests.
//! Both count the bytes they fetch, so a test can prove only needed bytes were read.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use crate::AnalysisError;

/// Bytes at offsets, from wherever the video lives.
pub trait ByteSource: Send {
    /// Total length in bytes.
    fn size(&self) -> u64;
    /// Fills `buf` with the bytes at `offset`.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), AnalysisError>;
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
    /// Opens `path`.
    pub fn open(path: &str) -> Result<FileBytes, AnalysisError> {
        let file = File::open(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => AnalysisError::NotFound { path: path.into() },
            _ => AnalysisError::Io {
                path: path.into(),
                source,
            },
        })?;
        let meta = file.metadata().map_err(|source| AnalysisError::Io {
            path: path.into(),
            source,
        })?;
        if !meta.is_file() {
            return Err(AnalysisError::NotQuickTime { what: path.into() });
        }
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

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), AnalysisError> {
        self.file
            .read_exact_at(buf, offset)
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::UnexpectedEof => AnalysisError::Corrupt {
                    what: self.path.clone(),
                    detail: format!("file ends before byte {}", offset + buf.len() as u64),
                },
                _ => AnalysisError::Io {
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

/// An HTTP(S) resource read with Range requests over keep-alive connections.
#[derive(Debug)]
pub struct HttpBytes {
    agent: ureq::Agent,
    url: String,
    len: u64,
    fetched: u64,
}

impl HttpBytes {
    /// Learns the resource's length with a one-byte Range request, which also proves the
    /// server honours Range.
    pub fn open(url: &str) -> Result<HttpBytes, AnalysisError> {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(15))
            .timeout_read(Duration::from_secs(60))
            .build();
        let mut this = HttpBytes {
            agent,
            url: url.into(),
            len: 0,
            fetched: 0,
        };
        let response = this.get_range(0, 0)?;
        this.len = total_length(&response).ok_or_else(|| AnalysisError::Unreachable {
            url: url.into(),
            detail: "the reply to a Range request has no usable Content-Range".into(),
        })?;
        let mut one = Vec::new();
        std::io::Read::read_to_end(&mut response.into_reader(), &mut one)
            .map_err(|e| this.transport(e.to_string()))?;
        this.fetched += one.len() as u64;
        Ok(this)
    }

    fn get_range(&self, first: u64, last: u64) -> Result<ureq::Response, AnalysisError> {
        let result = self
            .agent
            .get(&self.url)
            .set("Range", &format!("bytes={first}-{last}"))
            .call();
        match result {
            Ok(r) if r.status() == 206 => Ok(r),
            // A 200 would stream the whole file; drop it unread.
            Ok(_) => Err(AnalysisError::NoRangeSupport {
                url: self.url.clone(),
            }),
            Err(ureq::Error::Status(status, _)) => Err(AnalysisError::HttpStatus {
                url: self.url.clone(),
                status,
            }),
            Err(ureq::Error::Transport(t)) => Err(self.transport(t.to_string())),
        }
    }

    fn transport(&self, detail: String) -> AnalysisError {
        AnalysisError::Unreachable {
            url: self.url.clone(),
            detail,
        }
    }

    fn read_once(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), AnalysisError> {
        let last = offset + buf.len() as u64 - 1;
        let response = self.get_range(offset, last)?;
        let mut reader = response.into_reader();
        std::io::Read::read_exact(&mut reader, buf).map_err(|e| self.transport(e.to_string()))?;
        self.fetched += buf.len() as u64;
        Ok(())
    }
}

impl ByteSource for HttpBytes {
    fn size(&self) -> u64 {
        self.len
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), AnalysisError> {
        if buf.is_empty() {
            return Ok(());
        }
        if offset + buf.len() as u64 > self.len {
            return Err(AnalysisError::Corrupt {
                what: self.url.clone(),
                detail: format!("resource ends before byte {}", offset + buf.len() as u64),
            });
        }
        let mut attempt = 0;
        loop {
            match self.read_once(offset, buf) {
                Err(e) if e.is_transient() && attempt < HTTP_RETRIES => {
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
fn total_length(response: &ureq::Response) -> Option<u64> {
    response
        .header("Content-Range")?
        .rsplit_once('/')?
        .1
        .trim()
        .parse()
        .ok()
}
