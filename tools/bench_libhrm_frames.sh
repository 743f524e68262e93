#!/usr/bin/env bash
# libhrm's per-frame time as a C host sees it, against the `hrm` command's, in one run:
#   1. the `hrm` binary's whole pipeline per frame (`hrm bench --detection --pipeline`; it sets
#      glibc's malloc thresholds for itself),
#   2. libhrm as built by default (its own allocations through mimalloc), no GLIBC_TUNABLES,
#   3. libhrm built on the system allocator, without and with GLIBC_TUNABLES.
# usage: tools/bench_libhrm_frames.sh [PHOTO] [FRAMES]   (from the repository; builds in release)
set -euo pipefail
cd "$(dirname "$0")/.."
photo=${1:-../shared/images/single_face.jpg}
frames=${2:-60}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --release -q -p hrm-cli
cargo build --release -q -p libhrm --no-default-features
mkdir -p "$work/system" "$work/mimalloc"
cp target/release/libhrm.so "$work/system/libhrm.so.1"
cargo build --release -q -p libhrm
cp target/release/libhrm.so "$work/mimalloc/libhrm.so.1"
for variant in system mimalloc; do
  ln -s libhrm.so.1 "$work/$variant/libhrm.so"
done
cc -O2 -std=c11 -Wall -Wextra -Werror -Iinclude crates/hrm-ffi/benches/frame_time.c -L"$work/mimalloc" -lhrm \
  -o "$work/frame_time"

mimalloc=$(LD_LIBRARY_PATH="$work/mimalloc" "$work/frame_time" configs/cpu.toml "$photo" "$frames")
size=${mimalloc%% *}
echo "== $photo ($size), configs/cpu.toml, $frames frames, $(nproc) cores"
echo "-- hrm (the CLI's pipeline, glibc with its own thresholds):"
target/release/hrm bench --detection --pipeline --config configs/cpu.toml --image "$photo" --frame-size "$size" \
  --iterations "$frames" | tail -1
echo "-- libhrm with mimalloc (the default), no GLIBC_TUNABLES:"
echo "$mimalloc"
echo "-- libhrm on the system allocator, no GLIBC_TUNABLES:"
LD_LIBRARY_PATH="$work/system" "$work/frame_time" configs/cpu.toml "$photo" "$frames"
echo "-- libhrm on the system allocator, GLIBC_TUNABLES as the CLI sets them:"
GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=67108864 \
  LD_LIBRARY_PATH="$work/system" "$work/frame_time" configs/cpu.toml "$photo" "$frames"
