#!/usr/bin/env bash
# The ONNX Runtime plugin against ONNX Runtime's own Python API, side by side on this machine:
# for each package and batch size, ROUNDS alternating rounds of `hrm bench --backend onnxruntime`
# and tools/bench_onnxruntime.py on the same model.onnx and the same libonnxruntime (the Python
# package tools/setup-onnxruntime.sh installed), then the median of each side's round medians
# and their ratio (plugin / Python; 1.05 is 5 % slower). On a small, shared machine single
# rounds vary by 10 % or more: alternating rounds keep the comparison fair.
#
#   tools/bench_backends.sh [--threads 2] [--rounds 5] [--iterations 20] PACKAGE...
#
# Needs ORT_DYLIB_PATH (eval "$(tools/setup-onnxruntime.sh)"), `cargo build --release`, and numpy
# for the Python side (PYTHON names the interpreter; default python3).
set -euo pipefail

threads=2 rounds=5 iterations=20 packages=()
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --iterations) iterations="$2"; shift 2 ;;
    -*) echo "usage: $0 [--threads N] [--rounds N] [--iterations N] PACKAGE..." >&2; exit 2 ;;
    *) packages+=("$1"); shift ;;
  esac
done
[ ${#packages[@]} -gt 0 ] || { echo "usage: $0 [--threads N] [--rounds N] [--iterations N] PACKAGE..." >&2; exit 2; }
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
hrm="${HRM:-$repo/target/release/hrm}"
python="${PYTHON:-python3}"
[ -x "$hrm" ] || { echo "error: $hrm not built (cargo build --release)" >&2; exit 1; }
[ -f "${ORT_DYLIB_PATH:-}" ] || { echo "error: ORT_DYLIB_PATH is not set: eval \"\$(tools/setup-onnxruntime.sh)\"" >&2; exit 1; }
# The Python package whose library the plugin loads: <dir>/onnxruntime/capi/libonnxruntime.so.*
site="$(dirname "$(dirname "$(dirname "$ORT_DYLIB_PATH")")")"
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
"$python" -c "import numpy, onnxruntime" 2>/dev/null \
  || { echo "error: $python cannot import numpy and onnxruntime from $site (pip install numpy)" >&2; exit 1; }

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "ONNX Runtime $("$python" -c 'import onnxruntime; print(onnxruntime.__version__)') from $site, $threads threads, $rounds rounds of $iterations runs, $(nproc) cores"
printf "%-24s %6s %14s %14s %8s\n" package batch "plugin ms" "python ms" ratio
for package in "${packages[@]}"; do
  for batch in 1 8; do
    plugin=() py=()
    for _ in $(seq "$rounds"); do
      plugin+=("$("$hrm" bench --backend onnxruntime --threads "$threads" --model "$package" --batch "$batch" \
        --iterations "$iterations" 2>/dev/null | awk -v b="$batch" '$1 == b { print $2 }')")
      py+=("$("$python" "$repo/tools/bench_onnxruntime.py" "$package" --threads "$threads" --batch "$batch" \
        --iterations "$iterations" | awk -v b="$batch" '$1 == b { print $2 }')")
    done
    p="$(printf '%s\n' "${plugin[@]}" | median)"
    q="$(printf '%s\n' "${py[@]}" | median)"
    awk -v n="$(basename "$package")" -v b="$batch" -v p="$p" -v q="$q" \
      'BEGIN { printf "%-24s %6s %14.1f %14.1f %8.3f\n", n, b, p, q, p / q }'
  done
done
