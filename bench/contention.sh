#!/usr/bin/env bash
# contention.sh — hearth under a competing busy process: runs `hearth bench` for each given binary in
# turn (alternating, ROUNDS rounds) while BUSY `yes >/dev/null` processes keep cores busy, and
# prints each run's prefill/decode tok/s and the medians per binary. Use it to compare two builds
# (say, before and after a thread-pool change) under the same load in one run.
#
# usage: bench/contention.sh MODEL.gguf HEARTH_BIN... [-r ROUNDS] [-b BUSY] [-p PROMPT] [-g GEN] [-t THREADS]
#   defaults: 5 rounds, 1 busy process, prompt 32, gen 64, 2 threads. BUSY 0 measures without load.
set -euo pipefail

rounds=5 busy=1 prompt=32 gen=64 threads=2
model=""
bins=()
while [ $# -gt 0 ]; do
  case "$1" in
    -r) rounds=$2; shift 2 ;;
    -b) busy=$2; shift 2 ;;
    -p) prompt=$2; shift 2 ;;
    -g) gen=$2; shift 2 ;;
    -t) threads=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    -*) echo "contention.sh: unknown flag $1" >&2; exit 2 ;;
    *) if [ -z "$model" ]; then model=$1; else bins+=("$1"); fi; shift ;;
  esac
done
if [ -z "$model" ] || [ ${#bins[@]} -eq 0 ]; then
  echo "usage: bench/contention.sh MODEL.gguf HEARTH_BIN... [-r ROUNDS] [-b BUSY] [-p PROMPT] [-g GEN] [-t THREADS]" >&2
  exit 2
fi

busy_pids=()
stop_busy() {
  for pid in "${busy_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${busy_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  busy_pids=()
}
trap stop_busy EXIT

results=$(mktemp)
trap 'stop_busy; rm -f "$results"' EXIT
echo "model $model, prompt $prompt, gen $gen, $threads threads, $busy busy process(es), $rounds rounds"
for r in $(seq "$rounds"); do
  for b in "${bins[@]}"; do
    for _ in $(seq "$busy"); do
      yes >/dev/null &
      busy_pids+=($!)
    done
    json=$("$b" bench "$model" --prompt "$prompt" --gen "$gen" --repeat 1 --threads "$threads" --json)
    stop_busy
    line=$(node -e 'const d = JSON.parse(process.argv[1]).results[0];
      console.log(d.prefill_tps.toFixed(1) + " " + d.decode_tps.toFixed(2));' "$json")
    echo "$b $line" >>"$results"
    echo "round $r: $b prefill/decode tok/s $line"
  done
done
echo
echo "| binary | prefill tok/s (median) | decode tok/s (median) |"
echo "| --- | ---: | ---: |"
for b in "${bins[@]}"; do
  awk -v b="$b" '$1 == b { p[n] = $2; d[n] = $3; n++ }
    function med(a, n,   i, j, t) { for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
      return n % 2 ? a[int(n / 2)] : (a[n / 2 - 1] + a[n / 2]) / 2 }
    END { printf "| %s | %.1f | %.2f |\n", b, med(p, n), med(d, n) }' "$results"
done
