//! The plugin host: finds backend plugins (`libhrm_NAME.so`), loads each once per process and
//! keeps it loaded, checks its table (`include/hrm_plugin.h`) before any call, and makes each a
//! [`Backend`] that runs graphs through the table. The only `unsafe` of `hrm-core` is here.

use crate::error::{Error, Result};
use hrm_backend::{Backend, BackendOptions, BackendRegistry, Dim, GraphSource, GraphSpec, InferenceSession};
use hrm_backend::{LoadedModel, Placement, Tensor, TensorView};
use hrm_plugin::*;
use std::collections::BTreeMap;
use std::ffi::{c_char, CString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The environment variable of extra plugin folders (colon-separated).
pub const PLUGIN_PATH_VAR: &str = "HRM_PLUGIN_PATH";

/// A plugin library found and checked, loaded for the rest of the process.
pub struct Plugin {
    /// The file it was loaded from.
    pub file: PathBuf,
    /// Its backend name.
    pub name: String,
    api: hrm_plugin_api,
}

/// A plugin library that was found and refused, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub file: PathBuf,
    pub reason: String,
}

/// What a search of the plugin folders found.
#[derive(Default)]
pub struct Discovery {
    pub plugins: Vec<Arc<Plugin>>,
    pub refused: Vec<Refusal>,
}

/// The folders searched for plugins, in order: the configuration's `[plugins] paths`, then
/// `HRM_PLUGIN_PATH`, then the folder of the running executable and the folder of the library
/// this code is linked into (libhrm), each followed by its `plugins/` folder.
pub fn search_folders(configured: &[PathBuf]) -> Vec<PathBuf> {
    let mut folders: Vec<PathBuf> = configured.to_vec();
    if let Some(paths) = std::env::var_os(PLUGIN_PATH_VAR) {
        folders.extend(std::env::split_paths(&paths).filter(|p| !p.as_os_str().is_empty()));
    }
    // This code is inside libhrm when a C program uses hrm: its file is libhrm's.
    let this_library = library_file(search_folders as *const () as usize);
    let beside = [std::env::current_exe().ok(), this_library];
    for dir in beside.into_iter().flatten().filter_map(|file| file.parent().map(Path::to_path_buf)) {
        folders.extend([dir.clone(), dir.join("plugins")]);
    }
    let mut seen = std::collections::HashSet::new();
    folders.retain(|f| seen.insert(f.canonicalize().unwrap_or_else(|_| f.clone())));
    folders
}

/// The backend name in a plugin's file name: NAME of `libhrm_NAME.so` (`.dylib` on macOS,
/// `hrm_NAME.dll` on Windows); None for other files.
fn plugin_name_of(file: &str) -> Option<&str> {
    let (prefix, suffix) = match std::env::consts::OS {
        "windows" => ("hrm_", ".dll"),
        "macos" => ("libhrm_", ".dylib"),
        _ => ("libhrm_", ".so"),
    };
    file.strip_prefix(prefix)?.strip_suffix(suffix).filter(|name| !name.is_empty())
}

/// Every plugin in `folders` (missing folders are skipped), each loaded once per process. The
/// first plugin of a name wins; a later one of the same name, or one named as a built-in backend
/// in `taken`, is refused by its file name, without being loaded.
pub fn discover(folders: &[PathBuf], taken: &[&str]) -> Discovery {
    let mut discovery = Discovery::default();
    let mut seen = std::collections::HashSet::new();
    for folder in folders {
        let Ok(entries) = std::fs::read_dir(folder) else { continue };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_str().and_then(plugin_name_of).is_some())
            .map(|e| e.path())
            .collect();
        files.sort();
        for file in files {
            let canonical = file.canonicalize().unwrap_or_else(|_| file.clone());
            // The same file under two names (cargo hard-links its outputs) is loaded once.
            let identity = file_identity(&canonical);
            if !seen.insert(identity.map_or_else(|| canonical.display().to_string(), |(d, i)| format!("{d}:{i}"))) {
                continue;
            }
            // The name is checked by the file's name before loading (a stale copy of a plugin is
            // never loaded beside the fresh one), and by the table's after.
            let clash = |name: &str| {
                let clash = taken.contains(&name).then(|| "a built-in backend".to_string());
                clash
                    .or_else(|| {
                        let first = discovery.plugins.iter().find(|p| p.name == name)?;
                        Some(format!("the plugin {}", first.file.display()))
                    })
                    .map(|other| format!("its backend name `{name}` is already taken by {other}"))
            };
            let file_name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let outcome = match clash(plugin_name_of(file_name).unwrap_or_default()) {
                Some(reason) => Err(reason),
                None => load_once(&canonical).and_then(|plugin| clash(&plugin.name).map_or(Ok(plugin), Err)),
            };
            match outcome {
                Ok(plugin) => discovery.plugins.push(plugin),
                Err(reason) => discovery.refused.push(Refusal { file: canonical, reason }),
            }
        }
    }
    discovery
}

/// A file's device and inode, which hard links share.
fn file_identity(path: &Path) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Registers every plugin found in `folders` (see [`search_folders`]) with `registry`, after the
/// built-in backends already in it; returns the plugins refused, which the registry also names
/// when a backend is not found.
pub fn register_plugins(registry: &mut BackendRegistry, folders: &[PathBuf]) -> Vec<Refusal> {
    let builtin: Vec<String> = registry.names().iter().map(|s| s.to_string()).collect();
    let taken: Vec<&str> = builtin.iter().map(String::as_str).collect();
    let discovery = discover(folders, &taken);
    for plugin in discovery.plugins {
        // Names were checked against the registry's and each other's: this does not fail.
        if let Err(e) = registry.register(Box::new(PluginBackend(plugin))) {
            registry.note(e.to_string());
        }
    }
    for refusal in &discovery.refused {
        registry.note(format!("refused plugin {}: {}", refusal.file.display(), refusal.reason));
    }
    let searched: Vec<String> = folders.iter().map(|f| f.display().to_string()).collect();
    registry.note(format!("plugins are looked for in {} (`hrm backends` lists them)", searched.join(", ")));
    discovery.refused
}

/// `builtin` with every plugin `config` can find (its `[plugins] paths`, then `HRM_PLUGIN_PATH`,
/// then the folders beside hrm) registered after the built-in backends.
pub fn with_plugins(mut builtin: BackendRegistry, config: &crate::Config) -> BackendRegistry {
    register_plugins(&mut builtin, &search_folders(&config.plugins.paths));
    builtin
}

/// The plugins loaded so far, by canonical file: each is loaded once per process, and a refusal
/// is remembered too.
static LOADED: Mutex<BTreeMap<PathBuf, std::result::Result<Arc<Plugin>, String>>> = Mutex::new(BTreeMap::new());

fn load_once(file: &Path) -> std::result::Result<Arc<Plugin>, String> {
    let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    loaded.entry(file.to_path_buf()).or_insert_with(|| load(file)).clone()
}

/// Why a plugin library did not load, with what to do when it needs a GPU's libraries: a CUDA
/// build on a machine without the NVIDIA driver is "no CUDA driver", not a mystery.
fn load_error(error: &str) -> String {
    let missing = |name: &str| error.contains(name) && error.contains("cannot open shared object file");
    if missing("libcuda.so") {
        return format!(
            "no CUDA driver: it needs the NVIDIA driver (libcuda.so.1), which this machine does not have ({error})"
        );
    }
    if ["libcublas", "libcurand", "libnvrtc", "libcudart", "libcudnn"].iter().any(|lib| missing(lib)) {
        return format!(
            "cannot be loaded: {error} (put CUDA's libraries, as the plugin was built against, on LD_LIBRARY_PATH)"
        );
    }
    format!("cannot be loaded: {error}")
}

/// Loads a plugin library and checks its table: the entry symbol, a table, its ABI version and
/// size (before anything else is read), its name and every function.
fn load(file: &Path) -> std::result::Result<Arc<Plugin>, String> {
    // SAFETY: loading a library runs its initialisers; a plugin is trusted code, found only in
    // the folders the user configured or installed beside hrm.
    let library = unsafe { libloading::Library::new(file) }.map_err(|e| load_error(&e.to_string()))?;
    // The library stays loaded for the rest of the process: sessions and tables point into it.
    let library: &'static libloading::Library = Box::leak(Box::new(library));
    let symbol = format!("{HRM_PLUGIN_ENTRY_SYMBOL}\0");
    // SAFETY: the symbol's type is the one include/hrm_plugin.h declares for it.
    let entry = unsafe { library.get::<hrm_plugin_entry_fn>(symbol.as_bytes()) }
        .map_err(|_| format!("not an hrm plugin: it exports no `{HRM_PLUGIN_ENTRY_SYMBOL}` function"))?;
    // SAFETY: calling the plugin's entry point, which takes nothing and returns its table.
    let table = unsafe { entry() };
    if table.is_null() {
        return Err(format!("`{HRM_PLUGIN_ENTRY_SYMBOL}` returned NULL instead of its function table"));
    }
    // SAFETY: every table begins with `uint32_t abi_version; uint32_t struct_size;`, read
    // alone before the rest of the table is trusted to be there.
    let (abi_version, struct_size) = unsafe { (*(table as *const u32), *(table as *const u32).add(1)) };
    if abi_version != HRM_PLUGIN_ABI_VERSION {
        return Err(format!(
            "built for plugin ABI version {abi_version}, but this hrm speaks version {HRM_PLUGIN_ABI_VERSION}: \
             rebuild the plugin against this hrm's include/hrm_plugin.h"
        ));
    }
    if struct_size < HRM_PLUGIN_API_SIZE_V1 {
        return Err(format!(
            "its function table is {struct_size} bytes, shorter than the {HRM_PLUGIN_API_SIZE_V1} of plugin ABI \
             version {HRM_PLUGIN_ABI_VERSION}: the table is incomplete"
        ));
    }
    // A table grows at the end: what a shorter (older) one lacks stays NULL here.
    // SAFETY: all-zero bytes are a valid table (NULL pointers, None functions); the plugin declares
    // `struct_size` readable bytes, of which the first `len` are copied.
    let api = unsafe {
        let mut api: hrm_plugin_api = std::mem::zeroed();
        let len = (struct_size as usize).min(std::mem::size_of::<hrm_plugin_api>());
        std::ptr::copy_nonoverlapping(table as *const u8, &mut api as *mut hrm_plugin_api as *mut u8, len);
        api
    };
    // SAFETY: `name` is NULL or a static NUL-terminated string of the plugin's.
    let name = unsafe { c_str(api.name, "its backend name") }?.to_string();
    let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
    if name.is_empty() || name.len() > 64 || !name.chars().all(valid) {
        return Err(format!("its backend name {name:?} is not 1 to 64 lowercase ASCII letters, digits, `-` or `_`"));
    }
    let functions = [
        ("check_options", api.check_options.is_none()),
        ("describe", api.describe.is_none()),
        ("session_new", api.session_new.is_none()),
        ("session_info", api.session_info.is_none()),
        ("session_run", api.session_run.is_none()),
        ("session_free", api.session_free.is_none()),
        ("last_error", api.last_error.is_none()),
    ];
    if let Some((missing, _)) = functions.iter().find(|(_, null)| *null) {
        return Err(format!("its function table has no `{missing}` (a NULL pointer)"));
    }
    Ok(Arc::new(Plugin { file: file.to_path_buf(), name, api }))
}

/// What a plugin says of itself and of this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    pub version: String,
    /// The library it runs on and where it was found; empty when it needs none.
    pub runtime: String,
    /// Each device (execution provider) it knows, with why it cannot be used here when it cannot.
    pub devices: Vec<(String, Option<String>)>,
}

impl Plugin {
    fn error(&self, what: &str) -> Error {
        // SAFETY (of the calls): checked non-NULL at load; the buffer is ours, of the capacity
        // given. The message is read on the thread whose call failed.
        let last_error = self.api.last_error.expect("checked at load");
        let len = unsafe { last_error(std::ptr::null_mut(), 0) }.min(1 << 16);
        let mut buffer = vec![0 as c_char; len + 1];
        unsafe { last_error(buffer.as_mut_ptr(), buffer.len()) };
        let message = read_text(&buffer);
        let message = if message.is_empty() { "the plugin gave no message".into() } else { message };
        Error::Backend { backend: self.name.clone(), message: format!("{what}: {message}") }
    }

    /// Has the plugin check the options, without loading anything: an error names the file.
    pub fn check_options(&self, options: &BackendOptions) -> Result<()> {
        let (toml, dir) = options_text(options)?;
        let check = self.api.check_options.expect("checked at load");
        // SAFETY: the strings are ours and outlive the call.
        if unsafe { check(toml.as_ptr(), opt_ptr(&dir)) } != HRM_PLUGIN_OK {
            let message = self.error("its settings").to_string();
            return Err(Error::Toml { file: options.origin.clone(), message });
        }
        Ok(())
    }

    /// Asks the plugin what it can use here, with the given options.
    pub fn describe(&self, options: &BackendOptions) -> Result<Description> {
        let (toml, dir) = options_text(options)?;
        // SAFETY: a struct of integers and character arrays, for which zero bytes are valid.
        let mut description: hrm_plugin_description = unsafe { std::mem::zeroed() };
        description.struct_size = std::mem::size_of::<hrm_plugin_description>() as u32;
        let describe = self.api.describe.expect("checked at load");
        // SAFETY: strings and the description are ours and outlive the call.
        let status = unsafe { describe(toml.as_ptr(), opt_ptr(&dir), &mut description) };
        if status != HRM_PLUGIN_OK {
            return Err(self.error("describe"));
        }
        let devices = read_text(&description.devices)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| match line.split_once(':') {
                Some((name, why)) => (name.trim().to_string(), Some(why.trim().to_string())),
                None => (line.trim().to_string(), None),
            })
            .collect();
        Ok(Description { version: read_text(&description.version), runtime: read_text(&description.runtime), devices })
    }
}

/// The options as the plugin reads them: its table as TOML text, and the folder relative paths
/// in it start from (the configuration file's).
fn options_text(options: &BackendOptions) -> Result<(CString, Option<CString>)> {
    let text = toml::to_string(&options.settings).map_err(|e| Error::Toml {
        file: options.origin.clone(),
        message: format!("the backend's settings cannot be written as TOML: {e}"),
    })?;
    let toml = CString::new(text).map_err(|_| Error::InvalidInput("a setting holds a NUL character".into()))?;
    let dir = options.origin.parent().filter(|d| !d.as_os_str().is_empty()).map(path_c_string).transpose()?;
    Ok((toml, dir))
}

fn path_c_string(path: &Path) -> Result<CString> {
    let text = path.to_str().ok_or_else(|| Error::InvalidInput(format!("{}: not a UTF-8 path", path.display())))?;
    CString::new(text).map_err(|_| Error::InvalidInput(format!("{}: a path with a NUL character", path.display())))
}

fn opt_ptr(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr())
}

/// A plugin as a backend of the registry.
pub struct PluginBackend(pub Arc<Plugin>);

impl Backend for PluginBackend {
    fn name(&self) -> &str {
        &self.0.name
    }

    fn check_settings(&self, options: &BackendOptions) -> Result<()> {
        self.0.check_options(options)
    }

    fn load(&self, graph: &GraphSpec, options: &BackendOptions) -> Result<Arc<dyn LoadedModel>> {
        let plugin = &self.0;
        let name = CString::new(graph.source.name()).unwrap_or_default();
        let weights = graph.weights.as_deref().map(path_c_string).transpose()?;
        let (graph_path, bytes) = match &graph.source {
            GraphSource::File(path) => (Some(path_c_string(path)?), &[][..]),
            GraphSource::Embedded { bytes, .. } => (None, *bytes),
        };
        let inputs = graph
            .inputs
            .iter()
            .map(|dims| {
                let dims: Vec<i64> = dims
                    .iter()
                    .map(|d| match d {
                        Dim::Fixed(n) => *n as i64,
                        Dim::Batch => HRM_PLUGIN_DIM_BATCH,
                        Dim::Any => HRM_PLUGIN_DIM_ANY,
                    })
                    .collect();
                hrm_plugin_shape::new(&dims)
                    .ok_or_else(|| Error::InvalidInput(format!("a graph input of {} dimensions", dims.len())))
            })
            .collect::<Result<Vec<_>>>()?;
        let model = hrm_plugin_model {
            struct_size: std::mem::size_of::<hrm_plugin_model>() as u32,
            threads: options.threads.clamp(1, u32::MAX as usize) as u32,
            name: name.as_ptr(),
            graph_path: opt_ptr(&graph_path),
            weights_path: opt_ptr(&weights),
            graph_bytes: bytes.as_ptr(),
            graph_len: bytes.len(),
            inputs: inputs.as_ptr(),
            input_count: inputs.len(),
        };
        let (toml, dir) = options_text(options)?;
        let mut session = std::ptr::null_mut();
        let session_new = plugin.api.session_new.expect("checked at load");
        // SAFETY: every pointer in `model`, and the strings, are ours and outlive the call.
        if unsafe { session_new(&model, toml.as_ptr(), opt_ptr(&dir), &mut session) } != HRM_PLUGIN_OK {
            return Err(plugin.error(&format!("loading {}", graph.source.name())));
        }
        if session.is_null() {
            return Err(Error::Backend {
                backend: plugin.name.clone(),
                message: format!("loading {}: the plugin reported success but gave no session", graph.source.name()),
            });
        }
        let session = PluginSession { plugin: plugin.clone(), session };
        let info = session.info()?;
        Ok(Arc::new(PluginModel { session: Arc::new(session), info, graph: graph.source.name() }))
    }
}

/// A plugin's session, freed once when the last user is gone.
struct PluginSession {
    plugin: Arc<Plugin>,
    session: *mut hrm_plugin_session,
}

// SAFETY: the ABI lets a session be used from any thread and run from several at once
// (include/hrm_plugin.h, hrm_plugin_api); it is freed once, on drop, when no run is in flight.
unsafe impl Send for PluginSession {}
unsafe impl Sync for PluginSession {}

impl PluginSession {
    fn info(&self) -> Result<(Placement, usize)> {
        // SAFETY: a struct of integers and character arrays, for which zero bytes are valid.
        let mut info: hrm_plugin_session_info = unsafe { std::mem::zeroed() };
        info.struct_size = std::mem::size_of::<hrm_plugin_session_info>() as u32;
        let session_info = self.plugin.api.session_info.expect("checked at load");
        // SAFETY: a live session of this plugin; `info` is ours.
        if unsafe { session_info(self.session, &mut info) } != HRM_PLUGIN_OK {
            return Err(self.plugin.error("session_info"));
        }
        Ok((Placement { device: read_text(&info.device), notes: read_text(&info.notes) }, info.output_count))
    }
}

impl Drop for PluginSession {
    fn drop(&mut self) {
        let free = self.plugin.api.session_free.expect("checked at load");
        // SAFETY: the session is this plugin's, freed once, with no run in flight (every user
        // holds the Arc this is inside of).
        unsafe { free(self.session) };
    }
}

/// A graph loaded by a plugin: all users share its one session.
struct PluginModel {
    session: Arc<PluginSession>,
    info: (Placement, usize),
    graph: String,
}

impl LoadedModel for PluginModel {
    fn session(&self) -> Result<Box<dyn InferenceSession>> {
        let outputs = vec![Vec::new(); self.info.1];
        Ok(Box::new(PluginRunner { session: self.session.clone(), outputs, graph: self.graph.clone() }))
    }

    fn placement(&self) -> Placement {
        self.info.0.clone()
    }
}

/// One user's runs of a shared plugin session, with output buffers of its own that grow to fit.
struct PluginRunner {
    session: Arc<PluginSession>,
    outputs: Vec<Vec<f32>>,
    graph: String,
}

/// The room given to each output at first (most of hrm's outputs fit; larger ones grow once).
const FIRST_OUTPUT_CAPACITY: usize = 1 << 16;

impl InferenceSession for PluginRunner {
    fn run(&mut self, inputs: &[TensorView<'_>]) -> Result<Vec<Tensor>> {
        let plugin = &self.session.plugin;
        let inputs = inputs
            .iter()
            .map(|t| {
                let dims: Vec<i64> = t.shape().iter().map(|&d| d as i64).collect();
                let shape = hrm_plugin_shape::new(&dims)
                    .ok_or_else(|| Error::InvalidInput(format!("an input of {} dimensions", dims.len())))?;
                Ok(hrm_plugin_input { data: t.data().as_ptr(), len: t.data().len(), shape })
            })
            .collect::<Result<Vec<_>>>()?;
        for buffer in &mut self.outputs {
            if buffer.is_empty() {
                buffer.resize(FIRST_OUTPUT_CAPACITY, 0.0);
            }
        }
        let run = plugin.api.session_run.expect("checked at load");
        for _attempt in 0..2 {
            let mut outputs: Vec<hrm_plugin_output> = (self.outputs.iter_mut())
                .map(|b| hrm_plugin_output {
                    data: b.as_mut_ptr(),
                    capacity: b.len(),
                    len: 0,
                    shape: hrm_plugin_shape::default(),
                })
                .collect();
            // SAFETY: a live session; input data and output buffers are ours, of the lengths
            // and capacities given, alive for the call.
            let status = unsafe {
                run(self.session.session, inputs.as_ptr(), inputs.len(), outputs.as_mut_ptr(), outputs.len())
            };
            match status {
                HRM_PLUGIN_OK => return self.collect(&outputs),
                HRM_PLUGIN_BUFFER_TOO_SMALL => {
                    for (i, (buffer, output)) in self.outputs.iter_mut().zip(&outputs).enumerate() {
                        if output.len > MAX_OUTPUT_VALUES {
                            return Err(Error::Backend {
                                backend: plugin.name.clone(),
                                message: format!(
                                    "running {}: output {i} asks for {} values, more than the limit of {MAX_OUTPUT_VALUES}",
                                    self.graph, output.len
                                ),
                            });
                        }
                        if output.len > buffer.len() {
                            buffer.resize(output.len, 0.0);
                        }
                    }
                }
                _ => return Err(plugin.error(&format!("running {}", self.graph))),
            }
        }
        Err(Error::Backend {
            backend: plugin.name.clone(),
            message: format!("running {}: outputs did not fit the room the plugin asked for", self.graph),
        })
    }
}

/// The most values an output may hold (4 GB of f32): a plugin asking for more is refused.
const MAX_OUTPUT_VALUES: usize = 1 << 30;

impl PluginRunner {
    /// The outputs the plugin wrote, checked against the buffers they were written into.
    fn collect(&self, outputs: &[hrm_plugin_output]) -> Result<Vec<Tensor>> {
        let plugin = &self.session.plugin;
        let bad = |message: String| Error::Backend {
            backend: plugin.name.clone(),
            message: format!("running {}: {message}", self.graph),
        };
        (outputs.iter().zip(&self.outputs).enumerate())
            .map(|(i, (output, buffer))| {
                if output.len > buffer.len() || output.shape.rank > HRM_PLUGIN_MAX_RANK {
                    return Err(bad(format!("output {i} claims {} values, more than its buffer", output.len)));
                }
                let shape = (output.shape.dims().iter())
                    .map(|&d| usize::try_from(d).map_err(|_| bad(format!("output {i} has a dimension of {d}"))))
                    .collect::<Result<Vec<_>>>()?;
                Tensor::new(shape, buffer[..output.len].to_vec()).map_err(|e| bad(format!("output {i}: {e}")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cuda_plugin_without_the_driver_says_so() {
        let text = load_error("libcuda.so.1: cannot open shared object file: No such file or directory");
        assert!(text.starts_with("no CUDA driver: it needs the NVIDIA driver (libcuda.so.1)"), "{text}");
        let text = load_error("libcublas.so.13: cannot open shared object file: No such file or directory");
        assert!(text.starts_with("cannot be loaded: ") && text.contains("LD_LIBRARY_PATH"), "{text}");
        assert_eq!(load_error("bad ELF"), "cannot be loaded: bad ELF");
    }
}
