//! One video's frame decoder, chosen once: the reduced ProRes decoder where the scale
//! allows it (1/4, 1/8), with libav for any frame it declines; libav throughout
//! otherwise; PNG for a frame server's images. It plans the parts of frames fetched in
//! parts and completes a frame whose parts fell short with a reader of the video; a
//! failed request there fails the video (`FrameError::Fetch`), never just the frame.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::decode::ProresDecoder;
use crate::decode::{analysis_size, decode_image, DecoderChoice, FetchChoice, GreyImage};
use crate::frame_error::FrameError;
use crate::parts::SliceParts;
use crate::prores::{PartsError, ReducedDecoder};
use crate::source::{ByteSource, FrameParts, FrameSource, Payload, VideoInfo};

/// Decodes the frames of one video to grey images at the analysis size.
pub struct FrameDecoder {
    reduced: Option<ReducedDecoder>,
    /// One libav decoder per worker thread, made on first use.
    libav: Vec<Mutex<Option<ProresDecoder>>>,
    codec: [u8; 4],
    width: u32,
    height: u32,
    scale: f64,
    target: (usize, usize),
    parts: Option<Parts>,
}

impl std::fmt::Debug for FrameDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameDecoder")
            .field("name", &self.name())
            .field("parts", &self.parts.is_some())
            .finish()
    }
}

/// Frames fetched in parts: what plans them, and a reader for what a decode finds
/// missing.
struct Parts {
    planner: Arc<SliceParts>,
    more: Mutex<Option<Box<dyn ByteSource>>>,
    /// Set once a request for more failed: the video fails, nothing more is asked.
    failed: AtomicBool,
}

impl FrameDecoder {
    /// The decoder for `info`'s frames under `decoder`, on `threads` worker threads.
    pub fn new(info: &VideoInfo, decoder: DecoderChoice, scale: f64, threads: usize) -> Self {
        FrameDecoder {
            reduced: reduced_decoder(info, decoder, scale),
            libav: (0..threads.max(1)).map(|_| Mutex::new(None)).collect(),
            codec: info.codec,
            width: info.width,
            height: info.height,
            scale,
            target: analysis_size(info.width, info.height, scale),
            parts: None,
        }
    }

    /// The name the document records: `reduced-dct` or `libav`.
    pub fn name(&self) -> &'static str {
        match self.reduced {
            Some(_) => "reduced-dct",
            None => "libav",
        }
    }

    /// Asks `source` for its frames in parts, when `fetch` wants them (`auto`: over a
    /// network), this decoder reads parts (only the reduced decoder does) and the source
    /// can fetch them; true when it will.
    pub fn fetch_parts_from(&mut self, source: &mut dyn FrameSource, fetch: FetchChoice) -> bool {
        let wanted = match fetch {
            FetchChoice::Parts => true,
            FetchChoice::Auto => source.is_remote(),
            FetchChoice::Whole => false,
        };
        let Some(reduced) = self.reduced.clone().filter(|_| wanted) else {
            return false;
        };
        let planner = Arc::new(SliceParts::new(reduced));
        if !source.fetch_parts(planner.clone()) {
            return false;
        }
        self.parts = Some(Parts {
            planner,
            more: Mutex::new(None),
            failed: AtomicBool::new(false),
        });
        true
    }

    /// The reader that fetches the rest of frames whose parts fell short.
    pub fn complete_with(&mut self, reader: Option<Box<dyn ByteSource>>) {
        if let Some(parts) = &mut self.parts {
            parts.more = Mutex::new(reader);
        }
    }

    /// Decodes one frame as fetched.
    pub fn decode(&self, payload: &Payload) -> Result<GreyImage, FrameError> {
        match payload {
            Payload::Image(bytes) => {
                decode_image(bytes, self.target.0, self.target.1).map_err(FrameError::Decode)
            }
            Payload::Prores(bytes) => self.decode_whole(bytes),
            Payload::ProresParts(frame) => self.decode_parts(frame),
        }
    }

    /// A whole frame: the reduced decoder, and libav for whatever it declines or finds
    /// damaged (libav then decodes or reports it).
    fn decode_whole(&self, bytes: &[u8]) -> Result<GreyImage, FrameError> {
        if let Some(Ok(image)) = self.reduced.as_ref().map(|r| r.decode(bytes)) {
            return Ok(image);
        }
        self.libav(bytes)
    }

    /// libav's decode, on this thread's decoder.
    fn libav(&self, bytes: &[u8]) -> Result<GreyImage, FrameError> {
        let slot = rayon::current_thread_index().unwrap_or(0) % self.libav.len();
        let mut guard = self.libav[slot].lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            let d = ProresDecoder::new(self.codec, self.width, self.height, self.scale);
            *guard = Some(d.map_err(|e| FrameError::Decode(e.to_string()))?);
        }
        match guard.as_mut() {
            Some(decoder) => decoder.decode(bytes).map_err(FrameError::Decode),
            None => Err(FrameError::Decode("no libav decoder".into())),
        }
    }

    /// A frame fetched in parts: decoded from them, with the rest of any slice whose
    /// prefix fell short fetched first; a frame the reduced decoder cannot take from its
    /// parts is fetched whole and goes to libav.
    fn decode_parts(&self, frame: &FrameParts) -> Result<GreyImage, FrameError> {
        let (Some(reduced), Some(parts)) = (self.reduced.as_ref(), self.parts.as_ref()) else {
            return Err(FrameError::Decode(
                "a frame fetched in parts with no decoder for parts".into(),
            ));
        };
        // Copied only when a short prefix must be completed.
        let mut frame = std::borrow::Cow::Borrowed(frame);
        let mut needs = Vec::new();
        let decoded = match reduced.decode_parts(&frame, &mut needs) {
            Err(PartsError::Short(missing)) => {
                let more = parts.fetch(&frame, &missing)?;
                frame.to_mut().add(more);
                reduced.decode_parts(&frame, &mut needs)
            }
            decoded => decoded,
        };
        // Decoded from its parts (completed if they fell short), or declined.
        if let Ok(image) = decoded {
            parts.planner.learn(&needs);
            return Ok(image);
        }
        // Declined: libav decodes (or reports) the whole frame.
        let whole = parts.fetch(&frame, &[(0, frame.len)])?;
        match whole.into_iter().next() {
            Some((_, bytes)) => self.libav(&bytes),
            None => Err(FrameError::Decode(
                "the frame could not be fetched whole".into(),
            )),
        }
    }
}

impl Parts {
    /// The frame-relative `ranges` of `frame`, fetched now.
    fn fetch(
        &self,
        frame: &FrameParts,
        ranges: &[(usize, usize)],
    ) -> Result<Vec<(usize, Vec<u8>)>, FrameError> {
        let absolute: Vec<(u64, usize)> = ranges
            .iter()
            .map(|&(o, l)| (frame.at + o as u64, l))
            .collect();
        let mut more = self.more.lock().unwrap_or_else(|p| p.into_inner());
        if self.failed.load(Ordering::Relaxed) {
            return Err(FrameError::Abandoned);
        }
        let Some(reader) = more.as_mut() else {
            return Err(FrameError::Decode(
                "no reader to fetch the rest of the frame".into(),
            ));
        };
        let got = reader.read_ranges(&absolute).map_err(FrameError::Fetch);
        self.failed.store(got.is_err(), Ordering::Relaxed);
        Ok(ranges.iter().map(|&(o, _)| o).zip(got?).collect())
    }
}

/// The reduced decoder, when the settings allow it: only at 1/4 and 1/8, where it is
/// several times faster than libav (at 1/2 it is not).
fn reduced_decoder(info: &VideoInfo, choice: DecoderChoice, scale: f64) -> Option<ReducedDecoder> {
    if choice != DecoderChoice::Auto {
        return None;
    }
    let factor = 1.0 / scale;
    [4, 8]
        .into_iter()
        .find(|&k| (factor - k as f64).abs() < 1e-9)
        .and_then(|k| ReducedDecoder::new(k, info.width, info.height).ok())
}
