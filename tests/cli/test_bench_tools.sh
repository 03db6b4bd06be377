#!/usr/bin/env bash
# test_bench_tools.sh — the probes under bench/ build against the build's library (warnings as errors,
# as their scripts compile them) and run on small inputs: weight-stream over stories260K prints its
# per-round table and a kernels/read median, with --read-only one JSON line with the plain read's rate
# (as bench/compare.mjs --read-rate reads it), and refuses an unknown --type or --anon with
# --read-only with exit 2; act-footprint
# at its smallest size prints a row per width with positive rates; sampler-cost and grammar-cost run.
source "$(dirname "$0")/lib.sh"
: "${HEARTH_SOURCE:?HEARTH_SOURCE must point at the source tree}"
B=$(dirname "$HEARTH_BIN")
M=$HEARTH_SHARED/models/stories260K.gguf
need "$M"
need "$B/libhearth_core.a"

expect_status 0 "weight-stream" -- bash "$HEARTH_SOURCE/bench/weight-stream.sh" "$B" "$M" --threads 2 --rounds 2
expect_stdout "kernels/read" "weight-stream header"
grep -Eq '^median +[0-9.]+ +[0-9.]+ +[0-9.]+' "$TMP/out" && ok || bad "weight-stream median row: $(tail -c 300 "$TMP/out")"
expect_status 0 "weight-stream --type F32" -- bash "$HEARTH_SOURCE/bench/weight-stream.sh" "$B" "$M" --rounds 1 --type F32
expect_stdout "matrices" "weight-stream --type F32"
expect_status 0 "weight-stream --read-only" -- bash "$HEARTH_SOURCE/bench/weight-stream.sh" "$B" "$M" --threads 2 --rounds 3 --read-only
python3 - "$TMP/out" <<'PY' && ok || bad "weight-stream --read-only output: $(head -c 300 "$TMP/out")"
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 1, lines
doc = json.loads(lines[0])
assert doc["read_gbs"] > 0 and doc["passes"] == 3 and doc["threads"] == 2, doc
# stories260K's matrices in float32 (output tied to the embedding table): per layer Q and O 64 x 64,
# K and V 32 x 64 (4 of 8 heads), three FFN matrices 64 x 172; 5 layers; the 512 x 64 table.
assert doc["bytes"] == 4 * (5 * (2 * 64 * 64 + 2 * 32 * 64 + 3 * 64 * 172) + 512 * 64), doc
PY
expect_status 2 "weight-stream --anon --read-only" -- bash "$HEARTH_SOURCE/bench/weight-stream.sh" "$B" "$M" --anon --read-only
expect_stderr "usage: weight-stream" "weight-stream --anon --read-only"
expect_status 2 "weight-stream --type Q9" -- bash "$HEARTH_SOURCE/bench/weight-stream.sh" "$B" "$M" --type Q9
expect_stderr "unknown weight type 'Q9'" "weight-stream --type Q9"
expect_status 1 "weight-stream --type Q4_0 on an F32 model" -- bash "$HEARTH_SOURCE/bench/weight-stream.sh" "$B" "$M" --type Q4_0
expect_stderr "no matrices the CPU kernels multiply of type Q4_0" "weight-stream --type Q4_0"

for t in F16 BF16; do
  bash "$HEARTH_SOURCE/bench/act-footprint.sh" "$B" --type $t --mib 64 >"$TMP/out" 2>"$TMP/err"
  rc=$?
  if [ $rc = 1 ] && grep -q "no F16-activation path" "$TMP/err"; then
    echo "act-footprint: this CPU has no AVX2 kernels; skipped"
    continue
  fi
  [ $rc = 0 ] && ok || bad "act-footprint --type $t: exit $rc: $(head -c 300 "$TMP/err")"
  python3 - "$TMP/out" "$t" <<'PY' && ok || bad "act-footprint --type $t table: $(head -c 400 "$TMP/out")"
import sys
lines = open(sys.argv[1]).read().splitlines()
assert lines[0] == sys.argv[2] + " rows, one thread", lines[0]
rows = [l.split() for l in lines[2:] if l.strip()]
assert [int(r[0]) for r in rows] == [2048, 4096, 8192, 14336], rows
for r in rows:
    a, b, ratio = float(r[1]), float(r[2]), float(r[3])
    assert a > 0 and b > 0 and abs(ratio - b / a) < 0.03, r
PY
done
expect_status 2 "act-footprint --type Q4_0" -- bash "$HEARTH_SOURCE/bench/act-footprint.sh" "$B" --type Q4_0
expect_stderr "usage: act-footprint" "act-footprint --type Q4_0"

expect_status 0 "sampler-cost" -- bash "$HEARTH_SOURCE/bench/sampler-cost.sh" "$B" --vocab 1000 --picks 10 --rounds 1
expect_stdout "us a token" "sampler-cost"
expect_status 0 "grammar-cost" -- bash "$HEARTH_SOURCE/bench/grammar-cost.sh" "$B" "$M" --tokens 8 --rounds 1 --threads 1
expect_stdout "decode with grammar:" "grammar-cost"
expect_stdout "ratio with/without:" "grammar-cost"

finish
