#!/usr/bin/env bash
# Launch overhead of libsair_intercept.so in instructions (callgrind Ir), which unlike
# launch-overhead.sh's wall clock does not move with machine load: the same tight
# cuLaunchKernel loop on the emulator (grid 1 × block 1, SAIR_EMU_NS_PER_BLOCK=0), Ir per launch
# = (Ir at N2 launches − Ir at N1) / (N2 − N1), so start-up cancels out. Compares no LD_PRELOAD,
# LD_PRELOAD with mode off, and LD_PRELOAD with mode cap at a rate that never throttles.
#
# Usage: intercept/bench/launch-instructions.sh   (from the repository root; needs valgrind)
set -euo pipefail
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p sair-intercept -p sair-emu-cuda -p sair-emu-tools
T="$CARGO_TARGET_DIR/release"
W="$(mktemp -d)"; trap 'rm -rf "$W"' EXIT
mkdir -p "$W/lib" "$W/shm"
ln -s "$(realpath "$T/libsair_emu_cuda.so")" "$W/lib/libcuda.so.1"
export LD_LIBRARY_PATH="$W/lib" SAIR_EMU_NS_PER_BLOCK=0 SAIR_SHM_DIR="$W/shm"
N1="${N1:-50000}"; N2="${N2:-150000}"
"$T/sair-shm-set" --segment off --mode off >/dev/null
"$T/sair-shm-set" --segment cap --mode cap --refill-per-s 1000000000000000000 --burst-tokens 1000000000 >/dev/null
PRE="$(realpath "$T/libsair_intercept.so")"
ir() { # $1 = launches, rest = env; prints the total Ir of one run
  local n="$1"; shift
  env SAIR_EMU_STATE="$W/emu-$n-$RANDOM.state" "$@" valgrind --tool=callgrind \
    --callgrind-out-file="$W/cg.out" "$T/sair-emu-launcher" --path direct --launches "$n" \
    --sync-every 1000 --grid 1 --block 1 >/dev/null 2>"$W/cg.err"
  awk '/^(summary|totals):/ {print $2; exit}' "$W/cg.out"
}
printf '%-38s%14s%10s\n' config "Ir/launch" added
base=""
for cfg in none off cap; do
  case $cfg in
    none) E=(SAIR_SEGMENT=); label="no LD_PRELOAD";;
    off) E=(LD_PRELOAD="$PRE" SAIR_SEGMENT=off); label="LD_PRELOAD, mode off";;
    cap) E=(LD_PRELOAD="$PRE" SAIR_SEGMENT=cap); label="LD_PRELOAD, mode cap (no throttling)";;
  esac
  a="$(ir "$N1" "${E[@]}")"; b="$(ir "$N2" "${E[@]}")"
  per=$(python3 -c "print(($b - $a) / ($N2 - $N1))")
  base="${base:-$per}"
  python3 -c "print('%-38s%14.1f%10.1f' % ('$label', $per, $per - $base))"
done
