# lib.sh — helpers for the CLI tests: assertions that print what differed, and the shared data paths.
set -u
fails=0
passes=0
: "${HEARTH_BIN:?HEARTH_BIN must point at the hearth binary}"
: "${HEARTH_SHARED:=../shared}"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

ok() { passes=$((passes + 1)); }
bad() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

# expect_status WANT DESCRIPTION -- CMD...: runs CMD, checks its exit status, keeps stdout/stderr.
expect_status() {
  local want=$1 what=$2
  shift 3
  "$@" >"$TMP/out" 2>"$TMP/err"
  local got=$?
  if [ "$got" = "$want" ]; then ok; else bad "$what: exit $got, want $want; stderr: $(head -c 400 "$TMP/err")"; fi
}
expect_stderr() { if grep -q -- "$1" "$TMP/err"; then ok; else bad "$2: stderr lacks '$1': $(head -c 400 "$TMP/err")"; fi; }
expect_stdout() { if grep -q -- "$1" "$TMP/out"; then ok; else bad "$2: stdout lacks '$1': $(head -c 400 "$TMP/out")"; fi; }
need() { [ -e "$1" ] || { echo "skipping: $1 not present"; echo "0 passed, 0 failed, 1 skipped"; exit 0; }; }
finish() {
  echo "$passes passed, $fails failed"
  [ "$fails" = 0 ]
}
