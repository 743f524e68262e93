//! Frames handed in by callers, and images decoded from files the way PIL's
//! `Image.open(path).convert('RGB')` decodes them.

use crate::error::{Error, Result};
use std::path::Path;

/// Pixel layouts a caller may hand in. The discriminants are the C ABI's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum PixelFormat {
    Rgb8 = 0,
    Bgr8 = 1,
    Rgba8 = 2,
    Bgra8 = 3,
    Gray8 = 4,
}

impl PixelFormat {
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            PixelFormat::Rgb8 | PixelFormat::Bgr8 => 3,
            PixelFormat::Rgba8 | PixelFormat::Bgra8 => 4,
            PixelFormat::Gray8 => 1,
        }
    }
}

/// A borrowed frame: `height` rows of `stride` bytes, each starting with `width` pixels.
#[derive(Debug, Clone, Copy)]
pub struct ImageView<'a> {
    width: usize,
    height: usize,
    stride: usize,
    format: PixelFormat,
    data: &'a [u8],
}

/// The bytes a `height` x `width` image with rows `stride` apart spans (the last row need not be
/// padded), after checking that a row fits in the stride and that the size is addressable.
/// Callers that only hold a pointer (the C ABI) learn how much they may read from it.
pub fn byte_len(width: usize, height: usize, stride: usize, format: PixelFormat) -> Result<usize> {
    let row = width
        .checked_mul(format.bytes_per_pixel())
        .ok_or_else(|| Error::InvalidInput(format!("width {width} overflows")))?;
    if stride < row {
        return Err(Error::InvalidInput(format!(
            "stride {stride} is smaller than a row of {width} {format:?} pixels ({row} bytes)"
        )));
    }
    stride
        .checked_mul(height.saturating_sub(1))
        .and_then(|n| n.checked_add(row))
        .filter(|&n| n <= isize::MAX as usize)
        .ok_or_else(|| Error::InvalidInput(format!("{height} rows of stride {stride} overflow")))
}

impl<'a> ImageView<'a> {
    /// Checks the geometry against the buffer; the last row need not be padded to `stride`.
    pub fn new(data: &'a [u8], width: usize, height: usize, stride: usize, format: PixelFormat) -> Result<Self> {
        if width == 0 || height == 0 {
            return Err(Error::InvalidInput(format!("image is {width}x{height}: both sides must be at least 1")));
        }
        let needed = byte_len(width, height, stride, format)?;
        if data.len() < needed {
            return Err(Error::InvalidInput(format!(
                "buffer holds {} bytes, a {width}x{height} {format:?} image with stride {stride} needs {needed}",
                data.len()
            )));
        }
        Ok(ImageView { width, height, stride, format, data })
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    /// The pixels as one packed RGB8 buffer, if that is how they already lie (no copy needed).
    pub fn packed_rgb(&self) -> Option<&'a [u8]> {
        let len = self.width * self.height * 3;
        (self.format == PixelFormat::Rgb8 && self.stride == self.width * 3).then(|| &self.data[..len])
    }

    /// Packed RGB8, as PIL's `convert('RGB')`: gray is replicated, alpha is dropped. A frame whose
    /// copy cannot be allocated is an error, not an abort.
    pub fn to_rgb(&self) -> Result<RgbImage> {
        let mut out = try_buffer(self.width, self.height)?;
        let bpp = self.format.bytes_per_pixel();
        for y in 0..self.height {
            let row = &self.data[y * self.stride..][..self.width * bpp];
            match self.format {
                PixelFormat::Rgb8 => out.extend_from_slice(row),
                PixelFormat::Rgba8 => row.chunks_exact(4).for_each(|p| out.extend_from_slice(&p[..3])),
                PixelFormat::Bgr8 | PixelFormat::Bgra8 => {
                    row.chunks_exact(bpp).for_each(|p| out.extend_from_slice(&[p[2], p[1], p[0]]))
                }
                PixelFormat::Gray8 => row.iter().for_each(|&g| out.extend_from_slice(&[g, g, g])),
            }
        }
        Ok(RgbImage { width: self.width, height: self.height, data: out })
    }
}

/// An owned, packed RGB8 image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl RgbImage {
    pub fn view(&self) -> ImageView<'_> {
        ImageView {
            width: self.width,
            height: self.height,
            stride: self.width * 3,
            format: PixelFormat::Rgb8,
            data: &self.data,
        }
    }
}

/// Pillow's `DecompressionBombError` threshold (twice `Image.MAX_IMAGE_PIXELS`): an image that
/// declares more pixels is refused before anything is allocated for it.
pub const DEFAULT_MAX_PIXELS: u64 = 178_956_970;

/// The largest encoded file read (a photograph is a few MB; a frame of the pixel budget as an
/// uncompressed BMP is about 540 MB).
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// An empty RGB8 buffer with room for `width` x `height` pixels, or an error when the memory
/// cannot be had (Rust would abort the process on a failed `Vec::with_capacity`).
fn try_buffer(width: usize, height: usize) -> Result<Vec<u8>> {
    let bytes = width.checked_mul(height).and_then(|n| n.checked_mul(3));
    let mut out = Vec::new();
    bytes
        .and_then(|n| out.try_reserve_exact(n).ok())
        .ok_or_else(|| Error::InvalidInput(format!("a {width}x{height} RGB copy of the frame cannot be allocated")))?;
    Ok(out)
}

/// Checks a declared image size against the pixel budget, before any pixel is decoded.
fn check_pixels(width: u64, height: u64, max_pixels: u64) -> std::result::Result<(), String> {
    let pixels = width.saturating_mul(height);
    if pixels > max_pixels {
        return Err(format!(
            "the image declares {width}x{height} = {pixels} pixels, more than the limit of {max_pixels} \
             (a decompression bomb? raise `max_image_pixels` in the configuration if it is genuine)"
        ));
    }
    Ok(())
}

/// Reads and decodes an image file within [`DEFAULT_MAX_PIXELS`].
pub fn decode_file(path: &Path) -> Result<RgbImage> {
    decode_file_within(path, DEFAULT_MAX_PIXELS)
}

/// Reads and decodes an image file that declares at most `max_pixels` pixels. Only regular files
/// are read (a FIFO or a device would block or never end), up to [`MAX_FILE_BYTES`].
pub fn decode_file_within(path: &Path, max_pixels: u64) -> Result<RgbImage> {
    let bytes = crate::files::read_regular_file(path, MAX_FILE_BYTES)?;
    decode_bytes_within(&bytes, &path.display().to_string(), max_pixels)
}

/// Decodes an encoded image within [`DEFAULT_MAX_PIXELS`].
pub fn decode_bytes(bytes: &[u8], source_name: &str) -> Result<RgbImage> {
    decode_bytes_within(bytes, source_name, DEFAULT_MAX_PIXELS)
}

/// Decodes an encoded image (JPEG, PNG, BMP, TIFF, WebP) into RGB8, refusing one whose header
/// declares more than `max_pixels` pixels before decoding it.
///
/// JPEG goes through libjpeg-turbo's code (vendored by mozjpeg), the decoder PIL uses, so the
/// pixels are PIL's own; everything else goes through the `image` crate, whose PNG output is exact.
pub fn decode_bytes_within(bytes: &[u8], source_name: &str, max_pixels: u64) -> Result<RgbImage> {
    let decode_error = |message: String| Error::Decode { source_name: source_name.to_string(), message };
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return decode_jpeg(bytes, max_pixels).map_err(decode_error);
    }
    let format = image::guess_format(bytes).map_err(|_| decode_error("not a recognised image format".into()))?;
    let reader = || image::ImageReader::with_format(std::io::Cursor::new(bytes), format);
    let (width, height) = reader().into_dimensions().map_err(|e| decode_error(e.to_string()))?;
    check_pixels(width as u64, height as u64, max_pixels).map_err(decode_error)?;
    // The decoders' own allocations stay within what the declared size needs (16-bit RGBA).
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(max_pixels.saturating_mul(8).max(1 << 20));
    let mut reader = reader();
    reader.limits(limits);
    let decoded = reader.decode().map_err(|e| decode_error(e.to_string()))?;
    Ok(pil_rgb(decoded))
}

/// PIL's `convert('RGB')` of what PIL itself would have opened.
fn pil_rgb(decoded: image::DynamicImage) -> RgbImage {
    use image::DynamicImage as D;
    let (width, height) = (decoded.width() as usize, decoded.height() as usize);
    let data = match decoded {
        // PIL opens 16-bit colour PNGs as 8-bit by keeping the high byte ...
        D::ImageRgb16(img) => img.into_raw().iter().map(|v| (v >> 8) as u8).collect(),
        D::ImageRgba16(img) => {
            img.into_raw().chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).map(|v| (v >> 8) as u8).collect()
        }
        // ... and 16-bit gray as mode I, which convert('RGB') clips to 255.
        D::ImageLuma16(img) => img.into_raw().iter().flat_map(|&v| [v.min(255) as u8; 3]).collect(),
        D::ImageLumaA16(img) => img.into_raw().chunks_exact(2).flat_map(|p| [p[0].min(255) as u8; 3]).collect(),
        other => other.into_rgb8().into_raw(),
    };
    RgbImage { width, height, data }
}

/// Real progressive JPEGs have about ten scans; libjpeg-turbo advises a limit for untrusted files.
const MAX_JPEG_SCANS: usize = 1000;

fn decode_jpeg(bytes: &[u8], max_pixels: u64) -> std::result::Result<RgbImage, String> {
    use mozjpeg::ColorSpace;
    // libjpeg pads a truncated stream with grey and only warns; PIL refuses it, and so do we.
    if !jpeg_ends_after_last_scan(bytes) {
        return Err("the JPEG data is truncated (no end-of-image marker after the last scan)".into());
    }
    // Each progressive scan re-decodes the image: a few KB of scans can cost minutes.
    let scans = bytes.windows(2).filter(|w| *w == [0xFF, 0xDA]).count();
    if scans > MAX_JPEG_SCANS {
        return Err(format!("the JPEG holds {scans} scans, more than {MAX_JPEG_SCANS} (a progressive-scan bomb?)"));
    }
    let run = || -> std::result::Result<RgbImage, String> {
        let decompress = mozjpeg::Decompress::with_markers(&[]).from_mem(bytes).map_err(|e| e.to_string())?;
        let (width, height) = decompress.size();
        check_pixels(width as u64, height as u64, max_pixels)?;
        // read_scanlines reserves its buffer fallibly: memory that cannot be had is an error.
        let data = if matches!(decompress.color_space(), ColorSpace::JCS_CMYK | ColorSpace::JCS_YCCK) {
            // PIL opens every 4-channel JPEG as CMYK with Adobe's inverted polarity ("CMYK;I"),
            // libjpeg turning YCCK into CMYK, then convert('RGB') applies its cmyk2rgb.
            let mut started = decompress.to_colorspace(ColorSpace::JCS_CMYK).map_err(|e| e.to_string())?;
            let cmyk: Vec<u8> = started.read_scanlines::<u8>().map_err(|e| e.to_string())?;
            started.finish().map_err(|e| e.to_string())?;
            let mut data = try_buffer(width, height).map_err(|e| e.to_string())?;
            data.extend(cmyk.chunks_exact(4).flat_map(|p| cmyk_to_rgb([!p[0], !p[1], !p[2], !p[3]])));
            data
        } else {
            let mut started = decompress.rgb().map_err(|e| e.to_string())?;
            let data: Vec<u8> = started.read_scanlines::<u8>().map_err(|e| e.to_string())?;
            started.finish().map_err(|e| e.to_string())?;
            data
        };
        Ok(RgbImage { width, height, data })
    };
    match std::panic::catch_unwind(run) {
        Ok(Ok(image)) if image.data.len() == image.width * image.height * 3 => Ok(image),
        Ok(Ok(_)) => Err("the JPEG data is truncated".into()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("the JPEG decoder rejected the data".into()),
    }
}

/// PIL's `cmyk2rgb` (Convert.c): each channel is `(255 - k) - c * (255 - k) / 255`, with its
/// rounded integer division by 255.
fn cmyk_to_rgb([c, m, y, k]: [u8; 4]) -> [u8; 3] {
    let nk = 255 - k as u32;
    let channel = |v: u8| {
        let t = v as u32 * nk + 128;
        (nk - (((t >> 8) + t) >> 8)) as u8
    };
    [channel(c), channel(m), channel(y)]
}

/// Entropy-coded data stuffs every 0xFF, so marker bytes are unambiguous: a complete file has an
/// end-of-image marker (FF D9) after its last start-of-scan marker (FF DA).
fn jpeg_ends_after_last_scan(bytes: &[u8]) -> bool {
    let last_scan = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    match last_scan {
        Some(at) => bytes[at..].windows(2).any(|w| w == [0xFF, 0xD9]),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_reject_bad_geometry() {
        let data = [0u8; 12];
        assert!(ImageView::new(&data, 0, 1, 3, PixelFormat::Rgb8).is_err());
        assert!(ImageView::new(&data, 2, 2, 5, PixelFormat::Rgb8).is_err(), "stride below a row");
        assert!(ImageView::new(&data, 2, 3, 6, PixelFormat::Rgb8).is_err(), "buffer too short");
        assert!(ImageView::new(&data, 2, 2, 6, PixelFormat::Rgb8).is_ok());
        // The last row need not carry the stride's padding.
        assert!(ImageView::new(&data[..10], 1, 2, 7, PixelFormat::Rgb8).is_ok());
    }

    #[test]
    fn conversions_follow_pil() {
        let bgra = [10, 20, 30, 255, 1, 2, 3, 0];
        let rgb = ImageView::new(&bgra, 2, 1, 8, PixelFormat::Bgra8).unwrap().to_rgb().unwrap();
        assert_eq!(rgb.data, [30, 20, 10, 3, 2, 1]);
        let gray = [7, 9, 0, 5, 6];
        let rgb = ImageView::new(&gray, 2, 2, 3, PixelFormat::Gray8).unwrap().to_rgb().unwrap();
        assert_eq!(rgb.data, [7, 7, 7, 9, 9, 9, 5, 5, 5, 6, 6, 6]);
    }

    #[test]
    fn non_images_and_truncated_jpegs_are_decode_errors() {
        assert!(matches!(decode_bytes(b"hello world", "x.txt"), Err(Error::Decode { .. })));
        let jpeg = [0xFF, 0xD8, 0xFF, 0xE0, 0, 16, b'J', b'F', b'I', b'F', 0];
        assert!(matches!(decode_bytes(&jpeg, "x.jpg"), Err(Error::Decode { .. })));
    }
}
