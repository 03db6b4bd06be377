#!/usr/bin/env bash
# test_ollama_host.sh — OLLAMA_HOST is honoured when HEARTH_HOST is unset, by the server and by the CLI
# that talks to it, so tools configured for Ollama find hearth; HEARTH_HOST wins when both are set.
source "$(dirname "$0")/lib.sh"
H=$HEARTH_BIN
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
P1=$(port)
P2=$(port)
unset HEARTH_HOST
OLLAMA_HOST=127.0.0.1:$P1 "$H" serve >"$TMP/s1.log" 2>&1 &
S1=$!
HEARTH_HOST=127.0.0.1:$P2 OLLAMA_HOST=127.0.0.1:$P1 "$H" serve >"$TMP/s2.log" 2>&1 &
S2=$!
trap 'kill $S1 $S2 2>/dev/null; wait $S1 $S2 2>/dev/null; rm -rf "$TMP"' EXIT
for _ in $(seq 50); do
  curl -sf "127.0.0.1:$P1/api/version" >/dev/null && curl -sf "127.0.0.1:$P2/api/version" >/dev/null && break
  sleep 0.1
done
curl -sf "127.0.0.1:$P1/api/version" | grep -q '"version"' && ok || bad "server on OLLAMA_HOST did not answer: $(cat "$TMP/s1.log")"
curl -sf "127.0.0.1:$P2/api/version" | grep -q '"version"' && ok || bad "HEARTH_HOST did not take precedence: $(cat "$TMP/s2.log")"
expect_status 0 "ps through OLLAMA_HOST" -- env OLLAMA_HOST="127.0.0.1:$P1" "$H" ps
expect_stdout "NAME" "ps prints its table"
finish
