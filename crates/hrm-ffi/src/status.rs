//! Status codes, the thread-local last error, and the one guard every export runs in.

use hrm_core::Error;
use std::cell::RefCell;
use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// What every fallible call returns: `HRM_OK` (0) or one of the `HRM_ERROR_*` codes.
pub type hrm_status = u32;

/// Success.
pub const HRM_OK: hrm_status = 0;
/// A NULL pointer, a zero or too large size, an unknown enum value or flag, a stride smaller
/// than a row, a `struct_size` smaller than the struct, a string that is not UTF-8.
pub const HRM_ERROR_INVALID_ARGUMENT: hrm_status = 1;
/// A caller buffer is too small; the size needed was written.
pub const HRM_ERROR_BUFFER_TOO_SMALL: hrm_status = 2;
/// A file could not be read (the configuration, a photograph).
pub const HRM_ERROR_IO: hrm_status = 3;
/// The configuration is malformed: bad TOML, an unknown key, a value out of range, an unknown
/// backend, settings that do not go together.
pub const HRM_ERROR_CONFIG: hrm_status = 4;
/// A model file is missing or malformed, or does not match the sha256 its manifest records.
pub const HRM_ERROR_MODEL: hrm_status = 5;
/// An encoded image could not be decoded.
pub const HRM_ERROR_DECODE: hrm_status = 6;
/// The backend failed to run a model.
pub const HRM_ERROR_BACKEND: hrm_status = 7;
/// A bug inside libhrm was caught at the boundary. The handle involved may be inconsistent:
/// free it and create a new one.
pub const HRM_ERROR_PANIC: hrm_status = 8;

/// A failed call: the status it returns and the message `hrm_last_error` gives.
#[derive(Debug)]
pub(crate) struct Failure {
    pub status: hrm_status,
    pub message: String,
}

impl Failure {
    pub fn new(status: hrm_status, message: impl Into<String>) -> Failure {
        Failure { status, message: message.into() }
    }

    pub fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(HRM_ERROR_INVALID_ARGUMENT, message)
    }

    /// An error while reading the configuration: unreadable files are `HRM_ERROR_IO`.
    pub fn config(error: Error) -> Failure {
        let status = match error {
            Error::Io { .. } => HRM_ERROR_IO,
            // A backend that cannot start (a plugin whose runtime library is missing).
            Error::Backend { .. } => HRM_ERROR_BACKEND,
            _ => HRM_ERROR_CONFIG,
        };
        Failure::new(status, error.to_string())
    }

    /// An error while loading a model: everything about a model file is `HRM_ERROR_MODEL`; a
    /// backend that cannot load it (no execution provider can run it) `HRM_ERROR_BACKEND`.
    pub fn model(error: Error) -> Failure {
        let status = match error {
            Error::Backend { .. } => HRM_ERROR_BACKEND,
            _ => HRM_ERROR_MODEL,
        };
        Failure::new(status, error.to_string())
    }
}

/// An error while processing input.
impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        let status = match error {
            Error::Io { .. } => HRM_ERROR_IO,
            Error::Toml { .. }
            | Error::Field { .. }
            | Error::UnknownBackend { .. }
            | Error::DuplicateBackend { .. } => HRM_ERROR_CONFIG,
            Error::Hash { .. } | Error::NotAPackage { .. } => HRM_ERROR_MODEL,
            Error::Decode { .. } => HRM_ERROR_DECODE,
            Error::InvalidInput(_) => HRM_ERROR_INVALID_ARGUMENT,
            Error::Backend { .. } | Error::ModelOutput { .. } => HRM_ERROR_BACKEND,
        };
        Failure::new(status, error.to_string())
    }
}

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

fn set_last_error(message: String) {
    LAST_ERROR.with(|last| *last.borrow_mut() = message);
}

/// Runs an export's body: a failure becomes its status and this thread's last error, a panic
/// becomes `HRM_ERROR_PANIC`. Nothing unwinds into C.
pub(crate) fn guard(function: &str, body: impl FnOnce() -> Result<(), Failure>) -> hrm_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => HRM_OK,
        Ok(Err(failure)) => {
            set_last_error(format!("{function}: {}", failure.message));
            failure.status
        }
        Err(panic) => {
            let what = hrm_core::error::panic_message(&*panic);
            set_last_error(format!("{function}: internal error in libhrm: {what}"));
            HRM_ERROR_PANIC
        }
    }
}

/// A NUL-terminated UTF-8 string argument.
///
/// # Safety
/// A non-NULL `ptr` points at a NUL-terminated string.
pub(crate) unsafe fn str_arg<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, Failure> {
    if ptr.is_null() {
        return Err(Failure::invalid(format!("`{name}` is NULL")));
    }
    // SAFETY: the caller guarantees a NUL-terminated string; `ptr` is not NULL.
    unsafe { CStr::from_ptr(ptr) }.to_str().map_err(|_| Failure::invalid(format!("`{name}` is not UTF-8")))
}

/// Checks an out-parameter before any work, so a call with nowhere to put its result fails
/// before it starts.
pub(crate) fn out_arg<T>(ptr: *mut T, name: &str) -> Result<(), Failure> {
    if ptr.is_null() {
        Err(Failure::invalid(format!("`{name}` (the out-parameter) is NULL")))
    } else {
        Ok(())
    }
}

/// Copies the message of the last call on this thread that failed into `buf`, NUL-terminated.
///
/// `*needed` (when `needed` is not NULL) receives the size the message takes, NUL included,
/// whether or not it fits; with no failure on this thread yet, the message is empty (1 byte).
/// Returns `HRM_OK` when it fit, `HRM_ERROR_BUFFER_TOO_SMALL` when `cap` is smaller than that
/// (nothing is written to `buf`; call `hrm_last_error(NULL, 0, &needed)` to ask the size), and
/// `HRM_ERROR_INVALID_ARGUMENT` when `buf` is NULL but `cap` is not 0. This call never changes
/// the last error itself. Any thread; each thread has its own last error.
///
/// # Safety
/// `buf` is NULL or writable for `cap` bytes; `needed` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn hrm_last_error(buf: *mut c_char, cap: usize, needed: *mut usize) -> hrm_status {
    // SAFETY: the caller's guarantees, passed on.
    let result = catch_unwind(|| LAST_ERROR.with(|last| unsafe { copy_text(&last.borrow(), buf, cap, needed) }));
    result.unwrap_or(HRM_ERROR_PANIC)
}

/// Copies `text` into a caller buffer as `hrm_last_error` does: `*needed` gets its size with the
/// NUL; `HRM_ERROR_BUFFER_TOO_SMALL` (nothing written) when `cap` is short,
/// `HRM_ERROR_INVALID_ARGUMENT` when `buf` is NULL but `cap` is not 0.
///
/// # Safety
/// `buf` is NULL or writable for `cap` bytes; `needed` is NULL or writable.
pub(crate) unsafe fn copy_text(text: &str, buf: *mut c_char, cap: usize, needed: *mut usize) -> hrm_status {
    let size = text.len() + 1;
    if buf.is_null() && cap != 0 {
        return HRM_ERROR_INVALID_ARGUMENT;
    }
    if !needed.is_null() {
        // SAFETY: the caller guarantees a non-NULL `needed` is writable.
        unsafe { *needed = size };
    }
    if cap < size {
        return HRM_ERROR_BUFFER_TOO_SMALL;
    }
    // SAFETY: the caller guarantees `buf` is writable for `cap` bytes, and the text with its NUL
    // (`size` bytes) fits in `cap`.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), text.len());
        *buf.add(text.len()) = 0;
    }
    HRM_OK
}

/// A static, NUL-terminated English description of a status ("invalid argument", ...);
/// "unknown status" for a value that is not a status. Never NULL; any thread.
#[no_mangle]
pub extern "C" fn hrm_status_str(status: hrm_status) -> *const c_char {
    let text: &'static CStr = match status {
        HRM_OK => c"ok",
        HRM_ERROR_INVALID_ARGUMENT => c"invalid argument",
        HRM_ERROR_BUFFER_TOO_SMALL => c"buffer too small",
        HRM_ERROR_IO => c"file could not be read",
        HRM_ERROR_CONFIG => c"invalid configuration",
        HRM_ERROR_MODEL => c"invalid model",
        HRM_ERROR_DECODE => c"image could not be decoded",
        HRM_ERROR_BACKEND => c"backend failure",
        HRM_ERROR_PANIC => c"internal error",
        _ => c"unknown status",
    };
    text.as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last_error() -> String {
        let mut buf = vec![0u8; 512];
        let mut needed = 0;
        // SAFETY: the buffer holds 512 bytes.
        let status = unsafe { hrm_last_error(buf.as_mut_ptr().cast(), buf.len(), &mut needed) };
        assert_eq!(status, HRM_OK);
        String::from_utf8(buf[..needed - 1].to_vec()).unwrap()
    }

    #[test]
    fn a_panic_becomes_a_status_and_a_message() {
        let status = guard("hrm_test", || panic!("index 7 out of range"));
        assert_eq!(status, HRM_ERROR_PANIC);
        assert_eq!(last_error(), "hrm_test: internal error in libhrm: index 7 out of range");
        let status = guard("hrm_test", || Err(Failure::invalid("`x` is NULL")));
        assert_eq!(status, HRM_ERROR_INVALID_ARGUMENT);
        assert_eq!(last_error(), "hrm_test: `x` is NULL");
        // Success leaves the last failure's message in place.
        assert_eq!(guard("hrm_test", || Ok(())), HRM_OK);
        assert_eq!(last_error(), "hrm_test: `x` is NULL");
    }

    #[test]
    fn each_thread_has_its_own_last_error() {
        guard("hrm_test", || Err(Failure::invalid("on the main thread")));
        let other = std::thread::spawn(last_error).join().unwrap();
        assert_eq!(other, "");
        assert_eq!(last_error(), "hrm_test: on the main thread");
    }
}
