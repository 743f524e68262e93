//! What the C ABI adds per frame: `hrm_detect_frame` plus reading every face out of the result,
//! against `Pipeline::process` on the same frame, the same models and the same threads.
//! The two are timed in alternation so that a busy machine slows both alike.
//!
//!     cargo bench -p hrm-ffi --bench abi_overhead [-- CONFIG.toml]

use hrm_core::pipeline::Pipeline;
use hrm_core::{Config, RgbImage, Runtime};
use hrm_ffi::*;

mod common;
use common::{config_path, repo, Handles};
use std::time::Instant;

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn pipeline(config: &Config) -> Pipeline {
    let runtime = Runtime::load(config.clone(), &hrm_tract::registry()).expect("the models load");
    runtime.pipeline().expect("the configuration names a [detector] model")
}

/// `frame` as a C caller lends it.
fn lent(frame: &RgbImage) -> hrm_image {
    hrm_image {
        struct_size: std::mem::size_of::<hrm_image>() as u32,
        pixel_format: HRM_PIXEL_FORMAT_RGB8,
        width: frame.width as u32,
        height: frame.height as u32,
        stride: frame.width * 3,
        data: frame.data.as_ptr(),
        timestamp: 0,
        flags: 0,
        reserved: 0,
    }
}

/// One C ABI frame as a C caller does it: detect, read every face's AUs, free the result.
fn abi_frame(detector: *mut hrm_detector, frame: &RgbImage) -> f32 {
    let image = lent(frame);
    let mut sum = 0.0;
    // SAFETY: the detector is live, the image describes `frame`, and the result is freed here.
    unsafe {
        let mut result = std::ptr::null_mut();
        assert_eq!(hrm_detect_frame(detector, &image, &mut result), HRM_OK);
        let mut count = 0;
        assert_eq!(hrm_result_face_count(result, &mut count), HRM_OK);
        for i in 0..count {
            let mut face: hrm_face = std::mem::zeroed();
            face.struct_size = std::mem::size_of::<hrm_face>() as u32;
            assert_eq!(hrm_result_face(result, i, &mut face), HRM_OK);
            sum += std::slice::from_raw_parts(face.probabilities, face.au_count).iter().sum::<f32>();
        }
        hrm_result_free(result);
    }
    sum
}

fn main() {
    let config_path = config_path();
    let config = Config::from_file(&config_path).expect("the configuration loads");
    let mut direct = pipeline(&config);
    let handles = Handles::open(&config_path);
    let detector = handles.detector;
    println!("{} with {} threads", config_path.display(), config.resolved_threads());
    println!("{:>28} {:>6} {:>13} {:>13} {:>22}", "frame", "faces", "Rust ms", "C ABI ms", "C ABI - Rust ms");
    let photo = |name: &str| hrm_core::image::decode_file(&repo().join("../shared/images").join(name)).unwrap();
    let cases = [
        ("640x480, 5 faces", hrm_core::resize::resize_bilinear(&photo("multi_face.jpg"), 640, 480), 60),
        ("640x480, 1 face", hrm_core::resize::resize_bilinear(&photo("single_face.jpg"), 640, 480), 60),
        ("64x48, no face", RgbImage { width: 64, height: 48, data: vec![128; 64 * 48 * 3] }, 2000),
    ];
    for (name, frame, iterations) in cases {
        let view = frame.view();
        let mut faces = 0;
        let (mut rust, mut abi, mut differences) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..iterations + 5 {
            let mut time_rust = || {
                let start = Instant::now();
                faces = direct.process(&view).expect("the pipeline runs").len();
                start.elapsed().as_secs_f64() * 1e3
            };
            let time_abi = || {
                let start = Instant::now();
                std::hint::black_box(abi_frame(detector, &frame));
                start.elapsed().as_secs_f64() * 1e3
            };
            let (r, a) = if i % 2 == 0 {
                let r = time_rust();
                (r, time_abi())
            } else {
                let a = time_abi();
                (time_rust(), a)
            };
            if i >= 5 {
                rust.push(r);
                abi.push(a);
                differences.push(a - r);
            }
        }
        println!(
            "{name:>28} {faces:>6} {:>13.4} {:>13.4} {:>22.4}",
            median(&mut rust),
            median(&mut abi),
            median(&mut differences)
        );
    }
    // The ABI's own work on a frame with faces, timed alone: reading 5 faces and their AUs out of a
    // result (the detection itself is the Rust pipeline's).
    let frame = hrm_core::resize::resize_bilinear(&photo("multi_face.jpg"), 640, 480);
    let image = lent(&frame);
    // SAFETY: as in abi_frame.
    unsafe {
        let mut result = std::ptr::null_mut();
        assert_eq!(hrm_detect_frame(detector, &image, &mut result), HRM_OK);
        let reads = 100_000;
        let start = Instant::now();
        for _ in 0..reads {
            let mut count = 0;
            hrm_result_face_count(result, &mut count);
            for i in 0..count {
                let mut face: hrm_face = std::mem::zeroed();
                face.struct_size = std::mem::size_of::<hrm_face>() as u32;
                hrm_result_face(result, i, &mut face);
                std::hint::black_box(std::slice::from_raw_parts(face.probabilities, face.au_count));
            }
        }
        let per_frame = start.elapsed().as_secs_f64() * 1e3 / reads as f64;
        println!("reading 5 faces and their AUs out of a result: {per_frame:.5} ms per frame");
        hrm_result_free(result);
    }
}
