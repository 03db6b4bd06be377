#!/usr/bin/env bash
# test_api_cli.sh — the model commands over the API: list/show/cp/rm/create against a server on a
# free port (started on demand by the first command), checked against what curl gets from the same
# routes; a client stalled halfway through its request is cut off after HEARTH_READ_TIMEOUT without
# holding up others, a reply that takes longer than that still arrives, and a client that hangs up
# during a non-streamed generation frees the (single) slot at once.
set -u
. "$(dirname "$0")/lib.sh"
SRC="$HEARTH_SHARED/reference/tiny-models/llama-dev-f32.gguf"
STORIES="$HEARTH_SHARED/models/stories260K.gguf"
need "$SRC"
need "$STORIES"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export HEARTH_HOST="127.0.0.1:$PORT" HEARTH_MODELS="$TMP/models" TMPDIR="$TMP"
export HEARTH_READ_TIMEOUT=2 HEARTH_NUM_PARALLEL=1
URL="http://$HEARTH_HOST"
stop_server() {
  local pid
  pid=$(ss -ltnpH "sport = :$PORT" 2>/dev/null | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -n 1)
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  grep -q "Sanitizer" "$TMP"/hearth-serve-*.log 2>/dev/null && cat "$TMP"/hearth-serve-*.log >&2
}
trap 'stop_server; rm -rf "$TMP"' EXIT

# create uploads the FROM file as a blob and builds the model on the server
printf 'FROM %s\nPARAMETER temperature 0.25\nSYSTEM be brief\nLICENSE MIT\nMESSAGE user hi\n' "$SRC" >"$TMP/Modelfile"
expect_status 0 "create starts a server" -- "$HEARTH_BIN" create dev -f "$TMP/Modelfile"
expect_stderr '^copying file sha256:' "create uploads the blob"
expect_stderr '^success' "create streams the server's statuses"
curl -sf "$URL/" >/dev/null && ok || bad "no server answers after create started one"
digest=sha256:$(sha256sum "$SRC" | cut -d' ' -f1)
[ "$(curl -s -o /dev/null -w '%{http_code}' -I "$URL/api/blobs/$digest")" = 200 ] && ok || bad "uploaded blob missing"
# create FROM a stored model sends "from": the blob is not uploaded again
printf 'FROM dev\nSYSTEM be verbose\n' >"$TMP/Modelfile2"
expect_status 0 "create from a model" -- "$HEARTH_BIN" create dev2 -f "$TMP/Modelfile2"
if grep -q 'copying file' "$TMP/err"; then bad "create FROM a model uploaded a file"; else ok; fi

# list: Ollama's table, the same names, IDs and sizes as /api/tags
expect_status 0 "list" -- "$HEARTH_BIN" list
head -1 "$TMP/out" | grep -q '^NAME  *ID  *SIZE  *MODIFIED$' && ok || bad "list header: $(head -1 "$TMP/out")"
curl -sf "$URL/api/tags" >"$TMP/tags.json"
python3 - "$TMP/tags.json" "$TMP/out" <<'PY' && ok || bad "list differs from /api/tags: $(cat "$TMP/out")"
import json, sys
tags = json.load(open(sys.argv[1]))["models"]
rows = [l.split() for l in open(sys.argv[2]).read().splitlines()[1:]]
want = sorted((m["name"], m["digest"][:12]) for m in tags)
got = sorted((r[0], r[1]) for r in rows)
assert want == got, (want, got)
assert all(" ".join(r[4:]) in ("Less than a second ago", "1 second ago") or r[5:] == ["seconds", "ago"] for r in rows), rows
PY
expect_status 0 "list with a prefix" -- "$HEARTH_BIN" list DEV2
[ "$(wc -l <"$TMP/out")" = 2 ] && grep -q '^dev2:latest ' "$TMP/out" && ok || bad "list prefix: $(cat "$TMP/out")"

# show: the layout and each field as /api/show has it
expect_status 0 "show" -- "$HEARTH_BIN" show dev
for want in '^  Model$' 'architecture  *llama$' 'context length  *4096$' 'embedding length  *64$' \
            'quantization  *F32$' '^  Parameters$' 'temperature  *0.25' '^  System$' '^    be brief$' '^  License$' '^    MIT$'; do
  expect_stdout "$want" "show layout"
done
curl -sf "$URL/api/show" -d '{"model":"dev"}' >"$TMP/show.json"
for f in modelfile parameters template system license; do
  "$HEARTH_BIN" show dev --$f >"$TMP/field" 2>"$TMP/err" || bad "show --$f failed: $(cat "$TMP/err")"
  python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))[sys.argv[2]]; v=v if v.endswith("\n") else v+"\n"; sys.exit(open(sys.argv[3]).read()!=v)' \
    "$TMP/show.json" "$f" "$TMP/field" && ok || bad "show --$f differs from /api/show's $f"
done
[ "$("$HEARTH_BIN" show dev2 --system)" = "be verbose" ] && ok || bad "dev2 system"
expect_status 0 "show -v" -- "$HEARTH_BIN" show dev -v
expect_stdout '^  Metadata$' "show -v metadata"
expect_stdout 'llama.block_count  *2$' "show -v metadata value"
expect_stdout 'blk.0.attn_q.weight' "show -v tensors"
expect_status 1 "show of a missing model" -- "$HEARTH_BIN" show nosuch
expect_stderr "model 'nosuch' not found" "show's 404 message"

# cp and rm through /api/copy and /api/delete
expect_status 0 "cp" -- "$HEARTH_BIN" cp dev other/dev3:v1
expect_stdout "copied 'dev' to 'other/dev3:v1'" "cp message"
curl -sf "$URL/api/tags" | grep -q '"other/dev3:v1"' && ok || bad "copy not in /api/tags"
expect_status 0 "rm" -- "$HEARTH_BIN" rm other/dev3:v1 dev2
expect_stdout "deleted 'other/dev3:v1'" "rm message"
expect_stdout "deleted 'dev2'" "rm second model"
curl -sf "$URL/api/tags" | grep -q 'dev3\|dev2' && bad "removed models still listed" || ok
expect_status 1 "rm of a missing model" -- "$HEARTH_BIN" rm dev2
expect_stderr "not found" "rm 404 message"
expect_status 1 "pull of a bad name" -- "$HEARTH_BIN" pull 'a/../b'
expect_stderr "invalid model name" "pull's 400 message"

# a client that stalls halfway through its request is cut off after HEARTH_READ_TIMEOUT (2 s)
# and does not hold up anyone else meanwhile
python3 - "$PORT" >"$TMP/stall" 2>&1 <<'PY' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"POST /api/show HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{\"mod")
t = time.time()
s.settimeout(20)
try:
    d = s.recv(100)
except socket.timeout:
    d = b"timeout"
print("closed after %.1f s: %r" % (time.time() - t, d))
PY
stall=$!
sleep 0.5
t0=$(date +%s.%N)
curl -sf -m 5 "$URL/api/tags" >/dev/null && ok || bad "a stalled client blocked /api/tags"
python3 -c "import sys; sys.exit(float(sys.argv[2]) - float(sys.argv[1]) > 1.5)" "$t0" "$(date +%s.%N)" && ok || bad "/api/tags was slow beside a stalled client"
wait $stall
python3 -c 'import re,sys; m=re.match(r"closed after ([0-9.]+) s: b.(.*).$", open(sys.argv[1]).read().strip()); sys.exit(not (m and 1.0 <= float(m.group(1)) <= 8 and m.group(2) != "timeout"))' "$TMP/stall" \
  && ok || bad "stalled request not closed after the read timeout: $(cat "$TMP/stall")"

# a non-streamed reply that takes longer than the read timeout still arrives
ln -s "$STORIES" "$HEARTH_MODELS/stories.gguf"
gen() { curl -s -m "$1" "$URL/api/generate" -d "{\"model\":\"stories\",\"prompt\":\"Once\",\"stream\":false,\"options\":{\"num_predict\":$2,\"num_ctx\":4096,\"temperature\":1,\"seed\":1}}"; }
gen 60 1 >/dev/null # load the model
t0=$(date +%s)
gen 120 1500 >"$TMP/long.json"
t1=$(date +%s)
grep -q '"done":true' "$TMP/long.json" && ok || bad "long non-streamed reply: $(head -c 300 "$TMP/long.json")"
[ $((t1 - t0)) -ge 3 ] || echo "note: 1500 tokens took under 3 s; the read-timeout check above is weak on this machine"
# a client that hangs up during a non-streamed generation frees the only slot at once
gen 1 100000 >/dev/null 2>&1
t0=$(date +%s)
gen 30 1 >"$TMP/next.json"
t1=$(date +%s)
grep -q '"done":true' "$TMP/next.json" && ok || bad "request after a hang-up: $(head -c 300 "$TMP/next.json")"
[ $((t1 - t0)) -le 5 ] && ok || bad "the slot stayed busy $((t1 - t0)) s after its client hung up"
finish
