//! Frames the caller lends (`hrm_image`), and photographs libhrm decodes for it (`hrm_bitmap`).

use crate::handle::{give, handle};
use crate::status::{guard, hrm_status, out_arg, str_arg, Failure};
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
/// Set `struct_size` to `sizeof(hrm_image)`. The struct only grows at the end, in 8-byte
/// aligned steps (the layout has no padding: `reserved` fills what would be the tail padding),
/// so a program built against an older header keeps working: libhrm reads only the
/// `struct_size` bytes the caller has, and fields past them take their defaults (0). A size
/// below `HRM_IMAGE_SIZE_V1` is refused. `data` holds `height` rows of `width` pixels, `stride`
/// bytes apart (the last row needs only its pixels). Zero it first (`hrm_image image = {0};`).
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
    /// The frame's time in microseconds, from any origin the caller chooses (a capture clock, or
    /// the frame index times the frame interval); the result carries it. libhrm reads it as
    /// microseconds where time matters (streams, temporal smoothing).
    pub timestamp: i64,
    /// 0, or `HRM_IMAGE_BOTTOM_UP`.
    pub flags: u32,
    /// Set it to 0; this version ignores it. It fills what was tail padding in version 1 (whose
    /// programs may leave garbage there), so a later version gives it a meaning only together
    /// with a new bit in `flags`.
    pub reserved: u32,
}

/// `sizeof(hrm_image)` in version 1 of this header (offsets: `stride` 16, `data` 24,
/// `timestamp` 32, `flags` 40, `reserved` 44): the smallest `struct_size` accepted.
pub const HRM_IMAGE_SIZE_V1: u32 = 48;
const _: () = assert!(std::mem::size_of::<hrm_image>() == HRM_IMAGE_SIZE_V1 as usize);

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

/// A C struct that starts with `uint32_t struct_size` and grows only at the end.
pub(crate) trait GrowingStruct: Copy {
    const NAME: &'static str;
    /// Its size in version 1 of the header: the smallest `struct_size` accepted.
    const SIZE_V1: u32;
}

/// Checks a caller's `struct_size`: at least version 1's size. Larger sizes, from headers newer
/// than this library, are accepted: the fields this library does not know are left alone.
fn check_struct_size<T: GrowingStruct>(struct_size: u32) -> Result<(), Failure> {
    if struct_size < T::SIZE_V1 {
        return Err(Failure::invalid(format!(
            "{}.struct_size is {struct_size}, expected at least {} (set it to sizeof({}))",
            T::NAME,
            T::SIZE_V1,
            T::NAME
        )));
    }
    Ok(())
}

/// Reads a caller's struct: the bytes its `struct_size` covers, fields past them zero (their
/// defaults).
///
/// # Safety
/// A non-NULL `ptr` points at a readable `uint32_t struct_size` followed by the rest of the
/// struct, `struct_size` bytes in all.
pub(crate) unsafe fn read_sized<T: GrowingStruct>(ptr: *const T, name: &str) -> Result<T, Failure> {
    if ptr.is_null() {
        return Err(Failure::invalid(format!("`{name}` is NULL")));
    }
    // SAFETY: the caller guarantees the struct, which starts with its u32 size, is readable.
    let struct_size = unsafe { ptr.cast::<u32>().read_unaligned() };
    check_struct_size::<T>(struct_size)?;
    let mut value = std::mem::MaybeUninit::<T>::zeroed();
    let known = (struct_size as usize).min(std::mem::size_of::<T>());
    // SAFETY: `known` bytes are readable at `ptr` (they are within `struct_size`) and writable in
    // `value`; every bit pattern of these C structs (integers, floats, raw pointers) is valid,
    // and zero is the default of every field.
    unsafe {
        std::ptr::copy_nonoverlapping(ptr.cast::<u8>(), value.as_mut_ptr().cast::<u8>(), known);
        Ok(value.assume_init())
    }
}

/// Writes `value` into a caller's struct: only the bytes its `struct_size` covers (the caller's
/// `struct_size` is kept), so a caller built against an older header gets the fields it knows
/// and nothing is written past its struct.
///
/// # Safety
/// A non-NULL `ptr` points at a writable struct whose `struct_size` the caller set.
pub(crate) unsafe fn write_sized<T: GrowingStruct>(ptr: *mut T, value: &T, name: &str) -> Result<(), Failure> {
    if ptr.is_null() {
        return Err(Failure::invalid(format!("`{name}` is NULL")));
    }
    // SAFETY: the caller guarantees the struct, which starts with its u32 size, is readable.
    let struct_size = unsafe { ptr.cast::<u32>().read_unaligned() };
    check_struct_size::<T>(struct_size)?;
    let known = (struct_size as usize).min(std::mem::size_of::<T>());
    let source = (value as *const T).cast::<u8>();
    // SAFETY: `known` bytes are writable at `ptr` (within `struct_size`); the first 4, the size,
    // are skipped so the caller's value stays.
    unsafe { std::ptr::copy_nonoverlapping(source.add(4), ptr.cast::<u8>().add(4), known - 4) };
    Ok(())
}

impl GrowingStruct for hrm_image {
    const NAME: &'static str = "hrm_image";
    const SIZE_V1: u32 = HRM_IMAGE_SIZE_V1;
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
        // SAFETY: the caller guarantees a non-NULL `image` points at an hrm_image of its struct_size.
        let image = unsafe { read_sized(image, name)? };
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
        // SAFETY: the caller guarantees `data` holds what the fields describe, `len` bytes.
        let data = unsafe { std::slice::from_raw_parts(image.data, len) };
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
        // SAFETY: the caller guarantees a NUL-terminated `path`.
        let path = unsafe { str_arg(path, "path")? };
        out_arg(out, "out")?;
        let image = decode_file(Path::new(path))?;
        // SAFETY: the caller guarantees `out` is writable; out_arg checked it is not NULL.
        unsafe { give(out, hrm_bitmap { image }) };
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
        // SAFETY: the caller guarantees a live bitmap.
        let bitmap = unsafe { handle(bitmap, "bitmap")? };
        let image = &bitmap.image;
        let described = hrm_image {
            struct_size: 0,
            pixel_format: HRM_PIXEL_FORMAT_RGB8,
            width: image.width as u32,
            height: image.height as u32,
            stride: image.width * 3,
            data: image.data.as_ptr(),
            timestamp: 0,
            flags: 0,
            reserved: 0,
        };
        // SAFETY: the caller guarantees `out` points at an hrm_image of its struct_size.
        unsafe { write_sized(out, &described, "out") }
    })
}

/// Frees a bitmap; NULL is ignored. Images made from it must not be used afterwards.
///
/// # Safety
/// `bitmap` is NULL or came from `hrm_bitmap_load` and was not freed before.
#[no_mangle]
pub unsafe extern "C" fn hrm_bitmap_free(bitmap: *mut hrm_bitmap) {
    // SAFETY: the caller guarantees no other thread uses the bitmap.
    unsafe { crate::handle::free("hrm_bitmap_free", bitmap) };
}
