//! Paths and helpers shared by the CLI tests. The photographs and models are read from
//! `../shared` beside the repository; the fixtures from `tests/fixtures`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

pub fn fixtures() -> PathBuf {
    repo().join("tests/fixtures")
}

pub fn shared_images() -> Vec<PathBuf> {
    let dir = repo().join("../shared/images");
    let mut images: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (the shared photographs must sit beside the repository)", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    images.sort();
    assert_eq!(images.len(), 6, "the six shared photographs");
    images
}

pub fn expected() -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

pub fn hrm(args: &[&str]) -> Output {
    hrm_command().args(args).output().expect("the hrm binary runs")
}

/// `hrm`, finding first the plugins cargo built for these tests (the ONNX Runtime plugin, a
/// dev-dependency, is rebuilt into target/*/deps/ whenever it changes; the copy beside `hrm` is
/// only refreshed by `cargo build`).
pub fn hrm_command() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_hrm"));
    command.env("HRM_PLUGIN_PATH", built_plugins());
    command
}

/// target/*/deps/, where cargo builds the plugins the tests depend on.
pub fn built_plugins() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_hrm")).parent().unwrap().join("deps")
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Converts a committed fixture checkpoint with the arguments `make_fixtures.py` recorded, marked
/// as a random-weight fixture.
pub fn convert_fixture(name: &str, out: &Path) {
    let expected = expected();
    let extra: Vec<String> = expected["fixtures"][name]["convert_args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let checkpoint = fixtures().join(format!("{name}.pth"));
    let mut args = vec!["convert", path(&checkpoint), "--out", path(out), "--fixture"];
    args.extend(extra.iter().map(String::as_str));
    let output = hrm(&args);
    assert!(output.status.success(), "hrm convert {name}: {}", stderr(&output));
}
