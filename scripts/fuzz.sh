#!/usr/bin/env bash
# Runs every cargo-fuzz target of the repository (mesh/fuzz, wire/fuzz) for FUZZ_SECONDS each
# (default 60, the test command's minimum), two at a time, and fails on the first crash, leak
# or timeout. Called by scripts/test.sh; by hand: `scripts/fuzz.sh [SECONDS]`.
#
# - Needs a nightly toolchain (sanitizers). Without one it prints why and exits 0: the fuzz
#   step is skipped, not failed, so a machine without nightly can still run the suite.
# - cargo-fuzz is installed from crates.io, pinned, only when missing or at another version.
# - Both fuzz crates build into one target dir, so their shared dependencies compile once. It
#   lives outside the checkout ($SAIR_FUZZ_TARGET_DIR, default ~/.cache/sair-fuzz/target, like
#   the LLM server's venv): CI runs on a clean clone, and the sanitizer build of quinn, rustls
#   and tokio takes over ten minutes on two cores the first time, a few seconds afterwards.
#   The fuzz crates are their own workspaces (own lock files), apart from the root's target/.
# - New inputs go to <crate>/corpus/<target> (ignored); the seeds in <crate>/seeds/<target>
#   (kept in the repo) are read, never written. Crash inputs go to <crate>/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${1:-${FUZZ_SECONDS:-60}}
CARGO_FUZZ_VERSION=0.13.2
TARGET_DIR=${SAIR_FUZZ_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sair-fuzz/target}
mkdir -p "$TARGET_DIR"
CRATES=(mesh/fuzz wire/fuzz)
JOBS=2 # two targets at a time: the build machine has two cores

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: SKIPPED: no nightly toolchain (cargo +nightly), which cargo-fuzz's sanitizers need;" \
    "install one with 'rustup toolchain install nightly' to run the fuzz targets" >&2
  exit 0
fi
case "$(cargo fuzz --version 2>/dev/null || true)" in
*" $CARGO_FUZZ_VERSION") ;;
*) cargo install --locked "cargo-fuzz@$CARGO_FUZZ_VERSION" ;;
esac

start=$(date +%s)
runs=()
for crate in "${CRATES[@]}"; do
  [ -f "$crate/Cargo.toml" ] || continue
  echo "fuzz: building $crate" >&2
  (cd "$crate" && cargo +nightly fuzz build --target-dir "$TARGET_DIR")
  for t in $(cd "$crate" && cargo +nightly fuzz list); do
    runs+=("$crate:$t")
  done
done
echo "fuzz: built in $(($(date +%s) - start)) s; running ${#runs[@]} targets for ${FUZZ_SECONDS} s each" >&2

run_one() { # crate:target
  local crate=${1%%:*} t=${1#*:} dirs log
  dirs=("corpus/$t")
  [ -d "$crate/seeds/$t" ] && dirs+=("seeds/$t")
  mkdir -p "$crate/corpus/$t"
  log=$TARGET_DIR/$(echo "$crate" | tr / _)-$t.log
  if (cd "$crate" && cargo +nightly fuzz run --target-dir "$TARGET_DIR" "$t" "${dirs[@]}" -- \
    -max_total_time="$FUZZ_SECONDS" -print_final_stats=1) >"$log" 2>&1; then
    echo "fuzz: $crate $t: clean, $(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$') runs" >&2
  else
    echo "fuzz: $crate $t: FAILED (log: $log; inputs in $crate/artifacts/$t/)" >&2
    tail -n 40 "$log" >&2
    return 1
  fi
}

failed=0
pids=()
for r in "${runs[@]}"; do
  run_one "$r" &
  pids+=($!)
  if [ "${#pids[@]}" -ge "$JOBS" ]; then
    wait "${pids[0]}" || failed=1
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do
  wait "$p" || failed=1
done
echo "fuzz: done in $(($(date +%s) - start)) s" >&2
exit "$failed"
