//! `hrm_runtime` (a configuration with its verified models, shared) and `hrm_detector` (one
//! per thread, with its own inference state).

use crate::handle::{give, handle};
use crate::status::{guard, hrm_status, out_arg, str_arg, Failure};
use hrm_core::pipeline::Pipeline;
use hrm_core::{AuDetector, AuList, Config, LoadError, Runtime};
use std::ffi::{c_char, CString};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A configuration and the models it names, loaded and verified once (hrm-core's [`Runtime`]).
/// Detectors are made from it and share its models' weights; it is read-only afterwards, so any
/// number of threads may share one.
pub struct hrm_runtime {
    runtime: Runtime,
    pub(crate) au_ids: &'static [StaticCStr],
}

impl hrm_runtime {
    fn new(config: Config) -> Result<hrm_runtime, Failure> {
        let registry = hrm_core::plugin::with_plugins(hrm_tract::registry(), &config);
        let runtime = Runtime::load(config, &registry).map_err(|e| match e {
            LoadError::Config(e) => Failure::config(e),
            LoadError::Model(e) => Failure::model(e),
        })?;
        let au_ids = au_ids(runtime.aus());
        Ok(hrm_runtime { runtime, au_ids })
    }

    pub(crate) fn core(&self) -> &Runtime {
        &self.runtime
    }
}

/// A detector: the runtime's models with inference state of its own. One thread at a time may
/// use it (it may move between threads); give each thread its own detector.
pub struct hrm_detector {
    /// The whole pipeline; its AU model serves aligned faces too.
    pipeline: Pipeline,
    pub(crate) au_ids: &'static [StaticCStr],
    /// Frames with more pixels are refused (`max_image_pixels`).
    pub(crate) max_pixels: u64,
    /// Batches of aligned faces with more pixels in all are refused.
    pub(crate) max_batch_pixels: u64,
}

impl hrm_detector {
    fn new(runtime: &hrm_runtime) -> Result<hrm_detector, Failure> {
        let (core, config) = (&runtime.runtime, runtime.runtime.config());
        let pipeline = core.pipeline().map_err(Failure::model)?;
        Ok(hrm_detector {
            pipeline,
            au_ids: runtime.au_ids,
            max_pixels: config.max_image_pixels,
            max_batch_pixels: config.max_batch_pixels(),
        })
    }

    pub(crate) fn pipeline(&mut self) -> &mut Pipeline {
        &mut self.pipeline
    }

    pub(crate) fn au_detector(&mut self) -> &mut dyn AuDetector {
        self.pipeline.au_detector()
    }
}

/// A static C string.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub(crate) struct StaticCStr(*const c_char);

// SAFETY: it points at a string that lives, unchanged, for the rest of the process.
unsafe impl Send for StaticCStr {}
unsafe impl Sync for StaticCStr {}

/// The AU ids of a list as an array of static C strings, in the list's order. Each distinct list
/// is made once and kept for the life of the process, as `hrm_runtime_au_ids` promises.
pub(crate) fn au_ids(list: &AuList) -> &'static [StaticCStr] {
    /// AU ids, and the C strings made for them.
    type Table = (Vec<&'static str>, &'static [StaticCStr]);
    static TABLES: Mutex<Vec<Table>> = Mutex::new(Vec::new());
    let mut tables = TABLES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let ids = list.ids();
    if let Some((_, table)) = tables.iter().find(|(known, _)| *known == ids) {
        return table;
    }
    let table: Vec<StaticCStr> = (ids.iter())
        .map(|id| StaticCStr(Box::leak(CString::new(*id).expect("AU ids have no NUL").into_boxed_c_str()).as_ptr()))
        .collect();
    let table: &'static [StaticCStr] = Box::leak(table.into_boxed_slice());
    tables.push((ids, table));
    table
}

/// MediaPipe's blendshape names as static C strings, in the network's order.
pub(crate) fn blendshape_names() -> &'static [StaticCStr] {
    static NAMES: std::sync::OnceLock<Vec<StaticCStr>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        (hrm_core::blendshapes::BLENDSHAPE_NAMES.iter())
            .map(|name| {
                StaticCStr(Box::leak(CString::new(*name).expect("names have no NUL").into_boxed_c_str()).as_ptr())
            })
            .collect()
    })
}

fn new_runtime(config: Result<Config, hrm_core::Error>, out: *mut *mut hrm_runtime) -> Result<(), Failure> {
    let runtime = hrm_runtime::new(config.map_err(Failure::config)?)?;
    // SAFETY: the callers checked `out` with out_arg.
    unsafe { give(out, runtime) };
    Ok(())
}

/// Creates a runtime from a TOML configuration file (the format of `configs/cpu.toml`; relative
/// paths in it are taken from the file's folder). Loads and verifies the AU model package, the
/// face detector and the face mesh it names; the models built into libhrm stand in for those it
/// does not name (the MediaPipe estimator, YuNet-s, MediaPipe's mesh), so an empty configuration
/// runs. Every runtime loads the face detector, and the mesh unless `[mesh] enabled = false`.
///
/// On success `*out` owns the runtime: free it with `hrm_runtime_free` after every detector made
/// from it. Fails with `HRM_ERROR_IO` (file unreadable), `HRM_ERROR_CONFIG` (bad TOML, unknown
/// key, bad value), `HRM_ERROR_MODEL` (a model missing, malformed or failing its sha256). Any
/// thread.
///
/// # Safety
/// `path` is a NUL-terminated UTF-8 string; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn hrm_runtime_new_from_file(path: *const c_char, out: *mut *mut hrm_runtime) -> hrm_status {
    guard("hrm_runtime_new_from_file", || {
        // SAFETY: the caller guarantees a NUL-terminated `path`.
        let path = unsafe { str_arg(path, "path")? };
        out_arg(out, "out")?;
        new_runtime(Config::from_file(Path::new(path)), out)
    })
}

/// Creates a runtime from TOML text, as `hrm_runtime_new_from_file` does. Relative paths in it
/// are taken from `base_dir`, or from the current directory when `base_dir` is NULL.
///
/// # Safety
/// `toml` is a NUL-terminated UTF-8 string; `base_dir` is NULL or one; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn hrm_runtime_new_from_string(
    toml: *const c_char,
    base_dir: *const c_char,
    out: *mut *mut hrm_runtime,
) -> hrm_status {
    guard("hrm_runtime_new_from_string", || {
        // SAFETY: the caller guarantees NUL-terminated `toml` and `base_dir` (or NULL).
        let text = unsafe { str_arg(toml, "toml")? };
        let base =
            if base_dir.is_null() { PathBuf::new() } else { PathBuf::from(unsafe { str_arg(base_dir, "base_dir")? }) };
        out_arg(out, "out")?;
        let config = Config::from_toml(text, Path::new("<configuration string>")).map(|mut config| {
            config.resolve_paths(&base);
            config
        });
        new_runtime(config, out)
    })
}

/// Frees a runtime; NULL is ignored. Free its detectors first. Any thread, once no other thread
/// uses the runtime.
///
/// # Safety
/// `runtime` is NULL or came from `hrm_runtime_new_*` and was not freed before.
#[no_mangle]
pub unsafe extern "C" fn hrm_runtime_free(runtime: *mut hrm_runtime) {
    // SAFETY: the caller guarantees no other thread uses the runtime.
    unsafe { crate::handle::free("hrm_runtime_free", runtime) };
}

/// The AU ids the runtime's model reports, in the order of every result's probabilities
/// (`"AU1"`, `"AU2"`, ...): `*ids` receives an array of `*count` static strings, valid for the
/// life of the process. Any thread.
///
/// # Safety
/// `runtime` came from `hrm_runtime_new_*`; `ids` and `count` are writable.
#[no_mangle]
pub unsafe extern "C" fn hrm_runtime_au_ids(
    runtime: *const hrm_runtime,
    ids: *mut *const *const c_char,
    count: *mut usize,
) -> hrm_status {
    guard("hrm_runtime_au_ids", || {
        // SAFETY: the caller guarantees a live runtime.
        let runtime = unsafe { handle(runtime, "runtime")? };
        out_arg(ids, "ids")?;
        out_arg(count, "count")?;
        // SAFETY: the caller guarantees `ids` and `count` are writable; out_arg checked them.
        unsafe {
            *ids = runtime.au_ids.as_ptr().cast();
            *count = runtime.au_ids.len();
        }
        Ok(())
    })
}

/// The stage of a runtime whose backend and device `hrm_runtime_device` reports.
pub const HRM_STAGE_AU_MODEL: u32 = 0;
pub const HRM_STAGE_FACE_DETECTOR: u32 = 1;
pub const HRM_STAGE_FACE_MESH: u32 = 2;

/// What runs a stage of the runtime (`HRM_STAGE_*`), as `"BACKEND:DEVICE"`: `"tract:cpu"`,
/// `"onnxruntime:cuda"`, `"onnxruntime:tensorrt"`; the device is the one the backend actually
/// uses, after any fallback the configuration allows. Copied into `buf` as `hrm_last_error`
/// copies (`*needed` gets the size with its NUL; `HRM_ERROR_BUFFER_TOO_SMALL` when `cap` is
/// short). `HRM_ERROR_INVALID_ARGUMENT` for an unknown stage or one this runtime did not load
/// (no face mesh with `[mesh] enabled = false`). Any thread.
///
/// # Safety
/// `runtime` came from `hrm_runtime_new_*`; `buf` is NULL or writable for `cap` bytes; `needed`
/// is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn hrm_runtime_device(
    runtime: *const hrm_runtime,
    stage: u32,
    buf: *mut c_char,
    cap: usize,
    needed: *mut usize,
) -> hrm_status {
    guard("hrm_runtime_device", || {
        // SAFETY: the caller guarantees a live runtime.
        let runtime = unsafe { handle(runtime, "runtime")? };
        let name = match stage {
            HRM_STAGE_AU_MODEL => "au model",
            HRM_STAGE_FACE_DETECTOR => "face detector",
            HRM_STAGE_FACE_MESH => "face mesh",
            _ => return Err(Failure::invalid(format!("stage {stage} is not an HRM_STAGE_* value"))),
        };
        let placements = runtime.runtime.placements();
        let (_, backend, placement) = (placements.iter().find(|p| p.0 == name))
            .ok_or_else(|| Failure::invalid(format!("this runtime has no {name} loaded")))?;
        let text = format!("{backend}:{}", placement.device);
        // SAFETY: the caller guarantees `buf` and `needed` as documented.
        match unsafe { crate::status::copy_text(&text, buf, cap, needed) } {
            crate::status::HRM_OK => Ok(()),
            crate::status::HRM_ERROR_BUFFER_TOO_SMALL => Err(Failure::new(
                crate::status::HRM_ERROR_BUFFER_TOO_SMALL,
                format!("`{text}` needs {} bytes, `cap` is {cap}", text.len() + 1),
            )),
            _ => Err(Failure::invalid(format!("`buf` is NULL but `cap` is {cap}"))),
        }
    })
}

/// Creates a detector from a runtime: the runtime's models (their weights shared, not copied)
/// with inference state and buffers of its own. The first detector's first frame prepares the
/// models for the backend (up to a few seconds for a ViT); later detectors reuse that work.
///
/// On success `*out` owns the detector: free it with `hrm_detector_free`. Any thread, also
/// while other threads use the runtime and their own detectors.
///
/// # Safety
/// `runtime` came from `hrm_runtime_new_*`; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn hrm_detector_new(runtime: *const hrm_runtime, out: *mut *mut hrm_detector) -> hrm_status {
    guard("hrm_detector_new", || {
        // SAFETY: the caller guarantees a live runtime.
        let runtime = unsafe { handle(runtime, "runtime")? };
        out_arg(out, "out")?;
        let detector = hrm_detector::new(runtime)?;
        // SAFETY: the caller guarantees `out` is writable; out_arg checked it is not NULL.
        unsafe { give(out, detector) };
        Ok(())
    })
}

/// Frees a detector; NULL is ignored. Results it gave stay valid.
///
/// # Safety
/// `detector` is NULL or came from `hrm_detector_new` and was not freed before, and no other
/// thread is using it.
#[no_mangle]
pub unsafe extern "C" fn hrm_detector_free(detector: *mut hrm_detector) {
    // SAFETY: the caller guarantees no other thread uses the detector.
    unsafe { crate::handle::free("hrm_detector_free", detector) };
}
