//! The artifact crate: builds libhrm.so and libhrm.a from `hrm-ffi`, where every export lives
//! (as wasmtime's c-api does), so Rust tests can use the same code as an rlib.

pub use hrm_ffi::*;
