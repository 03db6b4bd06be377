#!/usr/bin/env bash
# Builds every fuzz target in fuzz/ with clang's libFuzzer (+ASan+UBSan) and runs each for SECONDS
# (default 20) from a corpus seeded with the shared reference files. usage: scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
shared=${HEARTH_SHARED:-../shared}
cc=$(command -v clang-14 || command -v clang)
out=build-fuzz
mkdir -p "$out"
core_srcs=$(ls src/base/*.c src/gguf/*.c src/tensor/*.c src/tokenizer/*.c src/template/*.c)
flags="-std=c11 -g -O1 -D_GNU_SOURCE -DHEARTH_VERSION=\"fuzz\" -fsanitize=fuzzer,address,undefined -Isrc"
libs="$(pkg-config --libs libpcre2-8 jansson) -lm -lpthread"
for target in gguf tokenizer jinja safetensors; do
  # shellcheck disable=SC2086
  $cc $flags "fuzz/fuzz_$target.c" $core_srcs $libs -o "$out/fuzz_$target"
done

corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
mkdir -p "$corpus/gguf" "$corpus/tokenizer" "$corpus/jinja" "$corpus/safetensors"
cp "$shared"/models/*.gguf "$corpus/gguf/" 2>/dev/null || true
cp "$shared"/vocab/*.inp "$corpus/tokenizer/" 2>/dev/null || true
cp "$shared"/tokenizers/chat_templates/*.jinja "$corpus/jinja/" 2>/dev/null || true
bpe_json="$corpus/qwen-tokenizer.json"
xz -dc "$shared/tokenizers/qwen2.5/tokenizer.json.xz" >"$bpe_json"

run() {
  local name=$1
  shift
  echo "fuzz_$name: ${secs}s"
  "$@" -max_total_time="$secs" -print_final_stats=0 "$corpus/$name" 2>"$out/fuzz_$name.log" ||
    { tail -40 "$out/fuzz_$name.log"; exit 1; }
  grep -E "^Done|stat::number_of_executed_units" "$out/fuzz_$name.log" | tail -1 || true
}
run gguf "$out/fuzz_gguf" -max_len=65536
HEARTH_FUZZ_BPE=$bpe_json HEARTH_FUZZ_SPM="$shared/models/stories260K.gguf" run tokenizer "$out/fuzz_tokenizer" -max_len=2048
run jinja "$out/fuzz_jinja" -max_len=8192
run safetensors "$out/fuzz_safetensors" -max_len=65536
echo "fuzzing: no crashes"
