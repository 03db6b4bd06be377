#!/usr/bin/env bash
# test_run.sh — `hearth run`, `eval`, `tokenize` and `detokenize` end to end: the published greedy
# output of stories260K, reproducible sampling, and a clear message and exit status for every misuse.
source "$(dirname "$0")/lib.sh"
H=$HEARTH_BIN
S=$HEARTH_SHARED
need "$S/models/stories260K.gguf"

# Greedy from BOS reproduces the text llama2.c published for this model, byte for byte.
expect_status 0 "stories greedy" -- "$H" run "$S/models/stories260K.gguf" --temperature 0 -n 256
if cmp -s "$TMP/out" "$S/models/reference/stories260K.greedy-t0.txt"; then ok; else
  bad "stories260K greedy output differs from the reference"; diff "$TMP/out" "$S/models/reference/stories260K.greedy-t0.txt" | head -5 >&2
fi

# The same ids through eval --greedy (BOS then the first 20 reference ids).
want=$(tr ' ' '\n' <"$S/models/reference/stories260K.greedy-t0.ids.txt" | grep . | sed -n '2,21p' | paste -sd, | sed 's/,/, /g')
expect_status 0 "eval greedy" -- "$H" eval "$S/models/stories260K.gguf" --ids 1 --greedy 20
[ "$(cat "$TMP/out")" = "[$want]" ] && ok || bad "eval --greedy: got $(cat "$TMP/out"), want [$want]"

# Batched and one-by-one evaluation write the same logits.
ids=1,403,407,261,378,432,383,286,261,376
"$H" eval "$S/models/stories260K.gguf" --ids $ids --logits "$TMP/a.f32" --kv-type f32 >/dev/null 2>&1 &&
  "$H" eval "$S/models/stories260K.gguf" --ids $ids --logits "$TMP/b.f32" --kv-type f32 --one-by-one >/dev/null 2>&1
[ "$(stat -c %s "$TMP/a.f32")" = $((10 * 512 * 4)) ] && ok || bad "logits file size"
python3 - "$TMP/a.f32" "$TMP/b.f32" <<'PY' && ok || bad "batched vs one-by-one logits differ"
import struct, sys
a = open(sys.argv[1], 'rb').read(); b = open(sys.argv[2], 'rb').read()
fa = struct.unpack('%df' % (len(a) // 4), a); fb = struct.unpack('%df' % (len(b) // 4), b)
sys.exit(0 if len(fa) == len(fb) and max(abs(x - y) for x, y in zip(fa, fb)) < 1e-4 else 1)
PY

# Sampling: the same seed gives the same text, another seed (almost surely) another.
"$H" run "$S/models/stories260K.gguf" "Once upon a time" --seed 7 -n 40 >"$TMP/s1" 2>/dev/null
"$H" run "$S/models/stories260K.gguf" "Once upon a time" --seed 7 -n 40 >"$TMP/s2" 2>/dev/null
"$H" run "$S/models/stories260K.gguf" "Once upon a time" --seed 8 -n 40 >"$TMP/s3" 2>/dev/null
cmp -s "$TMP/s1" "$TMP/s2" && ok || bad "same seed, different text"
cmp -s "$TMP/s1" "$TMP/s3" && bad "different seeds gave the same 40 tokens" || ok

# Stop strings and the token limit.
expect_status 0 "stop string" -- "$H" run "$S/models/stories260K.gguf" --temperature 0 -n 256 --stop "Lily"
[ "$(cat "$TMP/out")" = "Once upon a time, there was a little girl named " ] && ok || bad "stop: got '$(cat "$TMP/out")'"
expect_status 0 "verbose" -- "$H" run "$S/models/stories260K.gguf" --temperature 0 -n 5 --verbose
for field in "total duration:" "load duration:" "prompt eval count:    1 token(s)" "prompt eval rate:" \
  "eval count:           5 token(s)" "eval rate:" "time to first token:" "peak memory:" \
  "memory plan:" "offloaded [0-9]*/6 layers to the GPU (num_gpu -1" "CPU memory:         weights"; do
  expect_stderr "$field" "--verbose"
done
# num_gpu 0 keeps the model on the CPU, and the plan says so (also in a CUDA build on a GPU machine).
expect_status 0 "num-gpu 0" -- "$H" run "$S/models/stories260K.gguf" --temperature 0 -n 5 --num-gpu 0 --verbose
expect_stderr "100% CPU; offloaded 0/6 layers to the GPU (num_gpu 0)" "--num-gpu 0 plan"
expect_status 2 "num-gpu below -1" -- "$H" run "$S/models/stories260K.gguf" --num-gpu -2

# llama-2-tiny-random (F16, full Llama 2 vocabulary) loads and generates.
if [ -f "$S/models/llama-2-tiny-random.gguf" ]; then
  expect_status 0 "llama-2-tiny-random" -- "$H" run "$S/models/llama-2-tiny-random.gguf" "Hello" -n 8 --seed 1 --verbose
  expect_stderr "eval count:           8 token(s)" "llama-2-tiny-random generates 8 tokens"
fi

# Tokenizer commands.
expect_status 0 "tokenize" -- "$H" tokenize "$S/models/stories260K.gguf" "Once upon a time"
[ "$(cat "$TMP/out")" = "[403, 407, 261, 378]" ] && ok || bad "tokenize: $(cat "$TMP/out")"
expect_status 0 "detokenize" -- "$H" detokenize "$S/models/stories260K.gguf" 403 407 261 378
[ "$(cat "$TMP/out")" = "Once upon a time" ] && ok || bad "detokenize: '$(cat "$TMP/out")'"

# Misuse: a message naming the problem, exit 2 for the command line, 1 for bad files.
expect_status 2 "no model" -- "$H" run
expect_stderr "missing MODEL" "no model"
expect_status 1 "missing file" -- "$H" run "$TMP/nope.gguf"
expect_stderr "nope.gguf. is neither a file nor a model name" "missing file"
printf 'not a model' >"$TMP/text.gguf"
expect_status 1 "not a GGUF" -- "$H" run "$TMP/text.gguf"
expect_stderr "not a GGUF file" "not a GGUF"
head -c 5000 "$S/models/stories260K.gguf" >"$TMP/trunc.gguf"
expect_status 1 "truncated GGUF" -- "$H" run "$TMP/trunc.gguf"
expect_stderr "trunc.gguf" "truncated GGUF names the file"
if [ -f "$HEARTH_TESTDATA/vocab/ggml-vocab-gpt-2.gguf" ]; then
  expect_status 1 "unsupported architecture" -- "$H" run "$HEARTH_TESTDATA/vocab/ggml-vocab-gpt-2.gguf"
  expect_stderr "architecture 'gpt2' is not supported" "unsupported architecture"
fi
expect_status 2 "bad number" -- "$H" run "$S/models/stories260K.gguf" --top-k many
expect_stderr "top-k: 'many' is not a whole number" "bad number"
expect_status 2 "out of range" -- "$H" run "$S/models/stories260K.gguf" --top-p 1.5
expect_stderr "out of range" "out of range"
expect_status 2 "bad kv type" -- "$H" run "$S/models/stories260K.gguf" --kv-type q4
expect_stderr "not a KV cache type" "bad kv type"
expect_status 2 "unknown flag" -- "$H" run "$S/models/stories260K.gguf" --frobnicate
expect_stderr "unknown flag '--frobnicate'" "unknown flag"
expect_status 2 "unknown command" -- "$H" frobnicate
expect_status 1 "token outside the vocabulary" -- "$H" eval "$S/models/stories260K.gguf" --ids 1,99999
expect_stderr "outside the vocabulary" "bad token id"
expect_status 2 "bad ids" -- "$H" eval "$S/models/stories260K.gguf" --ids 1,x
expect_status 1 "context overflow" -- "$H" eval "$S/models/stories260K.gguf" --ids 1,2,3,4,5,6,7,8,9,10 --ctx-size 4
expect_stderr "do not fit in the context" "context overflow"
finish
