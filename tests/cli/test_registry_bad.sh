#!/usr/bin/env bash
# test_registry_bad.sh — `hearth pull` against a registry that misbehaves (tests/cli/fake_registry.py):
# a manifest that is not JSON, a layer the registry 404s, layer sizes that disagree with the manifest
# (longer, shorter, and Range ignored), a redirect loop and a layer whose bytes fail the digest. Each
# pull must fail with a message naming the problem and leave the store consistent: no manifest, no
# blob file under a wrong digest, and `hearth list` not showing the model. A correct repository of
# the same registry is pulled last as the control.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
BIN=$HEARTH_BIN
command -v python3 >/dev/null || { echo "python3 not installed: skipping"; exit 0; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Pulls go through `hearth serve`, started on demand at HEARTH_HOST: give it a port of its own and
# stop it at the end, as test_registry.sh does.
HEARTH_HOST=127.0.0.1:$(free_port)
export HEARTH_HOST HEARTH_MODELS=$TMP/models
REGPID=
stop_server() {
  for pid in $(ss -ltnpH "sport = :${HEARTH_HOST##*:}" 2>/dev/null | sed -n 's/.*pid=\([0-9]*\).*/\1/p'); do
    kill "$pid" 2>/dev/null
  done
}
cleanup() {
  [ -n "$REGPID" ] && kill "$REGPID" 2>/dev/null && wait "$REGPID" 2>/dev/null
  stop_server
  rm -rf "$TMP"
}
trap cleanup EXIT

python3 "$(dirname "$0")/fake_registry.py" "$TMP/port" 2>"$TMP/registry.log" &
REGPID=$!
for _ in $(seq 50); do [ -s "$TMP/port" ] && break; sleep 0.1; done
[ -s "$TMP/port" ] || { echo "FAIL: fake registry did not start: $(cat "$TMP/registry.log")"; exit 1; }
PORT=$(cat "$TMP/port")
REG=127.0.0.1:$PORT

# The layer's digests as the fake registry computes them.
eval "$(python3 - <<'PY'
import hashlib
data = bytes((i * 7 + 3) % 251 for i in range(3000))
print("GOOD=" + hashlib.sha256(data).hexdigest())
print("WRONG=" + hashlib.sha256(data + b"x").hexdigest())
PY
)"

# bad_pull MODE DIGEST MESSAGE...: the pull fails, stderr has each MESSAGE, and the store has neither
# the manifest nor a blob file sha256-DIGEST (partial files for a resume are allowed).
bad_pull() {
  local mode=$1 digest=$2
  shift 2
  local t0=$SECONDS
  expect_status 1 "pull of $mode" -- timeout 20 "$BIN" pull --insecure "$REG/library/$mode:latest"
  [ $((SECONDS - t0)) -le 8 ] && ok || bad "pull of $mode took $((SECONDS - t0)) s: it should fail at once, not retry"
  for msg in "$@"; do expect_stderr "$msg" "pull of $mode"; done
  [ -e "$HEARTH_MODELS/manifests/$REG/library/$mode/latest" ] && bad "$mode: manifest written" || ok
  [ -e "$HEARTH_MODELS/blobs/sha256-$digest" ] && bad "$mode: blob sha256-$digest kept" || ok
}

bad_pull notjson "$GOOD" 'not a Docker v2 manifest' 'notjson'
bad_pull blob404 "$GOOD" 'has no blob' "sha256:$GOOD" 'status 404'
bad_pull long "$GOOD" "is 3000 bytes but its manifest says 2990"
bad_pull short "$GOOD" "is 3000 bytes but its manifest says 3010"
bad_pull long200 "$GOOD" "is 3000 bytes but its manifest says 2990"
bad_pull redirect "$GOOD" 'redirects in a loop' "sha256:$GOOD"
bad_pull badsha "$WRONG" 'digest mismatch' "want sha256:$WRONG, got sha256:$GOOD"

# None of them is listed.
expect_status 0 "list" -- "$BIN" list
for mode in notjson blob404 long short long200 redirect badsha; do
  grep -q "library/$mode" "$TMP/out" && bad "list shows $mode: $(cat "$TMP/out")" || ok
done

# The control: a correct repository of the same registry pulls and is listed, so the failures
# above are the registry's fault and not the test's.
expect_status 0 "pull of good" -- timeout 20 "$BIN" pull --insecure "$REG/library/good:latest"
[ -e "$HEARTH_MODELS/manifests/$REG/library/good/latest" ] && ok || bad "good: no manifest written"
[ -e "$HEARTH_MODELS/blobs/sha256-$GOOD" ] && ok || bad "good: layer blob missing"
expect_status 0 "list" -- "$BIN" list
expect_stdout "library/good" "list after the good pull"

finish
