//! What ships in the repository runs as shipped and matches what the tools produce.

mod common;
use common::*;

#[test]
fn the_shipped_package_is_what_hrm_convert_makes_of_its_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("resnet_basic");
    convert_fixture("resnet_basic", &fresh);
    let shipped = fixtures().join("packages/resnet_basic");
    for file in ["hrm-model.toml", "model.onnx", "model.safetensors"] {
        let (a, b) = (std::fs::read(fresh.join(file)).unwrap(), std::fs::read(shipped.join(file)).unwrap());
        assert!(a == b, "{file} differs from a fresh conversion: rerun `hrm convert tests/fixtures/resnet_basic.pth --out tests/fixtures/packages/resnet_basic`");
    }
}

#[test]
fn configs_hrm_package_toml_runs_as_shipped_and_matches_pytorch() {
    let config = repo().join("configs/hrm-package.toml");
    let image = &shared_images()[5];
    let output = hrm(&["detect", "--config", path(&config), "--aligned", path(image)]);
    assert!(output.status.success(), "{}", stderr(&output));
    let row: serde_json::Value = serde_json::from_str(String::from_utf8(output.stdout).unwrap().trim()).unwrap();
    let want = &expected()["fixtures"]["resnet_basic"]["probabilities"][image.file_name().unwrap().to_str().unwrap()];
    let aus = row["aus"].as_object().unwrap();
    assert_eq!((aus.len(), want.as_array().unwrap().len()), (22, 22), "hrm's AUs and PyTorch's");
    for (i, got) in aus.values().enumerate() {
        assert!((got.as_f64().unwrap() - want[i].as_f64().unwrap()).abs() < 1e-4);
    }
}

#[test]
fn threshold_overrides_from_the_config_change_presence_only() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("strict.toml");
    let package = fixtures().join("packages/resnet_basic");
    std::fs::write(&config, format!("model = {:?}\n[thresholds]\nAU1 = 0.0\nAU2 = 1.0\n", path(&package))).unwrap();
    let image = &shared_images()[0];
    let output = hrm(&["detect", "--config", path(&config), "--aligned", path(image)]);
    assert!(output.status.success(), "{}", stderr(&output));
    let row: serde_json::Value = serde_json::from_str(String::from_utf8(output.stdout).unwrap().trim()).unwrap();
    assert_eq!(row["present"]["AU1"], true);
    assert_eq!(row["present"]["AU2"], false);

    std::fs::write(&config, format!("model = {:?}\n[thresholds]\nAU26 = 0.3\n", path(&package))).unwrap();
    let output = hrm(&["detect", "--config", path(&config), "--aligned", path(image)]);
    let text = stderr(&output);
    assert!(!output.status.success() && text.contains("thresholds.AU26") && text.contains("AU2X"), "{text}");
}

#[test]
fn info_describes_the_package() {
    let output = hrm(&["info", path(&fixtures().join("packages/resnet_basic"))]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8(output.stdout).unwrap();
    for needle in ["ResNet-12", "hrm22 (22 AUs)", "AU43E", "Eyes Closed", "sha256 verified", "resnet_basic.pth"] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
}

#[test]
fn aligned_faces_need_no_face_detector_even_a_broken_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("aligned.toml");
    let package = fixtures().join("packages/resnet_basic");
    std::fs::write(&config, format!("model = {:?}\n[detector]\nmodel = \"missing.onnx\"\n", path(&package))).unwrap();
    let image = &shared_images()[0];
    let output = hrm(&["detect", "--config", path(&config), "--aligned", path(image)]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(String::from_utf8(output.stdout).unwrap().lines().count(), 1, "one aligned face");
    // Raw frames do need it, and the error names the file.
    let output = hrm(&["detect", "--config", path(&config), path(image)]);
    let text = stderr(&output);
    assert!(!output.status.success() && text.contains("missing.onnx"), "{text}");
}
