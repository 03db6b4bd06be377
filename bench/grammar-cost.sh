#!/usr/bin/env bash
# grammar-cost.sh — builds bench/grammar-cost.c against a hearth build directory's library and runs it:
#   bench/grammar-cost.sh BUILD_DIR MODEL.gguf [--tokens N] [--rounds R] [--threads T] [--schema FILE]
# e.g. BUILD_DIR/hearth-genmodel --preset llama-1b --type q4_0 -o /tmp/l1b-q4_0.gguf first.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=$1
shift
cc -std=c11 -O2 -D_GNU_SOURCE -Wall -Wextra -Werror -I"$here/../src" "$here/grammar-cost.c" "$build/libhearth_core.a" \
  $(pkg-config --libs jansson libpcre2-8 libmicrohttpd libcurl libcrypto libedit) -lpthread -lm -o "$build/grammar-cost"
exec "$build/grammar-cost" "$@"
