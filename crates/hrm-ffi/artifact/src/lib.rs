//! The artifact crate: builds libhrm.so and libhrm.a from `hrm-ffi`, where every export lives
//! (as wasmtime's c-api does), so Rust tests can use the same code as an rlib.

pub use hrm_ffi::*;

/// libhrm's own allocator. tract allocates its intermediate tensors afresh on every run; glibc
/// serves blocks over 128 KiB with mmap and unmaps them on free, so each frame paid page faults
/// for memory it had just given back (the `hrm` command sets glibc's thresholds for itself, but a
/// library must not change its host's malloc). mimalloc keeps those pages for the next frame, and
/// serves only libhrm's Rust allocations: the host's malloc is untouched.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
