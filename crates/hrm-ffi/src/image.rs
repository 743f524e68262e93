//! Frames the caller lends (`hrm_image`), and photographs libhrm decodes for it (`hrm_bitmap`).

use crate::handle::{give, handle};
use crate::status::{arg, guard, hrm_status, out_arg, str_arg, Failure};
use hrm_core::image::{byte_len, decode_file};
use hrm_core::{ImageView, PixelFormat, RgbImage};
use std::borrow::Cow;
use std::path::Path;

/// 3 bytes per pixel: red, green, blue.
pub const HRM_PIXEL_FORMAT_RGB8: u32 = 0;
/// 3 bytes per pixel: blue, green, red (OpenCV's order).
pub const HRM_PIXEL_FORMAT_BGR8: u32 = 1;
/// 4 bytes per pixel: red, green, blue, alpha (Unity's Color32); alpha is ignored.
pub const HRM_PIXEL_FORMAT_RGBA8: u32 = 2;
/// 4 bytes per pixel: blue, green, red, alpha; alpha is ignored.
pub const HRM_PIXEL_FORMAT_BGRA8: u32 = 3;
/// 1 byte per pixel: gray.
pub const HRM_PIXEL_FORMAT_GRAY8: u32 = 4;

/// `hrm_image.flags`: the rows are stored bottom row first (Unity textures, Windows DIBs);
/// `data` points at the first row stored, which is the bottom of the picture.
pub const HRM_IMAGE_BOTTOM_UP: u32 = 1;

/// The largest width or height accepted.
pub const HRM_MAX_IMAGE_SIDE: u32 = 32768;

/// The most pixels a decoded photograph (`hrm_bitmap_load`) may declare, and a frame may have
/// unless the configuration's `max_image_pixels` says otherwise: Pillow's decompression-bomb limit.
pub const HRM_DEFAULT_MAX_IMAGE_PIXELS: u64 = 178_956_970;
const _: () = assert!(HRM_DEFAULT_MAX_IMAGE_PIXELS == hrm_core::image::DEFAULT_MAX_PIXELS);

/// A frame lent to libhrm for one call: libhrm reads `data` during the call and keeps nothing.
///
/// Set `struct_size` to `sizeof(hrm_image)`; later versions only add fields at the end.
/// `data` holds `height` rows of `width` pixels, `stride` bytes apart (the last row needs only
/// its pixels). Zero it first (`hrm_image image = {0};`) so fields added later stay 0.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hrm_image {
    /// `sizeof(hrm_image)`.
    pub struct_size: u32,
    /// One of `HRM_PIXEL_FORMAT_*`.
    pub pixel_format: u32,
    /// Pixels per row, 1 to `HRM_MAX_IMAGE_SIDE`.
    pub width: u32,
    /// Rows, 1 to `HRM_MAX_IMAGE_SIDE`.
    pub height: u32,
    /// Bytes from the start of one row to the start of the next, at least `width` times the
    /// bytes per pixel.
    pub stride: usize,
    /// The first row stored.
    pub data: *const u8,
    /// Any number the caller chooses (a frame time in microseconds, say); the result carries it.
    pub timestamp: i64,
    /// 0, or `HRM_IMAGE_BOTTOM_UP`.
    pub flags: u32,
}

fn pixel_format(value: u32) -> Result<PixelFormat, Failure> {
    Ok(match value {
        HRM_PIXEL_FORMAT_RGB8 => PixelFormat::Rgb8,
        HRM_PIXEL_FORMAT_BGR8 => PixelFormat::Bgr8,
        HRM_PIXEL_FORMAT_RGBA8 => PixelFormat::Rgba8,
        HRM_PIXEL_FORMAT_BGRA8 => PixelFormat::Bgra8,
        HRM_PIXEL_FORMAT_GRAY8 => PixelFormat::Gray8,
        other => {
            return Err(Failure::invalid(format!(
                "pixel_format {other} is not one of HRM_PIXEL_FORMAT_RGB8 (0) to HRM_PIXEL_FORMAT_GRAY8 (4)"
            )))
        }
    })
}

/// Checks a caller's `struct_size` against the struct this library knows.
pub(crate) fn check_struct_size<T>(struct_size: u32, name: &str) -> Result<(), Failure> {
    let ours = std::mem::size_of::<T>();
    if (struct_size as usize) < ours {
        return Err(Failure::invalid(format!(
            "{name}.struct_size is {struct_size}, expected at least {ours} (set it to sizeof({name}))"
        )));
    }
    Ok(())
}

/// A checked view of a caller's frame; bottom-up frames are copied top-down first.
pub(crate) struct Frame<'a> {
    pixels: Cow<'a, [u8]>,
    width: usize,
    height: usize,
    stride: usize,
    format: PixelFormat,
    pub timestamp: i64,
}

impl<'a> Frame<'a> {
    /// Validates every field of `image` before reading a byte of its pixels; a frame of more than
    /// `max_pixels` pixels is refused (the runtime's `max_image_pixels`), so that the copies made
    /// of it stay within a budget instead of failing to allocate, which would abort the process.
    ///
    /// # Safety
    /// A non-NULL `image` points at an `hrm_image` whose `data` holds what its fields describe.
    pub unsafe fn new(image: *const hrm_image, name: &str, max_pixels: u64) -> Result<Frame<'a>, Failure> {
        let image = arg(image, name)?;
        check_struct_size::<hrm_image>(image.struct_size, "hrm_image")?;
        let format = pixel_format(image.pixel_format)?;
        let (width, height) = (image.width, image.height);
        for (side, value) in [("width", width), ("height", height)] {
            if !(1..=HRM_MAX_IMAGE_SIDE).contains(&value) {
                return Err(Failure::invalid(format!("{name}: {side} is {value}, expected 1 to {HRM_MAX_IMAGE_SIDE}")));
            }
        }
        let pixels = width as u64 * height as u64;
        if pixels > max_pixels {
            return Err(Failure::invalid(format!(
                "{name}: {width}x{height} = {pixels} pixels is more than the runtime's limit of {max_pixels} \
                 (`max_image_pixels` in the configuration)"
            )));
        }
        if image.flags & !HRM_IMAGE_BOTTOM_UP != 0 {
            return Err(Failure::invalid(format!("{name}: unknown flags {:#x}", image.flags)));
        }
        if image.data.is_null() {
            return Err(Failure::invalid(format!("{name}: data is NULL")));
        }
        let (width, height, stride) = (width as usize, height as usize, image.stride);
        let len = byte_len(width, height, stride, format).map_err(|e| Failure::invalid(format!("{name}: {e}")))?;
        let row = width * format.bytes_per_pixel();
        let data = std::slice::from_raw_parts(image.data, len);
        let pixels = if image.flags & HRM_IMAGE_BOTTOM_UP != 0 {
            let mut top_down = Vec::new();
            top_down.try_reserve_exact(row * height).map_err(|_| {
                Failure::invalid(format!("{name}: a top-down copy of {} bytes cannot be allocated", row * height))
            })?;
            for y in (0..height).rev() {
                top_down.extend_from_slice(&data[y * stride..][..row]);
            }
            Cow::Owned(top_down)
        } else {
            Cow::Borrowed(data)
        };
        let stride = if matches!(pixels, Cow::Owned(_)) { row } else { stride };
        Ok(Frame { pixels, width, height, stride, format, timestamp: image.timestamp })
    }

    pub fn view(&self) -> Result<ImageView<'_>, Failure> {
        Ok(ImageView::new(&self.pixels, self.width, self.height, self.stride, self.format)?)
    }
}

/// A photograph decoded by libhrm into RGB8 (for programs with no image library of their own).
/// Immutable: any thread may read it; free it once, from any thread.
pub struct hrm_bitmap {
    image: RgbImage,
}

/// Decodes a JPEG, PNG, BMP, TIFF or WebP file into a new `hrm_bitmap` (as PIL decodes it).
///
/// On success `*out` owns the bitmap: free it with `hrm_bitmap_free`. Fails with
/// `HRM_ERROR_IO` when the file cannot be read, is not a regular file (a FIFO, a device) or is
/// larger than 1 GiB, `HRM_ERROR_DECODE` when it is not an image or its header declares more than
/// `HRM_DEFAULT_MAX_IMAGE_PIXELS` pixels (a decompression bomb: refused before anything is
/// allocated for it). Any thread.
///
/// # Safety
/// `path` is a NUL-terminated UTF-8 string; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn hrm_bitmap_load(path: *const std::ffi::c_char, out: *mut *mut hrm_bitmap) -> hrm_status {
    guard("hrm_bitmap_load", || {
        let path = str_arg(path, "path")?;
        out_arg(out, "out")?;
        let image = decode_file(Path::new(path))?;
        give(out, hrm_bitmap { image });
        Ok(())
    })
}

/// Describes the bitmap's pixels as an RGB8 `hrm_image` (timestamp 0, top-down), ready for
/// `hrm_detect_frame`. The pixels stay owned by the bitmap: `out->data` is valid until
/// `hrm_bitmap_free`. `out->struct_size` must be set by the caller; it is left as it is.
///
/// # Safety
/// `bitmap` came from `hrm_bitmap_load`; `out` points at an `hrm_image`.
#[no_mangle]
pub unsafe extern "C" fn hrm_bitmap_image(bitmap: *const hrm_bitmap, out: *mut hrm_image) -> hrm_status {
    guard("hrm_bitmap_image", || {
        let bitmap = handle(bitmap, "bitmap")?;
        let target = arg(out, "out")?;
        check_struct_size::<hrm_image>(target.struct_size, "hrm_image")?;
        let image = &bitmap.image;
        *out = hrm_image {
            struct_size: target.struct_size,
            pixel_format: HRM_PIXEL_FORMAT_RGB8,
            width: image.width as u32,
            height: image.height as u32,
            stride: image.width * 3,
            data: image.data.as_ptr(),
            timestamp: 0,
            flags: 0,
        };
        Ok(())
    })
}

/// Frees a bitmap; NULL is ignored. Images made from it must not be used afterwards.
///
/// # Safety
/// `bitmap` is NULL or came from `hrm_bitmap_load` and was not freed before.
#[no_mangle]
pub unsafe extern "C" fn hrm_bitmap_free(bitmap: *mut hrm_bitmap) {
    crate::handle::free("hrm_bitmap_free", bitmap);
}
