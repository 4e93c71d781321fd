//! The QuickTime sample table of a movie's video track: where every frame's bytes are.
//!
//! Like lazycache, we read the index (`moov`) ourselves rather than through a demuxer, so
//! that a local file and an HTTP URL are read the same way — only the atom headers, the
//! index and the frames needed — and so that every byte fetched is accounted for.

use crate::bytes::ByteSource;
use crate::video::{MAX_FRAMES, MAX_FRAME_BYTES};
use crate::ReadError;

/// The most top-level atoms walked before the `moov` must have been found: a CamHD file
/// has four (`ftyp`, `wide`, `mdat`, `moov`). Each costs a request over HTTP.
const MAX_TOP_LEVEL_ATOMS: usize = 64;

/// What can be wrong with an index, before it becomes an [`ReadError`].
#[derive(Debug)]
enum Bad {
    Corrupt(String),
    TooManyFrames(u64),
    FrameTooLarge { frame: u64, size: u64 },
    Implausible(String),
}

impl From<&str> for Bad {
    fn from(s: &str) -> Bad {
        Bad::Corrupt(s.into())
    }
}

impl Bad {
    fn into_error(self, what: &str) -> ReadError {
        let what = what.to_owned();
        match self {
            Bad::Corrupt(detail) => ReadError::Corrupt { what, detail },
            Bad::TooManyFrames(frames) => ReadError::TooManyFrames {
                what,
                frames,
                max: MAX_FRAMES,
            },
            Bad::FrameTooLarge { frame, size } => ReadError::FrameTooLarge {
                what,
                frame,
                size,
                max: MAX_FRAME_BYTES,
            },
            Bad::Implausible(detail) => ReadError::Implausible { what, detail },
        }
    }
}

/// The largest `moov` we accept; a 27,000-frame CamHD index is a few hundred KB.
const MAX_MOOV: u64 = 256 << 20;

/// One frame's place in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Byte offset of the frame.
    pub offset: u64,
    /// Its length in bytes.
    pub size: u32,
}

/// What the analysis needs to know of a movie's video track.
#[derive(Debug, Clone, PartialEq)]
pub struct MovieIndex {
    /// The sample description's FourCC, e.g. `apcn` (ProRes 422).
    pub codec: [u8; 4],
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Track duration in seconds.
    pub duration: f64,
    /// Every frame, in order; frame number `n` (1-based) is `samples[n - 1]`.
    pub samples: Vec<Sample>,
}

impl MovieIndex {
    /// Frames in the video track.
    pub fn num_frames(&self) -> u64 {
        self.samples.len() as u64
    }

    /// The codec as text.
    pub fn codec_name(&self) -> String {
        String::from_utf8_lossy(&self.codec).into_owned()
    }
}

/// Top-level atom types a QuickTime file may start with.
const TOP_LEVEL: [&[u8; 4]; 9] = [
    b"ftyp", b"wide", b"mdat", b"moov", b"free", b"skip", b"pnot", b"uuid", b"junk",
];

/// Finds the `moov` among the top-level atoms and reads the video track's index.
pub fn read_index(src: &mut dyn ByteSource) -> Result<MovieIndex, ReadError> {
    let name = src.name().to_owned();
    let corrupt = |detail: String| ReadError::Corrupt {
        what: name.clone(),
        detail,
    };
    let len = src.size();
    let mut offset = 0;
    let mut first = true;
    let mut atoms = 0;
    while offset + 8 <= len {
        atoms += 1;
        if atoms > MAX_TOP_LEVEL_ATOMS {
            return Err(corrupt(format!(
                "no movie index among the first {MAX_TOP_LEVEL_ATOMS} top-level atoms"
            )));
        }
        let mut header = [0u8; 16];
        let n = (len - offset).min(16) as usize;
        src.read_at(offset, &mut header[..n])?;
        let (size, kind, header_len) = atom_header(&header[..n], len - offset);
        if first && !TOP_LEVEL.contains(&&kind) {
            return Err(ReadError::NotQuickTime { what: name });
        }
        first = false;
        if size < header_len || offset + size > len {
            return Err(corrupt(format!(
                "atom {:?} at byte {offset} claims {size} bytes but the file has {len}",
                String::from_utf8_lossy(&kind)
            )));
        }
        if &kind == b"moov" {
            if size > MAX_MOOV {
                return Err(corrupt(format!(
                    "movie index of {size} bytes is implausible"
                )));
            }
            let mut moov = vec![0; (size - header_len) as usize];
            src.read_at(offset + header_len, &mut moov)?;
            return match parse_moov(&moov, len).map_err(|b| b.into_error(&name))? {
                Some(index) if !index.samples.is_empty() => Ok(index),
                _ => Err(ReadError::NoFrames { what: name.clone() }),
            };
        }
        offset += size;
    }
    Err(if first {
        ReadError::NotQuickTime { what: name }
    } else {
        corrupt("no movie index (moov atom): the file was cut short or never finished".into())
    })
}

/// (size, type, header length) of the atom at the start of `b`; size 0 means "to the end".
fn atom_header(b: &[u8], remaining: u64) -> (u64, [u8; 4], u64) {
    let size32 = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as u64;
    let kind = [b[4], b[5], b[6], b[7]];
    match size32 {
        0 => (remaining, kind, 8),
        1 if b.len() >= 16 => (
            u64::from_be_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]),
            kind,
            16,
        ),
        1 => (0, kind, 16),
        _ => (size32, kind, 8),
    }
}

/// An atom's type and body.
type Atom<'a> = ([u8; 4], &'a [u8]);

/// The children of an atom's body.
fn children(body: &[u8]) -> Result<Vec<Atom<'_>>, Bad> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + 8 <= body.len() {
        let (size, kind, header) = atom_header(&body[at..], (body.len() - at) as u64);
        let (size, header) = (size as usize, header as usize);
        if size < header || at + size > body.len() {
            return Err(Bad::Corrupt(format!(
                "atom {:?} overruns its parent",
                String::from_utf8_lossy(&kind)
            )));
        }
        out.push((kind, &body[at + header..at + size]));
        at += size;
    }
    Ok(out)
}

fn child<'a>(body: &'a [u8], kind: &[u8; 4]) -> Result<Option<&'a [u8]>, Bad> {
    Ok(children(body)?
        .into_iter()
        .find(|(k, _)| k == kind)
        .map(|(_, b)| b))
}

fn need<'a>(body: &'a [u8], kind: &[u8; 4]) -> Result<&'a [u8], Bad> {
    child(body, kind)?
        .ok_or_else(|| Bad::Corrupt(format!("missing {} atom", String::from_utf8_lossy(kind))))
}

/// A big-endian reader over an atom body that reports overruns instead of panicking.
struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn new(b: &'a [u8]) -> Self {
        Cursor { b, at: 0 }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], Bad> {
        let s = self
            .b
            .get(self.at..self.at + n)
            .ok_or("a table is shorter than its entry count")?;
        self.at += n;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, Bad> {
        let s = self.take(4)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn u64(&mut self) -> Result<u64, Bad> {
        let s = self.take(8)?;
        Ok(u64::from_be_bytes([
            s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7],
        ]))
    }
    /// An entry count, checked against the bytes left so corrupt counts cannot make us
    /// allocate gigabytes.
    fn count(&mut self, entry_size: usize) -> Result<usize, Bad> {
        let n = self.u32()? as usize;
        if n.saturating_mul(entry_size) > self.b.len() - self.at {
            return Err("a table's entry count exceeds its size".into());
        }
        Ok(n)
    }
}

/// The index of the first video track, or `None` if the movie has none.
fn parse_moov(moov: &[u8], file_len: u64) -> Result<Option<MovieIndex>, Bad> {
    for (kind, trak) in children(moov)? {
        if &kind != b"trak" {
            continue;
        }
        let mdia = need(trak, b"mdia")?;
        let hdlr = need(mdia, b"hdlr")?;
        if hdlr.get(8..12) != Some(b"vide") {
            continue;
        }
        return parse_video_track(mdia, file_len).map(Some);
    }
    Ok(None)
}

fn parse_video_track(mdia: &[u8], file_len: u64) -> Result<MovieIndex, Bad> {
    let (timescale, duration) = media_header(need(mdia, b"mdhd")?)?;
    let stbl = need(need(mdia, b"minf")?, b"stbl")?;
    let (codec, width, height) = sample_description(need(stbl, b"stsd")?)?;
    let sizes = sample_sizes(need(stbl, b"stsz")?)?;
    // Before anything is laid out: no frame bigger than a frame can be, and all of them
    // together no bigger than the file.
    if let Some((i, &size)) = sizes
        .iter()
        .enumerate()
        .find(|(_, &s)| u64::from(s) > MAX_FRAME_BYTES)
    {
        return Err(Bad::FrameTooLarge {
            frame: i as u64 + 1,
            size: size.into(),
        });
    }
    let total: u64 = sizes.iter().map(|&s| u64::from(s)).sum();
    if total > file_len {
        return Err(Bad::Implausible(format!(
            "{} frames of {total} bytes in all, in a file of {file_len} bytes",
            sizes.len()
        )));
    }
    let chunk_offsets = match child(stbl, b"co64")? {
        Some(co64) => chunk_offsets(co64, true)?,
        None => chunk_offsets(need(stbl, b"stco")?, false)?,
    };
    let samples = place_samples(&sizes, &chunk_offsets, need(stbl, b"stsc")?)?;
    if let Some(s) = samples.iter().find(|s| s.offset + s.size as u64 > file_len) {
        return Err(Bad::Corrupt(format!(
            "frame data at byte {} lies past the end of the file ({file_len} bytes)",
            s.offset
        )));
    }
    Ok(MovieIndex {
        codec,
        width,
        height,
        duration: if timescale > 0 {
            duration as f64 / timescale as f64
        } else {
            0.0
        },
        samples,
    })
}

fn media_header(mdhd: &[u8]) -> Result<(u32, u64), Bad> {
    let mut c = Cursor::new(mdhd);
    let version = c.take(4)?[0];
    if version == 1 {
        c.take(16)?;
        Ok((c.u32()?, c.u64()?))
    } else {
        c.take(8)?;
        Ok((c.u32()?, c.u32()? as u64))
    }
}

fn sample_description(stsd: &[u8]) -> Result<([u8; 4], u32, u32), Bad> {
    let mut c = Cursor::new(stsd);
    c.take(4)?;
    if c.u32()? == 0 {
        return Err("the video track has no sample description".into());
    }
    let entry = c.take(36)?;
    let codec = [entry[4], entry[5], entry[6], entry[7]];
    let width = u16::from_be_bytes([entry[32], entry[33]]) as u32;
    let height = u16::from_be_bytes([entry[34], entry[35]]) as u32;
    Ok((codec, width, height))
}

fn sample_sizes(stsz: &[u8]) -> Result<Vec<u32>, Bad> {
    let mut c = Cursor::new(stsz);
    c.take(4)?;
    let uniform = c.u32()?;
    let n = if uniform != 0 {
        c.u32()? as usize
    } else {
        c.count(4)?
    };
    if n as u64 > MAX_FRAMES {
        return Err(Bad::TooManyFrames(n as u64));
    }
    if uniform != 0 {
        return Ok(vec![uniform; n]);
    }
    (0..n).map(|_| c.u32()).collect()
}

fn chunk_offsets(atom: &[u8], wide: bool) -> Result<Vec<u64>, Bad> {
    let mut c = Cursor::new(atom);
    c.take(4)?;
    let n = c.count(if wide { 8 } else { 4 })?;
    (0..n)
        .map(|_| {
            if wide {
                c.u64()
            } else {
                c.u32().map(u64::from)
            }
        })
        .collect()
}

/// Lays the samples out in their chunks using the sample-to-chunk runs.
fn place_samples(sizes: &[u32], chunks: &[u64], stsc: &[u8]) -> Result<Vec<Sample>, Bad> {
    let mut c = Cursor::new(stsc);
    c.take(4)?;
    let n = c.count(12)?;
    let mut runs = Vec::with_capacity(n);
    for _ in 0..n {
        let first_chunk = c.u32()? as usize;
        let per_chunk = c.u32()? as usize;
        c.u32()?;
        if first_chunk == 0 {
            return Err("sample-to-chunk table counts chunks from 0".into());
        }
        runs.push((first_chunk, per_chunk));
    }
    let mut samples = Vec::with_capacity(sizes.len());
    let mut sizes_left = sizes.iter();
    for (i, &(first, per_chunk)) in runs.iter().enumerate() {
        let end = runs.get(i + 1).map_or(chunks.len() + 1, |r| r.0);
        for chunk in first..end {
            let mut offset = *chunks
                .get(chunk - 1)
                .ok_or("sample-to-chunk table names a chunk that does not exist")?;
            for _ in 0..per_chunk {
                let Some(&size) = sizes_left.next() else {
                    return Ok(samples);
                };
                samples.push(Sample { offset, size });
                offset += size as u64;
            }
        }
    }
    if samples.len() < sizes.len() {
        return Err(Bad::Corrupt(format!(
            "the chunk tables place {} of {} frames",
            samples.len(),
            sizes.len()
        )));
    }
    Ok(samples)
}
