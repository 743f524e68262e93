//! Bad input gets a clear error naming the problem, and a non-zero exit; nothing is half-written.

mod common;
use common::*;
use hrm_core::manifest::{Architecture, GraphMetric, ResnetBlock};
use hrm_testkit::{emofan, from_shapes, me_graphau_resnet50, resnet50, vit, write_checkpoint, Entry, Init, Wrapper};
use std::path::Path;

fn convert_fails(checkpoint: &Path, needles: &[&str]) {
    let out = checkpoint.with_extension("pkg");
    let output = hrm(&["convert", path(checkpoint), "--out", path(&out)]);
    let text = stderr(&output);
    assert!(!output.status.success(), "expected a failure, got success: {text}");
    for needle in needles {
        assert!(text.contains(needle), "the error should mention {needle:?}: {text}");
    }
    assert!(!out.exists(), "a failed conversion leaves no package behind");
    let leftovers: Vec<_> = std::fs::read_dir(checkpoint.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("converting"))
        .collect();
    assert!(leftovers.is_empty(), "no staging folder is left behind");
}

fn small_vit() -> Vec<Entry> {
    vit(64, 1, 16, 224, 22, true)
}

#[test]
fn a_truncated_checkpoint_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixtures().join("mae_face_cls.pth")).unwrap();
    let truncated = dir.path().join("truncated.pth");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    convert_fails(&truncated, &["truncated.pth", "not a readable PyTorch checkpoint"]);
}

#[test]
fn a_corrupt_pickle_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("corrupt.pth");
    write_checkpoint(&checkpoint, &small_vit(), Wrapper::Model, 1).unwrap();
    // Overwrite the pickle's opcodes inside the (stored, uncompressed) zip entry.
    let mut bytes = std::fs::read(&checkpoint).unwrap();
    let at = bytes.windows(8).position(|w| w == b"data.pkl").unwrap() + 8 + 30;
    bytes[at..at + 16].fill(0xFE);
    std::fs::write(&checkpoint, &bytes).unwrap();
    convert_fails(&checkpoint, &["corrupt.pth", "not a readable PyTorch checkpoint"]);
}

#[test]
fn a_file_that_is_not_a_checkpoint_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("notes.pth");
    std::fs::write(&checkpoint, "these are not weights").unwrap();
    convert_fails(&checkpoint, &["notes.pth", "not a zip archive"]);
}

#[test]
fn recognised_but_unsupported_architectures_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[&str], &str); 2] = [
        ("stage2.pth", &["backbone.conv1.weight", "head.main_class_linears.0.fc.weight"], "ME-GraphAU stage 2"),
        (
            "predictor_11.pth",
            &["conv1x1_input_emo_2.weight", "emo_net_2.0.bn1.weight", "emo_fc_2.0.weight"],
            "only the AU head",
        ),
    ];
    for (file, names, architecture) in cases {
        let entries: Vec<Entry> =
            names.iter().map(|n| Entry { name: n.to_string(), shape: vec![4, 4], init: Init::Uniform(1.0) }).collect();
        let checkpoint = dir.path().join(file);
        write_checkpoint(&checkpoint, &entries, Wrapper::StateDictWithModulePrefix, 1).unwrap();
        convert_fails(&checkpoint, &[file, architecture, "not yet supported"]);
    }
}

#[test]
fn unknown_missing_and_misshaped_tensors_are_all_listed() {
    let dir = tempfile::tempdir().unwrap();
    let mut entries = small_vit();
    entries.retain(|e| e.name != "blocks.0.attn.proj.bias");
    entries.iter_mut().find(|e| e.name == "blocks.0.mlp.fc2.bias").unwrap().shape = vec![65];
    entries.push(Entry { name: "blocks.0.ls1.gamma".into(), shape: vec![64], init: Init::Constant(1.0) });
    let checkpoint = dir.path().join("loose.pth");
    write_checkpoint(&checkpoint, &entries, Wrapper::Model, 1).unwrap();
    convert_fails(
        &checkpoint,
        &[
            "loose.pth",
            "missing: blocks.0.attn.proj.bias",
            "mis-shaped: blocks.0.mlp.fc2.bias",
            "unknown: blocks.0.ls1.gamma",
        ],
    );
}

#[test]
fn a_cls_checkpoint_with_an_extra_fc_norm_is_refused_not_guessed() {
    // Both `norm` and `fc_norm`: one of them would be silently ignored by strict=False.
    let dir = tempfile::tempdir().unwrap();
    let mut entries = small_vit();
    entries.push(Entry { name: "norm.weight".into(), shape: vec![64], init: Init::Constant(1.0) });
    let checkpoint = dir.path().join("both_norms.pth");
    write_checkpoint(&checkpoint, &entries, Wrapper::Model, 1).unwrap();
    convert_fails(&checkpoint, &["unknown: norm.weight"]);
}

#[test]
fn a_classifier_that_is_not_an_hrm_au_set_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("imagenet.pth");
    write_checkpoint(&checkpoint, &vit(64, 1, 16, 224, 1000, false), Wrapper::Model, 1).unwrap();
    convert_fails(&checkpoint, &["1000 outputs", "22"]);
}

#[test]
fn a_package_with_a_wrong_hash_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let package = dir.path().join("pkg");
    convert_fixture("resnet_basic", &package);
    let weights = package.join("model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&weights, bytes).unwrap();
    for args in [
        vec!["info", path(&package)],
        vec!["detect", "--aligned", "--model", path(&package), path(&shared_images()[0])],
    ] {
        let output = hrm(&args);
        let text = stderr(&output);
        assert!(!output.status.success());
        assert!(text.contains("model.safetensors") && text.contains("sha256 mismatch"), "{text}");
    }
}

#[test]
fn a_manifest_with_a_bad_field_names_the_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let package = dir.path().join("pkg");
    convert_fixture("resnet_basic", &package);
    let manifest = package.join("hrm-model.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace("AU12 = 0.5", "AU12 = 1.5")).unwrap();
    let output = hrm(&["info", path(&package)]);
    let text = stderr(&output);
    assert!(!output.status.success());
    assert!(
        text.contains("hrm-model.toml") && text.contains("thresholds.AU12") && text.contains("found 1.5"),
        "{text}"
    );
}

#[test]
fn a_config_with_an_unknown_key_names_the_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mine.toml");
    std::fs::write(&config, "backend = \"tract\"\nbatch_sise = 4\n").unwrap();
    let output = hrm(&["detect", "--aligned", "--config", path(&config), path(&shared_images()[0])]);
    let text = stderr(&output);
    assert!(!output.status.success());
    assert!(text.contains("mine.toml") && text.contains("batch_sise"), "{text}");
}

#[test]
fn a_folder_scan_skips_non_images_and_reports_broken_ones() {
    let dir = tempfile::tempdir().unwrap();
    let package = dir.path().join("pkg");
    convert_fixture("resnet_basic", &package);
    let inputs = dir.path().join("inputs");
    std::fs::create_dir_all(inputs.join("nested")).unwrap();
    let images = shared_images();
    std::fs::copy(&images[0], inputs.join("a.jpg")).unwrap();
    std::fs::copy(&images[1], inputs.join("nested/c.jpg")).unwrap();
    std::fs::write(inputs.join("b.txt"), "not an image").unwrap();
    let jpeg = std::fs::read(&images[2]).unwrap();
    std::fs::write(inputs.join("broken.jpg"), &jpeg[..jpeg.len() / 3]).unwrap();
    let out = dir.path().join("out.jsonl");

    let output = hrm(&["detect", "--aligned", "--model", path(&package), "--output", path(&out), path(&inputs)]);
    let text = stderr(&output);
    assert!(!output.status.success(), "failures give a non-zero exit");
    assert!(text.contains("1 of 3 inputs failed"), "{text}");
    assert!(!text.contains("b.txt"), "a file without an image extension is skipped, not an error: {text}");
    assert!(text.contains("1 files without an image extension skipped"), "{text}");
    assert!(text.contains("hrm: 3 images, 2 faces, 1 failed"), "the summary line: {text}");
    assert!(text.contains("broken.jpg") && text.contains("truncated"), "{text}");
    let written = std::fs::read_to_string(&out).unwrap();
    let files: Vec<String> = written
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["file"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(files.len(), 2, "the readable images are all written: {written}");
    assert!(files[0].ends_with("a.jpg") && files[1].ends_with("nested/c.jpg"), "sorted, recursive: {files:?}");

    // Named on the command line, a non-image is an error.
    let output = hrm(&["detect", "--aligned", "--model", path(&package), path(&inputs.join("b.txt"))]);
    let text = stderr(&output);
    assert!(!output.status.success());
    assert!(text.contains("b.txt") && text.contains("not a recognised image format"), "{text}");
}

#[test]
fn full_size_vit_b16_resnet50_me_graphau_and_emofan_convert_and_run_with_the_right_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "vit_b16.pth",
            vit(768, 12, 16, 224, 22, true),
            Wrapper::Model,
            "ViT/16: width 768, depth 12, 12 heads, MLP 3072",
        ),
        (
            "resnet50.pth",
            resnet50(22),
            Wrapper::TopLevel,
            "ResNet-50 (bottleneck blocks [3, 4, 6, 3], widths [64, 128, 256, 512]",
        ),
    ];
    let cases = cases.into_iter().chain([
        (
            "me_graphau_r50.pth",
            me_graphau_resnet50(22),
            Wrapper::StateDictWithModulePrefix,
            "ME-GraphAU (MEFARG, ANFL head) on a ResNet-50 (bottleneck blocks [3, 4, 6, 3]",
        ),
        (
            "emofan.pth",
            emofan(22),
            Wrapper::TopLevel,
            "EmoFAN: FAN with 2 hourglass stacks (depth 4, 256 channels), EmoNet head with 4 blocks",
        ),
    ]);
    for (file, entries, wrapper, description) in cases {
        let checkpoint = dir.path().join(file);
        write_checkpoint(&checkpoint, &entries, wrapper, 7).unwrap();
        let package = dir.path().join(file).with_extension("pkg");
        let output = hrm(&["convert", path(&checkpoint), "--out", path(&package)]);
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(stderr(&output).contains(description), "{}", stderr(&output));
        // Two faces of different sizes in one run, on tract and, for the new families, on candle
        // (whose networks are written independently of the ONNX graph): the same numbers.
        let images = shared_images();
        let backends: &[&str] = if file.starts_with("me_graphau") || file.starts_with("emofan") {
            &["tract", "candle"]
        } else {
            &["tract"]
        };
        let mut answers = Vec::new();
        for backend in backends {
            let (a, b) = (path(&images[0]), path(&images[4]));
            let output = hrm(&["detect", "--aligned", "--backend", backend, "--model", path(&package), a, b]);
            assert!(output.status.success(), "{}", stderr(&output));
            let rows: Vec<serde_json::Value> =
                String::from_utf8(output.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
            assert_eq!(rows.len(), 2, "{file}: one row per face");
            let values: Vec<f64> = rows
                .iter()
                .flat_map(|row| row["aus"].as_object().unwrap().values().map(|p| p.as_f64().unwrap()))
                .collect();
            assert_eq!(values.len(), 44, "{file}: 22 AUs a face");
            assert!(values.iter().all(|p| (0.0..=1.0).contains(p)), "{file}: {values:?}");
            answers.push(values);
        }
        for other in &answers[1..] {
            let worst = answers[0].iter().zip(other).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(worst <= 1e-4, "{file}: tract and candle differ by {worst}");
        }
    }
}

/// ME-GraphAU (on a ResNet and on a Swin) and EmoFAN load as strictly as the others: a missing,
/// a re-shaped and an extra tensor are all listed, and nothing is written.
#[test]
fn me_graphau_swin_and_emofan_with_wrong_tensors_are_refused_with_the_list() {
    let dir = tempfile::tempdir().unwrap();
    let graph = Architecture::MeGraphAu {
        backbone: Box::new(Architecture::Resnet {
            block: ResnetBlock::Basic,
            layers: vec![1, 1],
            widths: vec![8, 16],
            out_channels: vec![8, 16],
            stem_width: 8,
            groups: 1,
        }),
        features: 4,
        neighbors: 4,
        metric: GraphMetric::Dots,
    };
    let swin = Architecture::MeGraphAu {
        backbone: Box::new(Architecture::Swin {
            width: 8,
            depths: vec![2, 1, 1, 1],
            heads: vec![1, 1, 2, 2],
            window: 7,
            patch_size: 4,
        }),
        features: 32,
        neighbors: 4,
        metric: GraphMetric::Dots,
    };
    let emofan = small_emofan();
    let cases = [
        (
            "graph.pth",
            graph.tensors(22, 224, 224),
            ["head.class_linears.3.fc.weight", "head.gnn.bnv.running_var", "head.gnn.W.weight"],
            Wrapper::StateDictWithModulePrefix,
        ),
        (
            "swin.pth",
            swin.tensors(22, 224, 224),
            [
                "backbone.layers.1.downsample.reduction.weight",
                "backbone.layers.0.blocks.1.attn.relative_position_bias_table",
                "backbone.absolute_pos_embed",
            ],
            Wrapper::StateDictWithModulePrefix,
        ),
        (
            "emofan.pth",
            emofan.tensors(22, 256, 256),
            ["feature.fan.m1.b2_plus_1.conv2.weight", "predictor.emo_fc_2.3.bias", "predictor.emo_fc_2.4.bias"],
            Wrapper::TopLevel,
        ),
    ];
    for (file, tensors, [missing, misshaped, unknown], wrapper) in cases {
        let mut entries = from_shapes(&tensors);
        entries.retain(|e| e.name != missing);
        entries.iter_mut().find(|e| e.name == misshaped).unwrap().shape = vec![23];
        entries.push(Entry { name: unknown.into(), shape: vec![22], init: Init::Constant(1.0) });
        let checkpoint = dir.path().join(file);
        write_checkpoint(&checkpoint, &entries, wrapper, 1).unwrap();
        let out = dir.path().join(file).with_extension("pkg");
        let output = hrm(&["convert", path(&checkpoint), "--out", path(&out)]);
        let text = stderr(&output);
        assert!(!output.status.success(), "{file}: {text}");
        for expected in [
            format!("missing: {missing}"),
            format!("mis-shaped: {misshaped} is [23]"),
            format!("unknown: {unknown} [22]"),
        ] {
            assert!(text.contains(&expected), "{file}: `{expected}` in {text}");
        }
        assert_eq!(text.matches("\n  ").count(), 3, "{file}: exactly the three problems: {text}");
        assert!(!out.exists(), "{file}: nothing written");
    }
}

/// EmoFAN's other layouts: the flat names of `face-analysis/emonet` (FAN's modules beside the
/// head's) and `FAN_`'s `fan.*` give the same package, and the same AUs, as `EmoNet`'s own.
#[test]
fn emofan_in_its_flat_and_fan_layouts_converts_as_emonets_own() {
    let dir = tempfile::tempdir().unwrap();
    let emofan = small_emofan();
    let image = &shared_images()[0];
    type Rename = fn(&str) -> String;
    let layouts: [(&str, Rename); 3] = [
        ("emonet", |name| name.to_string()),
        ("flat", |name| name.replace("feature.fan.", "").replace("predictor.", "")),
        ("fan", |name| name.replace("feature.fan.", "fan.")),
    ];
    let mut answers = Vec::new();
    for (layout, rename) in layouts {
        let mut entries = from_shapes(&emofan.tensors(22, 256, 256));
        entries.iter_mut().for_each(|e| e.name = rename(&e.name));
        let checkpoint = dir.path().join(format!("{layout}.pth"));
        write_checkpoint(&checkpoint, &entries, Wrapper::TopLevel, 3).unwrap();
        let package = dir.path().join(layout);
        let output = hrm(&["convert", path(&checkpoint), "--out", path(&package)]);
        assert!(output.status.success(), "{layout}: {}", stderr(&output));
        assert_eq!(stderr(&output).contains("renamed"), layout != "emonet", "{layout}: {}", stderr(&output));
        let output = hrm(&["detect", "--aligned", "--model", path(&package), path(image)]);
        assert!(output.status.success(), "{layout}: {}", stderr(&output));
        let row: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let values: Vec<f64> = row["aus"].as_object().unwrap().values().map(|p| p.as_f64().unwrap()).collect();
        assert_eq!(values.len(), 22, "{layout}");
        answers.push(values);
    }
    assert!(answers[0].iter().any(|&p| p != answers[0][0]), "the AUs differ from one another: {answers:?}");
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
}

/// A state dict that mixes EmoFAN's layouts names one tensor twice: refused, both names given.
#[test]
fn emofan_with_one_tensor_under_two_layouts_names_both() {
    let dir = tempfile::tempdir().unwrap();
    let mut entries = from_shapes(&small_emofan().tensors(22, 256, 256));
    entries.push(Entry { name: "conv1.weight".into(), shape: vec![8, 3, 7, 7], init: Init::Constant(1.0) });
    let checkpoint = dir.path().join("mixed.pth");
    write_checkpoint(&checkpoint, &entries, Wrapper::TopLevel, 1).unwrap();
    convert_fails(
        &checkpoint,
        &["mixed.pth", "duplicate: ", "feature.fan.conv1.weight and conv1.weight are both feature.fan.conv1.weight"],
    );
}

/// EmoFAN at small widths, two stacks of depth-2 hourglasses.
fn small_emofan() -> Architecture {
    Architecture::EmoFan {
        stem_width: 8,
        mid_width: 16,
        features: 16,
        stacks: 2,
        hourglass_depth: 2,
        landmarks: 4,
        head_width: 8,
        head_blocks: 4,
        head_hidden: 8,
    }
}
