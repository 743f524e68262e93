//! Fuzzing `hrm_image` frame descriptors through the C ABI (see `hrm_testkit::fuzz`): every field
//! of the struct comes from the fuzzer, the pixels too; `hrm_detect_frame` and
//! `hrm_detect_aligned` must return a status, never crash, and a frame they accept gives a result
//! that reads back whole.
//!
//! The descriptor's claim decides the buffer: the test lends a buffer as large as the frame it
//! describes (the contract of the ABI), and skips claims too large to lend that the library would
//! not refuse on their fields alone.

use hrm_ffi::*;
use hrm_testkit::fuzz::fuzz;
use std::ffi::CString;
use std::path::Path;

/// The runtime's pixel budget: larger frames are refused before their pixels are read.
const MAX_PIXELS: u64 = 1 << 18;

struct Runtime(*mut hrm_runtime);

impl Drop for Runtime {
    fn drop(&mut self) {
        // SAFETY: made by hrm_runtime_new_from_string, freed once.
        unsafe { hrm_runtime_free(self.0) };
    }
}

fn runtime() -> Runtime {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let toml = format!(
        "model = {:?}\nthreads = 1\nmax_image_pixels = {MAX_PIXELS}\n[detector]\nmodel = {:?}\n",
        repo.join("tests/fixtures/packages/resnet_basic"),
        repo.join("../shared/models/yunet_n_320_320.onnx"),
    );
    let toml = CString::new(toml).unwrap();
    let mut runtime = std::ptr::null_mut();
    // SAFETY: valid strings and out-pointer.
    assert_eq!(unsafe { hrm_runtime_new_from_string(toml.as_ptr(), std::ptr::null(), &mut runtime) }, HRM_OK);
    Runtime(runtime)
}

/// Reads a descriptor from the fuzzer's bytes: mostly small valid-looking frames, sometimes raw.
fn descriptor(bytes: &[u8]) -> (hrm_image, &[u8]) {
    let word = |i: usize| bytes.get(i * 4..i * 4 + 4).map_or(0, |b| u32::from_le_bytes(b.try_into().unwrap()));
    let raw = word(6) & 1 == 1;
    let small = |v: u32, n: u32| if raw { v } else { v % n };
    let image = hrm_image {
        struct_size: if word(6) & 2 == 2 { word(0) } else { std::mem::size_of::<hrm_image>() as u32 },
        pixel_format: small(word(1), 6),
        width: small(word(2), 97),
        height: small(word(3), 97),
        stride: small(word(4), 400) as usize,
        data: std::ptr::null(),
        timestamp: word(5) as i64,
        flags: small(word(7), 3),
        reserved: 0,
    };
    (image, bytes.get(32..).unwrap_or_default())
}

/// The bytes a frame spans, computed here independently of the library: rows `stride` apart, the
/// last one `width` pixels long.
fn span(image: &hrm_image) -> Option<usize> {
    let bpp = [3usize, 3, 4, 4, 1].get(image.pixel_format as usize)?;
    let row = (image.width as usize).checked_mul(*bpp)?;
    (image.height as usize).checked_sub(1)?.checked_mul(image.stride)?.checked_add(row)
}

/// Whether the library refuses the descriptor on its fields alone (so no pixel is read).
fn refused_on_fields(image: &hrm_image) -> bool {
    let pixels = image.width as u64 * image.height as u64;
    let row = [3u64, 3, 4, 4, 1].get(image.pixel_format as usize).map(|b| b * image.width as u64);
    (image.struct_size as usize) < std::mem::size_of::<hrm_image>()
        || row.is_none()
        || image.width == 0
        || image.height == 0
        || pixels > MAX_PIXELS
        || image.flags & !HRM_IMAGE_BOTTOM_UP != 0
        || row.is_some_and(|r| (image.stride as u64) < r)
}

#[test]
fn fuzz_frame_descriptors_through_the_c_abi() {
    let runtime = runtime();
    let mut detector = std::ptr::null_mut();
    // SAFETY: a live runtime and a writable out-pointer.
    assert_eq!(unsafe { hrm_detector_new(runtime.0, &mut detector) }, HRM_OK);
    // `mode` bit 0: the fields are taken raw, not reduced to small frames; bit 1: so is struct_size.
    let seed = |w: u32, h: u32, stride: u32, format: u32, flags: u32, mode: u32| {
        let mut bytes = Vec::new();
        for v in [0, format, w, h, stride, 7, mode, flags] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        bytes.extend((0..w * h * 4).map(|i| (i * 37 % 251) as u8));
        bytes
    };
    let seeds = vec![
        seed(64, 48, 192, 0, 0, 0),
        seed(40, 30, 160, 3, 1, 0),
        seed(33, 17, 40, 4, 0, 0),
        seed(640, 480, 1920, 1, 0, 1),
        seed(20, 10, 60, 0, 0, 3),
    ];
    let report = fuzz("c-abi-frame", &seeds, |bytes| {
        let (mut image, pixels) = descriptor(bytes);
        let needed = span(&image);
        let buffer: Vec<u8> = match needed {
            Some(n) if n <= 16 << 20 => {
                pixels.iter().copied().cycle().take(n).chain(std::iter::repeat(0)).take(n).collect()
            }
            _ if refused_on_fields(&image) => vec![0; 16],
            _ => return Err("a claim too large to lend"),
        };
        image.data = buffer.as_ptr();
        let mut result = std::ptr::null_mut();
        // SAFETY: `image` describes `buffer` (or is refused on its fields); out-pointers are valid.
        let status = unsafe { hrm_detect_frame(detector, &image, &mut result) };
        if status != HRM_OK {
            assert!(result.is_null(), "out-parameters are written only on success");
            assert_ne!(status, HRM_ERROR_PANIC, "{image:?}");
            let faces = [&image as *const hrm_image];
            // SAFETY: as above.
            let aligned = unsafe { hrm_detect_aligned(detector, faces.as_ptr(), 1, &mut result) };
            assert_ne!(aligned, HRM_ERROR_PANIC, "{image:?}");
            if aligned == HRM_OK {
                assert!(!refused_on_fields(&image), "hrm_detect_aligned accepted {image:?}");
                // SAFETY: a live result, freed once.
                unsafe { hrm_result_free(result) };
            }
            return Err("refused");
        }
        assert!(!refused_on_fields(&image), "accepted a frame that should be refused: {image:?}");
        let mut count = usize::MAX;
        // SAFETY: a live result; `face` is a zeroed hrm_face with its struct_size set.
        unsafe {
            assert_eq!(hrm_result_face_count(result, &mut count), HRM_OK);
            for i in 0..count {
                let mut face: hrm_face = std::mem::zeroed();
                face.struct_size = std::mem::size_of::<hrm_face>() as u32;
                assert_eq!(hrm_result_face(result, i, &mut face), HRM_OK);
                assert_eq!(face.au_count, 22);
            }
            hrm_result_free(result);
        }
        Ok(())
    });
    // SAFETY: a live detector, freed once.
    unsafe { hrm_detector_free(detector) };
    assert!(report.runs > seeds.len() && report.accepted >= 3, "{report:?}");
}

#[test]
fn an_aligned_batch_over_the_pixel_budget_is_refused_before_any_copy() {
    let runtime = runtime();
    let mut detector = std::ptr::null_mut();
    // One 512x512 bottom-up face (2^18 pixels, the runtime's limit) lent five times: each is
    // allowed, the batch of five is more than 4 x max_image_pixels.
    let pixels = vec![90u8; 512 * 512 * 3];
    let face = hrm_image {
        struct_size: std::mem::size_of::<hrm_image>() as u32,
        pixel_format: HRM_PIXEL_FORMAT_RGB8,
        width: 512,
        height: 512,
        stride: 512 * 3,
        data: pixels.as_ptr(),
        timestamp: 0,
        flags: HRM_IMAGE_BOTTOM_UP,
        reserved: 0,
    };
    let faces = [&face as *const hrm_image; 5];
    let mut result = std::ptr::null_mut();
    // SAFETY: a live runtime; every image describes `pixels`; out-pointers are valid.
    unsafe {
        assert_eq!(hrm_detector_new(runtime.0, &mut detector), HRM_OK);
        assert_eq!(hrm_detect_aligned(detector, faces.as_ptr(), 5, &mut result), HRM_ERROR_INVALID_ARGUMENT);
        assert!(result.is_null());
        assert_eq!(hrm_detect_aligned(detector, faces.as_ptr(), 4, &mut result), HRM_OK);
        let mut count = 0;
        assert_eq!(hrm_result_face_count(result, &mut count), HRM_OK);
        assert_eq!(count, 4);
        hrm_result_free(result);
        hrm_detector_free(detector);
    }
}
