//! Packages made by hrm 0.1 (manifest format 1: `au_set`, `[files.onnx]`) still load, read as
//! format 2. tests/fixtures/manifest_v1.toml is the shipped fixture's manifest as hrm 0.1 wrote it.

use hrm_core::manifest::{ModelKind, GRAPH_FILE, MANIFEST_FILE, WEIGHTS_FILE};
use hrm_core::{AuList, ModelPackage};
use std::path::Path;

#[test]
fn a_format_1_package_loads_as_format_2() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let shipped = repo.join("tests/fixtures/packages/resnet_basic");
    let dir = tempfile::tempdir().unwrap();
    for file in ["model.onnx", "model.safetensors"] {
        std::fs::copy(shipped.join(file), dir.path().join(file)).unwrap();
    }
    std::fs::copy(repo.join("tests/fixtures/manifest_v1.toml"), dir.path().join(MANIFEST_FILE)).unwrap();
    let package = ModelPackage::load(dir.path()).unwrap();
    let m = &package.manifest;
    assert_eq!((m.format, m.kind), (2, ModelKind::AuClassifier));
    assert_eq!(m.au_list(), AuList::hrm22());
    assert_eq!(m.aus.len(), 22);
    assert!(m.hints.one_image_per_run, "hrm 0.1 ran ResNets image by image");
    assert_eq!(m.files.keys().collect::<Vec<_>>(), [GRAPH_FILE, WEIGHTS_FILE]);
    assert_eq!(m.files[GRAPH_FILE].name, "model.onnx");

    // The upgrade keeps format 1's checks: an AU set it did not have is refused by name.
    let text = std::fs::read_to_string(dir.path().join(MANIFEST_FILE)).unwrap();
    std::fs::write(dir.path().join(MANIFEST_FILE), text.replace("au_set = \"hrm22\"", "au_set = \"hrm99\"")).unwrap();
    let err = ModelPackage::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("au_set") && err.contains("hrm99"), "{err}");
}
