//! Every parity fixture (tests/fixtures, from tools/make_fixtures.py) converted with hrm-convert
//! and run natively in candle on the CPU, against PyTorch's probabilities on the six shared
//! photographs, one at a time and as one batch.

use hrm_candle::{DType, Device, Network};
use hrm_core::manifest::OutputKind;
use std::path::{Path, PathBuf};

const TOLERANCE: f64 = 1e-4;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn expected() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(repo().join("tests/fixtures/expected.json")).unwrap()).unwrap()
}

/// The fixture converted as `make_fixtures.py` recorded (its `--heads`, `--metric`,
/// `--neighbors`), into `dir`.
fn convert(name: &str, dir: &Path) -> PathBuf {
    let args = expected()["fixtures"][name]["convert_args"].clone();
    let args: Vec<&str> = args.as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    let value = |flag: &str| args.windows(2).find(|w| w[0] == flag).map(|w| w[1]);
    let arch = hrm_convert::ArchOptions {
        heads: value("--heads").map(|v| v.parse().unwrap()),
        neighbors: value("--neighbors").map(|v| v.parse().unwrap()),
        metric: value("--metric").map(|v| hrm_core::manifest::GraphMetric::parse(v).unwrap()),
    };
    let options = hrm_convert::ConvertOptions { fixture: true, arch, ..Default::default() };
    let out = dir.join(name);
    hrm_convert::convert(&repo().join(format!("tests/fixtures/{name}.pth")), &out, &options).unwrap();
    out
}

fn check(name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let package = convert(name, dir.path());
    let manifest = hrm_core::ModelPackage::load(&package).unwrap().manifest;
    let network =
        Network::load(&package.join("hrm-model.toml"), &package.join("model.safetensors"), &Device::Cpu, DType::F32)
            .unwrap();
    assert_eq!(network.outputs(), 22);
    assert_eq!(network.input_size(), (manifest.input.height, manifest.input.width));
    let mut photos: Vec<PathBuf> =
        std::fs::read_dir(repo().join("../shared/images")).unwrap().map(|e| e.unwrap().path()).collect();
    photos.sort();
    assert_eq!(photos.len(), 6);
    let values = 3 * manifest.input.width * manifest.input.height;
    let mut batch = vec![0f32; values * photos.len()];
    for (photo, out) in photos.iter().zip(batch.chunks_exact_mut(values)) {
        let image = hrm_core::image::decode_file(photo).unwrap();
        hrm_core::preprocess::preprocess_into(&image, &manifest.input, out);
    }
    let together = network.run(&batch, photos.len()).unwrap();
    assert_eq!(together.len(), 22 * photos.len());
    let reference = &expected()["fixtures"][name]["probabilities"];
    let mut worst = 0f64;
    for (i, photo) in photos.iter().enumerate() {
        let alone = network.run(&batch[i * values..][..values], 1).unwrap();
        let want = reference[photo.file_name().unwrap().to_str().unwrap()].as_array().unwrap();
        assert_eq!(want.len(), 22);
        for (a, want) in want.iter().enumerate() {
            let want = want.as_f64().unwrap();
            for score in [alone[a], together[i * 22 + a]] {
                let got = match manifest.output {
                    OutputKind::Logits => 1.0 / (1.0 + (-score as f64).exp()),
                    OutputKind::Probabilities => score as f64,
                };
                worst = worst.max((got - want).abs());
                assert!((got - want).abs() <= TOLERANCE, "{name} {photo:?} AU {a}: candle {got}, PyTorch {want}");
            }
        }
    }
    eprintln!("{name} on candle (cpu): max |candle - PyTorch| = {worst:.2e} over {} values", 2 * 22 * photos.len());
}

#[test]
fn mae_face_with_global_pooling_matches_pytorch() {
    check("mae_face_gap");
}

#[test]
fn mae_face_with_the_cls_token_matches_pytorch() {
    check("mae_face_cls");
}

#[test]
fn fmae_iat_matches_pytorch() {
    check("fmae_iat");
}

#[test]
fn torchvision_bottleneck_resnet_matches_pytorch() {
    check("resnet_bottleneck");
}

#[test]
fn torchvision_basic_resnet_matches_pytorch() {
    check("resnet_basic");
}

#[test]
fn me_graphau_with_each_metric_matches_pytorch() {
    check("megraphau_resnet");
    check("megraphau_cosine");
    check("megraphau_l1");
    check("megraphau_swin");
    check("megraphau_ties");
}

#[test]
fn emofan_matches_pytorch() {
    check("emofan");
}

#[test]
fn a_package_of_an_unknown_kind_or_lacking_a_tensor_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let package = convert("resnet_basic", dir.path());
    let manifest = package.join("hrm-model.toml");
    let weights = package.join("model.safetensors");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, text.replace("kind = \"resnet\"", "kind = \"swin\"")).unwrap();
    let err = Network::load(&broken, &weights, &Device::Cpu, DType::F32).err().unwrap();
    assert!(err.contains("broken.toml") && err.contains("\"swin\""), "{err}");
    std::fs::write(&broken, text.replace("layers = [2, 1, 1, 1]", "layers = [3, 1, 1, 1]")).unwrap();
    let err = Network::load(&broken, &weights, &Device::Cpu, DType::F32).err().unwrap();
    assert!(err.contains("no tensor `layer1.2.conv1.weight`"), "{err}");
    std::fs::write(&broken, text.replace("widths = [8, 16, 32, 64]", "widths = [8, 16, 32, 65]")).unwrap();
    let err = Network::load(&broken, &weights, &Device::Cpu, DType::F32).err().unwrap();
    assert!(err.contains("layer4.0.conv1.weight") && err.contains("expected [65"), "{err}");
}
