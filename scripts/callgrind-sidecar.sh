#!/usr/bin/env bash
# Instructions per proxied request of the release sair-sidecar, counted by callgrind: a
# noise-free per-request cost that does not depend on what else runs on the machine (issue 2).
#
#   scripts/callgrind-sidecar.sh [REQUESTS] [THREADS]     (defaults: 2000 2)
#
# SIDECAR_BIN=path measures another sair-sidecar binary (e.g. a copy of an older build).
#
# An nginx upstream (`return 200 'ok'`) on 127.0.0.1:18181, the sidecar under
# `valgrind --tool=callgrind` on 127.0.0.1:18183, driven by sidecar/examples/openloop.rs at
# 200 req/s over 4 keep-alive connections. Counters are zeroed after a warm-up (so start-up,
# connection set-up and the pool's first connections are excluded), then the same time is
# counted idle (timers, the 1 s report window, metrics upkeep) and then under load with
# REQUESTS requests; the figure is (loaded Ir - idle Ir) / REQUESTS, all threads, user space
# only. The annotated profiles are kept in $BENCH_OUT (default: a temp dir).
set -euo pipefail

N=${1:-2000}
THREADS=${2:-2}
RATE=200
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${BENCH_OUT:-$(mktemp -d /tmp/sair-callgrind-sidecar.XXXXXX)}
WORK=$(mktemp -d /tmp/sair-callgrind-work.XXXXXX)
mkdir -p "$OUT"
UP=18181
SC=18183
SCM=18193
# SKIP_BUILD=1 uses the binaries already in $CARGO_TARGET_DIR/release (the shared target
# directory's lock can be held for minutes by other builds).
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -q -p sair-sidecar --bin sair-sidecar --example openloop
BIN=$CARGO_TARGET_DIR/release
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

SC_PID=
cleanup() {
    [ -n "$SC_PID" ] && kill "$SC_PID" 2>/dev/null || true
    [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

cat > "$WORK/nginx.conf" <<CONF
worker_processes 1;
daemon on;
pid $WORK/nginx.pid;
error_log $WORK/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $WORK/body; proxy_temp_path $WORK/proxy;
    fastcgi_temp_path $WORK/fastcgi; uwsgi_temp_path $WORK/uwsgi; scgi_temp_path $WORK/scgi;
    keepalive_requests 1000000;
    server { listen 127.0.0.1:$UP; location / { return 200 'ok'; } }
}
CONF
"$NGINX" -c "$WORK/nginx.conf" -p "$WORK"

RUST_LOG=warn valgrind --tool=callgrind --compress-strings=no --callgrind-out-file="$OUT/callgrind.out" \
    "${SIDECAR_BIN:-$BIN/sair-sidecar}" --listen 127.0.0.1:$SC --metrics-listen 127.0.0.1:$SCM \
    --upstream http://127.0.0.1:$UP --stage bench --pipeline bench \
    --worker-threads "$THREADS" >"$WORK/sidecar.out" 2>"$WORK/sidecar.log" &
SC_PID=$!
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$SC/" >/dev/null 2>&1 && break; sleep 0.2; done

load() { # seconds
    "$BIN/examples/openloop" --url "http://127.0.0.1:$SC/" --rate $RATE \
        --duration-seconds "$1" --warmup-seconds 0 --connections 4
}
load 2 >/dev/null
SECS=$(python3 -c "print($N / $RATE)")
callgrind_control -z "$SC_PID" >/dev/null
sleep "$SECS"
callgrind_control -d idle "$SC_PID" >/dev/null
callgrind_control -z "$SC_PID" >/dev/null
load "$SECS" > "$OUT/load.json"
callgrind_control -d load "$SC_PID" >/dev/null
sleep 1
python3 - "$OUT" "$N" <<'PY'
import glob, json, sys
out, n = sys.argv[1], int(sys.argv[2])
load = json.load(open(f"{out}/load.json"))
def total(kind):
    for f in sorted(glob.glob(f"{out}/callgrind.out.*")):
        text = open(f).read()
        if f"desc: Trigger: dump {kind}\n" not in text:
            continue
        for line in text.splitlines():
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise SystemExit(f"no {kind} dump in {out}")
idle, loaded = total("idle"), total("load")
print(json.dumps({"requests": n, "errors": load["errors"], "ir_idle": idle, "ir_loaded": loaded,
                  "ir_per_request": round((loaded - idle) / n)}))
PY
echo "profile dumps: $OUT (callgrind_annotate $OUT/callgrind.out.<pid>.2 is the loaded part)" >&2
