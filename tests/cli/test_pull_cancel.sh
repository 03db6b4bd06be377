#!/usr/bin/env bash
# test_pull_cancel.sh — a client that disconnects from /api/pull stops the server's download: against
# a local docker-registry, a rate-limited pull (HEARTH_PULL_MAX_RATE) is started with curl, streamed
# and not streamed, and curl is killed; the server must log the cancellation, the recorded progress
# (the -partial-N part files) must stop growing, and a later pull must resume and give the exact
# weights. Skips when docker-registry is not installed.
set -uo pipefail
. "$(dirname "$0")/registry_lib.sh"
T=$(mktemp -d)
REGPID= SRVPID=
stop_srv() { [ -n "$SRVPID" ] && kill "$SRVPID" 2>/dev/null && wait "$SRVPID" 2>/dev/null; SRVPID=; }
cleanup() {
  stop_srv
  [ -n "$REGPID" ] && kill "$REGPID" 2>/dev/null && wait "$REGPID" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

# start_srv STORE [ENV=VALUE...]: a server of our own on a free port (HOST), logging to $T/srv.log.
start_srv() {
  local store=$1
  shift
  HOST=127.0.0.1:$(freeport)
  env HEARTH_HOST="$HOST" HEARTH_MODELS="$store" "$@" "$BIN" serve >/dev/null 2>"$T/srv.log" &
  SRVPID=$!
  for _ in $(seq 100); do curl -sf "http://$HOST/" >/dev/null && return 0; sleep 0.1; done
  fail "server did not start: $(cat "$T/srv.log")"
  return 1
}
# Bytes the part files of STORE record as downloaded.
recorded() {
  cat "$1"/blobs/*-partial-* 2>/dev/null |
    python3 -c 'import sys,json; print(sum(json.loads(l)["Completed"] for l in sys.stdin if l.strip()))'
}

start_registry "$T"
NAME=127.0.0.1:$PORT/library/dev:latest

# a model on the registry
start_srv "$T/src" || exit 1
printf 'FROM %s\n' "$SRC" > "$T/Modelfile"
HEARTH_HOST=$HOST HEARTH_MODELS=$T/src "$BIN" create "$NAME" -f "$T/Modelfile" >/dev/null 2>&1 || fail "create"
HEARTH_HOST=$HOST HEARTH_MODELS=$T/src "$BIN" push "$NAME" --insecure >/dev/null 2>&1 || fail "push"
stop_srv

for mode in true false; do
  store=$T/pull-$mode
  start_srv "$store" HEARTH_PULL_MAX_RATE=100000 HEARTH_PULL_PART_SIZE=262144 || continue
  curl -sN "http://$HOST/api/pull" -d "{\"model\":\"$NAME\",\"insecure\":true,\"stream\":$mode}" >"$T/client.out" 2>&1 &
  cpid=$!
  sleep 2
  kill "$cpid" 2>/dev/null; wait "$cpid" 2>/dev/null
  # The server notices within its next progress tick; give it a moment, then watch the record.
  for _ in $(seq 20); do grep -q 'stopped: the client disconnected' "$T/srv.log" && break; sleep 0.1; done
  grep -q "pull of $NAME stopped: the client disconnected" "$T/srv.log" ||
    fail "stream=$mode: no cancellation in the server log: $(cat "$T/srv.log")"
  a=$(recorded "$store")
  sleep 2
  b=$(recorded "$store")
  [ "${a:-0}" -gt 0 ] || fail "stream=$mode: the cancelled pull recorded no progress"
  [ "${a:-0}" = "${b:-0}" ] || fail "stream=$mode: the download went on after the client left ($a then $b bytes)"
  ls "$store"/blobs 2>/dev/null | grep -q -- '-partial$' || fail "stream=$mode: the partial download was not kept"
  size=$(stat -c %s "$SRC")
  [ "${b:-0}" -lt "$size" ] || fail "stream=$mode: the pull finished before the client was killed ($b of $size bytes)"
  stop_srv
  # A new server (no rate limit) finishes it. After the streamed case it keeps the part size and
  # must resume: its first progress for the layer already counts what was recorded. After the
  # other it splits the blob differently, so it starts over and must clear the old records.
  if [ "$mode" = true ]; then
    start_srv "$store" HEARTH_PULL_PART_SIZE=262144 || continue
    curl -sf "http://$HOST/api/pull" -d "{\"model\":\"$NAME\",\"insecure\":true}" >"$T/resume.out"
    tail -1 "$T/resume.out" | grep -q '"success"' || fail "resumed pull: $(tail -3 "$T/resume.out")"
    first=$(python3 -c '
import json, sys
for l in open(sys.argv[1]):
    o = json.loads(l)
    if o.get("total") == int(sys.argv[2]) and "completed" in o:
        print(o["completed"]); break' "$T/resume.out" "$(stat -c %s "$SRC")")
    [ "${first:-0}" -ge "$b" ] || fail "the pull did not resume: it began at ${first:-none} of $b recorded bytes"
  else
    start_srv "$store" || continue
    out=$(curl -sf "http://$HOST/api/pull" -d "{\"model\":\"$NAME\",\"insecure\":true,\"stream\":false}")
    [ "$out" = '{"status":"success"}' ] || fail "stream=$mode: pull after the cancel: $out"
  fi
  blob=$(HEARTH_HOST=$HOST HEARTH_MODELS=$store "$BIN" show "$NAME" --modelfile | sed -n 's/^FROM //p')
  cmp -s "$blob" "$SRC" || fail "stream=$mode: the resumed pull gave different weights"
  ls "$store/blobs" | grep -q partial && fail "stream=$mode: partial files left after the resumed pull"
  stop_srv
done

[ "$fails" = 0 ] && echo "pull cancellation tests passed"
[ "$fails" = 0 ]
