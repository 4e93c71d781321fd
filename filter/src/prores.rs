//! A ProRes decoder that makes only what the analysis needs: the luma plane, reduced by 2,
//! 4 or 8 straight from the DCT coefficients. ProRes codes each slice's luma coefficients
//! by frequency across all of its blocks, lowest first, so decoding stops after the few
//! lowest; chroma is never read and no full 8x8 inverse transform runs. libav remains the
//! decoder for everything this one declines (interlaced frames, other scales).
//!
//! Bitstream layout as in SMPTE RDD 36; checked against libav's full decode in
//! `filter/tests/decoders.rs`.

use crate::decode::GreyImage;
use crate::source::FrameParts;

/// Why a frame was not decoded here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProresError {
    /// A valid frame this decoder does not handle; libav should decode it.
    #[error("not handled by the reduced decoder: {0}")]
    Unsupported(&'static str),
    /// The frame is damaged.
    #[error("corrupt ProRes frame: {0}")]
    Corrupt(&'static str),
}

/// The progressive scan: the n-th coded coefficient of a block and its raster index. Its
/// first 4 entries are the 2x2 lowest frequencies, its first 16 the 4x4 lowest.
const PROGRESSIVE_SCAN: [u8; 64] = [
    0, 1, 8, 9, 2, 3, 10, 11, 16, 17, 24, 25, 18, 19, 26, 27, 4, 5, 12, 20, 13, 6, 7, 14, 21, 28,
    29, 22, 15, 23, 30, 31, 32, 33, 40, 48, 41, 34, 35, 42, 49, 56, 57, 50, 43, 36, 37, 44, 51, 58,
    59, 52, 45, 38, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// Codebook of the first DC coefficient of a slice.
const FIRST_DC_CODEBOOK: u8 = 0xB8;
/// Codebooks of the other DC differences, chosen by the previous code.
const DC_CODEBOOK: [u8; 7] = [0x04, 0x28, 0x28, 0x4D, 0x4D, 0x70, 0x70];
/// Codebooks of AC runs, chosen by the previous run.
const RUN_CODEBOOK: [u8; 16] = [
    0x06, 0x06, 0x05, 0x05, 0x04, 0x29, 0x29, 0x29, 0x29, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x4C,
];
/// Codebooks of AC levels, chosen by the previous level.
const LEVEL_CODEBOOK: [u8; 10] = [0x04, 0x0A, 0x05, 0x06, 0x04, 0x28, 0x28, 0x28, 0x28, 0x4C];

/// Most luma blocks a slice holds (8 macroblocks of 4).
const MAX_SLICE_BLOCKS: usize = 32;

/// Why a frame with parts missing was not decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartsError {
    /// As for a whole frame.
    Prores(ProresError),
    /// These `(offset, length)` parts of the frame are needed as well.
    Short(Vec<(usize, usize)>),
}

impl From<ProresError> for PartsError {
    fn from(e: ProresError) -> Self {
        PartsError::Prores(e)
    }
}

/// The bytes of a frame as the decoder reads them: its head (headers and slice table)
/// and each slice, whole or a prefix.
trait FrameBytes {
    /// The frame's first bytes, through its slice table.
    fn head(&self) -> &[u8];
    /// The frame's length.
    fn len(&self) -> usize;
    /// The slice at `offset` of `size` bytes, as far as it is at hand.
    fn slice(&self, offset: usize, size: usize) -> &[u8];
}

/// A whole frame.
struct Whole<'a>(&'a [u8]);

impl FrameBytes for Whole<'_> {
    fn head(&self) -> &[u8] {
        self.0
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn slice(&self, offset: usize, size: usize) -> &[u8] {
        &self.0[offset..offset + size]
    }
}

/// A frame's fetched parts.
struct InParts<'a>(&'a FrameParts);

impl FrameBytes for InParts<'_> {
    fn head(&self) -> &[u8] {
        self.0.from(0)
    }
    fn len(&self) -> usize {
        self.0.len
    }
    fn slice(&self, offset: usize, size: usize) -> &[u8] {
        let at_hand = self.0.from(offset);
        &at_hand[..at_hand.len().min(size)]
    }
}

/// Where the bytes decoding reads lie in a frame (see [`ReducedDecoder::spans`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameSpans {
    /// Bytes from the frame's start through the slice table, all read.
    pub head: usize,
    /// Each slice, in coded (and file) order.
    pub slices: Vec<SliceSpan>,
}

/// One slice of a frame and the prefix of it that decoding reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SliceSpan {
    /// Where the slice starts, from the frame's start.
    pub offset: usize,
    /// The slice's bytes.
    pub size: usize,
    /// Bytes read from its start: its header and the luma up to the last bit used.
    pub read: usize,
    /// Its luma bitstream's bytes.
    pub luma: usize,
}

/// What decoding one frame reads of it (see [`ReducedDecoder::bytes_read`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadShare {
    /// Bytes read: headers, slice table, slice headers and each luma prefix.
    pub read: usize,
    /// Bytes of luma bitstream in the frame.
    pub luma: usize,
    /// Bytes of the whole frame.
    pub total: usize,
}

/// Decodes ProRes luma reduced by a fixed factor.
#[derive(Debug, Clone)]
pub struct ReducedDecoder {
    /// Output pixels per 8x8 block, per side: 8 / factor.
    per_block: usize,
    /// Lowest frequencies used per side.
    freqs: usize,
    /// `weights[q * freqs + u]`: how much frequency `u` moves the mean of output pixel
    /// `q` of a block row, with the DCT's normalisation folded in.
    weights: Vec<f32>,
    /// 10-bit video-range luma to full-range 8-bit grey.
    lut: Vec<u8>,
    /// The video's frame size; a frame that says otherwise is damaged.
    size: (usize, usize),
}

impl ReducedDecoder {
    /// A decoder for frames of `width` x `height` giving 1/`factor` of each; `factor` is
    /// 2, 4 or 8.
    pub fn new(factor: usize, width: u32, height: u32) -> Result<ReducedDecoder, ProresError> {
        if !matches!(factor, 2 | 4 | 8) {
            return Err(ProresError::Unsupported("reduction other than 2, 4 or 8"));
        }
        let per_block = 8 / factor;
        let freqs = per_block;
        let mut weights = vec![0f32; per_block * freqs];
        for q in 0..per_block {
            for u in 0..freqs {
                let norm = if u == 0 { (1.0f64 / 8.0).sqrt() } else { 0.5 };
                let mean: f64 = (q * factor..(q + 1) * factor)
                    .map(|x| ((2 * x + 1) as f64 * u as f64 * std::f64::consts::PI / 16.0).cos())
                    .sum::<f64>()
                    / factor as f64;
                weights[q * freqs + u] = (norm * mean) as f32;
            }
        }
        Ok(ReducedDecoder {
            per_block,
            freqs,
            weights,
            lut: crate::decode::grey_lut(10, false),
            size: (width as usize, height as usize),
        })
    }

    /// Decodes one frame (a whole `icpf` atom) to grey, `width / factor` by
    /// `height / factor`. Damage is found where it breaks the bitstream's structure; a
    /// changed coefficient value gives a changed picture, as with any decoder.
    pub fn decode(&self, packet: &[u8]) -> Result<GreyImage, ProresError> {
        self.decode_any(&Whole(packet), &mut Vec::new())
            .map_err(|e| match e {
                PartsError::Prores(e) => e,
                PartsError::Short(_) => ProresError::Corrupt("slice past the end of the frame"),
            })
    }

    /// Decodes a frame of which only some parts were fetched, as [`ReducedDecoder::decode`]
    /// would decode it whole; or says which parts (frame-relative `(offset, length)`)
    /// are still needed: the rest of each slice whose fetched prefix fell short. `needs`
    /// gets, per slice, the bytes from its start that decoding read.
    pub fn decode_parts(
        &self,
        frame: &FrameParts,
        needs: &mut Vec<u32>,
    ) -> Result<GreyImage, PartsError> {
        self.decode_any(&InParts(frame), needs)
    }

    fn decode_any(
        &self,
        frame: &impl FrameBytes,
        needs: &mut Vec<u32>,
    ) -> Result<GreyImage, PartsError> {
        // The block size is a constant inside each arm, so the per-block arithmetic
        // unrolls (measured: a third of the decoder's time went to it with loops over
        // runtime sizes).
        match self.per_block {
            1 => self.decode_at::<1>(frame, needs),
            2 => self.decode_at::<2>(frame, needs),
            _ => self.decode_at::<4>(frame, needs),
        }
    }

    /// [`ReducedDecoder::decode_any`] with `N` output pixels (and frequencies) per block side.
    fn decode_at<const N: usize>(
        &self,
        bytes: &impl FrameBytes,
        needs: &mut Vec<u32>,
    ) -> Result<GreyImage, PartsError> {
        debug_assert_eq!((N, N), (self.per_block, self.freqs));
        let head = bytes.head();
        let frame = FrameHeader::parse(head)?;
        if (frame.width, frame.height) != self.size {
            return Err(ProresError::Corrupt("frame size differs from the video's").into());
        }
        let factor = 8 / N;
        let mut image = GreyImage {
            width: frame.width / factor,
            height: frame.height / factor,
            data: Vec::new(),
        };
        image.data = vec![0; image.width * image.height];
        let (mbs_x, mbs_y) = (frame.width.div_ceil(16), frame.height.div_ceil(16));
        let slices = PictureHeader::parse(&head[frame.picture_offset..], mbs_x, mbs_y)?;
        let mut coeffs = [[0i32; 16]; MAX_SLICE_BLOCKS];
        let mut qscale_seen = None;
        let mut dequant = [0f32; 16];
        let mut short = Vec::new();
        needs.clear();
        for slice in &slices {
            let at = frame.picture_offset + slice.offset;
            if at + slice.size > bytes.len() {
                return Err(ProresError::Corrupt("slice past the end of the frame").into());
            }
            let data = bytes.slice(at, slice.size);
            let blocks = slice.mbs * 4;
            // Only the first N x N entries of a block are ever written or read.
            for c in coeffs.iter_mut().take(blocks) {
                c[..N * N].fill(0);
            }
            let qscale = match read_slice(data, slice.size, blocks, N, &mut coeffs)? {
                SliceRead::Done { qscale, read } => {
                    needs.push(read as u32);
                    qscale
                }
                SliceRead::Short => {
                    short.push((at, slice.size));
                    needs.push(slice.size as u32);
                    continue;
                }
            };
            if !short.is_empty() {
                continue; // the frame is incomplete; only find what else is missing
            }
            if qscale_seen != Some(qscale) {
                dequant = self.dequant(&frame.luma_qmat, qscale);
                qscale_seen = Some(qscale);
            }
            for (b, c) in coeffs.iter().take(blocks).enumerate() {
                let (mb, within) = (b / 4, b % 4);
                let bx = (slice.mb_x + mb) * 2 + within % 2;
                let by = slice.mb_y * 2 + within / 2;
                self.put_block::<N>(c, &dequant, &mut image, (bx, by));
            }
        }
        if !short.is_empty() {
            return Err(PartsError::Short(short));
        }
        Ok(image)
    }

    /// The bytes at the start of a frame that hold its headers and slice table, when it
    /// is cut in slices of 8 macroblocks as encoders do (Apple's and libav's): the frame
    /// atom and header (at most 8 + 148), the picture header (8) and 2 bytes a slice.
    pub fn head_bytes(&self) -> usize {
        let (mbs_x, mbs_y) = (self.size.0.div_ceil(16), self.size.1.div_ceil(16));
        // Each row: slices of 8, then of 4, 2 and 1 for what is left.
        let per_row = mbs_x / 8 + (mbs_x % 8).count_ones() as usize;
        8 + 148 + 8 + 2 * per_row * mbs_y
    }

    /// Where each slice of a frame lies, `(offset, size)` from the frame's start, read
    /// from the frame's first bytes (`head` must hold its headers and slice table), for
    /// a frame this decoder would decode.
    pub fn slice_layout(&self, head: &[u8]) -> Result<Vec<(usize, usize)>, ProresError> {
        let frame = FrameHeader::parse(head)?;
        if (frame.width, frame.height) != self.size {
            return Err(ProresError::Corrupt("frame size differs from the video's"));
        }
        let (mbs_x, mbs_y) = (frame.width.div_ceil(16), frame.height.div_ceil(16));
        let slices = PictureHeader::parse(&head[frame.picture_offset..], mbs_x, mbs_y)?;
        Ok(slices
            .iter()
            .map(|s| (frame.picture_offset + s.offset, s.size))
            .collect())
    }

    /// How many bytes of `packet` decoding reads: the frame and picture headers, the
    /// slice table, and of each slice its header and its luma bitstream up to the last
    /// coefficient used (the rest of the luma, and all chroma, are never looked at).
    /// What issue 20 measures to decide whether fetching only those spans pays.
    pub fn bytes_read(&self, packet: &[u8]) -> Result<ReadShare, ProresError> {
        let spans = self.spans(packet)?;
        Ok(ReadShare {
            read: spans.head + spans.slices.iter().map(|s| s.read).sum::<usize>(),
            luma: spans.slices.iter().map(|s| s.luma).sum(),
            total: packet.len(),
        })
    }

    /// Where in `packet` the bytes that decoding reads lie: the head (headers and slice
    /// table) and, for each slice, a prefix of it (its header and the luma it reads).
    pub fn spans(&self, packet: &[u8]) -> Result<FrameSpans, ProresError> {
        let frame = FrameHeader::parse(packet)?;
        let (mbs_x, mbs_y) = (frame.width.div_ceil(16), frame.height.div_ceil(16));
        let picture = &packet[frame.picture_offset..];
        let slices = PictureHeader::parse(picture, mbs_x, mbs_y)?;
        let head = frame.picture_offset + slices.first().map_or(0, |s| s.offset);
        let mut coeffs = [[0i32; 16]; MAX_SLICE_BLOCKS];
        let mut out = Vec::with_capacity(slices.len());
        for slice in &slices {
            let data = picture
                .get(slice.offset..slice.offset + slice.size)
                .ok_or(ProresError::Corrupt("slice past the end of the frame"))?;
            let (_, luma, _) = slice_header(data, slice.size)?;
            let read = match read_slice(data, slice.size, slice.mbs * 4, self.freqs, &mut coeffs)? {
                SliceRead::Done { read, .. } => read,
                SliceRead::Short => slice.size,
            };
            out.push(SliceSpan {
                offset: frame.picture_offset + slice.offset,
                size: slice.size,
                // Without the decoder's look-ahead: what it uses.
                read: read.saturating_sub(LOOKAHEAD).max((data[0] >> 3) as usize),
                luma,
            });
        }
        Ok(FrameSpans { head, slices: out })
    }

    /// The dequantisation factor of each coefficient used, at a slice's `qscale`.
    fn dequant(&self, qmat: &[u8; 64], qscale: i32) -> [f32; 16] {
        let f = self.freqs;
        let mut out = [0f32; 16];
        for v in 0..f {
            for u in 0..f {
                out[v * f + u] = (qmat[v * 8 + u] as i32 * qscale) as f32;
            }
        }
        out
    }

    /// Writes the reduced pixels of block `(bx, by)` that fall inside `image` (the
    /// last row and column of blocks may lie partly outside the picture).
    #[inline(always)]
    fn put_block<const N: usize>(
        &self,
        coeffs: &[i32; 16],
        dequant: &[f32; 16],
        image: &mut GreyImage,
        (bx, by): (usize, usize),
    ) {
        let w = &self.weights[..N * N];
        let mut values = [0f32; 16];
        for (i, v) in values.iter_mut().enumerate().take(N * N) {
            *v = coeffs[i] as f32 * dequant[i];
        }
        // Rows first: tmp[v][qx] = sum over u of F[v][u] * w[qx][u].
        let mut tmp = [0f32; 16];
        for v in 0..N {
            for qx in 0..N {
                let mut acc = 0f32;
                for u in 0..N {
                    acc += values[v * N + u] * w[qx * N + u];
                }
                tmp[v * N + qx] = acc;
            }
        }
        let (x0, y0) = (bx * N, by * N);
        let width = N.min(image.width.saturating_sub(x0));
        for qy in 0..N.min(image.height.saturating_sub(y0)) {
            let row = &mut image.data[(y0 + qy) * image.width + x0..][..width];
            for (qx, out) in row.iter_mut().enumerate() {
                let mut acc = 0f32;
                for v in 0..N {
                    acc += tmp[v * N + qx] * w[qy * N + v];
                }
                *out = self.grey(acc);
            }
        }
    }

    /// Grey for a reduced pixel in coefficient units: ProRes codes luma as signed around
    /// mid-grey (512 of 10 bits), at 4x the sample in this normalisation.
    #[inline]
    fn grey(&self, value: f32) -> u8 {
        let last = (self.lut.len() - 1) as f32;
        // Non-negative after the clamp, so adding a half and truncating rounds.
        let sample = (value * 0.25 + 512.0).clamp(0.0, last) + 0.5;
        self.lut[(sample as usize).min(self.lut.len() - 1)]
    }
}

/// What the frame header says that the luma needs.
struct FrameHeader {
    width: usize,
    height: usize,
    luma_qmat: [u8; 64],
    /// Where the (first) picture starts in the packet.
    picture_offset: usize,
}

impl FrameHeader {
    fn parse(packet: &[u8]) -> Result<FrameHeader, ProresError> {
        if packet.len() < 28 || &packet[4..8] != b"icpf" {
            return Err(ProresError::Corrupt("no icpf frame atom"));
        }
        let h = &packet[8..];
        let header_size = be16(h, 0) as usize;
        if header_size < 20 || header_size > h.len() {
            return Err(ProresError::Corrupt("frame header size"));
        }
        if be16(h, 2) >= 2 {
            return Err(ProresError::Unsupported("frame header version 2 or later"));
        }
        if (h[12] >> 2) & 3 != 0 {
            return Err(ProresError::Unsupported("interlaced frame"));
        }
        let mut luma_qmat = [4u8; 64];
        if h[19] & 2 != 0 {
            let m = h
                .get(20..84)
                .filter(|_| header_size >= 84)
                .ok_or(ProresError::Corrupt(
                    "frame header too small for its matrix",
                ))?;
            luma_qmat.copy_from_slice(m);
        }
        Ok(FrameHeader {
            width: be16(h, 8) as usize,
            height: be16(h, 10) as usize,
            luma_qmat,
            picture_offset: 8 + header_size,
        })
    }
}

/// One slice: where its bytes are (from the picture's start) and which macroblocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slice {
    offset: usize,
    size: usize,
    mb_x: usize,
    mb_y: usize,
    mbs: usize,
}

struct PictureHeader;

impl PictureHeader {
    /// The slices of the picture at the start of `picture`, in coded order.
    fn parse(picture: &[u8], mbs_x: usize, mbs_y: usize) -> Result<Vec<Slice>, ProresError> {
        let header_size =
            (*picture.first().ok_or(ProresError::Corrupt("no picture"))? >> 3) as usize;
        if header_size < 8 || header_size > picture.len() {
            return Err(ProresError::Corrupt("picture header size"));
        }
        let log2_width = (picture[7] >> 4) as usize;
        if log2_width > 3 || picture[7] & 0xF != 0 {
            return Err(ProresError::Unsupported("slice shape"));
        }
        let mut layout = Vec::new();
        for mb_y in 0..mbs_y {
            let mut width = 1 << log2_width;
            let mut mb_x = 0;
            while mb_x < mbs_x {
                while mbs_x - mb_x < width {
                    width >>= 1;
                }
                layout.push((mb_x, mb_y, width));
                mb_x += width;
            }
        }
        if layout.len() != be16(picture, 5) as usize {
            return Err(ProresError::Corrupt(
                "slice count does not match the frame size",
            ));
        }
        let table = header_size;
        let mut offset = table + layout.len() * 2;
        if offset > picture.len() {
            return Err(ProresError::Corrupt("slice table past the end"));
        }
        let mut slices = Vec::with_capacity(layout.len());
        for (i, (mb_x, mb_y, mbs)) in layout.into_iter().enumerate() {
            let size = be16(picture, table + i * 2) as usize;
            slices.push(Slice {
                offset,
                size,
                mb_x,
                mb_y,
                mbs,
            });
            offset += size;
        }
        Ok(slices)
    }
}

/// Bytes past the last bit it uses that the bit reader may look at.
const LOOKAHEAD: usize = 4;

/// What reading a slice's luma came to.
enum SliceRead {
    /// Decoded: its quantiser scale, and the bytes from the slice's start it read
    /// (look-ahead included, at most the slice).
    Done { qscale: i32, read: usize },
    /// The bytes at hand end before what decoding reads.
    Short,
}

/// A slice's header: its size, its luma's size and its quantiser scale, from the first
/// bytes of a slice of `size` bytes.
fn slice_header(data: &[u8], size: usize) -> Result<(usize, usize, i32), ProresError> {
    if size < 6 {
        return Err(ProresError::Corrupt("slice too small"));
    }
    let header_size = (data[0] >> 3) as usize;
    let luma_size = be16(data, 2) as usize;
    if header_size < 6 || header_size + luma_size > size {
        return Err(ProresError::Corrupt("slice sizes"));
    }
    let q = data[1].clamp(1, 224) as i32;
    Ok((
        header_size,
        luma_size,
        if q > 128 { (q - 96) << 2 } else { q },
    ))
}

/// Decodes the luma a reduced image needs from a slice of `size` bytes of which `data`
/// (a prefix) is at hand. The result is the whole slice's when the prefix reaches past
/// every bit read and looked at; otherwise it is [`SliceRead::Short`].
#[inline(always)]
fn read_slice(
    data: &[u8],
    size: usize,
    blocks: usize,
    freqs: usize,
    out: &mut [[i32; 16]; MAX_SLICE_BLOCKS],
) -> Result<SliceRead, ProresError> {
    let whole = data.len() >= size;
    if data.len() < 6 {
        return if whole {
            Err(ProresError::Corrupt("slice too small"))
        } else {
            Ok(SliceRead::Short)
        };
    }
    let (header, luma_size, qscale) = slice_header(data, size)?;
    let available = data.get(header..).unwrap_or(&[]);
    let available = &available[..available.len().min(luma_size)];
    let mut bits = Bits::with_length(available, luma_size);
    let result = decode_luma(&mut bits, blocks, freqs * freqs, freqs, out);
    let used = bits.used().div_ceil(8);
    if available.len() < luma_size && used + LOOKAHEAD > available.len() {
        return Ok(SliceRead::Short);
    }
    result?;
    Ok(SliceRead::Done {
        qscale,
        read: (header + used + LOOKAHEAD).min(size),
    })
}

/// Decodes the DC and the first `needed` scan positions of every block of a slice's
/// luma, read from `bits`, into `out[block][v * freqs + u]`.
fn decode_luma(
    bits: &mut Bits<'_>,
    blocks: usize,
    needed: usize,
    freqs: usize,
    out: &mut [[i32; 16]; MAX_SLICE_BLOCKS],
) -> Result<(), ProresError> {
    if !blocks.is_power_of_two() || blocks > MAX_SLICE_BLOCKS {
        return Err(ProresError::Corrupt("slice width"));
    }
    // DC: the first absolute, the rest as differences whose sign flips on odd codes.
    let code = bits.codeword(FIRST_DC_CODEBOOK)?;
    let mut dc = to_signed(code);
    out[0][0] = dc;
    let (mut code, mut sign) = (5u32, 0i32);
    for block in out.iter_mut().take(blocks).skip(1) {
        code = bits.codeword(DC_CODEBOOK[code.min(6) as usize])?;
        sign = if code == 0 {
            0
        } else {
            sign ^ (code & 1).wrapping_neg() as i32
        };
        dc = dc.wrapping_add(((((code + 1) >> 1) as i32) ^ sign).wrapping_sub(sign));
        block[0] = dc;
    }
    // AC: runs and levels over position = scan index * blocks + block.
    let log2 = blocks.trailing_zeros();
    let end = (needed as u32) << log2;
    let (mut run, mut level) = (4u32, 2u32);
    let mut pos = blocks as u32 - 1;
    while !bits.only_zeros_left() {
        run = bits.codeword(RUN_CODEBOOK[run.min(15) as usize])?;
        pos = pos.saturating_add(run).saturating_add(1);
        if pos >= 64 << log2 {
            return Err(ProresError::Corrupt("AC coefficients past the block"));
        }
        if pos >= end {
            break;
        }
        level = bits
            .codeword(LEVEL_CODEBOOK[level.min(9) as usize])?
            .saturating_add(1);
        let magnitude = level.min(i32::MAX as u32) as i32;
        let value = if bits.bit() { -magnitude } else { magnitude };
        let raster = PROGRESSIVE_SCAN[(pos >> log2) as usize] as usize;
        out[(pos & (blocks as u32 - 1)) as usize][(raster / 8) * freqs + raster % 8] = value;
    }
    Ok(())
}

fn to_signed(code: u32) -> i32 {
    ((code >> 1) as i32) ^ (code & 1).wrapping_neg() as i32
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// A big-endian bit reader with a 64-bit cache; reads past the end see zeros. The
/// stream may be longer than the bytes at hand (`length`): past those it reads zeros
/// too, and [`Bits::used`] tells whether it got there.
struct Bits<'a> {
    data: &'a [u8],
    /// The stream's length in bytes, `data.len()` or more.
    length: usize,
    /// The next byte to load into the cache.
    next: usize,
    /// Unread bits, left-aligned.
    cache: u64,
    /// How many bits of `cache` are valid.
    count: u32,
}

impl<'a> Bits<'a> {
    #[cfg(test)]
    fn new(data: &'a [u8]) -> Bits<'a> {
        Bits::with_length(data, data.len())
    }

    fn with_length(data: &'a [u8], length: usize) -> Bits<'a> {
        Bits {
            data,
            length: length.max(data.len()),
            next: 0,
            cache: 0,
            count: 0,
        }
    }

    /// Makes at least 32 bits valid.
    #[inline]
    fn refill(&mut self) {
        if self.count >= 32 {
            return;
        }
        // Away from the end, one unaligned 8-byte load tops the cache up with as many
        // whole bytes as fit (the bit reader's hottest path); near it, 4 bytes at a time
        // with zeros past the end.
        if let Some(chunk) = self.data.get(self.next..self.next + 8) {
            let word = u64::from_be_bytes(chunk.try_into().unwrap_or([0; 8]));
            let take = (64 - self.count) / 8;
            self.cache |= (word >> (64 - take * 8)) << (64 - self.count - take * 8);
            self.count += take * 8;
            self.next += take as usize;
            return;
        }
        let mut word = [0u8; 4];
        if let Some(tail) = self.data.get(self.next..) {
            let n = tail.len().min(4);
            word[..n].copy_from_slice(&tail[..n]);
        }
        self.cache |= (u32::from_be_bytes(word) as u64) << (32 - self.count);
        self.count += 32;
        self.next += 4;
    }

    fn left(&self) -> isize {
        (self.length * 8) as isize - (self.next * 8) as isize + self.count as isize
    }

    /// Bits consumed so far.
    fn used(&self) -> usize {
        (self.next * 8).saturating_sub(self.count as usize)
    }

    /// The next 32 bits (after a refill).
    #[inline]
    fn peek(&self) -> u32 {
        (self.cache >> 32) as u32
    }

    #[inline]
    fn skip(&mut self, n: u32) {
        self.cache <<= n;
        self.count -= n;
    }

    #[inline]
    fn bit(&mut self) -> bool {
        self.refill();
        let b = self.peek() >> 31 == 1;
        self.skip(1);
        b
    }

    /// True at the end, or when fewer than 32 bits are left and all are zero (padding).
    fn only_zeros_left(&mut self) -> bool {
        self.refill();
        let left = self.left();
        left <= 0 || (left < 32 && self.peek() >> (32 - left) == 0)
    }

    /// One codeword of `codebook`: Rice below its switch, exp-Golomb above.
    #[inline(always)]
    fn codeword(&mut self, codebook: u8) -> Result<u32, ProresError> {
        let switch = (codebook & 3) as u32;
        let rice = (codebook >> 5) as u32;
        let exp = ((codebook >> 2) & 7) as u32;
        self.refill();
        let word = self.peek();
        let zeros = word.leading_zeros();
        if zeros > switch {
            let len = exp + 2 * zeros - switch;
            if zeros == 32 || len > 32 {
                return Err(ProresError::Corrupt("codeword too long"));
            }
            let value = (word >> (32 - len)) - (1 << exp) + ((switch + 1) << rice);
            self.skip(len);
            Ok(value)
        } else {
            self.skip(zeros + 1);
            if rice == 0 {
                return Ok(zeros);
            }
            let low = self.peek() >> (32 - rice);
            self.skip(rice);
            Ok((zeros << rice) + low)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bits from a string of '0' and '1', padded to whole bytes.
    fn bits(s: &str) -> Vec<u8> {
        let mut out = vec![0u8; s.len().div_ceil(8) + 4];
        for (i, c) in s.chars().enumerate() {
            if c == '1' {
                out[i / 8] |= 0x80 >> (i % 8);
            }
        }
        out
    }

    /// Bits read so far.
    fn used(b: &Bits<'_>) -> isize {
        (b.data.len() * 8) as isize - b.left()
    }

    #[test]
    fn rice_codes_below_the_switch_and_exp_golomb_above() {
        // 0x04: switch 0, exp-Golomb order 1, Rice order 0.
        // "1" is Rice 0; "010" exp-Golomb: 3 bits 010 = 2, - 2 + 1 = 1.
        let data = bits("1");
        assert_eq!(Bits::new(&data).codeword(0x04), Ok(0));
        let data = bits("0100");
        let mut b = Bits::new(&data);
        assert_eq!((b.codeword(0x04), used(&b)), (Ok(1), 3));
        // 0x28: switch 0, exp order 2, Rice order 1. "1x" is Rice with 1 low bit.
        let data = bits("11");
        let mut b = Bits::new(&data);
        assert_eq!((b.codeword(0x28), used(&b)), (Ok(1), 2));
        // 0x4D: switch 1, exp order 3, Rice order 2: "01" + 2 bits is Rice, value 4 + low.
        let data = bits("0111");
        let mut b = Bits::new(&data);
        assert_eq!((b.codeword(0x4D), used(&b)), (Ok(7), 4));
        // Above the switch: 2 zeros, len = 3 + 4 - 1 = 6 bits "001010" = 10, - 8 + 8 = 10.
        let data = bits("001010");
        let mut b = Bits::new(&data);
        assert_eq!((b.codeword(0x4D), used(&b)), (Ok(10), 6));
    }

    #[test]
    fn signed_dc_codes_alternate() {
        assert_eq!((0..5).map(to_signed).collect::<Vec<_>>(), [0, -1, 1, -2, 2]);
    }

    #[test]
    fn the_scan_starts_with_the_lowest_frequencies() {
        let square = |n: usize| {
            let mut first: Vec<u8> = PROGRESSIVE_SCAN[..n * n].to_vec();
            first.sort_unstable();
            let mut want: Vec<u8> = (0..n)
                .flat_map(|v| (0..n).map(move |u| (v * 8 + u) as u8))
                .collect();
            want.sort_unstable();
            first == want
        };
        assert!(square(1) && square(2) && square(4));
    }

    #[test]
    fn a_block_mean_is_its_dc() {
        // At 1/8 a block is one pixel: the DC over 32 (with the default matrix's 4 and
        // a qscale of 1, DC/8 in coded units) above mid-grey, 10-bit, video range.
        let d = ReducedDecoder::new(8, 8, 8).unwrap();
        let dequant = d.dequant(&[4; 64], 1);
        let grey_of = |dc: i32| {
            let mut image = GreyImage {
                width: 1,
                height: 1,
                data: vec![0],
            };
            let mut c = [0i32; 16];
            c[0] = dc;
            d.put_block::<1>(&c, &dequant, &mut image, (0, 0));
            image.data[0]
        };
        assert_eq!(grey_of(8 * (940 - 512)), 255, "video white");
        assert_eq!(grey_of(8 * (64 - 512)), 0, "video black");
        assert_eq!(grey_of(8 * (502 - 512)), 128, "mid-grey");
    }

    #[test]
    fn damaged_and_unsupported_frames_are_told_apart() {
        let d = ReducedDecoder::new(4, 64, 64).unwrap();
        assert!(matches!(
            d.decode(b"nonsense"),
            Err(ProresError::Corrupt(_))
        ));
        let mut frame = vec![0u8; 200];
        frame[4..8].copy_from_slice(b"icpf");
        frame[8..10].copy_from_slice(&148u16.to_be_bytes());
        frame[8 + 12] = 0b0000_0100; // interlaced, top field first
        assert_eq!(
            d.decode(&frame).unwrap_err(),
            ProresError::Unsupported("interlaced frame")
        );
        assert!(ReducedDecoder::new(3, 64, 64).is_err());
    }
}
