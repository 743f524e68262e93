//! The committed include/hrm_plugin.h is what cbindgen makes of this crate today. `HRM_BLESS=1`
//! rewrites it instead of failing.

use std::path::Path;

#[test]
fn committed_header_matches_the_code() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let committed_path = crate_dir.join("../../include/hrm_plugin.h");
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
        std::fs::write(&committed_path, &generated).expect("include/hrm_plugin.h is writable");
        return;
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    if committed != generated {
        let first = committed.lines().zip(generated.lines()).position(|(a, b)| a != b);
        panic!(
            "include/hrm_plugin.h is out of date with crates/hrm-plugin (first differing line: {:?}); regenerate it \
             with `HRM_BLESS=1 cargo test -p hrm-plugin --test header` and commit it",
            first.map(|l| l + 1)
        );
    }
}
