//! A `mediapipe-blendshapes` manifest is checked as strictly as an AU classifier's: the files its
//! kind needs, its architecture and framing, a square RGB crop; and an AU classifier may not
//! borrow its framing.

use hrm_core::Manifest;
use std::path::Path;

fn builtin() -> String {
    hrm_models::MEDIAPIPE_MANIFEST.to_string()
}

fn refused(text: &str, needle: &str) {
    let err = Manifest::parse(text, Path::new("m.toml")).err().unwrap_or_else(|| panic!("accepted:\n{text}"));
    let err = err.to_string();
    assert!(err.contains(needle) && err.contains("m.toml"), "expected {needle:?} in {err}");
}

#[test]
fn the_built_in_manifest_parses() {
    let manifest = Manifest::parse(&builtin(), Path::new("m.toml")).unwrap();
    assert_eq!(manifest.aus.len(), 22);
    assert_eq!(manifest.files.len(), 4);
}

#[test]
fn mediapipe_manifests_that_do_not_describe_the_networks_are_refused() {
    let text = builtin();
    let cases = [
        (text.replace("[files.geometry]", "[files.other]"), "files.geometry"),
        (text.replace("kind = \"mediapipe\"", "kind = \"resnet\""), "architecture"),
        (text.replace("framing = \"face-mesh\"", "framing = \"keypoints\""), "input.framing"),
        (text.replace("layout = \"nhwc\"", "layout = \"nchw\""), "input.layout"),
        (text.replace("height = 256", "height = 192"), "square"),
        (text.replace("channel_order = \"rgb\"", "channel_order = \"bgr\""), "input.channel_order"),
    ];
    for (text, needle) in &cases {
        refused(text, needle);
    }
    assert_eq!(cases.len(), 6);
}

#[test]
fn an_au_classifier_may_not_frame_like_the_mesh() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/packages/resnet_basic/hrm-model.toml");
    let text = std::fs::read_to_string(path).unwrap();
    assert!(Manifest::parse(&text, Path::new("m.toml")).is_ok());
    refused(&text.replace("framing = \"keypoints\"", "framing = \"face-mesh\""), "input.framing");
}

#[test]
fn the_built_in_manifest_hashes_what_sha256sums_lists() {
    let manifest = Manifest::parse(&builtin(), Path::new("m.toml")).unwrap();
    for file in manifest.files.values() {
        let listed = hrm_models::expected_sha256(&format!("mediapipe/{}", file.name));
        assert_eq!(listed, Some(file.sha256.as_str()), "{}", file.name);
    }
    assert_eq!(manifest.files.len(), hrm_models::MEDIAPIPE_FILES.len());
}
