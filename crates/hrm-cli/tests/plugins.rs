//! The plugin host, through `hrm`: plugins written in C from include/hrm_plugin.h alone
//! (tests/plugins/test_plugin.c), one that works and one of each kind the host must refuse or
//! survive, found through HRM_PLUGIN_PATH beside the ONNX Runtime plugin found beside `hrm`.
//! Needs a C compiler (`cc`); a missing one fails the test.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use std::sync::OnceLock;

/// Each test plugin: its library file name and the macros it is built with.
const PLUGINS: [(&str, &[&str]); 8] = [
    ("libhrm_renamed.so", &[]),
    ("libhrm_constant.so", &[]),
    ("libhrm_failing.so", &["-DFAIL_RUN", "-DPLUGIN_NAME=\"failing\""]),
    ("libhrm_wrongabi.so", &["-DABI_VERSION=99", "-DPLUGIN_NAME=\"wrongabi\""]),
    ("libhrm_short.so", &["-DSHORT_TABLE", "-DPLUGIN_NAME=\"short\""]),
    ("libhrm_nulltable.so", &["-DNULL_TABLE"]),
    ("libhrm_noentry.so", &["-DNO_ENTRY"]),
    ("libhrm_tract.so", &["-DPLUGIN_NAME=\"tract\""]),
];

/// The folder the test plugins are built into, once.
fn plugin_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        for (file, defines) in PLUGINS {
            let output = Command::new("cc")
                .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-shared", "-fPIC", "-I"])
                .arg(repo().join("include"))
                .args(defines)
                .arg(repo().join("tests/plugins/test_plugin.c"))
                .arg("-o")
                .arg(dir.path().join(file))
                .output()
                .expect("cc runs (apt install gcc)");
            assert!(output.status.success(), "cc {file}: {}", stderr(&output));
        }
        dir
    })
    .path()
}

/// `hrm` with the test plugins first, then those cargo built.
fn hrm_with_plugins(args: &[&str]) -> Output {
    let path = std::env::join_paths([plugin_dir().to_path_buf(), built_plugins()]).unwrap();
    hrm_command().args(args).env("HRM_PLUGIN_PATH", path).output().expect("the hrm binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn file(name: &str) -> PathBuf {
    plugin_dir().canonicalize().unwrap().join(name)
}

#[test]
fn hrm_backends_lists_good_plugins_and_says_why_each_bad_one_is_refused() {
    let output = hrm_with_plugins(&["backends"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains(&format!("  constant       {}", file("libhrm_constant.so").display())), "{text}");
    assert!(text.contains("version 1.2.3-test"), "{text}");
    assert!(text.contains("cpu       available"), "{text}");
    assert!(text.contains("quantum   not available: no quantum computer here"), "{text}");
    assert!(text.contains(&format!("  failing        {}", file("libhrm_failing.so").display())), "{text}");
    // The ONNX Runtime plugin, beside hrm, is still found.
    assert!(text.contains("  onnxruntime    "), "{text}");
    let ours = format!("  {}", file("").display());
    let refused: Vec<&str> =
        text.lines().skip_while(|l| *l != "refused:").skip(1).filter(|l| l.starts_with(&ours)).collect();
    let expected = [
        ("libhrm_noentry.so", "not an hrm plugin: it exports no `hrm_plugin_entry` function"),
        ("libhrm_nulltable.so", "`hrm_plugin_entry` returned NULL instead of its function table"),
        // Its file says `renamed`, its table `constant`, which libhrm_constant.so took first.
        ("libhrm_renamed.so", "its backend name `constant` is already taken by the plugin "),
        ("libhrm_short.so", "its function table is 48 bytes, shorter than the 72 of plugin ABI version 1: the table is incomplete"),
        ("libhrm_tract.so", "its backend name `tract` is already taken by a built-in backend"),
        ("libhrm_wrongabi.so", "built for plugin ABI version 99, but this hrm speaks version 1: rebuild the plugin against this hrm's include/hrm_plugin.h"),
    ];
    assert_eq!(refused.len(), expected.len(), "one line per refused plugin:\n{text}");
    for (line, (name, reason)) in refused.iter().zip(expected) {
        let want = format!("  {}: {reason}", file(name).display());
        assert!(line.starts_with(&want), "{line:?} should start with {want:?}");
    }
}

#[test]
fn a_plugin_written_in_c_runs_an_au_model() {
    let dir = tempfile::tempdir().unwrap();
    let package = dir.path().join("resnet");
    convert_fixture("resnet_basic", &package);
    let images = shared_images();
    let mut args = vec!["detect", "--aligned", "--backend", "constant", "--model", path(&package)];
    args.extend(images.iter().map(|p| path(p)));
    let output = hrm_with_plugins(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    let lines: Vec<serde_json::Value> = stdout(&output).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), images.len());
    for line in &lines {
        let aus = line["aus"].as_object().unwrap();
        assert_eq!(aus.len(), 22);
        // The plugin's logits are 0: a probability of exactly 0.5 for every AU.
        assert!(aus.values().all(|p| p.as_f64() == Some(0.5)), "{line}");
    }
}

#[test]
fn a_plugin_that_fails_or_was_refused_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let package = dir.path().join("resnet");
    convert_fixture("resnet_basic", &package);
    let image = &shared_images()[0];
    let output =
        hrm_with_plugins(&["detect", "--aligned", "--backend", "failing", "--model", path(&package), path(image)]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("backend `failing`") && err.contains("the test plugin's run failed on purpose"), "{err}");
    assert!(err.contains("1 failed"), "the batch goes on and counts the failure: {err}");

    let output =
        hrm_with_plugins(&["detect", "--aligned", "--backend", "wrongabi", "--model", path(&package), path(image)]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("unknown backend `wrongabi`"), "{err}");
    assert!(err.contains("built for plugin ABI version 99"), "the refusal is named: {err}");

    // The plugin checks its options: a bad one names the key.
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "backend = \"constant\"\n[constant]\nbroken = true\n").unwrap();
    let output =
        hrm_with_plugins(&["detect", "--aligned", "--config", path(&config), "--model", path(&package), path(image)]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("backend `constant`") && err.contains("no option `broken`"), "{err}");
}
