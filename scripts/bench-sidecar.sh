#!/usr/bin/env bash
# Added latency and CPU of sair-sidecar against a direct call and against nginx and haproxy as
# plain reverse proxies, at a fixed open-loop rate, in the same run (issues 2 and 13); then the
# resident memory of each proxy holding IDLE_CONNECTIONS idle keep-alive client connections.
# Loopback only, bounded duration.
#
#   scripts/bench-sidecar.sh [RATE] [SECONDS] [ROUNDS]     (defaults: 5000 10 2)
#
# SIDECAR_THREADS (default 0 = one per core), NGINX_WORKERS (default auto = one per core) and
# HAPROXY_THREADS (default: the number of cores) size the three proxies alike;
# BASELINE_THREADS (default SIDECAR_THREADS) the baseline sidecar's. SIDECAR_ARGS and
# BASELINE_ARGS add flags to either (e.g. BASELINE_ARGS="--runtime work-stealing" with
# SIDECAR_BASELINE set to the same binary).
# IDLE_CONNECTIONS (default 10000, or fewer when the open-file limit cannot hold that many
# haproxy connections: 9000 under a 20000 limit; 0 skips the phase); the script raises the soft
# open-file limit to the hard one. SIDECAR_BASELINE=path/to/an/older/sair-sidecar adds a fourth
# target, "baseline", run the same way and interleaved with the others, for before/after ratios
# measured in the same run. The load average is printed at the start and the end.
# Needs nginx and haproxy (apt-get install -y nginx-light haproxy; without haproxy its rows
# are skipped). Builds the release sidecar and the
# open-loop driver (sidecar/examples/openloop.rs). Results: a table on stdout and JSON per run
# in $BENCH_OUT (default: a temp dir). Ports 18081-18094 on 127.0.0.1 must be free.
set -euo pipefail

RATE=${1:-5000}
SECS=${2:-10}
ROUNDS=${3:-2}
CONNS=${BENCH_CONNECTIONS:-32}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${BENCH_OUT:-$(mktemp -d /tmp/sair-bench-sidecar.XXXXXX)}
WORK=$(mktemp -d /tmp/sair-bench-work.XXXXXX)
mkdir -p "$OUT"

UP=18081      # trivial upstream (nginx, 1 worker, `return 200`)
NGX=18082     # nginx reverse proxy
SC=18083      # sair-sidecar
SCM=18093     # sidecar metrics
BL=18084      # baseline sidecar (SIDECAR_BASELINE), metrics on 18094
HAP=18085     # haproxy reverse proxy
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FDS=$(ulimit -n)
# haproxy takes two descriptors per connection and refuses to start when maxconn does not fit
# the open-file limit; the idle phase must fit every proxy (a container here allows 20000).
HAP_MAXCONN=$(( (FDS - 200) / 2 ))
IDLE=${IDLE_CONNECTIONS:-$(( HAP_MAXCONN < 10000 ? HAP_MAXCONN / 1000 * 1000 : 10000 ))}
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
[ -x "$HAPROXY" ] || HAPROXY=

# LOADGEN=sair drives the load with sair-loadgen (Poisson, latency from intended send time)
# instead of the fixed-interval openloop example.
LOADGEN=${LOADGEN:-openloop}
# SKIP_BUILD=1 uses the binaries already in $CARGO_TARGET_DIR/release (the shared target
# directory's lock can be held for minutes by other builds).
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -q -p sair-sidecar --bin sair-sidecar --example openloop
if [ "$LOADGEN" = sair ]; then cargo build --release -q -p sair-loadgen --bin sair-loadgen; fi
# Seconds under load per run (openloop adds a 2 s warm-up and starts 0.2 s after launch).
if [ "$LOADGEN" = sair ]; then RUNLEN=$SECS; else RUNLEN=$(python3 -c "print($SECS + 2.2)"); fi
BIN=$CARGO_TARGET_DIR/release
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -f "$WORK/up/nginx.pid" ] && kill "$(cat "$WORK/up/nginx.pid")" 2>/dev/null || true
    [ -f "$WORK/px/nginx.pid" ] && kill "$(cat "$WORK/px/nginx.pid")" 2>/dev/null || true
    [ -f "$WORK/haproxy.pid" ] && kill $(cat "$WORK/haproxy.pid") 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

nginx_conf() { # dir workers body
    mkdir -p "$1"
    cat > "$1/nginx.conf" <<CONF
worker_processes $2;
daemon on;
pid $1/nginx.pid;
error_log $1/error.log warn;
worker_rlimit_nofile 65536;
events { worker_connections 30000; }
http {
    access_log off;
    client_body_temp_path $1/body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;
    keepalive_requests 1000000;
    $3
}
CONF
    "$NGINX" -c "$1/nginx.conf" -p "$1"
}

nginx_conf "$WORK/up" 1 "server { listen 127.0.0.1:$UP; location / { return 200 'ok'; } }"
# Same shape as the sidecar: pooled keep-alive to the upstream, HTTP/1.1, no buffering games.
nginx_conf "$WORK/px" "${NGINX_WORKERS:-auto}" "upstream model { server 127.0.0.1:$UP; keepalive 256; }
    server { listen 127.0.0.1:$NGX;
      location / { proxy_pass http://model; proxy_http_version 1.1;
                   proxy_set_header Connection \"\"; } }"

if [ -n "$HAPROXY" ]; then
    # Same shape again: keep-alive both sides, connection reuse to the upstream, one process
    # with a thread per core, timeouts long enough for the idle-connection phase.
    cat > "$WORK/haproxy.cfg" <<CONF
global
    daemon
    pidfile $WORK/haproxy.pid
    nbthread ${HAPROXY_THREADS:-$(nproc)}
    maxconn $HAP_MAXCONN
defaults
    mode http
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 300s
    option http-keep-alive
    http-reuse always
frontend fe
    bind 127.0.0.1:$HAP
    default_backend be
backend be
    server up 127.0.0.1:$UP maxconn 256
CONF
    "$HAPROXY" -f "$WORK/haproxy.cfg"
fi

# --header-read-timeout also bounds how long an idle keep-alive connection stays open (hyper
# arms the head timer while a connection waits for its next request): 300 s, like haproxy's
# keep-alive timeout above, so the idle-connection phase measures held connections.
RUST_LOG=warn "$BIN/sair-sidecar" ${SIDECAR_ARGS:-} --listen 127.0.0.1:$SC --metrics-listen 127.0.0.1:$SCM \
    --upstream http://127.0.0.1:$UP --stage bench --pipeline bench --header-read-timeout 300s \
    --worker-threads "${SIDECAR_THREADS:-0}" >"$WORK/sidecar.out" 2>"$WORK/sidecar.log" &
SC_PID=$!
pids+=("$SC_PID")
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$SC/" >/dev/null 2>&1 && break; sleep 0.1; done
TARGETS="direct sidecar nginx"
if [ -n "$HAPROXY" ]; then TARGETS="$TARGETS haproxy"; fi
if [ -n "${SIDECAR_BASELINE:-}" ]; then
    RUST_LOG=warn "$SIDECAR_BASELINE" ${BASELINE_ARGS:-} --listen 127.0.0.1:$BL --metrics-listen 127.0.0.1:18094 \
        --upstream http://127.0.0.1:$UP --stage bench --pipeline bench \
        --header-read-timeout 300s \
        --worker-threads "${BASELINE_THREADS:-${SIDECAR_THREADS:-0}}" >"$WORK/baseline.out" 2>"$WORK/baseline.log" &
    BL_PID=$!
    pids+=("$BL_PID")
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$BL/" >/dev/null 2>&1 && break; sleep 0.1; done
    TARGETS="$TARGETS baseline"
fi
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

# CPU ticks (utime+stime) of a set of pids.
ticks() { local t=0; for p in "$@"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo $t; }
HZ=$(getconf CLK_TCK)
up_pids() { pgrep -P "$(cat "$WORK/up/nginx.pid")" | tr '\n' ' '; }
px_pids() { pgrep -P "$(cat "$WORK/px/nginx.pid")" | tr '\n' ' '; }
hap_pids() { tr '\n' ' ' < "$WORK/haproxy.pid"; }

run() { # name port pids...
    local name=$1 port=$2; shift 2
    local before after
    before=$(ticks "$@")
    if [ "$LOADGEN" = sair ]; then
        # sair-loadgen: Poisson arrivals at RATE, latency from the intended send time only.
        "$BIN/sair-loadgen" --target "http://127.0.0.1:$port/" --pattern poisson --rate "$RATE" \
            --duration "${SECS}s" --connections "$CONNS" --out "$OUT/$name.$r.raw.json" --quiet
        python3 - "$OUT/$name.$r.raw.json" "$OUT/$name.$r.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
lat = {k + "_us": v * 1000 for k, v in d["latency_ms"].items()}
errors = sum(d["errors"].values()) if isinstance(d["errors"], dict) else d["errors"]
json.dump({"rate": d["offered_rps"], "achieved_rate": d["achieved_rps"],
           "errors": errors + d["dropped"], "latency_from_send": lat, "latency_from_due": lat},
          open(sys.argv[2], "w"))
PY
    else
        "$BIN/examples/openloop" --url "http://127.0.0.1:$port/" --rate "$RATE" \
            --duration-seconds "$SECS" --warmup-seconds 2 --connections "$CONNS" > "$OUT/$name.$r.json"
    fi
    after=$(ticks "$@")
    # CPU seconds of the measured processes per second of load, per 1k req/s.
    python3 - "$OUT/$name.$r.json" "$((after - before))" "$HZ" "$RATE" "$RUNLEN" <<'PY'
import json, sys
path, ticks, hz, rate, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
d = json.load(open(path))
d["cpu_seconds"] = ticks / hz
# The warm-up and start-up also carry load: divide by the whole loaded time.
d["cpu_cores_per_1k_rps"] = ticks / hz / secs / (rate / 1000)
json.dump(d, open(path, "w"))
PY
}

for r in $(seq "$ROUNDS"); do
    run direct  $UP  $(up_pids)
    run sidecar $SC  "$SC_PID"
    run nginx   $NGX $(px_pids)
    if [ -n "$HAPROXY" ]; then run haproxy $HAP $(hap_pids); fi
    if [ -n "${SIDECAR_BASELINE:-}" ]; then run baseline $BL "$BL_PID"; fi
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"

# Resident memory with IDLE idle keep-alive client connections: each proxy in turn gets IDLE
# connections that each made one request and then stay open; RSS (all its processes) is read
# before and while they are held, then they are closed.
rss_kib() { local t=0; for p in "$@"; do t=$((t + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status"))); done; echo $t; }
idle_run() { # name port pids...
    local name=$1 port=$2; shift 2
    local before
    before=$(rss_kib "$@")
    mkfifo "$WORK/idle.$name"
    python3 - "$port" "$IDLE" "$WORK/idle.$name" <<'PY' &
import socket, sys, time
port, n, fifo = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
conns, failed = [], 0
for _ in range(n):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
        if not s.recv(4096).startswith(b"HTTP/1.1 200"):
            failed += 1
        conns.append(s)
    except OSError:
        failed += 1
with open(fifo, "w") as f:
    f.write(f"{len(conns) - failed} {failed}\n")
time.sleep(30)   # killed after the RSS is read; bounded anyway
PY
    local held_pid=$!
    local held
    held=$(timeout 120 cat "$WORK/idle.$name")
    sleep 1
    local during
    during=$(rss_kib "$@")
    kill "$held_pid" 2>/dev/null || true
    wait "$held_pid" 2>/dev/null || true
    echo "{\"target\": \"$name\", \"connections\": $IDLE, \"ok_failed\": \"$held\", \"rss_before_kib\": $before, \"rss_held_kib\": $during}" > "$OUT/$name.idle.json"
    sleep 2
}
if [ "$IDLE" -gt 0 ]; then
    idle_run sidecar $SC "$SC_PID"
    idle_run nginx   $NGX $(cat "$WORK/px/nginx.pid") $(px_pids)
    if [ -n "$HAPROXY" ]; then idle_run haproxy $HAP $(hap_pids); fi
fi

python3 - "$OUT" "$ROUNDS" $TARGETS <<'PY'
import json, sys, statistics as st
out, rounds, targets = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def load(n): return [json.load(open(f"{out}/{n}.{r}.json")) for r in range(1, rounds + 1)]
runs = {n: load(n) for n in targets}
def med(n, key, q): return st.median(r[key][q] for r in runs[n])
print(f"rate {runs['direct'][0]['rate']:.0f} req/s, {rounds} round(s), medians over rounds; latency in µs")
print(f"{'target':8} {'p50':>6} {'p99':>6} {'p99.9':>6} {'due-p99':>8} {'errors':>6} {'cpu/1k rps':>10} {'+p50':>6} {'+p99':>6}")
for n in targets:
    p50, p99 = med(n, "latency_from_send", "p50_us"), med(n, "latency_from_send", "p99_us")
    p999 = med(n, "latency_from_send", "p999_us")
    due99 = med(n, "latency_from_due", "p99_us")
    err = sum(r["errors"] for r in runs[n])
    cpu = st.median(r["cpu_cores_per_1k_rps"] for r in runs[n])
    a50 = p50 - med("direct", "latency_from_send", "p50_us")
    a99 = p99 - med("direct", "latency_from_send", "p99_us")
    print(f"{n:8} {p50:6.0f} {p99:6.0f} {p999:6.0f} {due99:8.0f} {err:6d} {cpu:10.4f} {a50:6.0f} {a99:6.0f}")
print("per round, p50/p99 µs:", "; ".join(
    f"{r + 1}: " + " ".join(f"{n} {runs[n][r]['latency_from_send']['p50_us']}/{runs[n][r]['latency_from_send']['p99_us']}" for n in targets)
    for r in range(rounds)))
print(f"(cpu/1k rps: cores used by the measured process(es) per 1000 req/s; 'direct' measures the upstream nginx)")
print(f"JSON per run: {out}")
import glob, os
idle = [json.load(open(p)) for p in sorted(glob.glob(f"{out}/*.idle.json"))]
if idle:
    print(f"RSS with idle keep-alive connections (each made one request), MiB:")
    print(f"{'target':8} {'conns':>6} {'ok/failed':>10} {'before':>8} {'held':>8} {'KiB/conn':>9}")
    for d in idle:
        per = (d["rss_held_kib"] - d["rss_before_kib"]) / d["connections"]
        print(f"{d['target']:8} {d['connections']:6d} {d['ok_failed']:>10} {d['rss_before_kib']/1024:8.1f} {d['rss_held_kib']/1024:8.1f} {per:9.2f}")
PY
