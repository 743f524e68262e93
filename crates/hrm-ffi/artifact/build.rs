//! Gives libhrm.so the soname `libhrm.so.<ABI version>`, so programs linked against one ABI
//! never load a library of another.

fn main() {
    let abi = std::fs::read_to_string("../src/lib.rs")
        .ok()
        .and_then(|src| {
            let line = src.lines().find(|l| l.starts_with("pub const HRM_ABI_VERSION: u32 = "))?;
            Some(line.trim_start_matches("pub const HRM_ABI_VERSION: u32 = ").trim_end_matches(';').to_string())
        })
        .expect("crates/hrm-ffi/src/lib.rs defines HRM_ABI_VERSION");
    println!("cargo:rerun-if-changed=../src/lib.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libhrm.so.{abi}");
    }
}
