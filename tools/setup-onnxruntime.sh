#!/usr/bin/env bash
# Installs ONNX Runtime from its PyPI wheel into a folder, for the onnxruntime plugin
# (libhrm_onnxruntime.so), and prints the line that tells the plugin where it is:
#
#   eval "$(tools/setup-onnxruntime.sh)"                 # CPU build into target/onnxruntime
#   eval "$(tools/setup-onnxruntime.sh --gpu DIR)"       # onnxruntime-gpu + CUDA 12 and cuDNN from PyPI
#   tools/setup-onnxruntime.sh --version 1.32.0 DIR      # another release
#
# stdout is `export ORT_DYLIB_PATH=...` (and, with --gpu, LD_LIBRARY_PATH for the CUDA libraries);
# everything else goes to stderr. Instead of the variable, `library = "..."` under [onnxruntime] in
# a configuration, or a copy of (or link to) the library beside the plugin, works too.
# On a Jetson, use NVIDIA's JetPack build of ONNX Runtime instead (see the README).
set -euo pipefail

usage() { echo "usage: $0 [--gpu] [--version X.Y.Z] [--python PYTHON] [DIR]" >&2; exit 2; }
version="1.32.0" gpu="" dir="" python="${PYTHON:-python3}"
while [ $# -gt 0 ]; do
  case "$1" in
    --gpu) gpu=1; shift ;;
    --version) version="${2:-}"; [ -n "$version" ] || usage; shift 2 ;;
    --python) python="${2:-}"; [ -n "$python" ] || usage; shift 2 ;;
    -h|--help) usage ;;
    -*) usage ;;
    *) [ -z "$dir" ] || usage; dir="$1"; shift ;;
  esac
done
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${dir:-$repo/target/onnxruntime}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
command -v "$python" >/dev/null || { echo "error: $python not found (pip installs the wheel)" >&2; exit 1; }

if [ -n "$gpu" ]; then
  # The GPU wheel with the CUDA 12 runtime, cuBLAS, cuFFT, cuRAND and cuDNN 9 it loads, all from PyPI.
  packages=("onnxruntime-gpu[cuda,cudnn]==$version")
else
  packages=("onnxruntime==$version")
fi
# A folder already holding these packages is used as it is (the record is written last).
record="$dir/.hrm-setup"
if [ "$(cat "$record" 2>/dev/null)" = "${packages[*]}" ]; then
  echo "${packages[*]} already in $dir" >&2
else
  echo "installing ${packages[*]} into $dir" >&2
  rm -f "$record"
  # The wheel's Python dependencies are not needed for its shared library; with --gpu the CUDA ones are.
  if [ -n "$gpu" ]; then
    "$python" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --upgrade --target "$dir" "${packages[@]}" >&2
  else
    "$python" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --upgrade --no-deps --target "$dir" "${packages[@]}" >&2
  fi
  echo "${packages[*]}" > "$record"
fi

library="$(ls "$dir"/onnxruntime/capi/libonnxruntime.so.* 2>/dev/null | sort -V | tail -n 1)"
[ -n "$library" ] && [ -f "$library" ] || { echo "error: no libonnxruntime.so.* in $dir/onnxruntime/capi" >&2; exit 1; }
echo "ONNX Runtime $version: $library" >&2
echo "export ORT_DYLIB_PATH='$library'"
if [ -n "$gpu" ]; then
  cuda_libs="$(find "$dir/nvidia" -maxdepth 2 -type d -name lib 2>/dev/null | sort | paste -sd: -)"
  # No empty entry (which would search the current folder) when LD_LIBRARY_PATH is unset.
  [ -z "$cuda_libs" ] || echo "export LD_LIBRARY_PATH='${cuda_libs}'\"\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}\""
fi
