#!/usr/bin/env bash
# test_api_ps.sh — `hearth ps` and `hearth stop` against a running `hearth serve`: Ollama's table
# header, a loaded model's row (name, size, 100% CPU, context, "minutes from now"), stop unloading
# it, and the errors for an unknown model and an absent server.
set -u
. "$(dirname "$0")/lib.sh"
MODEL="$HEARTH_SHARED/models/stories260K.gguf"
need "$MODEL"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export HEARTH_HOST="127.0.0.1:$PORT" HEARTH_MODELS="$TMP/models"
mkdir -p "$HEARTH_MODELS"
ln -s "$MODEL" "$HEARTH_MODELS/stories.gguf"

expect_status 1 "ps without a server" -- "$HEARTH_BIN" ps
expect_stderr "could not connect" "ps without a server names the problem"

"$HEARTH_BIN" serve 2>"$TMP/serve.log" &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; grep -q "Sanitizer" "$TMP/serve.log" && cat "$TMP/serve.log" >&2; rm -rf "$TMP"' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/" >/dev/null && break; sleep 0.1; done

expect_status 0 "ps with nothing loaded" -- "$HEARTH_BIN" ps
if head -n 1 "$TMP/out" | grep -Eq '^NAME +ID +SIZE +PROCESSOR +CONTEXT +UNTIL$'; then ok; else bad "ps header: $(cat "$TMP/out")"; fi
[ "$(wc -l <"$TMP/out")" = 1 ] && ok || bad "ps lists nothing before a load: $(cat "$TMP/out")"

curl -sf "http://127.0.0.1:$PORT/api/generate" -d '{"model":"stories","prompt":"","keep_alive":"10m"}' >/dev/null || bad "load"
expect_status 0 "ps with a model loaded" -- "$HEARTH_BIN" ps
expect_stdout "^stories:latest " "ps names the model"
expect_stdout "100% CPU" "ps processor column"
expect_stdout "minutes from now" "ps until column (keep_alive 10m)"
expect_stdout " 2048 " "ps context column (the default 4096 clamped to the training context)"
# /api/ps: size is the memory plan's total, size_vram its GPU part (none without a GPU).
curl -sf "http://127.0.0.1:$PORT/api/ps" >"$TMP/ps.json" || bad "GET /api/ps"
python3 - "$TMP/ps.json" <<'PY' && ok || bad "/api/ps size and size_vram: $(cat "$TMP/ps.json")"
import json, sys
m = json.load(open(sys.argv[1]))["models"][0]
assert m["size"] > 0 and 0 <= m["size_vram"] <= m["size"], m
PY

expect_status 1 "stop of a model that is not loaded" -- "$HEARTH_BIN" stop other
expect_stderr "couldn't find model \"other\" to stop" "stop names the model"
expect_status 0 "stop" -- "$HEARTH_BIN" stop stories
expect_status 0 "ps after stop" -- "$HEARTH_BIN" ps
[ "$(wc -l <"$TMP/out")" = 1 ] && ok || bad "ps after stop lists nothing: $(cat "$TMP/out")"
expect_status 2 "stop without a model" -- "$HEARTH_BIN" stop
finish
