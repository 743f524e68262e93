//! What the benchmarks share: paths, the configuration they run, and libhrm handles opened the way
//! a C caller opens them.

use hrm_ffi::*;
use std::path::{Path, PathBuf};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The configuration named on the command line (`-- CONFIG.toml`), else `configs/cpu.toml`.
pub fn config_path() -> PathBuf {
    std::env::args()
        .skip(1)
        .find(|a| a.ends_with(".toml"))
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("configs/cpu.toml"))
}

/// A runtime from a configuration file and one detector on it, freed (detector first) on drop.
pub struct Handles {
    pub runtime: *mut hrm_runtime,
    pub detector: *mut hrm_detector,
}

impl Handles {
    pub fn open(config: &Path) -> Handles {
        let path = std::ffi::CString::new(config.to_str().unwrap()).unwrap();
        let (mut runtime, mut detector) = (std::ptr::null_mut(), std::ptr::null_mut());
        // SAFETY: valid strings and out-pointers; both handles are freed in `drop`.
        unsafe {
            assert_eq!(hrm_runtime_new_from_file(path.as_ptr(), &mut runtime), HRM_OK);
            assert_eq!(hrm_detector_new(runtime, &mut detector), HRM_OK);
        }
        Handles { runtime, detector }
    }
}

impl Drop for Handles {
    fn drop(&mut self) {
        // SAFETY: made in `open`, freed once, the detector first.
        unsafe {
            hrm_detector_free(self.detector);
            hrm_runtime_free(self.runtime);
        }
    }
}
