#!/usr/bin/env bash
# Schedule accuracy of sair-loadgen (issue 4) at a fixed open-loop rate against a trivial
# server (sair-stage --cpu-ms 0), side by side with Debian's wrk (closed loop) and oha (if
# installed) on the same server. Loopback only, bounded duration.
#
#   scripts/bench-loadgen.sh [RATE] [SECONDS] [ROUNDS]      (defaults: 20000 10 2)
#
# Pinning (needs 2 cores): every generator runs on core $GEN_CORE (default 1) with `taskset
# -c`, so its figures are one core's; the server is not pinned (SERVER_CPUS, default all).
# On a shared machine each sair-loadgen configuration also runs under `chrt -f 10`
# (SCHED_FIFO, needs root; CHRT=0 skips it) to separate the generator's own timing from
# preemption by unrelated processes.
# Also sweeps sair-loadgen's rate upward ($SWEEP, default "20000 30000 40000") to find the
# rate one core sustains open loop. Needs wrk (apt-get install -y wrk); oha is used when on
# PATH or in $OHA. Results: a table on stdout, raw JSON/text per run in $BENCH_OUT.
set -euo pipefail

RATE=${1:-20000}
SECS=${2:-10}
ROUNDS=${3:-2}
CONNS=${BENCH_CONNECTIONS:-64}          # wrk (closed loop)
OPEN_CONNS=${BENCH_OPEN_CONNECTIONS:-256} # sair-loadgen and oha (open loop: headroom for hiccups)
SWEEP=${SWEEP:-"20000 30000 40000"}
SERVER_CPUS=${SERVER_CPUS:-0-$(($(nproc) - 1))}
CHRT=${CHRT:-1}
GEN_CORE=${GEN_CORE:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${BENCH_OUT:-$(mktemp -d /tmp/sair-bench-loadgen.XXXXXX)}
mkdir -p "$OUT"
OHA=${OHA:-$(command -v oha || true)}

cargo build --release -q -p sair-loadgen --bin sair-loadgen --bin sair-stage
BIN=$CARGO_TARGET_DIR/release

stage_pid=
cleanup() { if [ -n "$stage_pid" ]; then kill "$stage_pid" 2>/dev/null || true; wait "$stage_pid" 2>/dev/null || true; fi; }
trap cleanup EXIT

taskset -c "$SERVER_CPUS" "$BIN/sair-stage" --listen 127.0.0.1:0 --cpu-ms 0 --concurrency 4096 \
    > "$OUT/stage.out" 2> "$OUT/stage.err" &
stage_pid=$!
# The bound-address line: {"event":"bound",...,"addresses":{"listen":"IP:PORT"}}.
for _ in $(seq 100); do grep -q '"event":"bound"' "$OUT/stage.out" 2>/dev/null && break; sleep 0.1; done
ADDR=$(sed -n 's/.*"listen":"\([^"]*\)".*/\1/p' "$OUT/stage.out" | head -n1)
[ -n "$ADDR" ] || { echo "sair-stage did not start: $(cat "$OUT/stage.err")" >&2; exit 1; }
URL="http://$ADDR/"
echo "server: sair-stage --cpu-ms 0 on cores $SERVER_CPUS at $URL; generators on core $GEN_CORE"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

loadgen() { # rate name [prefix command...]
    local rate=$1 name=$2; shift 2
    # Exit 75: the generator fell behind its schedule (the sweep looks for that rate); the
    # report is written all the same and its fell_behind column says so.
    local rc=0
    "$@" taskset -c "$GEN_CORE" "$BIN/sair-loadgen" --target "$URL" --pattern poisson --rate "$rate" \
        --duration "${SECS}s" --connections "$OPEN_CONNS" --out "$OUT/$name.json" --quiet > /dev/null || rc=$?
    [ "$rc" = 0 ] || [ "$rc" = 75 ] || { echo "sair-loadgen exited $rc" >&2; return "$rc"; }
    jq -r --arg n "$name" '[$n, .offered_rps, .achieved_rps, (100 * (.achieved_rps / .offered_rps - 1)),
        .dropped, ([.errors[]] | add // 0), .send_lag_ms.p50, .send_lag_ms.p99, .dispatch_lag_ms.p99,
        .latency_ms.p50, .latency_ms.p99, .latency_ms.max, .fell_behind]
        | "\(.[0])\t\(.[1]|floor)\t\(.[2]|floor)\t\(.[3]*100|round/100)%\t\(.[4])\t\(.[5])\t\(.[6])\t\(.[7])\t\(.[8])\t\(.[9])\t\(.[10])\t\(.[11])\t\(.[12])"' \
        "$OUT/$name.json"
}
fifo() { if [ "$CHRT" = 1 ]; then "$@"; fi; }

echo
echo "== sair-loadgen, Poisson at the target rate (open loop, latency from intended send) =="
printf 'run\toffered\tachieved\terror\tdropped\terrors\tlag_p50_ms\tlag_p99_ms\tdispatch_p99_ms\tlat_p50_ms\tlat_p99_ms\tlat_max_ms\tfell_behind\n'
for r in $(seq "$ROUNDS"); do loadgen "$RATE" "loadgen-$RATE-r$r"; done
for r in $(seq "$ROUNDS"); do fifo loadgen "$RATE" "loadgen-$RATE-fifo-r$r" chrt -f 10; done

echo
echo "== sair-loadgen rate sweep on one core =="
printf 'run\toffered\tachieved\terror\tdropped\terrors\tlag_p50_ms\tlag_p99_ms\tdispatch_p99_ms\tlat_p50_ms\tlat_p99_ms\tlat_max_ms\tfell_behind\n'
for rate in $SWEEP; do loadgen "$rate" "sweep-$rate"; fifo loadgen "$rate" "sweep-$rate-fifo" chrt -f 10; done

echo
echo "== wrk, 1 thread, $CONNS connections (closed loop: the most one core sends) =="
for r in $(seq "$ROUNDS"); do
    taskset -c "$GEN_CORE" wrk -t1 -c"$CONNS" -d"${SECS}s" --latency "$URL" > "$OUT/wrk-r$r.txt"
    echo "round $r: $(grep 'Requests/sec' "$OUT/wrk-r$r.txt" | tr -s ' ');" \
        "latency $(grep -A4 'Latency Distribution' "$OUT/wrk-r$r.txt" | tail -4 | tr -s ' ' | tr '\n' ';')"
done

if [ -n "$OHA" ]; then
    echo
    echo "== oha at $RATE/s with --latency-correction (open loop), 1 core =="
    for r in $(seq "$ROUNDS"); do
        taskset -c "$GEN_CORE" "$OHA" -z "${SECS}s" -c "$OPEN_CONNS" -q "$RATE" --latency-correction \
            --no-tui --output-format json "$URL" > "$OUT/oha-r$r.json"
        jq -r '"round \(input_filename): rps \(.summary.requestsPerSec|floor), p50 \(.latencyPercentiles.p50*1000) ms, p99 \(.latencyPercentiles.p99*1000) ms, success \(.summary.successRate)"' \
            "$OUT/oha-r$r.json" || true
    done
    echo
    echo "== oha unthrottled (closed loop), 1 core =="
    taskset -c "$GEN_CORE" "$OHA" -z "${SECS}s" -c "$CONNS" --no-tui --output-format json "$URL" > "$OUT/oha-max.json"
    jq -r '"rps \(.summary.requestsPerSec|floor), p50 \(.latencyPercentiles.p50*1000) ms, p99 \(.latencyPercentiles.p99*1000) ms"' "$OUT/oha-max.json" || true
else
    echo
    echo "(oha not installed: skipped)"
fi
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg); raw results in $OUT"
