#!/usr/bin/env bash
# test_api_curl.sh — `hearth serve` driven with plain curl: NDJSON stream shape, final metrics,
# error statuses, and a clean exit on SIGINT. Reference text: ../shared/models/reference.
set -euo pipefail
: "${HEARTH_BIN:?}" "${HEARTH_SHARED:?}"
MODEL="$HEARTH_SHARED/models/stories260K.gguf"
REF="$HEARTH_SHARED/models/reference/stories260K.greedy-t0.txt"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
HEARTH_HOST="127.0.0.1:$PORT" "$HEARTH_BIN" serve 2>/dev/null &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/" >/dev/null && break; sleep 0.1; done
fail() { echo "FAIL: $*"; exit 1; }

out=$(curl -sf "http://127.0.0.1:$PORT/api/generate" \
  -d "{\"model\":\"$MODEL\",\"prompt\":\"Once upon a time\",\"options\":{\"temperature\":0,\"num_predict\":12}}")
lines=$(printf '%s\n' "$out" | wc -l)
[ "$lines" -eq 13 ] || fail "expected 12 token lines and a final line, got $lines"
text=$(printf '%s\n' "$out" | head -n 12 | python3 -c 'import sys,json; print("".join(json.loads(l)["response"] for l in sys.stdin), end="")')
grep -qF "Once upon a time$text" "$REF" || fail "stream text '$text' does not continue the reference"
printf '%s\n' "$out" | tail -n 1 | python3 -c '
import sys, json
f = json.loads(sys.stdin.read())
assert f["done"] is True and f["done_reason"] == "length", f
for k in ("total_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count", "eval_duration"):
    assert f[k] > 0, k
assert f["eval_count"] == 12' || fail "final chunk"

code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/api/chat" -d '{"model":"nope","messages":[{"role":"user","content":"x"}]}')
[ "$code" = 404 ] || fail "unknown model gave $code"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/api/chat" -d '[1,2')
[ "$code" = 400 ] || fail "malformed JSON gave $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "http://127.0.0.1:$PORT/api/generate")
[ "$code" = 405 ] || fail "wrong method gave $code"

kill -INT $PID
wait $PID || fail "serve exited with $? after SIGINT"
trap - EXIT
echo ok
