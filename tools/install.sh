#!/usr/bin/env bash
# Installs libhrm for C and C++ projects:
#
#   tools/install.sh --prefix DIR [--from TARGET_DIR]
#
# lays out DIR/lib/libhrm.so (soname libhrm.so.ABI), DIR/lib/libhrm.a, the backend plugins
# built beside them (DIR/lib/libhrm_onnxruntime.so, found by libhrm there), DIR/include/hrm.h,
# hrm.hpp and hrm_plugin.h, DIR/lib/pkgconfig/hrm.pc and DIR/lib/cmake/hrm/ (a CMake package with the target
# hrm::hrm). Then `pkg-config --cflags --libs hrm` (PKG_CONFIG_PATH=DIR/lib/pkgconfig) or CMake's
# `find_package(hrm)` (CMAKE_PREFIX_PATH=DIR) is all a project needs. The layout is relocatable.
# Without --from it first builds the library (`cargo build --release -p libhrm`) and takes it from
# cargo's target folder, wherever CARGO_TARGET_DIR or .cargo/config put it.
set -euo pipefail

usage() { echo "usage: $0 --prefix DIR [--from TARGET_DIR]" >&2; exit 2; }
prefix="" from=""
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="${2:-}"; shift 2 || usage ;;
    --from) from="${2:-}"; shift 2 || usage ;;
    *) usage ;;
  esac
done
[ -n "$prefix" ] || usage

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "$from" ]; then
  (cd "$repo" && cargo build --release -p libhrm -p hrm-onnxruntime)
  target="$(cd "$repo" && cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
  [ -n "$target" ] || { echo "error: cargo metadata did not name the target folder" >&2; exit 1; }
  from="$target/release"
  missing="cargo built libhrm, but it is not in $from"
else
  missing="--from takes the folder cargo builds into (target/release after \`cargo build --release -p libhrm\`); leave --from out to build here"
fi
for f in "$from/libhrm.so" "$from/libhrm.a"; do
  [ -f "$f" ] || { echo "error: $f not found: $missing" >&2; exit 1; }
done

abi="$(sed -n 's/^#define HRM_ABI_VERSION \([0-9][0-9]*\)$/\1/p' "$repo/include/hrm.h")"
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$repo/Cargo.toml" | head -n 1)"
[ -n "$abi" ] && [ -n "$version" ] || { echo "error: cannot read the ABI version or the version" >&2; exit 1; }

mkdir -p "$prefix/lib/pkgconfig" "$prefix/lib/cmake/hrm" "$prefix/include"
install -m 755 "$from/libhrm.so" "$prefix/lib/libhrm.so.$version"
strip --strip-unneeded "$prefix/lib/libhrm.so.$version" 2>/dev/null || true
ln -sf "libhrm.so.$version" "$prefix/lib/libhrm.so.$abi"
ln -sf "libhrm.so.$abi" "$prefix/lib/libhrm.so"
install -m 644 "$from/libhrm.a" "$prefix/lib/libhrm.a"
install -m 644 "$repo/include/hrm.h" "$repo/include/hrm.hpp" "$repo/include/hrm_plugin.h" "$prefix/include/"
# Plugins go beside libhrm, where it looks for them (cargo's hashed intermediate names excluded).
for plugin in "$from"/libhrm_*.so; do
  case "$(basename "$plugin")" in *-*) continue ;; esac
  [ -f "$plugin" ] || continue
  install -m 755 "$plugin" "$prefix/lib/"
  strip --strip-unneeded "$prefix/lib/$(basename "$plugin")" 2>/dev/null || true
done

# What a static link needs besides libhrm.a (rustc --print native-static-libs, Linux).
static_libs="-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc"

cat > "$prefix/lib/pkgconfig/hrm.pc" <<PC
prefix=\${pcfiledir}/../..
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: hrm
Description: Facial Action Unit detection for the Hugging Rain Man models (C ABI $abi)
Version: $version
Cflags: -I\${includedir}
Libs: -L\${libdir} -lhrm
Libs.private: $static_libs
PC

cat > "$prefix/lib/cmake/hrm/hrmConfig.cmake" <<CMAKE
# hrm $version (C ABI $abi): find_package(hrm) gives the imported target hrm::hrm (the shared
# library; hrm::hrm_static is libhrm.a).
get_filename_component(_hrm_prefix "\${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
if(NOT TARGET hrm::hrm)
  add_library(hrm::hrm SHARED IMPORTED)
  set_target_properties(hrm::hrm PROPERTIES
    IMPORTED_LOCATION "\${_hrm_prefix}/lib/libhrm.so.$abi"
    IMPORTED_SONAME "libhrm.so.$abi"
    INTERFACE_INCLUDE_DIRECTORIES "\${_hrm_prefix}/include")
  add_library(hrm::hrm_static STATIC IMPORTED)
  set_target_properties(hrm::hrm_static PROPERTIES
    IMPORTED_LOCATION "\${_hrm_prefix}/lib/libhrm.a"
    INTERFACE_INCLUDE_DIRECTORIES "\${_hrm_prefix}/include"
    INTERFACE_LINK_LIBRARIES "gcc_s;util;rt;pthread;m;dl")
endif()
unset(_hrm_prefix)
CMAKE

cat > "$prefix/lib/cmake/hrm/hrmConfigVersion.cmake" <<CMAKE
# Compatible when the major versions match and the installed one is at least the one asked for.
set(PACKAGE_VERSION "$version")
if(PACKAGE_FIND_VERSION_MAJOR STREQUAL "${version%%.*}" AND NOT PACKAGE_FIND_VERSION VERSION_GREATER PACKAGE_VERSION)
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
  if(PACKAGE_FIND_VERSION VERSION_EQUAL PACKAGE_VERSION)
    set(PACKAGE_VERSION_EXACT TRUE)
  endif()
elseif(NOT PACKAGE_FIND_VERSION)
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
else()
  set(PACKAGE_VERSION_COMPATIBLE FALSE)
endif()
CMAKE

echo "installed hrm $version (ABI $abi) into $prefix"
