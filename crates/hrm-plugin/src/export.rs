//! The C surface of a plugin written in Rust, made from two traits: a plugin implements
//! [`Plugin`] (options, what it can do here, opening a session) and [`Session`] (running it), and
//! [`export_plugin!`](crate::export_plugin) makes its `hrm_plugin_entry` and table, every entry
//! point inside the one panic guard, every pointer and size of the host's checked first.

use crate::*;
use std::path::{Path, PathBuf};

/// The graph a session is opened for, copied out of the host's [`hrm_plugin_model`].
pub struct Model {
    /// For messages: the file, or the built-in model's name.
    pub name: String,
    /// A package's `model.onnx`; None for a graph given in memory (hrm's built-in models).
    pub graph_path: Option<PathBuf>,
    /// The file the graph's external tensors live in (a package's `model.safetensors`).
    pub weights_path: Option<PathBuf>,
    /// The ONNX bytes when there is no `graph_path`.
    pub graph_bytes: Vec<u8>,
    /// One per input: sizes, `HRM_PLUGIN_DIM_BATCH` or `HRM_PLUGIN_DIM_ANY`.
    pub inputs: Vec<Vec<i64>>,
    pub threads: usize,
}

/// What a plugin can do on this machine (`hrm backends`).
pub struct Description {
    pub version: String,
    /// The library it runs on, with its version and where it was found; empty when none.
    pub runtime: String,
    /// One per device: its name alone when usable here, `name: why not` otherwise.
    pub devices: Vec<String>,
}

/// A backend plugin.
pub trait Plugin: 'static {
    type Options;
    type Session: Session;

    /// The plugin's table of the configuration, as TOML text, and the configuration's folder
    /// (for relative paths); checked without loading or probing anything.
    fn options(toml: &str, dir: Option<&Path>) -> Result<Self::Options, String>;

    fn describe(options: &Self::Options) -> Result<Description, String>;

    fn open(model: &Model, options: &Self::Options) -> Result<Self::Session, String>;
}

/// Where a run's outputs go: each output's index, shape and values, in order.
pub type WriteOutput<'a> = dyn FnMut(usize, &[i64], &[f32]) -> Result<(), String> + 'a;

/// An open session: one graph, run on f32 tensors, possibly from several threads at once.
pub trait Session: Send + Sync + 'static {
    /// Outputs every run gives.
    fn outputs(&self) -> usize;

    /// The device that runs it ("cpu", "cuda:0").
    fn device(&self) -> String;

    /// How it came to run there; empty when on the first choice.
    fn notes(&self) -> String {
        String::new()
    }

    /// Runs the session on `inputs` (shape, values); each output's shape and values go to
    /// `output` in order.
    fn run(&self, inputs: &[(Vec<i64>, &[f32])], output: &mut WriteOutput<'_>) -> Result<(), String>;
}

/// Makes the plugin's `hrm_plugin_entry` and its static table: `export_plugin!(MyPlugin,
/// c"name")`.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty, $name:expr) => {
        static HRM_PLUGIN_API: $crate::hrm_plugin_api = $crate::hrm_plugin_api {
            abi_version: $crate::HRM_PLUGIN_ABI_VERSION,
            struct_size: ::std::mem::size_of::<$crate::hrm_plugin_api>() as u32,
            name: $name.as_ptr(),
            check_options: Some($crate::export::check_options::<$plugin>),
            describe: Some($crate::export::describe::<$plugin>),
            session_new: Some($crate::export::session_new::<$plugin>),
            session_info: Some($crate::export::session_info::<$plugin>),
            session_run: Some($crate::export::session_run::<$plugin>),
            session_free: Some($crate::export::session_free::<$plugin>),
            last_error: Some($crate::export::last_error),
        };

        /// The plugin's entry point (include/hrm_plugin.h).
        #[no_mangle]
        pub extern "C" fn hrm_plugin_entry() -> *const $crate::hrm_plugin_api {
            &HRM_PLUGIN_API
        }
    };
}

/// The options' text and folder as the plugin's options.
///
/// # Safety
/// Both are NULL or NUL-terminated strings alive for the call.
unsafe fn read_options<P: Plugin>(toml: *const c_char, dir: *const c_char) -> Result<P::Options, String> {
    // SAFETY: as the caller promises.
    let text = unsafe { c_str(toml, "options_toml") }?;
    let dir = match dir.is_null() {
        true => None,
        // SAFETY: as the caller promises.
        false => Some(PathBuf::from(unsafe { c_str(dir, "options_dir") }?)),
    };
    P::options(text, dir.as_deref())
}

/// # Safety
/// The host's strings, alive for the call.
pub unsafe extern "C" fn check_options<P: Plugin>(toml: *const c_char, dir: *const c_char) -> hrm_plugin_status {
    // SAFETY: as the caller promises.
    guard(|| unsafe { read_options::<P>(toml, dir) }.map(|_| ()).map_err(error))
}

/// # Safety
/// The host's strings, alive for the call; `description` NULL or of its `struct_size`.
pub unsafe extern "C" fn describe<P: Plugin>(
    toml: *const c_char,
    dir: *const c_char,
    description: *mut hrm_plugin_description,
) -> hrm_plugin_status {
    guard(|| {
        // SAFETY: as the caller promises.
        let options = unsafe { read_options::<P>(toml, dir) }.map_err(error)?;
        // SAFETY: the host's struct, NULL or of struct_size bytes.
        let out = unsafe { description.as_mut() }.ok_or_else(|| error("description is NULL"))?;
        if out.struct_size < HRM_PLUGIN_DESCRIPTION_SIZE_V1 {
            return Err(error("the host's hrm_plugin_description is shorter than version 1's"));
        }
        let described = P::describe(&options).map_err(error)?;
        write_text(&mut out.version, &described.version);
        write_text(&mut out.runtime, &described.runtime);
        // Each line short enough for a few devices to fit the field.
        let lines: Vec<String> = described.devices.iter().map(|d| shorten(&d.replace('\n', " "), 600)).collect();
        write_text(&mut out.devices, &lines.join("\n"));
        Ok(())
    })
}

/// # Safety
/// The host's model, strings and out-parameter, valid as include/hrm_plugin.h describes.
pub unsafe extern "C" fn session_new<P: Plugin>(
    model: *const hrm_plugin_model,
    toml: *const c_char,
    dir: *const c_char,
    session: *mut *mut hrm_plugin_session,
) -> hrm_plugin_status {
    guard(|| {
        // SAFETY: as the caller promises.
        let options = unsafe { read_options::<P>(toml, dir) }.map_err(error)?;
        if model.is_null() || session.is_null() {
            return Err(error("model or session is NULL"));
        }
        // SAFETY: the host's struct, checked for size before any field past it is read.
        let m = unsafe { &*model };
        if m.struct_size < HRM_PLUGIN_MODEL_SIZE_V1 {
            return Err(error("the host's hrm_plugin_model is shorter than version 1's"));
        }
        // SAFETY: the host's strings and arrays, of the lengths given, alive for the call.
        let model = unsafe { read_model(m) }.map_err(error)?;
        let opened: Box<P::Session> = Box::new(P::open(&model, &options).map_err(error)?);
        // SAFETY: checked non-NULL; the host's out-parameter.
        unsafe { *session = Box::into_raw(opened) as *mut hrm_plugin_session };
        Ok(())
    })
}

/// # Safety
/// The pointers of `m` are valid as include/hrm_plugin.h describes.
unsafe fn read_model(m: &hrm_plugin_model) -> Result<Model, String> {
    let path = |ptr: *const c_char, what: &str| -> Result<Option<PathBuf>, String> {
        match ptr.is_null() {
            true => Ok(None),
            // SAFETY: as the caller promises.
            false => Ok(Some(PathBuf::from(unsafe { c_str(ptr, what) }?))),
        }
    };
    // SAFETY: as the caller promises.
    let name = unsafe { c_str(m.name, "model name") }?.to_string();
    let (graph_path, weights_path) = (path(m.graph_path, "graph_path")?, path(m.weights_path, "weights_path")?);
    let graph_bytes = match (&graph_path, m.graph_bytes.is_null()) {
        (Some(_), _) => Vec::new(),
        (None, true) => return Err("neither graph_path nor graph_bytes is given".into()),
        // SAFETY: `graph_len` bytes at `graph_bytes`.
        (None, false) => unsafe { std::slice::from_raw_parts(m.graph_bytes, m.graph_len) }.to_vec(),
    };
    let shapes: &[hrm_plugin_shape] = match m.input_count {
        0 => &[],
        // SAFETY: `input_count` shapes at `inputs`.
        n if !m.inputs.is_null() => unsafe { std::slice::from_raw_parts(m.inputs, n) },
        _ => return Err("inputs is NULL".into()),
    };
    let inputs = shapes.iter().map(|s| s.dims().to_vec()).collect();
    Ok(Model { name, graph_path, weights_path, graph_bytes, inputs, threads: m.threads.max(1) as usize })
}

/// The session behind a handle.
///
/// # Safety
/// `session` is NULL or a handle `session_new::<P>` gave and `session_free` has not taken.
unsafe fn session_ref<'a, P: Plugin>(
    session: *const hrm_plugin_session,
) -> Result<&'a P::Session, (hrm_plugin_status, String)> {
    // SAFETY: as the caller promises: a Box<P::Session> made by session_new, or NULL.
    unsafe { (session as *const P::Session).as_ref() }.ok_or_else(|| error("session is NULL"))
}

/// # Safety
/// A live session of this plugin; `info` NULL or of its `struct_size`.
pub unsafe extern "C" fn session_info<P: Plugin>(
    session: *const hrm_plugin_session,
    info: *mut hrm_plugin_session_info,
) -> hrm_plugin_status {
    guard(|| {
        // SAFETY: the host passes a live session.
        let session = unsafe { session_ref::<P>(session) }?;
        // SAFETY: the host's struct, NULL or of struct_size bytes.
        let info = unsafe { info.as_mut() }.ok_or_else(|| error("info is NULL"))?;
        if info.struct_size < HRM_PLUGIN_SESSION_INFO_SIZE_V1 {
            return Err(error("the host's hrm_plugin_session_info is shorter than version 1's"));
        }
        info.output_count = session.outputs();
        write_text(&mut info.device, &session.device());
        write_text(&mut info.notes, &session.notes());
        Ok(())
    })
}

/// # Safety
/// A live session of this plugin; `input_count` inputs and `output_count` outputs, the host's.
pub unsafe extern "C" fn session_run<P: Plugin>(
    session: *mut hrm_plugin_session,
    inputs: *const hrm_plugin_input,
    input_count: usize,
    outputs: *mut hrm_plugin_output,
    output_count: usize,
) -> hrm_plugin_status {
    guard(|| {
        // SAFETY: the host passes a live session.
        let session = unsafe { session_ref::<P>(session) }?;
        if (inputs.is_null() && input_count > 0) || outputs.is_null() {
            return Err(error("inputs or outputs is NULL"));
        }
        if output_count != session.outputs() {
            return Err(error(format!("{output_count} output buffers for a graph of {} outputs", session.outputs())));
        }
        // SAFETY: `input_count` inputs and `output_count` outputs, the host's, for the call.
        let (inputs, outputs) = unsafe {
            let inputs = if input_count == 0 { &[][..] } else { std::slice::from_raw_parts(inputs, input_count) };
            (inputs, std::slice::from_raw_parts_mut(outputs, output_count))
        };
        let tensors = inputs
            .iter()
            .map(|input| {
                if input.data.is_null() && input.len > 0 {
                    return Err(error("an input's data is NULL"));
                }
                // SAFETY: `len` values at `data`, the host's, for the call.
                let data =
                    if input.len == 0 { &[][..] } else { unsafe { std::slice::from_raw_parts(input.data, input.len) } };
                Ok((input.shape.dims().to_vec(), data))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut short = false;
        let mut write = |i: usize, shape: &[i64], data: &[f32]| {
            let out = &mut outputs[i];
            out.shape =
                hrm_plugin_shape::new(shape).ok_or_else(|| format!("output {i} has {} dimensions", shape.len()))?;
            out.len = data.len();
            if data.is_empty() {
                return Ok(());
            }
            if data.len() > out.capacity || out.data.is_null() {
                short = true;
                return Ok(());
            }
            // SAFETY: the host's buffer of `capacity` values, checked to hold `data`.
            unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), out.data, data.len()) };
            Ok(())
        };
        session.run(&tensors, &mut write).map_err(error)?;
        match short {
            true => Err((HRM_PLUGIN_BUFFER_TOO_SMALL, "an output buffer is too small".into())),
            false => Ok(()),
        }
    })
}

/// # Safety
/// NULL, or a session of this plugin not freed before.
pub unsafe extern "C" fn session_free<P: Plugin>(session: *mut hrm_plugin_session) {
    guard(|| {
        if !session.is_null() {
            // SAFETY: a handle session_new made with Box::into_raw, freed once.
            drop(unsafe { Box::from_raw(session as *mut P::Session) });
        }
        Ok(())
    });
}

/// # Safety
/// `buffer` is NULL or points at `capacity` writable bytes.
pub unsafe extern "C" fn last_error(buffer: *mut c_char, capacity: usize) -> usize {
    // SAFETY: as the caller promises.
    unsafe { copy_last_error(buffer, capacity) }
}

/// `text`, cut at a character boundary to at most `max` bytes, with "..." when cut.
pub fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}
