//! `hrm convert` + `hrm detect --aligned` against PyTorch: the probabilities written by
//! `tools/make_fixtures.py` (timm / torchvision models, HRM's pre-processing) on the shared
//! photographs, end to end from the image files; on tract, and on ONNX Runtime through its plugin
//! (`--backend onnxruntime`, which needs ORT_DYLIB_PATH: `eval "$(tools/setup-onnxruntime.sh)"`),
//! whose answers are also held to tract's.

mod common;
use common::*;

const TOLERANCE: f64 = 1e-4;

fn check_fixture(name: &str) {
    check_fixture_in_batches(name, 1, "tract");
}

/// On ONNX Runtime: within the tolerance of PyTorch, and of tract.
fn check_fixture_on_onnxruntime(name: &str, batch_size: usize) {
    let on_ort = check_fixture_in_batches(name, batch_size, "onnxruntime");
    let on_tract = check_fixture_in_batches(name, batch_size, "tract");
    assert_eq!(on_ort.len(), on_tract.len());
    let mut worst = 0f64;
    for (a, b) in on_ort.iter().zip(&on_tract) {
        worst = worst.max((a - b).abs());
        assert!((a - b).abs() <= TOLERANCE, "{name}: ONNX Runtime {a}, tract {b}");
    }
    eprintln!("{name}: max |onnxruntime - tract| = {worst:.2e}");
}

/// `hrm detect --aligned` on `backend` with `batch_size` faces per inference call, against
/// PyTorch's probabilities (which are PyTorch's own per image: in eval mode its outputs do not
/// depend on the batch). Gives every probability, image by image.
fn check_fixture_in_batches(name: &str, batch_size: usize, backend: &str) -> Vec<f64> {
    let dir = tempfile::tempdir().unwrap();
    let package = dir.path().join(name);
    convert_fixture(name, &package);
    let config = dir.path().join("batched.toml");
    std::fs::write(&config, format!("batch_size = {batch_size}\n[onnxruntime]\nfallback = false\n")).unwrap();
    let images = shared_images();
    let mut args = vec![
        "detect",
        "--aligned",
        "--format",
        "json",
        "--backend",
        backend,
        "--config",
        path(&config),
        "--model",
        path(&package),
    ];
    args.extend(images.iter().map(|p| path(p)));
    let output = hrm(&args);
    assert!(output.status.success(), "hrm detect --backend {backend}: {}", stderr(&output));

    let expected = expected();
    let reference = &expected["fixtures"][name]["probabilities"];
    let lines: Vec<serde_json::Value> =
        String::from_utf8(output.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), images.len(), "one line per aligned face");
    let mut worst = 0f64;
    let mut all = Vec::new();
    for (line, image) in lines.iter().zip(&images) {
        assert_eq!(line["file"], path(image));
        assert_eq!(line["face"], 0);
        let aus = line["aus"].as_object().unwrap();
        let ids: Vec<&str> = aus.keys().map(String::as_str).collect();
        assert_eq!(ids[..3], ["AU1", "AU2", "AU4"]);
        assert_eq!(ids.len(), 22);
        let file_name = image.file_name().unwrap().to_str().unwrap();
        let want = reference[file_name].as_array().unwrap();
        assert_eq!(want.len(), aus.len(), "{name} {file_name}: PyTorch's AUs against hrm's");
        for ((id, got), want) in aus.iter().zip(want) {
            let (got, want) = (got.as_f64().unwrap(), want.as_f64().unwrap());
            all.push(got);
            worst = worst.max((got - want).abs());
            assert!((got - want).abs() <= TOLERANCE, "{name} {file_name} {id}: hrm {got}, PyTorch {want}");
            assert_eq!(line["present"][id].as_bool().unwrap(), got >= 0.5, "{id} presence follows the 0.5 threshold");
        }
    }
    eprintln!("{name} on {backend}: max |hrm - PyTorch| = {worst:.2e}");
    all
}

#[test]
fn mae_face_with_global_pooling_matches_pytorch() {
    check_fixture("mae_face_gap");
}

/// A ViT runs its batches whole on tract (a ResNet runs image by image): 6 faces at batch 4 are a
/// batch of 4 and one of 2, and at batch 6 one batch of 6.
#[test]
fn mae_face_in_batches_of_4_and_6_matches_pytorch() {
    check_fixture_in_batches("mae_face_gap", 4, "tract");
    check_fixture_in_batches("mae_face_gap", 6, "tract");
}

/// Every fixture `tools/make_fixtures.py` writes.
const FIXTURES: [&str; 11] = [
    "mae_face_gap",
    "mae_face_cls",
    "fmae_iat",
    "resnet_bottleneck",
    "resnet_basic",
    "megraphau_resnet",
    "megraphau_cosine",
    "megraphau_l1",
    "megraphau_swin",
    "megraphau_ties",
    "emofan",
];

fn every_fixture_is_listed() {
    assert_eq!(expected()["fixtures"].as_object().unwrap().len(), FIXTURES.len(), "every fixture is tested");
}

/// Every fixture through the ONNX Runtime plugin, one face per run and batches of 4 and 2.
#[test]
fn every_fixture_on_onnxruntime_matches_pytorch_and_tract() {
    every_fixture_is_listed();
    for name in FIXTURES {
        check_fixture_on_onnxruntime(name, 1);
    }
    check_fixture_on_onnxruntime("mae_face_gap", 4);
    check_fixture_on_onnxruntime("resnet_basic", 4);
    check_fixture_on_onnxruntime("megraphau_resnet", 4);
    check_fixture_on_onnxruntime("megraphau_swin", 4);
    check_fixture_on_onnxruntime("emofan", 4);
}

/// Every fixture through the candle plugin (the networks written in candle, from the package's
/// safetensors, on the CPU), one face per run and in batches.
#[test]
fn every_fixture_on_candle_matches_pytorch() {
    every_fixture_is_listed();
    for name in FIXTURES {
        check_fixture_in_batches(name, 1, "candle");
    }
    check_fixture_in_batches("mae_face_gap", 4, "candle");
    check_fixture_in_batches("resnet_bottleneck", 6, "candle");
    check_fixture_in_batches("megraphau_cosine", 6, "candle");
    check_fixture_in_batches("megraphau_swin", 4, "candle");
    check_fixture_in_batches("emofan", 4, "candle");
}

#[test]
fn mae_face_with_the_cls_token_matches_pytorch() {
    check_fixture("mae_face_cls");
}

#[test]
fn fmae_iat_with_args_optimizer_and_id_head_matches_pytorch() {
    check_fixture("fmae_iat");
}

#[test]
fn torchvision_bottleneck_resnet_matches_pytorch() {
    check_fixture("resnet_bottleneck");
}

#[test]
fn torchvision_basic_resnet_from_a_dataparallel_state_dict_matches_pytorch() {
    check_fixture("resnet_basic");
}

/// ME-GraphAU as `train_stage1.py` saves it, ResNet backbone, dots metric, K = 4; its scores
/// are cosine similarities, thresholded at 0.5 without a sigmoid (checked per AU above). (tract
/// runs convolutional packages image by image; batched graphs run on ONNX Runtime and candle.)
#[test]
fn me_graphau_from_the_authors_layout_matches_pytorch() {
    check_fixture("megraphau_resnet");
}

/// Three AUs share AU1's class_linears, so their nodes are equal and the graph's rows hold exact
/// ties; in 37 of the 132 rows the ties straddle the K-th value and PyTorch's `topk` + `>=` keeps
/// up to 7 neighbours instead of 4.
#[test]
fn me_graphau_keeps_every_node_tied_with_the_kth_as_pytorch_does() {
    check_fixture("megraphau_ties");
}

/// The cosine metric and K = 3 read from the checkpoint's saved `args`; L1 and K = 5 given as
/// `--metric l1 --neighbors 5`.
#[test]
fn me_graphau_with_the_cosine_and_l1_metrics_matches_pytorch() {
    check_fixture("megraphau_cosine");
    check_fixture("megraphau_l1");
}

/// ME-GraphAU on the Swin backbone of the authors' `model/swin_transformer.py` (shifted windows
/// and their masks in three stages, one window in the last), its derived buffers in the
/// checkpoint as the authors' code saves them.
#[test]
fn me_graphau_on_a_swin_backbone_matches_pytorch() {
    check_fixture("megraphau_swin");
}

/// EmoFAN (FAN's two hourglass stacks and EmoNet's head) from a raw state dict, 256x256 input.
#[test]
fn emofan_from_a_raw_state_dict_matches_pytorch() {
    check_fixture("emofan");
}

#[test]
fn csv_output_has_the_hrm_demo_layout_and_a_probability_table() {
    let dir = tempfile::tempdir().unwrap();
    let package = dir.path().join("pkg");
    convert_fixture("mae_face_cls", &package);
    let images = shared_images();
    let csv = dir.path().join("predict.csv");
    let mut args = vec!["detect", "--aligned", "--format", "csv", "--output", path(&csv), "--model", path(&package)];
    args.extend(images.iter().map(|p| path(p)));
    let output = hrm(&args);
    assert!(output.status.success(), "{}", stderr(&output));

    let presence = std::fs::read_to_string(&csv).unwrap();
    let probabilities = std::fs::read_to_string(dir.path().join("predict_prob.csv")).unwrap();
    let mut rows = presence.lines();
    assert_eq!(rows.next().unwrap(), "frame,1,2,4,6,7,9,10,12,14,15,16,17,18,19,20,23,24,25,27,28,32,43");
    let mut prob_rows = probabilities.lines();
    assert!(prob_rows.next().unwrap().starts_with("file,frame,1,2,4,"));
    assert_eq!(presence.lines().count(), images.len() + 1, "a header and one row per image");
    assert_eq!(probabilities.lines().count(), images.len() + 1, "a header and one row per image");
    let expected = expected();
    for (index, (image, (row, prob_row))) in images.iter().zip(rows.zip(prob_rows)).enumerate() {
        let flags: Vec<&str> = row.split(',').collect();
        // "45-m7-di-ph.jpg" -> frame 7: the last digits in the name, as the HRM demo reads frames;
        // "multi_face.jpg" has none and gets its 1-based position.
        let stem = image.file_stem().unwrap().to_str().unwrap();
        let digits: String =
            stem.chars().rev().skip_while(|c| !c.is_ascii_digit()).take_while(char::is_ascii_digit).collect();
        let frame = if digits.is_empty() { (index + 1).to_string() } else { digits.chars().rev().collect() };
        assert_eq!(flags[0], frame);
        let want = &expected["fixtures"]["mae_face_cls"]["probabilities"][image.file_name().unwrap().to_str().unwrap()];
        let probs: Vec<f64> = prob_row.split(',').skip(2).map(|v| v.parse().unwrap()).collect();
        assert_eq!((flags.len(), probs.len()), (23, 22), "a frame column and 22 AUs");
        for (i, (flag, p)) in flags[1..].iter().zip(&probs).enumerate() {
            let want = want[i].as_f64().unwrap();
            assert!((p - want).abs() <= TOLERANCE);
            assert_eq!(*flag, if *p >= 0.5 { "1" } else { "0" });
        }
    }
}
