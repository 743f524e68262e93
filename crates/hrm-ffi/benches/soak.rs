//! Soak test (run by hand, not in CI): one detector, many frames of varying size through the C
//! ABI, resident memory sampled as it goes. Memory should be flat after warm-up: a leak per frame
//! shows as a slope.
//!
//!     cargo bench -p hrm-ffi --bench soak [-- CONFIG.toml]      # HRM_SOAK_FRAMES=100000 by default
//!
//! Prints a sample every 5 % of the run and the least-squares slope of resident memory over the
//! frames after the first 10 % (warm-up: tract makes one plan per frame size, glibc grows its heap).

use hrm_core::resize::resize_bilinear;
use hrm_ffi::*;

mod common;
use common::{config_path, repo, Handles};
use std::time::Instant;

/// Resident memory of this process in KiB (Linux: /proc/self/statm's second field, in pages).
fn resident_kib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm (Linux)");
    let pages: f64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf only reads a system setting.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64;
    pages * page / 1024.0
}

fn main() {
    let frames: usize = std::env::var("HRM_SOAK_FRAMES").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000).max(100);
    let config_path = config_path();
    let photo = hrm_core::image::decode_file(&repo().join("../shared/images/multi_face.jpg")).expect("the photograph");
    // Sizes cycle, formats too: each frame is a new allocation pattern for the pipeline.
    let sizes = [(64, 48), (160, 120), (320, 240), (96, 128), (200, 150), (33, 65), (256, 192)];
    let images: Vec<_> = sizes.iter().map(|&(w, h)| resize_bilinear(&photo, w, h)).collect();

    let handles = Handles::open(&config_path);
    let detector = handles.detector;
    println!("{frames} frames of {} sizes through hrm_detect_frame, {}", sizes.len(), config_path.display());
    println!("{:>8} {:>12} {:>10} {:>8}", "frame", "RSS MiB", "faces", "s");
    let start = Instant::now();
    let (mut samples, mut faces) = (Vec::new(), 0usize);
    let every = (frames / 20).max(1);
    for i in 0..frames {
        let image = &images[i % images.len()];
        let frame = hrm_image {
            struct_size: std::mem::size_of::<hrm_image>() as u32,
            pixel_format: if i % 2 == 0 { HRM_PIXEL_FORMAT_RGB8 } else { HRM_PIXEL_FORMAT_BGR8 },
            width: image.width as u32,
            height: image.height as u32,
            stride: image.width * 3,
            data: image.data.as_ptr(),
            timestamp: i as i64,
            flags: if i % 3 == 0 { HRM_IMAGE_BOTTOM_UP } else { 0 },
            reserved: 0,
        };
        // SAFETY: the detector is live, the frame describes `image`, the result is freed here.
        unsafe {
            let mut result = std::ptr::null_mut();
            assert_eq!(hrm_detect_frame(detector, &frame, &mut result), HRM_OK);
            let mut count = 0;
            assert_eq!(hrm_result_face_count(result, &mut count), HRM_OK);
            faces += count;
            hrm_result_free(result);
        }
        if (i + 1) % (every / 10).max(1) == 0 {
            samples.push((i as f64 + 1.0, resident_kib()));
        }
        if (i + 1) % every == 0 {
            let rss = samples.last().unwrap().1 / 1024.0;
            println!("{:>8} {rss:>12.1} {faces:>10} {:>8.0}", i + 1, start.elapsed().as_secs_f64());
        }
    }
    drop(handles);
    let warm: Vec<(f64, f64)> = samples.iter().copied().filter(|&(f, _)| f > frames as f64 * 0.1).collect();
    let n = warm.len() as f64;
    let (mx, my) = (warm.iter().map(|s| s.0).sum::<f64>() / n, warm.iter().map(|s| s.1).sum::<f64>() / n);
    let sxy: f64 = warm.iter().map(|&(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = warm.iter().map(|&(x, _)| (x - mx) * (x - mx)).sum();
    let (first, last) = (warm.first().unwrap().1, warm.last().unwrap().1);
    println!(
        "after warm-up ({} samples): RSS {:.1} -> {:.1} MiB, slope {:.3} KiB per 1000 frames, {:.2} ms per frame",
        warm.len(),
        first / 1024.0,
        last / 1024.0,
        sxy / sxx * 1000.0,
        start.elapsed().as_secs_f64() * 1e3 / frames as f64
    );
}
