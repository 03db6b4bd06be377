#!/usr/bin/env bash
# Sets up, builds and runs hearth's main job: a completion from the default model
# (../shared/models/stories260K.gguf when present, else a small model hearth writes itself).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
model=../shared/models/stories260K.gguf
if [ ! -f "$model" ]; then
  model=build/demo-model.gguf
  echo "hearth: ../shared/models/stories260K.gguf is not here; writing a small random-weight model to $model (its text is gibberish)" >&2
  ./build/hearth-genmodel --preset tiny --type f32 -o "$model"
fi
exec ./build/hearth run "$model" "${@:-Once upon a time}" --temperature 0 -n 128 --verbose
