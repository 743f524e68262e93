//! Fuzzing the parsers of what users and files hand in (see `hrm_testkit::fuzz`): the model
//! manifest, the configuration, ONNX graphs checked against a manifest, and image decoding.

use hrm_core::image::decode_bytes_within;
use hrm_core::manifest::Manifest;
use hrm_core::{onnx_graph, Config};
use hrm_testkit::fuzz::fuzz;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn package_file(name: &str) -> Vec<u8> {
    std::fs::read(repo().join("tests/fixtures/packages/resnet_basic").join(name)).unwrap()
}

#[test]
fn fuzz_manifest_parser() {
    // Format 2, and format 1 (hrm 0.1's), which is upgraded on the way in.
    let seeds =
        vec![package_file("hrm-model.toml"), std::fs::read(repo().join("tests/fixtures/manifest_v1.toml")).unwrap()];
    let report = fuzz("manifest", &seeds, |bytes| {
        let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
        Manifest::parse(text, Path::new("fuzzed.toml")).map(|_| ()).map_err(|e| e.to_string())
    });
    assert!(report.runs > seeds.len() && report.accepted >= seeds.len(), "{report:?}");
}

#[test]
fn fuzz_configuration_parser() {
    let seeds = vec![
        std::fs::read(repo().join("configs/cpu.toml")).unwrap(),
        b"threads = 2\nbatch_size = 4\nmax_image_pixels = 1000000\n[thresholds]\nAU12 = 0.4\n[detector]\nletterbox = [640, 480]\n[alignment]\ntemplate = [[0.35, 0.36], [0.65, 0.36], [0.5, 0.52], [0.37, 0.7], [0.63, 0.7]]\nmargin = 0.2\n".to_vec(),
    ];
    let report = fuzz("config", &seeds, |bytes| {
        let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
        Config::from_toml(text, Path::new("fuzzed.toml")).map(|_| ()).map_err(|e| e.to_string())
    });
    assert!(report.runs > seeds.len() && report.accepted >= seeds.len(), "{report:?}");
}

#[test]
fn fuzz_graph_reader_and_check() {
    let manifest: Manifest = toml::from_str(std::str::from_utf8(&package_file("hrm-model.toml")).unwrap()).unwrap();
    let seeds = vec![package_file("model.onnx")];
    let weights_len = package_file("model.safetensors").len() as u64;
    let report = fuzz("onnx-graph", &seeds, |bytes| {
        let graph = onnx_graph::summarise(bytes)?;
        manifest.check_graph(Path::new("fuzzed.onnx"), &graph, weights_len).map_err(|e| e.to_string())
    });
    assert!(report.runs > 1 && report.accepted >= 1, "{report:?}");
}

/// Small images in each format the decoders take, the CMYK JPEG among them.
fn image_seeds() -> Vec<Vec<u8>> {
    let rgb =
        image::RgbImage::from_fn(24, 16, |x, y| image::Rgb([(x * 10) as u8, (y * 15) as u8, ((x + y) * 5) as u8]));
    let mut seeds = vec![std::fs::read(repo().join("tests/fixtures/cmyk.jpg")).unwrap()];
    for format in [
        image::ImageFormat::Png,
        image::ImageFormat::Bmp,
        image::ImageFormat::Tiff,
        image::ImageFormat::WebP,
        image::ImageFormat::Jpeg,
    ] {
        let mut bytes = std::io::Cursor::new(Vec::new());
        rgb.write_to(&mut bytes, format).unwrap();
        seeds.push(bytes.into_inner());
    }
    seeds
}

#[test]
fn fuzz_image_decoding() {
    let seeds = image_seeds();
    let report = fuzz("image", &seeds, |bytes| {
        // A small budget, so that mutated sizes are refused rather than decoded at length.
        let image = decode_bytes_within(bytes, "fuzzed", 1 << 20).map_err(|e| e.to_string())?;
        assert_eq!(image.data.len(), image.width * image.height * 3, "RGB8 of the declared size");
        Ok::<(), String>(())
    });
    assert!(report.runs > seeds.len() && report.accepted >= seeds.len(), "{report:?}");
}
