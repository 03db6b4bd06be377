#!/usr/bin/env bash
# Unpacks every .xz file of the shared test data into a build-tree folder (once; later runs reuse it).
# usage: unpack-shared.sh SHARED_DIR OUT_DIR
set -euo pipefail
shared=$1
out=$2
if [ ! -d "$shared" ]; then
  echo "unpack-shared: $shared not found; tests that need shared data will skip" >&2
  exit 0
fi
mkdir -p "$out"
cd "$shared"
find . -name '*.xz' -print0 | while IFS= read -r -d '' f; do
  dst="$out/${f%.xz}"
  if [ ! -f "$dst" ] || [ "$f" -nt "$dst" ]; then
    mkdir -p "$(dirname "$dst")"
    xz -dc "$f" > "$dst.part" && mv "$dst.part" "$dst"
  fi
done
