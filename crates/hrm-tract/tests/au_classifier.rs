//! The detector through the tract backend: caller frames in every pixel layout and any batch size
//! give PyTorch's answers (the probabilities recorded by tools/make_fixtures.py).

use hrm_core::image::decode_file;
use hrm_core::{AuDetector, BackendRegistry, Config, ImageView, PixelFormat, RgbImage, Runtime};
use std::path::PathBuf;

mod common;
use common::repo;

fn detector(batch_size: usize) -> Box<dyn AuDetector> {
    common::runtime(batch_size).au_detector().unwrap()
}

fn photographs() -> Vec<(String, RgbImage)> {
    let mut names: Vec<PathBuf> =
        std::fs::read_dir(repo().join("../shared/images")).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    names.iter().map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), decode_file(p).unwrap())).collect()
}

fn pytorch(name: &str) -> Vec<f64> {
    let text = std::fs::read_to_string(repo().join("tests/fixtures/expected.json")).unwrap();
    let expected: serde_json::Value = serde_json::from_str(&text).unwrap();
    expected["fixtures"]["resnet_basic"]["probabilities"][name]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

fn assert_close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: AUs");
    assert_eq!(got.len(), 22, "{what}: AUs");
    for (g, w) in got.iter().zip(want) {
        assert!((*g as f64 - w).abs() <= 1e-4, "{what}: {g} vs PyTorch {w}");
    }
}

/// Lays an RGB image out as `format` with `padding` spare bytes at the end of every row.
fn frame(rgb: &RgbImage, format: PixelFormat, padding: usize) -> (Vec<u8>, usize) {
    let stride = rgb.width * format.bytes_per_pixel() + padding;
    let mut data = vec![0xAB; stride * rgb.height];
    for y in 0..rgb.height {
        for x in 0..rgb.width {
            let p = &rgb.data[(y * rgb.width + x) * 3..][..3];
            let out = &mut data[y * stride + x * format.bytes_per_pixel()..];
            match format {
                PixelFormat::Rgb8 => out[..3].copy_from_slice(p),
                PixelFormat::Bgr8 => out[..3].copy_from_slice(&[p[2], p[1], p[0]]),
                PixelFormat::Rgba8 => out[..4].copy_from_slice(&[p[0], p[1], p[2], 7]),
                PixelFormat::Bgra8 => out[..4].copy_from_slice(&[p[2], p[1], p[0], 7]),
                PixelFormat::Gray8 => out[0] = p[0],
            }
        }
    }
    (data, stride)
}

#[test]
fn every_pixel_layout_with_a_padded_stride_gives_pytorchs_answer() {
    let mut detector = detector(1);
    let (name, rgb) = &photographs()[0];
    for format in [PixelFormat::Rgb8, PixelFormat::Bgr8, PixelFormat::Rgba8, PixelFormat::Bgra8] {
        let (data, stride) = frame(rgb, format, 13);
        let view = ImageView::new(&data, rgb.width, rgb.height, stride, format).unwrap();
        let result = detector.detect(&[view]).unwrap();
        assert_close(&result[0].probabilities, &pytorch(name), &format!("{format:?}"));
    }
}

#[test]
fn a_gray_frame_is_the_gray_image_in_rgb() {
    let mut detector = detector(1);
    let (_, rgb) = &photographs()[0];
    let (data, stride) = frame(rgb, PixelFormat::Gray8, 3);
    let gray = ImageView::new(&data, rgb.width, rgb.height, stride, PixelFormat::Gray8).unwrap();
    let as_rgb = gray.to_rgb().unwrap();
    assert!(as_rgb.data.chunks_exact(3).all(|p| p[0] == p[1] && p[1] == p[2]));
    let from_gray = detector.detect(&[gray]).unwrap();
    let from_rgb = detector.detect(&[as_rgb.view()]).unwrap();
    assert_eq!(from_gray, from_rgb);
}

#[test]
fn batch_sizes_do_not_change_the_answers() {
    let photos = photographs();
    let faces: Vec<ImageView> = photos.iter().map(|(_, rgb)| rgb.view()).collect();
    for batch_size in [1, 4, 8] {
        let results = detector(batch_size).detect(&faces).unwrap();
        assert_eq!(results.len(), faces.len());
        for ((name, _), result) in photos.iter().zip(&results) {
            assert_close(&result.probabilities, &pytorch(name), &format!("batch {batch_size}, {name}"));
        }
    }
}

#[test]
fn an_unknown_backend_is_named() {
    let registry = BackendRegistry::default();
    let mut config = Config { backend: "cuda".into(), ..Config::default() };
    config.model = Some(repo().join("tests/fixtures/packages/resnet_basic"));
    let err = Runtime::load(config, &registry).err().unwrap().to_string();
    assert!(err.contains("unknown backend `cuda`"), "{err}");
}

/// Backend settings are checked by the backend before anything loads: tract takes none, and a
/// table for a backend that is not registered is refused by name.
#[test]
fn backend_settings_are_validated_with_the_key_named() {
    let package = repo().join("tests/fixtures/packages/resnet_basic");
    for (text, needles) in [
        (
            "[backend]\nname = \"tract\"\n[backend.tract]\ndevice = \"cuda:0\"\n",
            &["backend.tract.device", "takes none"][..],
        ),
        (
            "[backend.onnxruntime]\nproviders = [\"cuda\"]\n",
            &["[onnxruntime]", "which is neither", "backends: tract"][..],
        ),
        ("[detector]\nbackend = \"candle\"\n", &["unknown backend `candle`"][..]),
    ] {
        let mut config = Config::from_toml(text, std::path::Path::new("gpu.toml")).unwrap();
        config.model = Some(package.clone());
        let err = Runtime::load(config, &hrm_tract::registry()).err().unwrap().to_string();
        for needle in needles {
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
    let mut config =
        Config::from_toml("[backend]\nname = \"tract\"\n[backend.tract]\n", std::path::Path::new("x.toml")).unwrap();
    config.model = Some(package);
    assert_eq!(Runtime::load(config, &hrm_tract::registry()).unwrap().aus().len(), 22);
}
