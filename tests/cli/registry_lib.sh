# registry_lib.sh — sourced by the registry tests: the model they push and pull, Debian's docker-registry
# (the test skips without it or without the reference data), a free-port helper, and start_registry.
BIN=${HEARTH_BIN:?}
SRC=${HEARTH_SHARED:?}/reference/tiny-models/llama-dev-f32.gguf
REG=$(command -v docker-registry || command -v registry || true)
[ -n "$REG" ] || { echo "docker-registry not installed: skipping"; exit 0; }
[ -f "$SRC" ] || { echo "reference data not present: skipping"; exit 0; }

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_registry DIR [delete]: a registry keeping its blobs under DIR/registry, on a free local port
# (with "delete", manifests can be deleted); sets REGPID and PORT, or fails the test.
start_registry() {
  local dir=$1 del=${2:-}
  PORT=$(freeport)
  {
    printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s/registry\n' "$dir"
    [ "$del" = delete ] && printf '  delete:\n    enabled: true\n'
    printf 'http:\n  addr: 127.0.0.1:%s\n' "$PORT"
  } >"$dir/config.yml"
  "$REG" serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
  REGPID=$!
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/v2/" >/dev/null && return 0; sleep 0.1; done
  echo "FAIL: registry did not start: $(cat "$dir/registry.log")"
  exit 1
}
