//! The ONNX Runtime library: where it is found, loaded once per process, its version, and the
//! execution providers it can use on this machine.

use crate::options::{Options, Provider};
use ort::environment::Environment;
use ort::session::builder::SessionBuilder;
use ort::session::Session;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The variable `ort` and ONNX Runtime's own tools read for the library's path.
pub const DYLIB_VAR: &str = "ORT_DYLIB_PATH";

/// ONNX Runtime as loaded: one library and one environment per process.
#[derive(Clone)]
pub struct Loaded {
    pub library: PathBuf,
    pub version: String,
    pub environment: Environment,
}

static LOADED: Mutex<Option<Loaded>> = Mutex::new(None);

/// The ONNX Runtime library to load: `library` from the options, else `ORT_DYLIB_PATH`, else a
/// `libonnxruntime.so*` beside this plugin; an error says where it looked.
fn locate(options: &Options) -> Result<PathBuf, String> {
    if let Some(library) = &options.library {
        return match library.is_file() {
            true => Ok(library.clone()),
            false => Err(format!(
                "the ONNX Runtime library `[onnxruntime] library` names, {}, does not exist",
                library.display()
            )),
        };
    }
    if let Some(path) = std::env::var_os(DYLIB_VAR).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return match path.is_file() {
            true => Ok(path),
            false => Err(format!("the ONNX Runtime library {DYLIB_VAR} names, {}, does not exist", path.display())),
        };
    }
    let beside = plugin_folder();
    if let Some(found) = beside.as_deref().and_then(library_in) {
        return Ok(found);
    }
    Err(format!(
        "the ONNX Runtime library was not found: `[onnxruntime] library` is not set, {DYLIB_VAR} is not set, and \
         there is no libonnxruntime.so* beside the plugin (in {}). Install it with tools/setup-onnxruntime.sh, \
         which prints the path to give either",
        beside.map_or("an unknown folder".into(), |d| d.display().to_string())
    ))
}

/// `libonnxruntime.so` in `dir`, or else the newest `libonnxruntime.so.X.Y.Z` (by version).
fn library_in(dir: &Path) -> Option<PathBuf> {
    let plain = dir.join(LIBRARY_NAME);
    if plain.is_file() {
        return Some(plain);
    }
    let version = |path: &Path| -> Option<Vec<u64>> {
        let name = path.file_name()?.to_str()?;
        name.strip_prefix(LIBRARY_NAME)?.strip_prefix('.')?.split('.').map(|n| n.parse().ok()).collect()
    };
    let versioned = std::fs::read_dir(dir).ok()?.filter_map(|e| e.ok().map(|e| e.path()));
    versioned.filter_map(|path| Some((version(&path)?, path))).max().map(|(_, path)| path)
}

#[cfg(target_os = "macos")]
const LIBRARY_NAME: &str = "libonnxruntime.dylib";
#[cfg(not(target_os = "macos"))]
const LIBRARY_NAME: &str = "libonnxruntime.so";

/// The folder this plugin was loaded from.
fn plugin_folder() -> Option<PathBuf> {
    let file = hrm_plugin::library_file(plugin_folder as *const () as usize)?;
    file.parent().map(Path::to_path_buf)
}

/// ONNX Runtime, loaded on first use from where the options say; later calls get the same one,
/// and naming another library then is an error (a process holds one ONNX Runtime).
pub fn load(options: &Options) -> Result<Loaded, String> {
    let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(loaded) = loaded.as_ref() {
        if let Some(wanted) = &options.library {
            let same = wanted.canonicalize().ok() == loaded.library.canonicalize().ok();
            if !same {
                return Err(format!(
                    "ONNX Runtime is already loaded in this process from {}; it cannot also be loaded from {}",
                    loaded.library.display(),
                    wanted.display()
                ));
            }
        }
        return Ok(loaded.clone());
    }
    let library = locate(options)?;
    let version = version_of(&library)?;
    let environment = ort::init_from(&library)
        .map_err(|e| format!("{}: not a usable ONNX Runtime library: {}", library.display(), load_error(&e)))?
        .with_name("hrm")
        .build()
        .map_err(|e| format!("{}: ONNX Runtime did not start: {e}", library.display()))?;
    let fresh = Loaded { library, version, environment };
    *loaded = Some(fresh.clone());
    Ok(fresh)
}

/// The message of a load failure: its Display names the file only, its Debug the loader's reason.
fn load_error(error: &ort::LoadDynamicError) -> String {
    match error {
        ort::LoadDynamicError::BadVersion { version_str, .. } => format!(
            "it is ONNX Runtime {version_str}, older than the 1.{} this plugin needs",
            ort::sys::ORT_API_VERSION
        ),
        other => format!("{other} ({other:?})"),
    }
}

/// The library's version ("1.23.2"), read through its own `OrtGetApiBase`; an error when it is
/// not an ONNX Runtime library at all.
fn version_of(library: &Path) -> Result<String, String> {
    // SAFETY: loading the library the user named as ONNX Runtime (its initialisers run).
    let lib = unsafe { libloading::Library::new(library) }
        .map_err(|e| format!("{}: the ONNX Runtime library cannot be loaded: {e}", library.display()))?;
    // SAFETY: OrtGetApiBase's type, as onnxruntime_c_api.h declares it.
    let get_base = unsafe { lib.get::<unsafe extern "C" fn() -> *const ort::sys::OrtApiBase>(b"OrtGetApiBase\0") }
        .map_err(|_| format!("{}: not an ONNX Runtime library (it exports no OrtGetApiBase)", library.display()))?;
    // SAFETY: OrtGetApiBase returns a static table or NULL; GetVersionString a static string.
    let version = unsafe {
        let base = get_base();
        let text = if base.is_null() { std::ptr::null() } else { ((*base).GetVersionString)() };
        if text.is_null() {
            return Err(format!(
                "{}: ONNX Runtime gave no version (OrtGetApiBase or GetVersionString)",
                library.display()
            ));
        }
        std::ffi::CStr::from_ptr(text).to_string_lossy().into_owned()
    };
    // The library stays loaded (ort holds it too); this handle is only a reference count.
    std::mem::forget(lib);
    Ok(version)
}

/// The execution providers compiled into the loaded library, by ONNX Runtime's names.
pub fn compiled_providers() -> Result<Vec<String>, String> {
    let api = ort::api();
    let (mut names, mut count) = (std::ptr::null_mut(), 0);
    // SAFETY: GetAvailableProviders writes an array of `count` strings that we release below.
    let status = unsafe { (api.GetAvailableProviders)(&mut names, &mut count) };
    if !status.0.is_null() {
        // SAFETY: a status ONNX Runtime returned, released once.
        unsafe { (api.ReleaseStatus)(status.0) };
        return Err("ONNX Runtime could not list its execution providers".into());
    }
    let list = (0..count.max(0) as usize)
        // SAFETY: `count` valid NUL-terminated strings.
        .map(|i| unsafe { std::ffi::CStr::from_ptr(*names.add(i)) }.to_string_lossy().into_owned())
        .collect();
    // SAFETY: the array GetAvailableProviders gave, released once; then the status of that, if any.
    unsafe {
        let status = (api.ReleaseAvailableProviders)(names, count);
        if !status.0.is_null() {
            (api.ReleaseStatus)(status.0);
        }
    }
    Ok(list)
}

/// Registers a GPU provider on `builder`, failing (rather than silently skipping it, ort's
/// default) when it cannot be registered. TensorRT comes with CUDA behind it, for the nodes
/// TensorRT does not take (when CUDA registers too).
pub fn register(builder: &mut SessionBuilder, provider: Provider, options: &Options) -> Result<(), String> {
    use ort::ep::ExecutionProvider;
    let result = match provider {
        Provider::Cpu => Ok(()),
        Provider::Cuda => ort::ep::CUDA::default().with_device_id(options.cuda_device_id).register(builder),
        Provider::TensorRt => {
            let trt = &options.tensorrt;
            let mut ep = ort::ep::TensorRT::default().with_device_id(trt.device_id).with_fp16(trt.fp16);
            if let Some(cache) = &trt.engine_cache {
                std::fs::create_dir_all(cache)
                    .map_err(|e| format!("the TensorRT engine cache {}: {e}", cache.display()))?;
                ep = ep.with_engine_cache(true).with_engine_cache_path(cache.display());
            }
            if let Some(size) = trt.workspace_size {
                ep = ep.with_max_workspace_size(size);
            }
            ep.register(builder).map(|()| {
                let cuda = ort::ep::CUDA::default().with_device_id(trt.device_id);
                // Without CUDA, TensorRT's leftover nodes run on the CPU.
                let _ = cuda.register(builder);
            })
        }
    };
    result.map_err(|e| e.to_string())
}

/// Whether each provider can be used here: None when it can, else why not. A GPU provider must be
/// in the library's build and register (which loads its libraries and finds the device).
pub fn availability(loaded: &Loaded, options: &Options) -> Result<Vec<(Provider, Option<String>)>, String> {
    let compiled = compiled_providers()?;
    Ok(Provider::ALL
        .into_iter()
        .map(|provider| {
            let why = if !compiled.iter().any(|c| c == provider.ort_name()) {
                Some(format!(
                    "not in this ONNX Runtime build ({}; the onnxruntime-gpu wheel or a JetPack build has it)",
                    loaded.version
                ))
            } else {
                Session::builder(&loaded.environment)
                    .map_err(|e| e.to_string())
                    .and_then(|mut builder| register(&mut builder, provider, options))
                    .err()
            };
            (provider, why)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beside_the_plugin_the_newest_version_is_taken_unless_a_plain_name_is_there() {
        let dir = std::env::temp_dir().join(format!("hrm-ort-search-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["libonnxruntime.so.1.9.0", "libonnxruntime.so.1.23.2", "libonnxruntime.so.1.23.10", "other.so"] {
            std::fs::write(dir.join(name), "").unwrap();
        }
        assert_eq!(library_in(&dir), Some(dir.join("libonnxruntime.so.1.23.10")));
        std::fs::write(dir.join("libonnxruntime.so"), "").unwrap();
        assert_eq!(library_in(&dir), Some(dir.join("libonnxruntime.so")));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(library_in(&dir), None);
    }
}
