//! libhrm_onnxruntime.so: ONNX Runtime as an hrm backend plugin (`backend = "onnxruntime"`),
//! with its CPU, CUDA and TensorRT execution providers. The ONNX Runtime library itself is loaded
//! at run time (`[onnxruntime] library`, `ORT_DYLIB_PATH`, or beside this plugin), so the plugin
//! builds and loads on any machine and uses a GPU where the library and the device are there.
//!
//! This file is the plugin's C surface: the table and its functions, each a thin shell that runs
//! its body inside `hrm_plugin::guard` (the one panic boundary).

mod graph;
mod options;
mod runtime;
mod session;

use hrm_plugin::*;
use options::Options;
use session::{Model, OrtSession};
use std::ffi::c_char;
use std::path::PathBuf;

static API: hrm_plugin_api = hrm_plugin_api {
    abi_version: HRM_PLUGIN_ABI_VERSION,
    struct_size: std::mem::size_of::<hrm_plugin_api>() as u32,
    name: c"onnxruntime".as_ptr(),
    check_options: Some(check_options),
    describe: Some(describe),
    session_new: Some(session_new),
    session_info: Some(session_info),
    session_run: Some(session_run),
    session_free: Some(session_free),
    last_error: Some(last_error),
};

/// The plugin's entry point (include/hrm_plugin.h).
#[no_mangle]
pub extern "C" fn hrm_plugin_entry() -> *const hrm_plugin_api {
    &API
}

/// The options' text and folder as Rust values.
///
/// # Safety
/// Both are NULL or NUL-terminated strings alive for the call.
unsafe fn read_options(options_toml: *const c_char, options_dir: *const c_char) -> Result<Options, String> {
    // SAFETY: as the caller promises.
    let text = unsafe { c_str(options_toml, "options_toml") }?;
    let dir = match options_dir.is_null() {
        true => None,
        // SAFETY: as the caller promises.
        false => Some(PathBuf::from(unsafe { c_str(options_dir, "options_dir") }?)),
    };
    Options::parse(text, dir.as_deref())
}

unsafe extern "C" fn check_options(options_toml: *const c_char, options_dir: *const c_char) -> hrm_plugin_status {
    // SAFETY: the host's strings, alive for the call.
    guard(|| unsafe { read_options(options_toml, options_dir) }.map(|_| ()).map_err(error))
}

unsafe extern "C" fn describe(
    options_toml: *const c_char,
    options_dir: *const c_char,
    description: *mut hrm_plugin_description,
) -> hrm_plugin_status {
    guard(|| {
        // SAFETY: the host's strings, alive for the call.
        let options = unsafe { read_options(options_toml, options_dir) }.map_err(error)?;
        if description.is_null() {
            return Err(error("description is NULL"));
        }
        // SAFETY: the host's struct; struct_size says how much of it there is.
        let out = unsafe { &mut *description };
        if out.struct_size < HRM_PLUGIN_DESCRIPTION_SIZE_V1 {
            return Err(error("the host's hrm_plugin_description is shorter than version 1's"));
        }
        write_text(&mut out.version, env!("CARGO_PKG_VERSION"));
        let loaded = runtime::load(&options).map_err(error)?;
        let runtime = format!("ONNX Runtime {} at {}", loaded.version, loaded.library.display());
        write_text(&mut out.runtime, &runtime);
        let devices: Vec<String> = runtime::availability(&loaded, &options)
            .map_err(error)?
            .into_iter()
            .map(|(provider, why)| match why {
                None => provider.name().to_string(),
                // Each reason short enough for all three to fit the field.
                Some(why) => format!("{}: {}", provider.name(), shorten(&why.replace('\n', " "), 600)),
            })
            .collect();
        write_text(&mut out.devices, &devices.join("\n"));
        Ok(())
    })
}

unsafe extern "C" fn session_new(
    model: *const hrm_plugin_model,
    options_toml: *const c_char,
    options_dir: *const c_char,
    session: *mut *mut hrm_plugin_session,
) -> hrm_plugin_status {
    guard(|| {
        // SAFETY: the host's strings, alive for the call.
        let options = unsafe { read_options(options_toml, options_dir) }.map_err(error)?;
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
        let opened = OrtSession::open(&model, &options).map_err(error)?;
        // SAFETY: checked non-NULL; the host's out-parameter.
        unsafe { *session = Box::into_raw(Box::new(opened)) as *mut hrm_plugin_session };
        Ok(())
    })
}

/// # Safety
/// The pointers of `m` are valid as include/hrm_plugin.h describes.
unsafe fn read_model(m: &hrm_plugin_model) -> Result<Model, String> {
    // SAFETY: as the caller promises.
    let name = unsafe { c_str(m.name, "model name") }?.to_string();
    let graph_path = match m.graph_path.is_null() {
        true => None,
        // SAFETY: as the caller promises.
        false => Some(PathBuf::from(unsafe { c_str(m.graph_path, "graph_path") }?)),
    };
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
    Ok(Model { name, graph_path, graph_bytes, inputs, threads: m.threads as usize })
}

/// The session behind a handle.
///
/// # Safety
/// `session` is NULL or a handle `session_new` gave and `session_free` has not taken.
unsafe fn session_ref<'a>(session: *const hrm_plugin_session) -> Result<&'a OrtSession, (hrm_plugin_status, String)> {
    // SAFETY: as the caller promises: a Box<OrtSession> made by session_new, or NULL.
    unsafe { (session as *const OrtSession).as_ref() }.ok_or_else(|| error("session is NULL"))
}

unsafe extern "C" fn session_info(
    session: *const hrm_plugin_session,
    info: *mut hrm_plugin_session_info,
) -> hrm_plugin_status {
    guard(|| {
        // SAFETY: the host passes a live session.
        let session = unsafe { session_ref(session) }?;
        // SAFETY: the host's struct, NULL or of struct_size bytes.
        let info = unsafe { info.as_mut() }.ok_or_else(|| error("info is NULL"))?;
        if info.struct_size < HRM_PLUGIN_SESSION_INFO_SIZE_V1 {
            return Err(error("the host's hrm_plugin_session_info is shorter than version 1's"));
        }
        info.output_count = session.outputs;
        write_text(&mut info.device, session.provider.name());
        write_text(&mut info.notes, &session.notes);
        Ok(())
    })
}

unsafe extern "C" fn session_run(
    session: *mut hrm_plugin_session,
    inputs: *const hrm_plugin_input,
    input_count: usize,
    outputs: *mut hrm_plugin_output,
    output_count: usize,
) -> hrm_plugin_status {
    guard(|| {
        // SAFETY: the host passes a live session.
        let session = unsafe { session_ref(session) }?;
        if (inputs.is_null() && input_count > 0) || outputs.is_null() {
            return Err(error("inputs or outputs is NULL"));
        }
        if output_count != session.outputs {
            return Err(error(format!("{output_count} output buffers for a graph of {} outputs", session.outputs)));
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
        session
            .run(&tensors, |i, shape, data| {
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
            })
            .map_err(error)?;
        match short {
            true => Err((HRM_PLUGIN_BUFFER_TOO_SMALL, "an output buffer is too small".into())),
            false => Ok(()),
        }
    })
}

unsafe extern "C" fn session_free(session: *mut hrm_plugin_session) {
    guard(|| {
        if !session.is_null() {
            // SAFETY: a handle session_new made with Box::into_raw, freed once.
            drop(unsafe { Box::from_raw(session as *mut OrtSession) });
        }
        Ok(())
    });
}

/// `text`, cut at a character boundary to at most `max` bytes, with "..." when cut.
fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

unsafe extern "C" fn last_error(buffer: *mut c_char, capacity: usize) -> usize {
    // SAFETY: the host's buffer of `capacity` bytes, or NULL.
    unsafe { copy_last_error(buffer, capacity) }
}
