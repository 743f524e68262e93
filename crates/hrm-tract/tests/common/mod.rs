//! Paths shared by the hrm-tract tests: the repository, and `../shared` beside it.

use std::path::{Path, PathBuf};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
