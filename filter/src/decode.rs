//! ProRes frames to 8-bit grey at the analysis scale, through libav's ProRes decoder.
//!
//! Packets come straight from the sample table (see `source::quicktime`), so no demuxer
//! runs. Only the luma plane is read: it is converted from the video range (10-bit
//! 64..940, "tv") to full-range grey and area-averaged down in one pass.
#![allow(unsafe_code)]

use ffmpeg::format::Pixel;
use ffmpeg_next as ffmpeg;
use opencv::core::{Mat, Size};
use opencv::prelude::*;

use crate::AnalysisError;

/// An 8-bit grey image, row-major, no padding.
#[derive(Debug, Clone, PartialEq)]
pub struct GreyImage {
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// `width * height` bytes.
    pub data: Vec<u8>,
}

impl GreyImage {
    /// The mean grey level, 0 to 255.
    pub fn mean(&self) -> f64 {
        let sum: u64 = self.data.iter().map(|&v| v as u64).sum();
        sum as f64 / self.data.len().max(1) as f64
    }

    /// A borrowed OpenCV view.
    pub fn as_mat(&self) -> opencv::Result<opencv::boxed_ref::BoxedRef<'_, Mat>> {
        Mat::new_rows_cols_with_data(self.height as i32, self.width as i32, &self.data)
    }

    /// Copies an 8-bit single-channel Mat.
    pub fn from_mat(mat: &Mat) -> opencv::Result<GreyImage> {
        let mat = if mat.is_continuous() {
            mat.clone()
        } else {
            mat.try_clone()?
        };
        Ok(GreyImage {
            width: mat.cols() as usize,
            height: mat.rows() as usize,
            data: mat.data_bytes()?.to_vec(),
        })
    }
}

pub use movie::{analysis_size, is_prores};

/// Which ProRes decoder the analysis uses (`--decoder`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DecoderChoice {
    /// The reduced decoder (`crate::prores`) at scales 1/4 and 1/8, about 5x faster
    /// than libav there; libav at other scales and for any frame it declines.
    #[default]
    Auto,
    /// libav for every frame.
    Libav,
}

/// How ProRes frames are fetched (`--fetch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum FetchChoice {
    /// Parts over HTTP, whole frames from a local file (where a thousand small reads a
    /// frame cost more time than the bytes they save: measured in docs/benchmarks.md).
    #[default]
    Auto,
    /// Only the parts of each frame the reduced decoder reads, when it is the decoder
    /// and the source can (a file, or an HTTP server that answers multi-range
    /// requests); whole frames otherwise.
    Parts,
    /// Whole frames always.
    Whole,
}

/// One libav ProRes decoder, single-threaded: the analysis runs one per worker thread.
pub struct ProresDecoder {
    decoder: ffmpeg::decoder::Video,
    frame: ffmpeg::frame::Video,
    scale: f64,
}

impl std::fmt::Debug for ProresDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProresDecoder")
            .field("scale", &self.scale)
            .finish()
    }
}

/// Initialises libav once per process (its set-up writes global tables).
/// Once per process. libav's own log is silenced: a damaged video would print a line per
/// frame (hundreds of MB for a hostile one); the analysis counts failed frames by kind
/// and logs one summary line per kind and video instead.
fn init_libav() -> Result<(), ffmpeg::Error> {
    static INIT: std::sync::OnceLock<Result<(), ffmpeg::Error>> = std::sync::OnceLock::new();
    *INIT.get_or_init(|| {
        ffmpeg::init()?;
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Quiet);
        Ok(())
    })
}

impl ProresDecoder {
    /// A decoder for frames of `codec` (a ProRes FourCC) at `width` x `height`, giving
    /// grey images at `scale`.
    pub fn new(codec: [u8; 4], width: u32, height: u32, scale: f64) -> Result<Self, AnalysisError> {
        let internal =
            |what: &str, e: ffmpeg::Error| AnalysisError::Internal(format!("{what}: {e}"));
        init_libav().map_err(|e| internal("initialising libav", e))?;
        let codec_impl = ffmpeg::codec::decoder::find(ffmpeg::codec::Id::PRORES)
            .ok_or_else(|| AnalysisError::Internal("libav has no ProRes decoder".into()))?;
        let mut context = ffmpeg::codec::Context::new_with_codec(codec_impl);
        // SAFETY: `context` owns a valid, not yet opened AVCodecContext. The ProRes
        // decoder reads the FourCC (profile) and the size from it at open, as the mov
        // demuxer would have set them; no other field is touched.
        unsafe {
            let raw = context.as_mut_ptr();
            (*raw).codec_tag = u32::from_le_bytes(codec);
            (*raw).width = width as i32;
            (*raw).height = height as i32;
            (*raw).bits_per_raw_sample = 10;
            (*raw).thread_count = 1;
        }
        let decoder = context
            .decoder()
            .video()
            .map_err(|e| internal("opening the ProRes decoder", e))?;
        Ok(ProresDecoder {
            decoder,
            frame: ffmpeg::frame::Video::empty(),
            scale,
        })
    }

    /// Decodes one ProRes frame to grey at the analysis scale.
    pub fn decode(&mut self, packet: &[u8]) -> Result<GreyImage, String> {
        let packet = ffmpeg::Packet::copy(packet);
        self.decoder
            .send_packet(&packet)
            .map_err(|e| format!("ProRes decode failed: {e}"))?;
        self.decoder
            .receive_frame(&mut self.frame)
            .map_err(|e| format!("ProRes decoder gave no frame: {e}"))?;
        luma_to_grey(&self.frame, self.scale)
    }
}

/// Bits per luma sample of the planar formats the ProRes decoder produces.
fn luma_depth(format: Pixel) -> Option<u32> {
    match format {
        Pixel::YUV422P10LE | Pixel::YUV444P10LE | Pixel::YUVA444P10LE => Some(10),
        Pixel::YUV422P12LE | Pixel::YUV444P12LE | Pixel::YUVA444P12LE => Some(12),
        _ => None,
    }
}

/// Maps a luma sample to full-range 8-bit grey.
pub(crate) fn grey_lut(depth: u32, full_range: bool) -> Vec<u8> {
    let max = (1u32 << depth) - 1;
    let (black, span) = if full_range {
        (0.0, max as f64)
    } else {
        let unit = (1u32 << (depth - 8)) as f64;
        (16.0 * unit, 219.0 * unit)
    };
    (0..=max)
        .map(|v| {
            ((v as f64 - black) * 255.0 / span)
                .round()
                .clamp(0.0, 255.0) as u8
        })
        .collect()
}

fn luma_to_grey(frame: &ffmpeg::frame::Video, scale: f64) -> Result<GreyImage, String> {
    let depth = luma_depth(frame.format())
        .ok_or_else(|| format!("unexpected pixel format {:?}", frame.format()))?;
    let full_range = frame.color_range() == ffmpeg::color::Range::JPEG;
    let lut = grey_lut(depth, full_range);
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let plane = Plane {
        data: frame.data(0),
        stride: frame.stride(0),
        width: w,
        height: h,
    };
    let factor = (1.0 / scale).round();
    if factor >= 1.0 && (1.0 / scale - factor).abs() < 1e-9 {
        Ok(box_downscale(&plane, factor as usize, &lut))
    } else {
        let full = box_downscale(&plane, 1, &lut);
        let (tw, th) = analysis_size(w as u32, h as u32, scale);
        resize_area(&full, tw, th).map_err(|e| format!("resizing: {e}"))
    }
}

/// A plane of little-endian 16-bit samples.
struct Plane<'a> {
    data: &'a [u8],
    stride: usize,
    width: usize,
    height: usize,
}

/// Averages `k` x `k` blocks of luma and maps them through `lut`: the integer-factor
/// area filter, fused with the bit-depth and range conversion.
fn box_downscale(plane: &Plane<'_>, k: usize, lut: &[u8]) -> GreyImage {
    let (ow, oh) = (plane.width / k, plane.height / k);
    let area = (k * k) as u32;
    let mut out = Vec::with_capacity(ow * oh);
    let mut sums = vec![0u32; ow];
    for oy in 0..oh {
        sums.iter_mut().for_each(|s| *s = 0);
        for row in oy * k..oy * k + k {
            let line = &plane.data[row * plane.stride..row * plane.stride + plane.width * 2];
            for (ox, sum) in sums.iter_mut().enumerate() {
                let px = &line[ox * k * 2..(ox * k + k) * 2];
                *sum += px
                    .chunks_exact(2)
                    .map(|b| u16::from_le_bytes([b[0], b[1]]) as u32)
                    .sum::<u32>();
            }
        }
        let last = lut.len() - 1;
        out.extend(
            sums.iter()
                .map(|&s| lut[(((s + area / 2) / area) as usize).min(last)]),
        );
    }
    GreyImage {
        width: ow,
        height: oh,
        data: out,
    }
}

/// Area-resizes a grey image to `width` x `height` with OpenCV.
pub fn resize_area(img: &GreyImage, width: usize, height: usize) -> opencv::Result<GreyImage> {
    if img.width == width && img.height == height {
        return Ok(img.clone());
    }
    let mut out = Mat::default();
    let size = Size::new(width as i32, height as i32);
    opencv::imgproc::resize(
        &img.as_mat()?,
        &mut out,
        size,
        0.0,
        0.0,
        opencv::imgproc::INTER_AREA,
    )?;
    GreyImage::from_mat(&out)
}

/// The most bytes a frame image may decode to (8K by 8K RGBA): a header that claims
/// more is refused before anything is allocated.
const MAX_IMAGE_DECODED: usize = 8192 * 8192 * 4;

/// Decodes a PNG frame image (as lazycache serves them) to grey at `width` x `height`,
/// with the `png` crate rather than OpenCV's imgcodecs, which would pull GDAL, GDCM,
/// OpenEXR and some 70 Debian packages into every filter for this one call. Grey is
/// OpenCV's BT.601 weighting in its fixed-point form, so the result is the same.
pub fn decode_image(bytes: &[u8], width: usize, height: usize) -> Result<GreyImage, String> {
    let mut decoder = png::Decoder::new_with_limits(
        bytes,
        png::Limits {
            bytes: MAX_IMAGE_DECODED,
        },
    );
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder
        .read_info()
        .map_err(|e| format!("the frame image could not be decoded: {e}"))?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let frame = reader
        .next_frame(&mut buf)
        .map_err(|e| format!("the frame image could not be decoded: {e}"))?;
    let grey = GreyImage {
        width: frame.width as usize,
        height: frame.height as usize,
        data: to_grey(&buf[..frame.buffer_size()], frame.color_type)?,
    };
    resize_area(&grey, width, height).map_err(|e| e.to_string())
}

/// 8-bit samples of `color` (after EXPAND and STRIP_16) as grey, alpha ignored.
fn to_grey(samples: &[u8], color: png::ColorType) -> Result<Vec<u8>, String> {
    // OpenCV's RGB2GRAY: (R*4899 + G*9617 + B*1868 + 2^13) >> 14.
    let y = |p: &[u8]| {
        ((u32::from(p[0]) * 4899 + u32::from(p[1]) * 9617 + u32::from(p[2]) * 1868 + 8192) >> 14)
            as u8
    };
    Ok(match color {
        png::ColorType::Grayscale => samples.to_vec(),
        png::ColorType::GrayscaleAlpha => samples.chunks_exact(2).map(|p| p[0]).collect(),
        png::ColorType::Rgb => samples.chunks_exact(3).map(y).collect(),
        png::ColorType::Rgba => samples.chunks_exact(4).map(y).collect(),
        png::ColorType::Indexed => return Err("an indexed PNG was not expanded".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_range_maps_to_full_range_grey() {
        let lut = grey_lut(10, false);
        assert_eq!(lut[64], 0, "video black");
        assert_eq!(lut[940], 255, "video white");
        assert_eq!(lut[0], 0);
        assert_eq!(lut[1023], 255);
        assert_eq!(lut[502], 128);
        let full = grey_lut(10, true);
        assert_eq!((full[0], full[1023]), (0, 255));
    }

    fn png_of(
        width: u32,
        height: u32,
        color: png::ColorType,
        depth: png::BitDepth,
        data: &[u8],
    ) -> Vec<u8> {
        let mut out = Vec::new();
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(color);
        enc.set_depth(depth);
        enc.write_header().unwrap().write_image_data(data).unwrap();
        out
    }

    #[test]
    fn png_frames_decode_to_the_grey_opencv_would_give() {
        use opencv::core::{Mat, CV_8UC3};
        use opencv::prelude::*;
        let (w, h) = (37usize, 11usize);
        let rgb: Vec<u8> = (0..w * h * 3).map(|i| (i * 7919 % 251) as u8).collect();
        let ours = decode_image(
            &png_of(
                w as u32,
                h as u32,
                png::ColorType::Rgb,
                png::BitDepth::Eight,
                &rgb,
            ),
            w,
            h,
        )
        .unwrap();
        let mut src =
            Mat::new_rows_cols_with_default(h as i32, w as i32, CV_8UC3, 0.into()).unwrap();
        src.data_bytes_mut().unwrap().copy_from_slice(&rgb);
        let mut grey = Mat::default();
        opencv::imgproc::cvt_color_def(&src, &mut grey, opencv::imgproc::COLOR_RGB2GRAY).unwrap();
        assert_eq!(
            ours.data,
            grey.data_bytes().unwrap(),
            "BT.601 as OpenCV rounds it"
        );

        let grey16: Vec<u8> = (0..w * h).flat_map(|i| [(i % 256) as u8, 0xff]).collect();
        let g = decode_image(
            &png_of(
                w as u32,
                h as u32,
                png::ColorType::Grayscale,
                png::BitDepth::Sixteen,
                &grey16,
            ),
            w,
            h,
        )
        .unwrap();
        assert_eq!(g.data[5], 5, "16-bit samples keep their high byte");
    }

    #[test]
    fn a_png_claiming_more_pixels_than_accepted_or_not_a_png_is_an_error() {
        // A well-formed header (its CRC right) for 100,000 x 100,000 RGBA pixels, no data.
        let mut huge = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut huge, 100_000, 100_000);
            enc.set_color(png::ColorType::Rgba);
            let _ = enc.write_header().unwrap();
        }
        let err = decode_image(&huge, 4, 4).unwrap_err();
        assert!(err.contains("could not be decoded"), "{err}");
        assert!(decode_image(b"GIF89a not a png", 4, 4).is_err());
    }

    #[test]
    fn box_downscale_averages_blocks() {
        // 4x2 plane of 10-bit samples, factor 2: blocks average to 64 and 940.
        let samples: [u16; 8] = [60, 68, 940, 940, 64, 64, 940, 940];
        let data: Vec<u8> = samples.iter().flat_map(|v| v.to_le_bytes()).collect();
        let plane = Plane {
            data: &data,
            stride: 8,
            width: 4,
            height: 2,
        };
        let out = box_downscale(&plane, 2, &grey_lut(10, false));
        assert_eq!((out.width, out.height), (2, 1));
        assert_eq!(out.data, [0, 255]);
    }
}
