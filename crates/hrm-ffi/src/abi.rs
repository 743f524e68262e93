// The ABI version, alone in this file so that the artifact crate's build script can `include!` it
// to name libhrm.so's soname: one definition, read as Rust by both.

/// The ABI version this header describes. It changes only when a change breaks programs built
/// against an earlier header (structs growing at the end do not); compare it with
/// `hrm_abi_version()` at start-up.
pub const HRM_ABI_VERSION: u32 = 1;
