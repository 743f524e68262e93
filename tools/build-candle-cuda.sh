#!/usr/bin/env bash
# The CUDA build of the candle plugin: target/candle-cuda/libhrm_candle.so, hrm-candle built with
# `--features cuda`, on any Linux x86_64 machine, with no GPU and no CUDA install (DESIGN.md §6):
#
#   1. NVIDIA's CUDA 13.2 compiler, runtime, cuBLAS, cuRAND and NVRTC from their PyPI wheels, in
#      ONE pip command (their versions depend on each other), into target/cuda-toolkit;
#   2. a link folder with the unversioned library names the linker asks for, and a stub
#      libcuda.so (soname libcuda.so.1) whose every driver function returns 999: the driver
#      itself only comes with a GPU, and is what the plugin loads at run time;
#   3. cargo build of the plugin for the compute capability asked for, in its own target folder.
#
#   tools/build-candle-cuda.sh [--compute-cap 90]
#
# Compute capabilities: 87 Jetson Orin (build on the Jetson itself or cross-compile for aarch64),
# 86 desktop Ampere (RTX 30xx, A10), 89 Ada (RTX 40xx, L4, L40), 90 Hopper (H100, H200), 80 A100.
# The PTX kernels are built for that capability; newer GPUs run them through the driver's JIT.
# On the GPU machine the plugin needs the NVIDIA driver (libcuda.so.1) and CUDA 13's cuBLAS,
# cuRAND and NVRTC (these wheels' nvidia/cu13/lib on LD_LIBRARY_PATH); libhrm and hrm never link
# CUDA.
set -euo pipefail
cap=90
while [ $# -gt 0 ]; do
  case "$1" in
    --compute-cap) cap="$2"; shift 2 ;;
    *) echo "usage: $0 [--compute-cap 90]" >&2; exit 2 ;;
  esac
done
case "$cap" in ''|*[!0-9]*) echo "error: --compute-cap takes a number such as 87 or 90" >&2; exit 2 ;; esac
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
toolkit="$repo/target/cuda-toolkit"
python="${PYTHON:-python3}"

if [ ! -x "$toolkit/nvidia/cu13/bin/nvcc" ]; then
  echo "== NVIDIA's CUDA 13.2 wheels into $toolkit"
  "$python" -m pip install --quiet --no-deps --target "$toolkit" \
    nvidia-cuda-nvcc==13.2.86 nvidia-cuda-crt==13.2.86 nvidia-nvvm==13.2.86 nvidia-cuda-runtime==13.2.86 \
    nvidia-cuda-cccl==13.2.86 nvidia-cuda-nvrtc==13.2.86 nvidia-curand==10.4.5.25 nvidia-cublas==13.4.1.3
fi
cuda="$toolkit/nvidia/cu13"
[ -x "$cuda/bin/nvcc" ] || { echo "error: no nvcc in $cuda/bin after installing the wheels" >&2; exit 1; }

echo "== link folder: unversioned names and a stub libcuda.so"
links="$toolkit/links"
rm -rf "$links" && mkdir -p "$links"
for lib in "$cuda"/lib/lib*.so.*; do
  base="$(basename "$lib")"
  ln -sf "$lib" "$links/${base%%.so.*}.so"
done
cudarc="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.10 2>/dev/null | head -1)"
if [ -z "$cudarc" ]; then
  (cd "$repo" && cargo fetch --quiet)
  cudarc="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.10 | head -1)"
fi
grep -o 'pub unsafe fn cu[A-Za-z0-9_]*' "$cudarc/src/driver/sys/mod.rs" | sed 's/pub unsafe fn //' | sort -u \
  | awk '{ printf "int %s(void) { return 999; }\n", $1 }' > "$links/cuda_stub.c"
[ "$(wc -l < "$links/cuda_stub.c")" -gt 100 ] || { echo "error: too few driver functions found in $cudarc" >&2; exit 1; }
cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$links/libcuda.so" "$links/cuda_stub.c"

echo "== cargo build -p hrm-candle --features cuda (compute capability $cap)"
export PATH="$cuda/bin:$PATH" CUDA_HOME="$cuda" CUDA_PATH="$cuda" CUDA_COMPUTE_CAP="$cap"
export LIBRARY_PATH="$links${LIBRARY_PATH:+:$LIBRARY_PATH}"
cd "$repo"
cargo build --release -p hrm-candle --features cuda --target-dir target/candle-cuda
plugin="target/candle-cuda/release/libhrm_candle.so"
# candle links the driver (cudarc's dynamic linking; it cannot also load it lazily): the plugin
# loads only where libcuda.so.1 is, and hrm lists it as "no CUDA driver" elsewhere.
readelf -d "$plugin" | grep -q 'NEEDED.*libcuda.so.1' || { echo "error: $plugin does not link libcuda.so.1" >&2; exit 1; }
echo "built $plugin (compute capability $cap): put it in a folder hrm searches for plugins"
echo "(HRM_PLUGIN_PATH, [plugins] paths, or beside hrm/libhrm). At run time it needs the NVIDIA driver, and"
echo "CUDA's libraries on LD_LIBRARY_PATH: $cuda/lib"
