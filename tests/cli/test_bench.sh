#!/usr/bin/env bash
# test_bench.sh — `hearth bench` end to end on stories260K: the JSON figures parse and are positive,
# the sizes and per-token weight bytes match the tensors listed in the GGUF itself, the markdown table
# has a row per model, and misuse gives exit 2 and a missing or broken model exit 1, with a message.
source "$(dirname "$0")/lib.sh"
H=$HEARTH_BIN
S=$HEARTH_SHARED
M=$S/models/stories260K.gguf
need "$M"

expect_status 0 "bench --json" -- "$H" bench "$M" --prompt 16 --gen 8 --repeat 3 --threads 1 --json
python3 - "$TMP/out" "$M" <<'PY' && ok || bad "bench --json figures"
import json, struct, sys

doc = json.load(open(sys.argv[1]))
assert doc["prompt_tokens"] == 16 and doc["gen_tokens"] == 8 and doc["repeat"] == 3, doc
assert doc["membw_gbs"] > 0, doc
(r,) = doc["results"]
assert r["model"] == sys.argv[2] and r["type"] == "F32" and r["threads"] == 1, r
assert r["backend"].startswith("cpu"), r
for k in ("prefill_tps", "decode_tps", "first_token_ms", "load_ms", "peak_rss_bytes", "roofline_tps",
          "roofline_pct", "size_bytes", "params", "decode_bytes_per_token"):
    assert isinstance(r[k], (int, float)) and r[k] > 0, (k, r[k])
assert r["membw_gbs"] > 0, r
# The roofline is bandwidth (the median over runs of each run's bandwidth) / bytes per token. The
# percentage is the median over runs of each run's decode against its own bandwidth, so it equals
# decode / roofline only up to the host's bandwidth drift within the row: within half of it (a unit
# slip is 8x or 1e3x). A model this small cannot be read between decode steps (a pass would come from
# the cache): its bandwidth is the separate probe's.
assert r["membw_in_run"] is False, r
assert abs(r["roofline_tps"] - r["membw_gbs"] * 1e9 / r["decode_bytes_per_token"]) <= 1e-6 * r["roofline_tps"], r
whole = 100 * r["decode_tps"] / r["roofline_tps"]
assert abs(r["roofline_pct"] - whole) <= 0.5 * whole, (r, whole)
# The model's resident memory includes at least its weights (all F32, read on every token).
assert r["peak_rss_bytes"] >= r["size_bytes"], r

# Independent count from the GGUF's tensor table: size = every tensor; params = every element;
# bytes per token = every matrix once (token_embd doubles as the output when output.weight is
# absent) plus one embedding row.
f = open(sys.argv[2], "rb")
def u(fmt):
    return struct.unpack("<" + fmt, f.read(struct.calcsize(fmt)))[0]
def s():
    return f.read(u("Q")).decode()
assert f.read(4) == b"GGUF"
u("I")
n_tensors, n_kv = u("Q"), u("Q")
sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
def skip(t):
    if t == 8:
        s()
    elif t == 9:
        et, n = u("I"), u("Q")
        for _ in range(n):
            skip(et)
    else:
        f.read(sizes[t])
for _ in range(n_kv):
    s()
    skip(u("I"))
tensors = {}
for _ in range(n_tensors):
    name = s()
    dims = [u("Q") for _ in range(u("I"))]
    t = u("I")
    u("Q")
    assert t == 0, (name, t)  # stories260K is all F32
    tensors[name] = dims
n = lambda d: eval("*".join(map(str, d)))
assert r["size_bytes"] == 4 * sum(n(d) for d in tensors.values()), r
assert r["params"] == sum(n(d) for d in tensors.values()), r
mats = sum(4 * n(d) for name, d in tensors.items() if len(d) == 2 and name != "token_embd.weight")
embd = tensors["token_embd.weight"]
if "output.weight" not in tensors:
    mats += 4 * n(embd)
assert r["decode_bytes_per_token"] == mats + 4 * embd[0], (r, mats)
PY

# With probe passes small enough for this model, the bandwidth is read between the decode steps: the
# row says so, its figures keep the same relations, and reading the weights in place adds no memory.
expect_status 0 "bench --json, in-run bandwidth" -- env HEARTH_BENCH_PROBE_BYTES=65536 \
  "$H" bench "$M" --prompt 4 --gen 8 --repeat 2 --threads 1 --json
python3 - "$TMP/out" <<'PY' && ok || bad "bench --json, in-run bandwidth"
import json, sys
(r,) = json.load(open(sys.argv[1]))["results"]
assert r["membw_in_run"] is True, r
assert r["membw_gbs"] > 0 and r["roofline_tps"] > 0 and r["roofline_pct"] > 0, r
assert abs(r["roofline_tps"] - r["membw_gbs"] * 1e9 / r["decode_bytes_per_token"]) <= 1e-6 * r["roofline_tps"], r
PY

# Markdown by default: the header, one row per model (the same file twice: two rows), a footer.
expect_status 0 "bench table" -- "$H" bench "$M" "$M" --prompt 8 --gen 4 --repeat 1 --threads 1
expect_stdout "| model | backend | size | prefill tok/s | decode tok/s | first token | load | peak RSS | roofline % |" "table header"
[ "$(grep -c '^| stories260K.gguf (F32) | cpu' "$TMP/out")" = 2 ] && ok || bad "two table rows: $(cat "$TMP/out")"
expect_stdout "memory read bandwidth" "table footer"

# Misuse: exit 2 and the flag named.
expect_status 2 "no model" -- "$H" bench
expect_stderr "MODEL" "no model"
expect_status 2 "unknown flag" -- "$H" bench "$M" --bogus
expect_stderr "unknown flag '--bogus'" "unknown flag"
expect_status 2 "zero tokens" -- "$H" bench "$M" --gen 0
expect_stderr "\-\-gen" "zero tokens"
expect_status 2 "not a number" -- "$H" bench "$M" --prompt lots
expect_stderr "\-\-prompt" "not a number"
expect_status 2 "missing value" -- "$H" bench "$M" --threads
expect_status 2 "bad backend" -- "$H" bench "$M" --backend tpu
expect_stderr "\-\-backend: 'tpu'" "bad backend"
expect_status 0 "help" -- "$H" bench --help
expect_stdout "usage: hearth bench" "help"

# Runtime failures: exit 1 and the file named; nothing is measured for a missing path.
expect_status 1 "missing model" -- "$H" bench "$M" "$TMP/nope.gguf" --json
expect_stderr "$TMP/nope.gguf: No such file" "missing model"
[ ! -s "$TMP/out" ] && ok || bad "a missing path still ran the other models"
printf 'not a gguf file at all' >"$TMP/bad.gguf"
expect_status 1 "broken model" -- "$H" bench "$TMP/bad.gguf" "$M" --prompt 4 --gen 2 --repeat 1 --threads 1 --json
expect_stderr "bad.gguf" "broken model"
# ...and the good model after it is still measured.
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert [r["type"] for r in d["results"]] == ["F32"]' "$TMP/out" &&
  ok || bad "the model after a broken one was not measured: $(cat "$TMP/out")"

finish
