//! libhrm's C ABI: every `hrm_*` export, with the rules `include/hrm.h` documents.
//!
//! The rules, once: every fallible call returns an `hrm_status` and writes its out-parameters
//! only on success; the message of a failure is this thread's last error (`hrm_last_error`);
//! every export runs inside one panic guard; objects made by a `_new`/`_load`/detection call are
//! owned by the caller until the matching `_free`, which accepts NULL; frames are borrowed for
//! the call only; results are library-owned `hrm_result` objects.
//!
//! The header is generated from this crate by cbindgen (`tests/header.rs` checks it); the
//! `libhrm` crate in `artifact/` turns it into libhrm.so and libhrm.a.

#![allow(non_camel_case_types)]
#![deny(unsafe_op_in_unsafe_fn)]

// In the order the header presents them.
mod status;

mod handle;

mod runtime;

mod image;

mod result;

mod stream;

pub use image::*;
pub use result::*;
pub use runtime::*;
pub use status::*;
pub use stream::*;

use std::ffi::c_char;

mod abi;
pub use abi::HRM_ABI_VERSION;

/// The library's version, `"MAJOR.MINOR.PATCH"`: a static string. Any thread.
#[no_mangle]
pub extern "C" fn hrm_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The ABI version of the loaded library (`HRM_ABI_VERSION` of the header it was built with).
/// Any thread.
#[no_mangle]
pub extern "C" fn hrm_abi_version() -> u32 {
    HRM_ABI_VERSION
}

/// Which handles may cross or share threads, as the header states; a change that breaks this
/// fails the build.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    const fn send<T: Send>() {}
    send_sync::<hrm_runtime>();
    send::<hrm_detector>();
    send::<hrm_stream>();
    send_sync::<hrm_result>();
    send_sync::<hrm_bitmap>();
};

impl handle::Handle for hrm_runtime {
    const NAME: &'static str = "hrm_runtime";
}

impl handle::Handle for hrm_detector {
    const NAME: &'static str = "hrm_detector";
}

impl handle::Handle for hrm_stream {
    const NAME: &'static str = "hrm_stream";
}

impl handle::Handle for hrm_result {
    const NAME: &'static str = "hrm_result";
}

impl handle::Handle for hrm_bitmap {
    const NAME: &'static str = "hrm_bitmap";
}
