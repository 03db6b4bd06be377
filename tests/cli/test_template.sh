#!/usr/bin/env bash
# test_template.sh — `hearth template` end to end: every chat template of ../shared/tokenizers (the
# tokenizer_config.json ones and chat_templates/*.jinja) over every conversation of
# tests/template/conversations, rendered by the hearth binary and compared byte for byte with
# @huggingface/jinja (tests/template/render-reference.mjs); a failing reference render must fail in
# hearth too. Then Go templates (legacy .Prompt/.Response turns, .Messages), the GGUF path and misuse.
source "$(dirname "$0")/lib.sh"
H=$HEARTH_BIN
S=$HEARTH_SHARED
SRC=${HEARTH_SOURCE:-$(cd "$(dirname "$0")/../.." && pwd)}
need "$S/tokenizers"
command -v node >/dev/null || { echo "skipping: node not installed"; echo "0 passed, 0 failed, 1 skipped"; exit 0; }
export NODE_PATH=${NODE_PATH:-$SRC/node_modules}
export TZ=UTC

if node "$SRC/tests/template/render-reference.mjs" --shared "$S" --out "$TMP/ref.json" 2>"$TMP/node.err"; then ok; else
  bad "reference renderer failed: $(head -c 400 "$TMP/node.err")"
  finish
  exit
fi

# One hearth run per (template, conversation) case; python only prepares the files and compares.
python3 - "$TMP/ref.json" "$TMP" "$H" <<'PY' && ok || bad "hearth template differs from @huggingface/jinja (above)"
import json, os, subprocess, sys
ref = json.load(open(sys.argv[1]))
tmp, hearth = sys.argv[2], sys.argv[3]
tfiles = {}
for i, (name, src) in enumerate(sorted(ref["templates"].items())):
    p = os.path.join(tmp, f"t{i}.jinja")
    open(p, "w").write(src)
    tfiles[name] = p
cfiles = {}
for i, (cid, ctx) in enumerate(sorted(ref["contexts"].items())):
    p = os.path.join(tmp, f"c{i}.json")
    json.dump(ctx, open(p, "w"))
    cfiles[cid] = p
now = str(int(ref["now"]))
failed = same = raised = 0
for c in ref["cases"]:
    r = subprocess.run([hearth, "template", tfiles[c["template"]], "--messages", cfiles[c["context"]], "--now", now],
                       capture_output=True)
    if c["error"] is not None:
        if r.returncode == 1 and b"hearth template:" in r.stderr:
            raised += 1
            continue
        failed += 1
        print(f"{c['template']} x {c['context']}: reference raised {c['error']!r}, hearth exit {r.returncode}", file=sys.stderr)
        continue
    want = c["output"].encode()
    if r.returncode == 0 and r.stdout == want:
        same += 1
        continue
    failed += 1
    if failed <= 5:
        print(f"{c['template']} x {c['context']}: exit {r.returncode} {r.stderr[:300]!r}\n got: {r.stdout[:600]!r}\nwant: {want[:600]!r}", file=sys.stderr)
print(f"template cases: {same} identical, {raised} raised in both, {failed} differ", file=sys.stderr)
assert failed == 0 and same > 500, (same, failed)
PY

# Go templates. A legacy template runs once per turn and the last turn stops at .Response.
printf '{{ if .System }}<<{{ .System }}>>{{ end }}[U]{{ .Prompt }}[A]{{ .Response }}[END]' >"$TMP/legacy.tmpl"
cat >"$TMP/conv.json" <<'EOF'
[{"role": "system", "content": "S"}, {"role": "user", "content": "one"}, {"role": "assistant", "content": "two"},
 {"role": "user", "content": "three"}]
EOF
expect_status 0 "legacy Go template" -- "$H" template "$TMP/legacy.tmpl" --messages "$TMP/conv.json"
if [ "$(cat "$TMP/out")" = "<<S>>[U]one[A]two[END][U]three[A]" ]; then ok; else bad "legacy output: $(cat "$TMP/out")"; fi

# Without .Response, Ollama appends it: each turn's reply follows the template's text.
printf '{{ .Prompt }}|' >"$TMP/noresp.gotmpl"
expect_status 0 "template without .Response" -- "$H" template "$TMP/noresp.gotmpl" --messages "$TMP/conv.json"
if [ "$(cat "$TMP/out")" = "one|twothree|" ]; then ok; else bad "appended .Response: $(cat "$TMP/out")"; fi

# A .Messages template (detected by content, no extension) with tools and thinking flags.
cat >"$TMP/chatml" <<'EOF'
{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}
{{- range $i, $m := .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
{{ if and .IsThinkSet (not .Think) }}<think></think>{{ end }}{{ range .Tools }}{{ .Function.Name }};{{ end }}
EOF
echo '[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{}}}}]' >"$TMP/tools.json"
expect_status 0 "chatml Go template" -- "$H" template "$TMP/chatml" --messages "$TMP/conv.json" --tools "$TMP/tools.json" --no-think
printf '<|im_start|>system\nS<|im_end|>\n<|im_start|>system\nS<|im_end|>\n<|im_start|>user\none<|im_end|>\n<|im_start|>assistant\ntwo<|im_end|>\n<|im_start|>user\nthree<|im_end|>\n<|im_start|>assistant\n<think></think>get_weather;\n' >"$TMP/want"
if cmp -s "$TMP/out" "$TMP/want"; then ok; else bad "chatml output: $(cat "$TMP/out")"; fi

# A GGUF: its tokenizer.chat_template and BOS/EOS texts (llama-2-tiny-random has no template: the
# fallback "{{ .Prompt }}" gives the user's text).
M=$S/models/llama-2-tiny-random.gguf
if [ -e "$M" ]; then
  echo '[{"role": "user", "content": "Hello there"}]' >"$TMP/one.json"
  expect_status 0 "GGUF without a template" -- "$H" template "$M" --messages "$TMP/one.json"
  if [ "$(cat "$TMP/out")" = "Hello there" ]; then ok; else bad "fallback output: $(cat "$TMP/out")"; fi
fi

# Misuse and errors.
expect_status 2 "no --messages" -- "$H" template "$TMP/legacy.tmpl"
expect_status 2 "unknown flag" -- "$H" template "$TMP/legacy.tmpl" --messages "$TMP/conv.json" --bogus
expect_status 1 "missing template file" -- "$H" template "$TMP/nope.jinja" --messages "$TMP/conv.json"
expect_stderr "nope.jinja" "missing file named"
echo '{"messages": [{"content": "x"}]}' >"$TMP/norole.json"
expect_status 1 "message without role" -- "$H" template "$TMP/legacy.tmpl" --messages "$TMP/norole.json"
expect_stderr "messages\[0\].role" "bad message named"
printf '{%% if x %%}unclosed' >"$TMP/bad.jinja"
expect_status 1 "broken Jinja" -- "$H" template "$TMP/bad.jinja" --messages "$TMP/conv.json"
expect_stderr "chat template (Jinja)" "broken template named"
finish
