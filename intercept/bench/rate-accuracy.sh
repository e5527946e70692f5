#!/usr/bin/env bash
# Rate accuracy of libsair_intercept.so on the emulated GPU: achieved share (device busy / wall,
# from the emulator's time line) over a WINDOW_S-second window for each ρ, each on its own
# emulated GPU; two segments 0.3/0.7 on one emulated GPU; and the settling time after a change
# from ρ=0.25 to ρ=0.75 (first time after the change from which every trailing 500 ms window is
# within ±3 pp of the new target). Rates are open loop: ns per token is known from the emulator
# (SAIR_EMU_NS_PER_BLOCK / threads per block); the node agent measures it instead.
#
# Usage: intercept/bench/rate-accuracy.sh   (from the repository root; ~2 × WINDOW_S + 10 s)
set -euo pipefail
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p sair-intercept -p sair-emu-cuda -p sair-emu-tools
T="$CARGO_TARGET_DIR/release"
W="$(mktemp -d)"; trap 'rm -rf "$W"' EXIT
mkdir -p "$W/lib" "$W/shm"
ln -s "$(realpath "$T/libsair_emu_cuda.so")" "$W/lib/libcuda.so.1"
export LD_LIBRARY_PATH="$W/lib" SAIR_EMU_NS_PER_BLOCK=1000 SAIR_SHM_DIR="$W/shm"
export LD_PRELOAD="$(realpath "$T/libsair_intercept.so")"
WINDOW_S="${WINDOW_S:-10}"; GRID=1000; BLOCK=128
NS_PER_TOKEN=$(python3 -c "print(1000/$BLOCK)")
LAUNCH=(--launches 100000000 --grid $GRID --block $BLOCK --sync-every 2)
setrate() { LD_PRELOAD= "$T/sair-shm-set" --segment "$1" --share "$2" --ns-per-token "$NS_PER_TOKEN" --burst-us 2000 >/dev/null; }
i=0
for rho in 0.1 0.25 0.5 0.75 0.9; do
  setrate "r$i" "$rho"
  SAIR_SEGMENT="r$i" SAIR_EMU_STATE="$W/emu-$i.state" "$T/sair-emu-launcher" "${LAUNCH[@]}" \
     --duration-ms $((WINDOW_S * 1000)) > "$W/r$i.json" &
  i=$((i + 1))
done
wait
echo "single segment per emulated GPU, ${WINDOW_S} s window"
i=0
for rho in 0.1 0.25 0.5 0.75 0.9; do
  python3 -c "import json; d=json.load(open('$W/r$i.json')); s=d['share']; print(f'  rho={$rho:<5} achieved={s:.4f}  error={100*(s-$rho):+.2f} pp')"
  i=$((i + 1))
done
setrate a 0.3; setrate b 0.7
SAIR_SEGMENT=a SAIR_EMU_STATE="$W/pair.state" "$T/sair-emu-launcher" "${LAUNCH[@]}" --duration-ms $((WINDOW_S * 1000)) > "$W/a.json" &
SAIR_SEGMENT=b SAIR_EMU_STATE="$W/pair.state" "$T/sair-emu-launcher" "${LAUNCH[@]}" --duration-ms $((WINDOW_S * 1000)) > "$W/b.json" &
setrate c 0.25
SAIR_SEGMENT=c SAIR_EMU_STATE="$W/change.state" "$T/sair-emu-launcher" "${LAUNCH[@]}" --duration-ms 8000 --sample-ms 50 > "$W/c.json" &
sleep 3; setrate c 0.75
wait
echo "two segments on one emulated GPU, ${WINDOW_S} s window"
for s in a:0.3 b:0.7; do
  python3 -c "import json; d=json.load(open('$W/${s%%:*}.json')); s=d['share']; print(f'  segment ${s%%:*} rho=${s##*:} achieved={s:.4f}  error={100*(s-${s##*:}):+.2f} pp')"
done
python3 - "$W/c.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); s = d["samples"]
change, target, win = 3.0e9, 0.75, 0.5e9
def share_at(i):
    t, b = s[i]
    j = max(k for k in range(i + 1) if s[k][0] <= t - win) if s[0][0] <= t - win else None
    return None if j is None else (b - s[j][1]) / (t - s[j][0])
pts = [(s[i][0], share_at(i)) for i in range(len(s))]
pts = [(t, v) for t, v in pts if v is not None]
before = [v for t, v in pts if 1.0e9 <= t <= change]
after = [(t, v) for t, v in pts if t > change]
settle = None
for k, (t, v) in enumerate(after):
    if all(abs(v2 - target) <= 0.03 for _, v2 in after[k:]):
        settle = (t - change) / 1e9; break
print("rate change 0.25 -> 0.75 at t = 3 s (500 ms trailing windows)")
print(f"  before change: mean share {sum(before)/len(before):.4f}")
print(f"  settling time to within ±3 pp of 0.75: {settle if settle is None else f'{settle:.2f} s'}"
      " (includes the 500 ms window itself)")
PY
