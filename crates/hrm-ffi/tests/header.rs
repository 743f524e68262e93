//! The committed headers are what cbindgen makes of their crates today: include/hrm.h of this
//! crate (the C ABI), include/hrm_plugin.h of crates/hrm-plugin (the plugin ABI). `HRM_BLESS=1`
//! rewrites them instead of failing.

use std::path::Path;

/// Generates the header of the crate at `crate_dir` (with its cbindgen.toml) and compares it with
/// the committed `include/<header>`.
fn check(crate_dir: &Path, header: &str) {
    let committed_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../include").join(header);
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml parses");
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let generated = String::from_utf8(generated).expect("the header is UTF-8");
    if std::env::var_os("HRM_BLESS").is_some() {
        std::fs::write(&committed_path, &generated).expect("include/ is writable");
        return;
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    if committed != generated {
        let first = committed.lines().zip(generated.lines()).position(|(a, b)| a != b);
        panic!(
            "include/{header} is out of date with {} (first differing line: {:?}); regenerate it with \
             `HRM_BLESS=1 cargo test -p hrm-ffi --test header` and commit it",
            crate_dir.display(),
            first.map(|l| l + 1)
        );
    }
}

#[test]
fn committed_header_matches_the_code() {
    check(Path::new(env!("CARGO_MANIFEST_DIR")), "hrm.h");
}

#[test]
fn committed_plugin_header_matches_the_code() {
    check(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../hrm-plugin"), "hrm_plugin.h");
}
