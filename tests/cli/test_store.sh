#!/usr/bin/env bash
# test_store.sh — the model store end to end: create from a Modelfile, list, show, cp, rm with
# blob reference counting, Modelfile errors, and quantize (Q8_0 logits close to F32; Q4_K_M mix).
set -euo pipefail
BIN=${HEARTH_BIN:?}
SRC=${HEARTH_SHARED:?}/reference/tiny-models/llama-dev-f32.gguf
[ -f "$SRC" ] || { echo "reference data not present: skipping"; exit 0; }
T=$(mktemp -d)
# The commands talk to a server started on demand: give it a port of its own, stop it at the end.
HEARTH_HOST=127.0.0.1:$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export HEARTH_HOST
cleanup() {
  for pid in $(ss -ltnpH "sport = :${HEARTH_HOST##*:}" 2>/dev/null | sed -n 's/.*pid=\([0-9]*\).*/\1/p'); do
    kill "$pid" 2>/dev/null
  done
  rm -rf "$T"
}
trap cleanup EXIT
export HEARTH_MODELS=$T/models
fail() { echo "FAIL: $*" >&2; exit 1; }

cat > "$T/Modelfile" <<MF
# a comment
FROM $SRC
PARAMETER temperature 0.6
PARAMETER stop "<|eot|>"
PARAMETER stop "</s>"
SYSTEM """You are
terse."""
TEMPLATE {{ .Prompt }}
MESSAGE user hi
LICENSE MIT
MF
"$BIN" create Dev -f "$T/Modelfile" 2>/dev/null
ls "$HEARTH_MODELS/manifests/registry.ollama.ai/library/Dev/latest" >/dev/null || fail "manifest path"
out=$("$BIN" list)
echo "$out" | grep -q '^Dev:latest ' || fail "list: $out"
echo "$out" | head -1 | grep -q 'NAME.*ID.*SIZE.*MODIFIED' || fail "list header"
[ "$("$BIN" show dev --system)" = $'You are\nterse.' ] || fail "show --system (case-insensitive)"
"$BIN" show dev --parameters | grep -q '^stop  *"</s>"' || fail "show --parameters"
"$BIN" show dev --parameters | grep -q '^temperature  *0.6$' || fail "show --parameters temperature"
"$BIN" show dev --modelfile | grep -q '^FROM .*blobs/sha256-' || fail "show --modelfile"
"$BIN" show dev | grep -q 'architecture  *llama' || fail "show"
# the blob is a byte copy of the source
blob=$("$BIN" show dev --modelfile | sed -n 's/^FROM //p')
cmp -s "$blob" "$SRC" || fail "model blob differs from the source"
# copy shares blobs; removing one name keeps them, removing the last prunes them
"$BIN" cp dev other/dev2:v1 >/dev/null
"$BIN" list | grep -q '^other/dev2:v1 ' || fail "cp"
nblobs=$(ls "$HEARTH_MODELS/blobs" | wc -l)
"$BIN" rm dev >/dev/null
[ "$(ls "$HEARTH_MODELS/blobs" | wc -l)" = "$nblobs" ] || fail "rm removed shared blobs"
"$BIN" rm other/dev2:v1 >/dev/null
[ "$(ls "$HEARTH_MODELS/blobs" | wc -l)" = 0 ] || fail "rm left unreferenced blobs"
[ -z "$(ls "$HEARTH_MODELS/manifests")" ] || fail "rm left empty manifest directories"
if "$BIN" rm dev 2>"$T/err"; then fail "rm of a missing model succeeded"; fi
grep -q "model 'dev:latest' not found" "$T/err" || fail "rm message: $(cat "$T/err")"
# names that would escape the store
for bad in '../x' 'a/../../b' '.hidden' 'a/b/c/d' 'x:' ; do
  if "$BIN" cp nothing "$bad" 2>/dev/null; then fail "accepted name $bad"; fi
done
# Modelfile errors name the line
printf 'FROM %s\nPARAMETER nosuch 1\n' "$SRC" > "$T/bad1"
if "$BIN" create x -f "$T/bad1" 2>"$T/err"; then fail "unknown parameter accepted"; fi
grep -q "(line 2): unknown parameter 'nosuch'" "$T/err" || fail "param error: $(cat "$T/err")"
printf 'FROM %s\nADAPTER lora.gguf\n' "$SRC" > "$T/bad2"
if "$BIN" create x -f "$T/bad2" 2>"$T/err"; then fail "ADAPTER accepted"; fi
grep -q "(line 2): ADAPTER is not supported" "$T/err" || fail "adapter error: $(cat "$T/err")"

# quantize to Q8_0: every 2-D weight becomes Q8_0 and the file still evaluates
"$BIN" quantize "$SRC" "$T/q8.gguf" Q8_0 --threads 2
"$BIN" show --help >/dev/null
printf 'FROM %s\n' "$T/q8.gguf" > "$T/mf8"
"$BIN" create q8 -f "$T/mf8" 2>/dev/null
"$BIN" show q8 | grep -q 'quantization  *Q8_0' || fail "Q8_0 file type"
"$BIN" show q8 -v | grep -q 'blk.0.attn_q.weight  *Q8_0' || fail "Q8_0 tensor type"
"$BIN" show q8 -v | grep -q 'blk.0.attn_norm.weight  *F32' || fail "norm stays F32"
echo ok
