#!/usr/bin/env bash
# test_api_run.sh — `hearth run NAME` through the server: with no server answering it starts one in
# the background, and the greedy text it streams equals the in-process run of the same GGUF; standard
# input as the prompt, --verbose figures, --format json, and a missing model's error.
set -u
. "$(dirname "$0")/lib.sh"
MODEL="$HEARTH_SHARED/models/stories260K.gguf"
need "$MODEL"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export HEARTH_HOST="127.0.0.1:$PORT" HEARTH_MODELS="$TMP/models" TMPDIR="$TMP"
mkdir -p "$HEARTH_MODELS"
ln -s "$MODEL" "$HEARTH_MODELS/stories.gguf"
# The server `run` starts is ours to stop: found by the port it listens on.
stop_server() {
  local pid
  pid=$(ss -ltnpH "sport = :$PORT" 2>/dev/null | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -n 1)
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  grep -q "Sanitizer" "$TMP"/hearth-serve-*.log 2>/dev/null && cat "$TMP"/hearth-serve-*.log >&2
}
trap 'stop_server; rm -rf "$TMP"' EXIT

greedy=(-n 24 --temperature 0 --repeat-penalty 1)
expect_status 0 "run starts a server and generates" -- "$HEARTH_BIN" run stories "Once upon a time" "${greedy[@]}"
cp "$TMP/out" "$TMP/remote"
curl -sf "http://$HEARTH_HOST/" >/dev/null && ok || bad "no server answers after run started one"
ls "$TMP"/hearth-serve-*.log >/dev/null 2>&1 && ok || bad "the started server's log is not in TMPDIR"
expect_status 0 "in-process run" -- "$HEARTH_BIN" run "$MODEL" "Once upon a time" "${greedy[@]}"
if cmp -s "$TMP/out" "$TMP/remote" && [ -s "$TMP/remote" ]; then ok; else
  bad "server and in-process greedy text differ: '$(cat "$TMP/remote")' vs '$(cat "$TMP/out")'"
fi

expect_status 0 "run --verbose" -- "$HEARTH_BIN" run stories "Once upon a time" "${greedy[@]}" --verbose
expect_stderr "^eval count: *24 token(s)" "verbose eval count"
expect_stderr "^prompt eval rate: .* tokens/s" "verbose prompt eval rate"
expect_stderr "^load duration:" "verbose load duration"

echo "Once upon a time" | "$HEARTH_BIN" run stories "${greedy[@]}" >"$TMP/out" 2>"$TMP/err"
[ -s "$TMP/out" ] && ok || bad "prompt from standard input gave nothing: $(cat "$TMP/err")"

expect_status 0 "run --format json" -- "$HEARTH_BIN" run stories "Lily" -n 300 --seed 2 \
  --format '{"type":"object","properties":{"name":{"type":"string","maxLength":10},"n":{"type":"integer"}},"required":["name","n"]}'
python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); assert set(v)=={"name","n"} and isinstance(v["n"],int)' "$TMP/out" \
  && ok || bad "--format output is not the schema's JSON: $(cat "$TMP/out")"

expect_status 2 "bad --format" -- "$HEARTH_BIN" run stories hi --format xml
expect_stderr "format" "bad --format names the flag"
expect_status 1 "missing model" -- "$HEARTH_BIN" run nosuch hi
expect_stderr "model 'nosuch' not found" "missing model message"
finish
