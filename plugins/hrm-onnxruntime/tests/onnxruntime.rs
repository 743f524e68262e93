//! The plugin as hrm loads it: found beside this test (cargo builds it into the same folder),
//! checked and registered by hrm-core's plugin host, on the ONNX Runtime that ORT_DYLIB_PATH
//! names (`eval "$(tools/setup-onnxruntime.sh)"`; without it the tests fail and say so).
//! YuNet on ONNX Runtime against OpenCV's own detector; the providers' choice and fallback.

use hrm_core::face::{Face, FaceDetector};
use hrm_core::image::decode_file;
use hrm_core::{BackendRegistry, Config};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// tract and every plugin found beside this test: the ONNX Runtime plugin must be among them.
fn registry(config: &Config) -> BackendRegistry {
    let registry = hrm_core::plugin::with_plugins(hrm_tract::registry(), config);
    if let Err(e) = registry.get("onnxruntime") {
        panic!("the onnxruntime plugin is not registered: {e}");
    }
    registry
}

fn onnxruntime(settings: &str) -> Config {
    let text = format!("backend = \"onnxruntime\"\nthreads = 2\n[onnxruntime]\n{settings}\n");
    Config::from_toml(&text, Path::new("test.toml")).unwrap()
}

fn centre(b: &[f32]) -> [f32; 2] {
    [b[0] + b[2] / 2.0, b[1] + b[3] / 2.0]
}

/// Every face of tests/fixtures/opencv_yunet.json found, each keypoint within `tolerance` px of
/// OpenCV's; gives the number of faces compared.
fn compare_with_opencv(config: &Config, tolerance: f32) -> usize {
    let (mut detector, placement) = hrm_core::runtime::face_detector_alone(config, &registry(config)).unwrap();
    assert_eq!(placement.device, "cpu");
    let text = std::fs::read_to_string(repo().join("tests/fixtures/opencv_yunet.json")).unwrap();
    let reference: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut compared = 0;
    for (name, want) in reference["images"].as_object().unwrap() {
        let image = decode_file(&repo().join("../shared/images").join(name)).unwrap();
        let faces = detector.detect(&image.view()).unwrap();
        let want = want["faces"].as_array().unwrap();
        assert_eq!(faces.len(), want.len(), "{name}: face count");
        for w in want {
            let bbox: Vec<f32> = w["bbox"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
            let c = centre(&bbox);
            let distance = |f: &Face| (centre(&f.bbox)[0] - c[0]).hypot(centre(&f.bbox)[1] - c[1]);
            let got = faces.iter().min_by(|a, b| distance(a).total_cmp(&distance(b))).unwrap();
            for (k, wk) in w["keypoints"].as_array().unwrap().iter().enumerate() {
                let (x, y) = (wk[0].as_f64().unwrap() as f32, wk[1].as_f64().unwrap() as f32);
                let d = (got.keypoints[k][0] - x).hypot(got.keypoints[k][1] - y);
                assert!(d <= tolerance, "{name} keypoint {k}: {:?}, OpenCV ({x}, {y})", got.keypoints[k]);
            }
            compared += 1;
        }
    }
    compared
}

#[test]
fn yunet_built_in_on_onnxruntime_matches_opencv() {
    // The built-in YuNet-s declares a 640x640 input; the plugin frees it to run at each frame's size.
    let faces = compare_with_opencv(&onnxruntime("providers = [\"cpu\"]"), 3.0);
    assert!(faces >= 6, "{faces} faces compared");
}

#[test]
fn yunet_from_a_file_on_onnxruntime_matches_opencv() {
    let mut config = onnxruntime("");
    config.detector.model = Some(repo().join("../shared/models/yunet_s_dynamic.onnx"));
    assert!(compare_with_opencv(&config, 3.0) >= 6);
}

#[test]
fn without_fallback_a_provider_that_cannot_run_is_an_error_naming_it() {
    let config = onnxruntime("providers = [\"cuda\", \"cpu\"]\nfallback = false");
    let err = hrm_core::runtime::face_detector_alone(&config, &registry(&config)).err().unwrap().to_string();
    assert!(err.contains("backend `onnxruntime`") && err.contains("cuda:"), "{err}");
    assert!(err.contains("fallback = false: the next provider in `providers` is not tried"), "{err}");
}

#[test]
fn with_fallback_the_next_provider_runs_and_the_choice_is_reported() {
    let config =
        onnxruntime("providers = [\"tensorrt\", \"cuda\", \"cpu\"]\n[tensorrt]\nfp16 = true\n[cuda]\ndevice_id = 0");
    let (_, placement) = hrm_core::runtime::face_detector_alone(&config, &registry(&config)).unwrap();
    assert_eq!(placement.device, "cpu");
    assert!(placement.notes.starts_with("tensorrt not used: "), "{}", placement.notes);
    assert!(placement.notes.contains("; cuda not used: "), "{}", placement.notes);
}

#[test]
fn bad_options_are_refused_before_anything_loads() {
    let config = onnxruntime("providers = [\"gpu\"]");
    let err = hrm_core::Runtime::load(config.clone(), &registry(&config)).err().unwrap().to_string();
    assert!(err.contains("`onnxruntime.providers`: expected a list of providers"), "{err}");
    let plugin = hrm_core::plugin::discover(&hrm_core::plugin::search_folders(&[]), &["tract"]);
    let plugin = plugin.plugins.iter().find(|p| p.name == "onnxruntime").unwrap();
    let description = plugin.describe(&onnxruntime("").backend_options("onnxruntime")).unwrap();
    assert_eq!(description.version, env!("CARGO_PKG_VERSION"));
    assert!(description.runtime.starts_with("ONNX Runtime 1."), "{}", description.runtime);
    let names: Vec<&str> = description.devices.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["tensorrt", "cuda", "cpu"]);
    assert_eq!(description.devices[2].1, None, "the CPU provider is always there");
}

#[test]
fn a_model_that_is_not_a_regular_file_is_an_error_not_a_hang() {
    let mut config = onnxruntime("");
    config.detector.model = Some(PathBuf::from("/dev/zero"));
    let err = hrm_core::runtime::face_detector_alone(&config, &registry(&config)).err().unwrap().to_string();
    assert!(err.contains("/dev/zero") && err.contains("not a regular file"), "{err}");
}
