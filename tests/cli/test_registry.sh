#!/usr/bin/env bash
# test_registry.sh — pull and push against a real registry (Debian's docker-registry, started here on
# a free local port and stopped at the end): push a created model, pull it into an empty store and
# run it, resume a killed pull, reject a corrupted blob, two pulls of one model at once, and ENOSPC
# on a small tmpfs when one can be mounted. Skips when docker-registry is not installed.
set -uo pipefail
. "$(dirname "$0")/registry_lib.sh"
T=$(mktemp -d)
REGPID=
# `hearth run NAME` starts a server on demand: give it a port of its own and stop it at the end.
HEARTH_HOST=127.0.0.1:$(freeport)
export HEARTH_HOST
stop_server() {
  for pid in $(ss -ltnpH "sport = :${HEARTH_HOST##*:}" 2>/dev/null | sed -n 's/.*pid=\([0-9]*\).*/\1/p'); do
    kill "$@" "$pid" 2>/dev/null
  done
}
# The server's store and pull settings come from the environment it starts with: each new store
# (HEARTH_MODELS) gets a server of its own, started on demand by the next command. `new_server -9`
# kills the old one outright (an interrupted pull is left as it is).
new_server() {
  stop_server "$@"
  HEARTH_HOST=127.0.0.1:$(freeport)
}
cleanup() {
  [ -n "$REGPID" ] && kill "$REGPID" 2>/dev/null && wait "$REGPID" 2>/dev/null
  stop_server
  mountpoint -q "$T/small" 2>/dev/null && umount "$T/small"
  rm -rf "$T"
}
trap cleanup EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

start_registry "$T" delete
NAME=127.0.0.1:$PORT/library/dev:latest

# create and push
export HEARTH_MODELS=$T/src
printf 'FROM %s\nSYSTEM terse\nPARAMETER temperature 0\n' "$SRC" > "$T/Modelfile"
"$BIN" create "$NAME" -f "$T/Modelfile" >/dev/null 2>&1 || fail "create"
if "$BIN" push "$NAME" >/dev/null 2>"$T/err"; then fail "push over http without --insecure succeeded"; fi
"$BIN" push "$NAME" --insecure 2>"$T/push.log" || fail "push: $(cat "$T/push.log")"
grep -q '^success' "$T/push.log" || fail "push did not report success: $(cat "$T/push.log")"
grep -q '^pushing manifest' "$T/push.log" || fail "push status lines"
# pushing again uploads nothing (HEAD finds every blob)
"$BIN" push "$NAME" --insecure 2>/dev/null || fail "second push"
# the registry serves our manifest bytes
srcman=$HEARTH_MODELS/manifests/127.0.0.1:$PORT/library/dev/latest
curl -sf -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
  "http://127.0.0.1:$PORT/v2/library/dev/manifests/latest" > "$T/served.json" || fail "manifest GET"
cmp -s "$srcman" "$T/served.json" || fail "registry manifest differs from the local one"

# pull into an empty store, in small parts so several run in parallel, and run it
new_server
export HEARTH_MODELS=$T/dst HEARTH_PULL_PART_SIZE=65536
"$BIN" pull "$NAME" --insecure 2>"$T/pull.log" || fail "pull: $(cat "$T/pull.log")"
for s in 'pulling manifest' 'verifying sha256 digest' 'writing manifest' 'success'; do
  grep -q "^$s" "$T/pull.log" || fail "pull status '$s' missing: $(cat "$T/pull.log")"
done
cmp -s "$srcman" "$HEARTH_MODELS/manifests/127.0.0.1:$PORT/library/dev/latest" || fail "pulled manifest differs"
blob=$("$BIN" show "$NAME" --modelfile | sed -n 's/^FROM //p')
cmp -s "$blob" "$SRC" || fail "pulled weights differ from the source"
ls "$HEARTH_MODELS/blobs" | grep -q partial && fail "partial files left after a pull"
out=$("$BIN" run "$NAME" -n 5 "Hello" 2>"$T/run.err") || fail "run of the pulled model: $(cat "$T/run.err")"
[ -n "$out" ] || fail "run printed nothing"

# a missing tag
if "$BIN" pull "127.0.0.1:$PORT/library/dev:nosuch" --insecure 2>"$T/err" >/dev/null; then fail "missing tag pulled"; fi
grep -q 'file does not exist' "$T/err" || fail "missing tag message: $(cat "$T/err")"

# interrupt a slow pull midway, then resume it from the part files
new_server
export HEARTH_MODELS=$T/resume HEARTH_PULL_MAX_RATE=100000
"$BIN" pull "$NAME" --insecure 2>/dev/null &
pid=$!
sleep 3
kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
parts=$(ls "$HEARTH_MODELS/blobs" 2>/dev/null | grep -c -- '-partial-' || true)
[ "$parts" -gt 0 ] || fail "no part state files after an interrupted pull"
done_before=$(cat "$HEARTH_MODELS"/blobs/*-partial-* 2>/dev/null | python3 -c 'import sys,json; print(sum(json.loads(l)["Completed"] for l in sys.stdin if l.strip()))')
[ "${done_before:-0}" -gt 0 ] || fail "interrupted pull recorded no progress"
unset HEARTH_PULL_MAX_RATE
new_server -9
"$BIN" pull "$NAME" --insecure 2>/dev/null || fail "resumed pull"
blob=$("$BIN" show "$NAME" --modelfile | sed -n 's/^FROM //p')
cmp -s "$blob" "$SRC" || fail "resumed pull produced different weights"
ls "$HEARTH_MODELS/blobs" | grep -q partial && fail "partial files left after the resumed pull"

# two pulls of the same model at once
new_server
export HEARTH_MODELS=$T/twice HEARTH_PULL_MAX_RATE=1000000
"$BIN" pull "$NAME" --insecure 2>"$T/p1" & p1=$!
"$BIN" pull "$NAME" --insecure 2>"$T/p2" & p2=$!
wait $p1 || fail "first concurrent pull: $(cat "$T/p1")"
wait $p2 || fail "second concurrent pull: $(cat "$T/p2")"
unset HEARTH_PULL_MAX_RATE
new_server
blob=$("$BIN" show "$NAME" --modelfile | sed -n 's/^FROM //p')
cmp -s "$blob" "$SRC" || fail "concurrent pulls produced different weights"

# a corrupted blob on the registry is rejected and deleted
digest=$(sed -n 's/.*"application\/vnd.ollama.image.model","digest":"sha256:\([0-9a-f]*\)".*/\1/p' "$srcman")
[ -n "$digest" ] || digest=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print([l["digest"][7:] for l in m["layers"] if l["mediaType"].endswith("model")][0])' "$srcman")
data=$T/registry/docker/registry/v2/blobs/sha256/${digest:0:2}/$digest/data
if [ -f "$data" ]; then
  chmod u+w "$data"
  printf 'XXXX' | dd of="$data" bs=1 seek=100000 conv=notrunc 2>/dev/null
  new_server
  export HEARTH_MODELS=$T/corrupt
  if "$BIN" pull "$NAME" --insecure 2>"$T/err" >/dev/null; then fail "corrupted blob accepted"; fi
  grep -q 'digest mismatch' "$T/err" || fail "corruption message: $(cat "$T/err")"
  ls "$HEARTH_MODELS/blobs" | grep -q "$digest" && fail "corrupted download kept"
  "$BIN" list | grep -q dev && fail "manifest written despite a corrupted blob"
  cp "$SRC" "$data"  # repair for what follows
else
  fail "registry blob file not found at $data"
fi

# ENOSPC: a 1 MB tmpfs cannot hold the 1.5 MB model
mkdir -p "$T/small"
if mount -t tmpfs -o size=1m tmpfs "$T/small" 2>/dev/null; then
  new_server
  export HEARTH_MODELS=$T/small/models
  if "$BIN" pull "$NAME" --insecure 2>"$T/err" >/dev/null; then fail "pull into a full disk succeeded"; fi
  grep -qi 'no space\|cannot' "$T/err" || fail "ENOSPC message: $(cat "$T/err")"
  stop_server
  sleep 0.5
  umount "$T/small"
else
  echo "skipping ENOSPC: cannot mount a tmpfs here"
fi

[ "$fails" = 0 ] && echo "registry tests passed"
[ "$fails" = 0 ]
