#!/usr/bin/env bash
# test_repl.sh — the interactive `hearth run NAME` driven through tmux: the >>> prompt, a greedy
# answer equal to the same /api/chat request, /set parameter, /show parameters, """ multi-line
# input, Ctrl-C cancelling a long answer (the slot is freed: the next prompt is answered), /save,
# the history file and /bye. Skips when tmux is not installed.
set -u
. "$(dirname "$0")/lib.sh"
MODEL="$HEARTH_SHARED/models/stories260K.gguf"
need "$MODEL"
command -v tmux >/dev/null || { echo "skipping: tmux not installed"; echo "0 passed, 0 failed, 1 skipped"; exit 0; }
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export HEARTH_HOST="127.0.0.1:$PORT" HEARTH_MODELS="$TMP/models" HEARTH_NUM_PARALLEL=1
mkdir -p "$HEARTH_MODELS"
# The server first: `create` talks to it (started before it, `create` would start one of its own on
# the port, which this script would then not know to stop).
"$HEARTH_BIN" serve 2>"$TMP/serve.log" &
PID=$!
TM=(tmux -L "hearth-repl-$$" -f /dev/null)
trap '"${TM[@]}" kill-server 2>/dev/null; kill $PID 2>/dev/null; wait $PID 2>/dev/null; grep -q "Sanitizer" "$TMP/serve.log" && cat "$TMP/serve.log" >&2; rm -rf "$TMP"' EXIT
for _ in $(seq 50); do curl -sf "http://$HEARTH_HOST/" >/dev/null && break; sleep 0.1; done
curl -sf "http://$HEARTH_HOST/" >/dev/null || bad "server did not start: $(cat "$TMP/serve.log")"
printf 'FROM %s\n' "$MODEL" >"$TMP/Modelfile"
"$HEARTH_BIN" create stories -f "$TMP/Modelfile" >/dev/null 2>&1 || bad "create the store model"

screen() { "${TM[@]}" capture-pane -p -J -t r -S -300; }
# wait_for TEXT: until the screen shows TEXT (fixed string), at most ~10 s.
wait_for() {
  for _ in $(seq 100); do screen | grep -qF -- "$1" && return 0; sleep 0.1; done
  return 1
}
# prompts: how many idle ">>> " prompts the screen shows.
prompts() { screen | grep -c '^>>> '; }
type_line() { "${TM[@]}" send-keys -t r -l -- "$1"; "${TM[@]}" send-keys -t r Enter; }
wait_prompts() { for _ in $(seq 100); do [ "$(prompts)" -ge "$1" ] && return 0; sleep 0.1; done; return 1; }

"${TM[@]}" new-session -d -s r -x 220 -y 60 \
  "env HEARTH_HISTORY='$TMP/history' '$HEARTH_BIN' run stories -n 16 --repeat-penalty 1; echo REPL-EXITED \$?; sleep 30"
wait_for ">>> " && ok || bad "no >>> prompt: $(screen)"

type_line "/set parameter temperature 0"
wait_for "Set parameter 'temperature' to '0'" && ok || bad "/set parameter: $(screen)"
type_line "/show parameters"
wait_for "User defined parameters:" && ok || bad "/show parameters header: $(screen)"
screen | grep -Eq '^temperature +0$' && ok || bad "/show parameters lists temperature 0: $(screen)"
screen | grep -Eq '^num_predict +16$' && ok || bad "/show parameters lists the -n flag: $(screen)"

n=$(prompts)
type_line "Once upon a time"
wait_prompts $((n + 1)) || bad "no prompt after the answer"
want=$(curl -sf "http://$HEARTH_HOST/api/chat" -d '{"model":"stories","stream":false,"messages":[{"role":"user","content":"Once upon a time"}],"options":{"temperature":0,"num_predict":16,"repeat_penalty":1}}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["message"]["content"])')
[ -n "$want" ] && screen | grep -qxF -- "$want" && ok || bad "the answer is not the greedy /api/chat reply '$want': $(screen)"

n=$(prompts)
"${TM[@]}" send-keys -t r -l -- '"""Lily'; "${TM[@]}" send-keys -t r Enter
wait_for "... " && ok || bad "no continuation prompt inside \"\"\": $(screen)"
type_line 'went home"""'
wait_prompts $((n + 1)) && ok || bad "multi-line message not answered: $(screen)"

# A long answer cancelled with Ctrl-C; the freed slot answers the next prompt.
type_line "/set parameter num_predict 100000"
wait_for "to '100000'" && sleep 0.2
n=$(prompts)
type_line "tell me a long story"
sleep 0.5
"${TM[@]}" send-keys -t r C-c
wait_prompts $((n + 1)) && ok || bad "Ctrl-C did not return to the prompt: $(screen)"
type_line "/set parameter num_predict 4"
wait_for "to '4'" && sleep 0.2
n=$(prompts)
type_line "and then"
wait_prompts $((n + 1)) && ok || bad "no answer after a cancelled one (slot not freed?): $(screen)"

type_line "/save my-stories"
wait_for "Created new model 'my-stories'" && ok || bad "/save: $(screen)"
curl -sf "http://$HEARTH_HOST/api/show" -d '{"model":"my-stories"}' | grep -q 'temperature' && ok || bad "/save kept no parameters"

type_line "/nonsense"
wait_for "Unknown command '/nonsense'" && ok || bad "unknown command message: $(screen)"
type_line "/bye"
wait_for "REPL-EXITED 0" && ok || bad "/bye did not exit cleanly: $(screen)"
grep -qE '^Once( |\\040)upon( |\\040)a( |\\040)time$' "$TMP/history" && ok || bad "history file lacks the prompt: $(cat "$TMP/history" 2>&1)"
finish
