//! The atypicality regressor: `hrm convert` of a checkpoint in the HRM authors' layout and
//! `hrm atypicality` on a predict.csv, against PyTorch's scores for every window
//! (tests/fixtures/atypicality.json, written by tools/make_atypicality_fixture.py); and the errors
//! for a short, incomplete or malformed predict.csv and a checkpoint that does not load strictly.

mod common;
use common::*;
use std::path::{Path, PathBuf};

fn converted(dir: &Path) -> PathBuf {
    let package = dir.join("atypicality");
    let checkpoint = fixtures().join("atypicality_gru.pth");
    let output = hrm(&["convert", path(&checkpoint), "--out", path(&package), "--fixture"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("the atypicality regressor: GRU (22 AUs -> 128, 2 layers) over 15 frames"));
    package
}

fn scores(text: &str) -> Vec<(String, f64)> {
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("frame,atypicality"));
    lines
        .map(|l| {
            let (frame, score) = l.split_once(',').unwrap();
            (frame.to_string(), score.parse().unwrap())
        })
        .collect()
}

#[test]
fn every_window_of_a_predict_csv_matches_pytorch() {
    let dir = tempfile::tempdir().unwrap();
    let package = converted(dir.path());
    let csv = fixtures().join("atypicality_predict.csv");
    let out = dir.path().join("scores.csv");
    let output = hrm(&["atypicality", "--model", path(&package), path(&csv), "--output", path(&out)]);
    assert!(output.status.success(), "{}", stderr(&output));
    let got = scores(&std::fs::read_to_string(&out).unwrap());
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("atypicality.json")).unwrap()).unwrap();
    let want = reference["scores"].as_array().unwrap();
    assert_eq!(got.len(), want.len());
    assert_eq!(got.len(), 40 - 15 + 1, "one score per window of 15 of the 40 frames");
    let mut worst = 0f64;
    for ((frame, score), want) in got.iter().zip(want) {
        assert_eq!(frame, &want["frame"].to_string(), "a window is labelled with its last frame");
        let diff = (score - want["atypicality"].as_f64().unwrap()).abs();
        worst = worst.max(diff);
        assert!(diff <= 1e-5, "frame {frame}: hrm {score}, PyTorch {}", want["atypicality"]);
    }
    eprintln!("max |hrm - PyTorch| = {worst:.2e} over {} windows", got.len());
    let output = hrm(&["info", path(&package)]);
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success() && text.contains("GRU (22 AUs -> 128, 2 layers) + linear, on the last of 15 frames")
    );
    // The same to stdout.
    let output = hrm(&["atypicality", "--model", path(&package), path(&csv)]);
    assert_eq!(scores(&String::from_utf8(output.stdout).unwrap()), got);
}

#[test]
fn a_short_incomplete_or_malformed_predict_csv_is_an_error_naming_the_place() {
    let dir = tempfile::tempdir().unwrap();
    let package = converted(dir.path());
    let text = std::fs::read_to_string(fixtures().join("atypicality_predict.csv")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let without_column = |line: &str| {
        let mut cells: Vec<&str> = line.split(',').collect();
        cells.remove(19); // the column `27` (AU2X)
        cells.join(",")
    };
    let mut bad_cell: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    bad_cell[4] = bad_cell[4].replacen(",0,", ",x,", 1);
    let cases = [
        ("short.csv", lines[..11].join("\n"), "10 frames, fewer than the 15 of one atypicality window".to_string()),
        (
            "column.csv",
            lines.iter().map(|l| without_column(l)).collect::<Vec<_>>().join("\n"),
            "no column `27` (AU2X)".into(),
        ),
        ("cell.csv", bad_cell.join("\n"), "line 5 (frame 9), column `".to_string()),
        ("header.csv", text.replacen("frame,", "time,", 1), "the first column is `time`, expected `frame`".into()),
    ];
    for (name, content, expected) in cases {
        let file = dir.path().join(name);
        std::fs::write(&file, content).unwrap();
        let output = hrm(&["atypicality", "--model", path(&package), path(&file)]);
        let err = stderr(&output);
        assert!(!output.status.success() && err.contains(path(&file)) && err.contains(&expected), "{name}: {err}");
    }
    // The package is not an AU model.
    let output = hrm(&["detect", "--aligned", "--model", path(&package), path(&shared_images()[0])]);
    let err = stderr(&output);
    assert!(!output.status.success() && err.contains("holds the atypicality regressor, not an AU model"), "{err}");
}

#[test]
fn a_gru_checkpoint_that_does_not_load_strictly_lists_every_problem() {
    use hrm_testkit::{write_checkpoint, Entry, Init, Wrapper};
    let dir = tempfile::tempdir().unwrap();
    let mut entries: Vec<Entry> = hrm_core::atypicality::tensor_shapes(22, 128, 2)
        .into_iter()
        .map(|(name, shape)| Entry { name, shape, init: Init::Uniform(0.1) })
        .collect();
    entries.retain(|e| e.name != "gru.bias_hh_l1");
    entries.iter_mut().find(|e| e.name == "fc.weight").unwrap().shape = vec![2, 128];
    entries.push(Entry { name: "attention.weight".into(), shape: vec![4], init: Init::Constant(1.0) });
    let checkpoint = dir.path().join("broken.pth");
    write_checkpoint(&checkpoint, &entries, Wrapper::StateDictWithModulePrefix, 1).unwrap();
    let output = hrm(&["convert", path(&checkpoint), "--out", path(&dir.path().join("out"))]);
    let err = stderr(&output);
    assert!(!output.status.success());
    for needle in [
        "the atypicality GRU (22 -> 128, 2 layers) state dict does not load strictly",
        "broken.pth",
        "missing: gru.bias_hh_l1",
        "mis-shaped: fc.weight has shape [2, 128], expected [1, 128]",
        "unknown: attention.weight",
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
    assert!(!dir.path().join("out").exists(), "nothing is left behind");
}
