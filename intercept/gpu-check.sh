#!/usr/bin/env bash
# gpu-check.sh — run libsair_intercept.so on a real NVIDIA GPU (CUDA 12/13, PyTorch, no network).
#
# 1. builds the interceptor and sair-shm-set (release);
# 2. runs a PyTorch matmul loop without LD_PRELOAD (baseline throughput);
# 3. runs it with LD_PRELOAD in mode off (interception overhead) and measures the device time a
#    token costs on this GPU (the loop keeps the GPU saturated, so ns/token ≈ wall / tokens);
# 4. runs it at each ρ in RHOS with the rate set open loop from that measurement, and prints the
#    achieved throughput share (iterations/s ÷ baseline) against ρ;
# 5. repeats 2–4 with the matmuls replayed from a CUDA graph (cuGraphLaunch path) unless
#    WORKLOADS says otherwise.
#
# Usage: intercept/gpu-check.sh            (from the repository root; ~2 min)
# Env:   N (matrix size, 4096), SECS (per run, 8), RHOS ("0.25 0.5 0.75"), WORKLOADS ("eager graph"),
#        PYTHON (python3), CUDA_VISIBLE_DEVICES as usual.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
N="${N:-4096}"; SECS="${SECS:-8}"; RHOS="${RHOS:-0.25 0.5 0.75}"; WORKLOADS="${WORKLOADS:-eager graph}"
PYTHON="${PYTHON:-python3}"
cargo build --release -q -p sair-intercept -p sair-emu-tools
T="$CARGO_TARGET_DIR/release"
PRE="$(realpath "$T/libsair_intercept.so")"
W="$(mktemp -d)"; trap 'rm -rf "$W"' EXIT
export SAIR_SHM_DIR="$W/shm"
cat > "$W/loop.py" <<'PY'
import sys, time, torch
n, secs, workload = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
a = torch.randn(n, n, device="cuda", dtype=torch.float16)
b = torch.randn(n, n, device="cuda", dtype=torch.float16)
c = torch.empty(n, n, device="cuda", dtype=torch.float16)
step = lambda: [torch.matmul(a, b, out=c) for _ in range(10)]
if workload == "graph":
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        step()                                   # warm up cuBLAS outside the capture
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        step()
    step = g.replay
step(); torch.cuda.synchronize()
t0 = time.perf_counter(); it = 0
while time.perf_counter() - t0 < secs:
    step(); torch.cuda.synchronize(); it += 10
dt = time.perf_counter() - t0
print(f"{it / dt:.3f} {dt:.6f}")
PY
seg() { "$T/sair-shm-set" --segment "$@"; }
counter() { "$T/sair-shm-set" --segment "$1" --show | sed -n "s/.* $2=\([0-9]*\).*/\1/p"; }
echo "GPU: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || echo unknown)"
if ! info=$($PYTHON -c 'import torch; assert torch.cuda.is_available(), "CUDA not available"; print(torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))' 2>&1); then
  echo "!! PyTorch with CUDA is required: $info"; exit 1
fi
echo "torch $info"
for wl in $WORKLOADS; do
  echo "== workload: $wl (fp16 matmul ${N}x${N}, ${SECS} s per run)"
  base=$($PYTHON "$W/loop.py" "$N" "$SECS" "$wl" | cut -d' ' -f1)
  echo "baseline (no LD_PRELOAD): $base it/s"
  seg "cal-$wl" --mode off >/dev/null
  if ! out=$(LD_PRELOAD="$PRE" SAIR_SEGMENT="cal-$wl" $PYTHON "$W/loop.py" "$N" "$SECS" "$wl"); then
    echo "!! the loop failed under LD_PRELOAD (mode off)"; exit 1
  fi
  read -r off wall <<<"$out"
  tok=$(counter "cal-$wl" tokens); n_launch=$(counter "cal-$wl" launches)
  if [ "${n_launch:-0}" -eq 0 ]; then
    echo "!! no launch was intercepted in mode off: LD_PRELOAD did not take effect"; exit 1
  fi
  ns_per_token=$($PYTHON -c "print($wall * 1e9 / max($tok, 1))")
  echo "LD_PRELOAD mode off: $off it/s, overhead $($PYTHON -c "print(f'{100*(1-$off/$base):+.2f} %')"), $n_launch launches, ns/token $ns_per_token"
  for rho in $RHOS; do
    seg "r-$wl-$rho" --mode cap --share "$rho" --ns-per-token "$ns_per_token" --burst-us 2000 >/dev/null
    r=$(LD_PRELOAD="$PRE" SAIR_SEGMENT="r-$wl-$rho" $PYTHON "$W/loop.py" "$N" "$SECS" "$wl" | cut -d' ' -f1)
    thr=$(counter "r-$wl-$rho" throttled)
    $PYTHON -c "s=$r/$base; print(f'rho={$rho:<5} {$r:.1f} it/s  share={s:.3f}  error={100*(s-$rho):+.1f} pp  throttled launches=$thr')"
  done
done
