//! The plugin ABI of hrm. A backend plugin is a shared library (`libhrm_NAME.so`) that exports one
//! C function, `hrm_plugin_entry`, returning a pointer to a static [`hrm_plugin_api`]: a versioned
//! table of C function pointers that open a session for an ONNX graph and run it on f32 tensors.
//! Only C types cross; `include/hrm_plugin.h` is generated from this file by cbindgen, so a plugin
//! can be written in C or C++ as well as in Rust.
//!
//! For plugins written in Rust the crate also holds the one panic boundary every entry point runs
//! inside ([`guard`]), the thread-local last-error slot ([`copy_last_error`]), and the whole C
//! surface made from two traits ([`export`]: implement `Plugin` and `Session`, then
//! `export_plugin!`).

#![allow(non_camel_case_types)]

use std::cell::RefCell;
use std::ffi::{c_char, CStr};

pub mod export;

/// The ABI version this header describes. The host refuses a plugin whose table carries another.
/// It changes only when a change would break plugins built against an earlier header; the table
/// and the structs below only grow at the end, which does not change it.
pub const HRM_PLUGIN_ABI_VERSION: u32 = 1;

/// Every fallible plugin call returns one of the `HRM_PLUGIN_*` statuses.
pub type hrm_plugin_status = u32;
/// The call succeeded.
pub const HRM_PLUGIN_OK: hrm_plugin_status = 0;
/// The call failed; `last_error` says why.
pub const HRM_PLUGIN_ERROR: hrm_plugin_status = 1;
/// `run` only: an output's buffer is too small. Each output's `len` then holds the number of
/// values it needs (its `shape` too); the caller grows the buffers and calls again.
pub const HRM_PLUGIN_BUFFER_TOO_SMALL: hrm_plugin_status = 2;

/// The sizes of the structs in version 1 of this header: the smallest `struct_size` each side
/// accepts from the other. A newer side reads no field past the size the other gave.
pub const HRM_PLUGIN_API_SIZE_V1: u32 = 72;
pub const HRM_PLUGIN_MODEL_SIZE_V1: u32 = 64;
pub const HRM_PLUGIN_DESCRIPTION_SIZE_V1: u32 = 3140;
pub const HRM_PLUGIN_SESSION_INFO_SIZE_V1: u32 = 2128;

/// The most dimensions a tensor has (hrm's graphs have at most 4).
pub const HRM_PLUGIN_MAX_RANK: usize = 8;
/// An input dimension that is the batch: any size, the same for every input of one run.
pub const HRM_PLUGIN_DIM_BATCH: i64 = -1;
/// An input dimension of any size, possibly different at every run (a frame's height and width).
pub const HRM_PLUGIN_DIM_ANY: i64 = -2;

/// A tensor's shape: `rank` dimensions, the rest of `dims` unused.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct hrm_plugin_shape {
    pub rank: usize,
    pub dims: [i64; HRM_PLUGIN_MAX_RANK],
}

/// The graph a session is opened for. Every pointer is the host's, valid during `session_new`
/// only: a plugin copies what it keeps.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hrm_plugin_model {
    /// `sizeof(hrm_plugin_model)` as the host knows it. Fields only ever grow at the end: a plugin
    /// reads no field that does not fit in it.
    pub struct_size: u32,
    /// Threads the host's configuration asks for (at least 1).
    pub threads: u32,
    /// The graph's name, for messages: its file, or the built-in model's name. UTF-8.
    pub name: *const c_char,
    /// The ONNX file (a package's `model.onnx`), or NULL when the graph is given in memory.
    /// External tensors are read from its folder.
    pub graph_path: *const c_char,
    /// The weights file the graph's external tensors live in (a package's `model.safetensors`),
    /// or NULL when every weight is inside the graph.
    pub weights_path: *const c_char,
    /// The ONNX bytes when `graph_path` is NULL (hrm's built-in models), every weight inside.
    pub graph_bytes: *const u8,
    pub graph_len: usize,
    /// The shapes the inputs will have, one per graph input in the graph's order; a dimension is
    /// a size, `HRM_PLUGIN_DIM_BATCH` or `HRM_PLUGIN_DIM_ANY`.
    pub inputs: *const hrm_plugin_shape,
    pub input_count: usize,
}

/// One input of a run: `len` f32 values, row-major, of `shape`; read during the call only.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hrm_plugin_input {
    pub data: *const f32,
    pub len: usize,
    pub shape: hrm_plugin_shape,
}

/// One output of a run: the caller's buffer of `capacity` f32 values; the plugin writes the
/// values, their number (`len`) and their `shape`. When `capacity` is short it writes no values,
/// sets `len` and `shape` to what the output needs and the run returns
/// `HRM_PLUGIN_BUFFER_TOO_SMALL` (the one failure that writes an out-parameter).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hrm_plugin_output {
    pub data: *mut f32,
    pub capacity: usize,
    pub len: usize,
    pub shape: hrm_plugin_shape,
}

/// What a plugin can do on this machine, written by `describe` as NUL-terminated UTF-8 (each
/// field truncated to fit).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hrm_plugin_description {
    /// `sizeof(hrm_plugin_description)` as the host knows it, set by the host; the plugin writes
    /// no field that does not fit in it.
    pub struct_size: u32,
    /// The plugin's own version.
    pub version: [c_char; 64],
    /// The library the plugin runs on, with its version and where it was found ("ONNX Runtime
    /// 1.23.2 at /opt/ort/libonnxruntime.so.1"); empty when it needs none.
    pub runtime: [c_char; 1024],
    /// The devices (or execution providers) it knows, one per line: the name alone when it can
    /// be used here, or `name: why not` when it cannot.
    pub devices: [c_char; 2048],
}

/// What a session runs on, written by `session_info`, NUL-terminated UTF-8.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hrm_plugin_session_info {
    /// `sizeof(hrm_plugin_session_info)` as the host knows it, set by the host.
    pub struct_size: u32,
    /// The number of outputs every run gives.
    pub output_count: usize,
    /// The device or execution provider that runs the session ("cuda", "cpu").
    pub device: [c_char; 64],
    /// How it came to run there: the devices tried before it and why they were not used; empty
    /// when the first choice runs it.
    pub notes: [c_char; 2048],
}

/// A session: one loaded graph, opaque to the host.
pub struct hrm_plugin_session {
    _private: [u8; 0],
}

/// The table `hrm_plugin_entry` returns: static, valid for as long as the library is loaded (the
/// host never unloads it).
///
/// Threads: `describe`, `session_new` and `last_error` may be called from any thread; `session_run`
/// may be called on one session from several threads at once (the host shares a session between
/// its detectors; a plugin whose device cannot run concurrently serialises the calls itself);
/// `session_info` at any time; `session_free` once, when no run is in flight. `last_error` reports
/// the last failed call of the calling thread.
///
/// Panics and exceptions must not leave a function of the table: a plugin catches them and
/// returns `HRM_PLUGIN_ERROR` with a message.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hrm_plugin_api {
    /// `HRM_PLUGIN_ABI_VERSION` as the plugin was built with.
    pub abi_version: u32,
    /// `sizeof(hrm_plugin_api)` as the plugin was built with; the host refuses a table shorter
    /// than `HRM_PLUGIN_API_SIZE_V1`, and treats functions past the end of a shorter table than
    /// its own as absent.
    pub struct_size: u32,
    /// The backend's name (`onnxruntime`): lowercase ASCII letters, digits, `-` and `_`. It is
    /// what `backend = "NAME"` chooses and the key of the plugin's table of options. Name the
    /// library after it (`libhrm_NAME.so`): a file whose NAME is already taken is not loaded.
    pub name: *const c_char,
    /// Checks the options without loading or probing anything: `options_toml` is the
    /// configuration's table for this plugin as TOML text (never NULL; empty without one), whose
    /// relative paths are relative to `options_dir` (NULL: the current directory). Returns
    /// `HRM_PLUGIN_ERROR`, naming the key, when they are not valid. The host calls it before it
    /// loads any model, on every backend a configuration names.
    pub check_options:
        Option<unsafe extern "C" fn(options_toml: *const c_char, options_dir: *const c_char) -> hrm_plugin_status>,
    /// Describes the plugin and what it can use here, with these options (as for
    /// `check_options`): the runtime library it would load, each device and whether it can be
    /// used. May take a while (it may load libraries and probe devices); `hrm backends` calls it.
    /// The description's fields are unspecified when it fails.
    pub describe: Option<
        unsafe extern "C" fn(
            options_toml: *const c_char,
            options_dir: *const c_char,
            description: *mut hrm_plugin_description,
        ) -> hrm_plugin_status,
    >,
    /// Opens a session for `model` with the options (as for `describe`). On success writes the
    /// session to `*session`, which the caller frees with `session_free`.
    pub session_new: Option<
        unsafe extern "C" fn(
            model: *const hrm_plugin_model,
            options_toml: *const c_char,
            options_dir: *const c_char,
            session: *mut *mut hrm_plugin_session,
        ) -> hrm_plugin_status,
    >,
    /// Writes what `session` runs on.
    pub session_info: Option<
        unsafe extern "C" fn(
            session: *const hrm_plugin_session,
            info: *mut hrm_plugin_session_info,
        ) -> hrm_plugin_status,
    >,
    /// Runs `session` on `input_count` inputs (one per graph input, in the graph's order) into
    /// `output_count` caller buffers (one per graph output, in order; `output_count` is
    /// `session_info`'s). The data pointers are the caller's, for the call only.
    pub session_run: Option<
        unsafe extern "C" fn(
            session: *mut hrm_plugin_session,
            inputs: *const hrm_plugin_input,
            input_count: usize,
            outputs: *mut hrm_plugin_output,
            output_count: usize,
        ) -> hrm_plugin_status,
    >,
    /// Frees a session; NULL is accepted and does nothing.
    pub session_free: Option<unsafe extern "C" fn(session: *mut hrm_plugin_session)>,
    /// Copies the calling thread's last error message (UTF-8), NUL-terminated and truncated to
    /// `capacity` bytes, into `buffer`; returns the message's full length in bytes, without the
    /// NUL. A NULL `buffer` or a zero `capacity` only returns the length.
    pub last_error: Option<unsafe extern "C" fn(buffer: *mut c_char, capacity: usize) -> usize>,
}

// SAFETY: the table is immutable static data (function pointers and a pointer to a static string)
// that every thread may read, and its functions may be called from any thread (see above).
unsafe impl Sync for hrm_plugin_api {}
// SAFETY: as above: a copy of the table may move to any thread.
unsafe impl Send for hrm_plugin_api {}

/// The symbol every plugin exports: `const hrm_plugin_api *hrm_plugin_entry(void)`.
pub const HRM_PLUGIN_ENTRY_SYMBOL: &str = "hrm_plugin_entry";

/// The entry point's type.
pub type hrm_plugin_entry_fn = unsafe extern "C" fn() -> *const hrm_plugin_api;

impl hrm_plugin_shape {
    /// The shape of `dims`, or None when it has more than `HRM_PLUGIN_MAX_RANK` dimensions.
    pub fn new(dims: &[i64]) -> Option<hrm_plugin_shape> {
        let mut shape = hrm_plugin_shape { rank: dims.len(), dims: [0; HRM_PLUGIN_MAX_RANK] };
        shape.dims.get_mut(..dims.len())?.copy_from_slice(dims);
        Some(shape)
    }

    /// The dimensions in use (all of them when `rank` is out of range).
    pub fn dims(&self) -> &[i64] {
        &self.dims[..self.rank.min(HRM_PLUGIN_MAX_RANK)]
    }
}

// ---------------------------------------------------------------------------------------------
// For plugins written in Rust: the panic boundary and the last error.

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Records `message` as the calling thread's last error.
pub fn set_last_error(message: impl Into<String>) {
    let message = message.into();
    LAST_ERROR.with(|slot| *slot.borrow_mut() = message);
}

/// Runs one entry point's body: `Ok` is `HRM_PLUGIN_OK`; an error, or a panic, is recorded as the
/// last error and returned as its status (`HRM_PLUGIN_ERROR` unless the body chose another).
pub fn guard(body: impl FnOnce() -> Result<(), (hrm_plugin_status, String)>) -> hrm_plugin_status {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(Ok(())) => HRM_PLUGIN_OK,
        Ok(Err((status, message))) => {
            set_last_error(message);
            status
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_last_error(format!("the plugin panicked: {what}"));
            HRM_PLUGIN_ERROR
        }
    }
}

/// An error as [`guard`] takes it: `HRM_PLUGIN_ERROR` with a message.
pub fn error(message: impl Into<String>) -> (hrm_plugin_status, String) {
    (HRM_PLUGIN_ERROR, message.into())
}

/// The body of a plugin's `last_error`: copies the calling thread's last error into the buffer.
///
/// # Safety
/// `buffer` is NULL or points at `capacity` writable bytes.
pub unsafe fn copy_last_error(buffer: *mut c_char, capacity: usize) -> usize {
    LAST_ERROR.with(|slot| {
        let message = slot.borrow();
        if !buffer.is_null() && capacity > 0 {
            // SAFETY: the caller gives `capacity` writable bytes at `buffer`.
            let dst = unsafe { std::slice::from_raw_parts_mut(buffer, capacity) };
            write_text(dst, &message);
        }
        message.len()
    })
}

/// The file of the shared library (or executable) that holds `address`, as the dynamic loader
/// knows it: a plugin finds its own folder with it, the host finds libhrm's. The address (of a
/// function) is only looked up, never read.
pub fn library_file(address: usize) -> Option<std::path::PathBuf> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        // SAFETY: Dl_info is pointers and integers, for which zero bytes are valid.
        let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
        // SAFETY: dladdr only reads the loader's tables for the address and writes `info`, whose
        // `dli_fname` then points at a path the loader owns.
        if unsafe { libc::dladdr(address as *const libc::c_void, &mut info) } == 0 || info.dli_fname.is_null() {
            return None;
        }
        // SAFETY: checked non-NULL; a NUL-terminated path owned by the loader.
        let name = unsafe { CStr::from_ptr(info.dli_fname) };
        std::path::PathBuf::from(std::ffi::OsStr::from_bytes(name.to_bytes())).canonicalize().ok()
    }
    #[cfg(not(unix))]
    {
        let _ = address;
        None
    }
}

/// Writes `text` into a fixed C field, NUL-terminated, cut at a character boundary to fit.
pub fn write_text(dst: &mut [c_char], text: &str) {
    let Some(room) = dst.len().checked_sub(1) else { return };
    let mut end = text.len().min(room);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    for (d, &b) in dst.iter_mut().zip(&text.as_bytes()[..end]) {
        *d = b as c_char;
    }
    dst[end] = 0;
}

/// The text in a fixed C field, up to its first NUL (the whole field without one); bytes that are
/// not UTF-8 are replaced.
pub fn read_text(src: &[c_char]) -> String {
    let bytes: Vec<u8> = src.iter().map(|&c| c as u8).take_while(|&b| b != 0).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The UTF-8 text at a C string pointer; `what` names it in the error. NULL is an error.
///
/// # Safety
/// `ptr` is NULL or points at a NUL-terminated string that lives for `'a`.
pub unsafe fn c_str<'a>(ptr: *const c_char, what: &str) -> Result<&'a str, String> {
    if ptr.is_null() {
        return Err(format!("{what} is NULL"));
    }
    // SAFETY: the caller gives a NUL-terminated string alive for 'a.
    unsafe { CStr::from_ptr(ptr) }.to_str().map_err(|_| format!("{what} is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_fields_are_cut_at_a_character_boundary_and_terminated() {
        let mut field = [1 as c_char; 5];
        write_text(&mut field, "épée!");
        // "épée!" is 7 bytes; 4 fit before the NUL, and the fourth would split the second "é".
        assert_eq!(read_text(&field), "ép");
        write_text(&mut field, "ok");
        assert_eq!(read_text(&field), "ok");
        write_text(&mut [], "nothing fits");
    }

    #[test]
    fn the_guard_turns_errors_and_panics_into_statuses_and_messages() {
        assert_eq!(guard(|| Ok(())), HRM_PLUGIN_OK);
        assert_eq!(guard(|| Err(error("no such file"))), HRM_PLUGIN_ERROR);
        let mut buffer = [0 as c_char; 64];
        // SAFETY: 64 writable bytes.
        let len = unsafe { copy_last_error(buffer.as_mut_ptr(), buffer.len()) };
        assert_eq!((len, read_text(&buffer).as_str()), (12, "no such file"));
        assert_eq!(guard(|| panic!("index out of range")), HRM_PLUGIN_ERROR);
        // SAFETY: 64 writable bytes; then NULL, which only measures.
        unsafe { copy_last_error(buffer.as_mut_ptr(), buffer.len()) };
        assert_eq!(read_text(&buffer), "the plugin panicked: index out of range");
        assert_eq!(unsafe { copy_last_error(std::ptr::null_mut(), 0) }, 39);
    }

    #[test]
    fn version_1_sizes_are_the_structs_sizes() {
        use std::mem::size_of;
        assert_eq!(size_of::<hrm_plugin_api>() as u32, HRM_PLUGIN_API_SIZE_V1);
        assert_eq!(size_of::<hrm_plugin_model>() as u32, HRM_PLUGIN_MODEL_SIZE_V1);
        assert_eq!(size_of::<hrm_plugin_description>() as u32, HRM_PLUGIN_DESCRIPTION_SIZE_V1);
        assert_eq!(size_of::<hrm_plugin_session_info>() as u32, HRM_PLUGIN_SESSION_INFO_SIZE_V1);
        assert!(library_file(library_file as *const () as usize).is_some_and(|p| p.is_file()));
    }

    #[test]
    fn shapes_hold_up_to_eight_dimensions() {
        assert_eq!(hrm_plugin_shape::new(&[1, 3, 224, 224]).unwrap().dims(), [1, 3, 224, 224]);
        assert!(hrm_plugin_shape::new(&[1; 9]).is_none());
        let broken = hrm_plugin_shape { rank: 99, dims: [2; HRM_PLUGIN_MAX_RANK] };
        assert_eq!(broken.dims().len(), HRM_PLUGIN_MAX_RANK);
    }
}
