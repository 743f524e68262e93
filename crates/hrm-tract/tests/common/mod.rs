//! What the hrm-tract tests share: the repository, `../shared` beside it, and models assembled
//! from a configuration by hrm-core's runtime, as every caller assembles them.
#![allow(dead_code)] // each test uses some of these

use hrm_core::face::YunetDetector;
use hrm_core::{Config, Runtime};
use std::path::{Path, PathBuf};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn shared_model(name: &str) -> PathBuf {
    repo().join("../shared/models").join(name)
}

/// YuNet from `../shared/models` on tract with 2 threads, at each frame's size or letterboxed.
pub fn yunet(model: &str, letterbox: Option<[usize; 2]>) -> YunetDetector {
    let mut config = Config { threads: 2, ..Config::default() };
    config.detector.model = Some(shared_model(model));
    config.detector.letterbox = letterbox;
    hrm_core::runtime::face_detector_alone(&config, &hrm_tract::registry()).unwrap().0
}

/// The shipped ResNet fixture package with YuNet, as `configs/hrm-package.toml` would load them.
pub fn runtime(batch_size: usize) -> Runtime {
    let mut config = Config { batch_size, threads: 2, ..Config::default() };
    config.model = Some(repo().join("tests/fixtures/packages/resnet_basic"));
    config.detector.model = Some(shared_model("yunet_s_640_640.onnx"));
    Runtime::load(config, &hrm_tract::registry()).unwrap()
}
