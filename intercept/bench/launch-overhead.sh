#!/usr/bin/env bash
# Launch overhead of libsair_intercept.so: a tight cuLaunchKernel loop on the emulator
# (SAIR_EMU_NS_PER_BLOCK=0, so the emulated device never makes the loop wait), timed in batches
# of BATCH launches with Instant; per-launch ns = batch time / BATCH. Compares no LD_PRELOAD,
# LD_PRELOAD with mode off, and LD_PRELOAD with mode cap at a rate that never throttles.
# Runs alternate ROUNDS times to spread machine noise; reports the median of per-round medians.
#
# Usage: intercept/bench/launch-overhead.sh   (from the repository root)
set -euo pipefail
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p sair-intercept -p sair-emu-cuda -p sair-emu-tools
T="$CARGO_TARGET_DIR/release"
W="$(mktemp -d)"; trap 'rm -rf "$W"' EXIT
mkdir -p "$W/lib" "$W/shm"
ln -s "$(realpath "$T/libsair_emu_cuda.so")" "$W/lib/libcuda.so.1"
export LD_LIBRARY_PATH="$W/lib" SAIR_EMU_STATE="$W/emu.state" SAIR_EMU_NS_PER_BLOCK=0 SAIR_SHM_DIR="$W/shm"
BATCH="${BATCH:-1000}"; BATCHES="${BATCHES:-300}"; ROUNDS="${ROUNDS:-7}"
"$T/sair-shm-set" --segment off --mode off >/dev/null
"$T/sair-shm-set" --segment cap --mode cap --refill-per-s 1000000000000000000 --burst-tokens 1000000000 >/dev/null
PRE="$(realpath "$T/libsair_intercept.so")"
run() { # $1 = label, rest = env
  local label="$1"; shift
  env "$@" "$T/sair-emu-launcher" --path direct --launches $((BATCH * BATCHES)) --bench-batch "$BATCH" \
     --grid 1 --block 1 | python3 -c "import json,sys; d=json.load(sys.stdin); print('$label', d['per_launch_ns_median'], d['per_launch_ns_p99'])"
}
for r in $(seq "$ROUNDS"); do
  run none SAIR_SEGMENT=
  run off LD_PRELOAD="$PRE" SAIR_SEGMENT=off
  run cap LD_PRELOAD="$PRE" SAIR_SEGMENT=cap
done | python3 -c '
import sys, statistics as st
rows = {}
for line in sys.stdin:
    k, med, p99 = line.split(); rows.setdefault(k, []).append((float(med), float(p99)))
base_med = st.median(m for m, _ in rows["none"]); base_p99 = st.median(p for _, p in rows["none"])
print("%-38s%18s%15s%14s%11s" % ("config", "median ns/launch", "p99 ns/launch", "added median", "added p99"))
for k, label in [("none", "no LD_PRELOAD"), ("off", "LD_PRELOAD, mode off"), ("cap", "LD_PRELOAD, mode cap (no throttling)")]:
    med = st.median(m for m, _ in rows[k]); p99 = st.median(p for _, p in rows[k])
    print("%-38s%18.1f%15.1f%14.1f%11.1f" % (label, med, p99, med - base_med, p99 - base_p99))
'
