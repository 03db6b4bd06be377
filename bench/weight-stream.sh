#!/usr/bin/env bash
# weight-stream.sh — builds bench/weight-stream.c against a hearth build directory's library and runs it:
#   bench/weight-stream.sh BUILD_DIR MODEL.gguf [--threads N] [--rounds R] [--type T] [--anon | --read-only]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: bench/weight-stream.sh BUILD_DIR MODEL.gguf [--threads N] [--rounds R] [--type T] [--anon | --read-only]}
shift
cc -std=c11 -O2 -D_GNU_SOURCE -Wall -Wextra -Werror -I"$here/../src" "$here/weight-stream.c" "$build/libhearth_core.a" \
  $(pkg-config --libs jansson libpcre2-8 libmicrohttpd libcurl libcrypto libedit) -lpthread -lm -o "$build/weight-stream"
exec "$build/weight-stream" "$@"
