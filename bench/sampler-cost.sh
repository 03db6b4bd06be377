#!/usr/bin/env bash
# sampler-cost.sh — builds bench/sampler-cost.c against a hearth build directory's library and runs it:
#   bench/sampler-cost.sh BUILD_DIR [--vocab N] [--picks N] [--rounds R]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: bench/sampler-cost.sh BUILD_DIR [--vocab N] [--picks N] [--rounds R]}
shift
cc -std=c11 -O2 -D_GNU_SOURCE -Wall -Wextra -Werror -I"$here/../src" "$here/sampler-cost.c" "$build/libhearth_core.a" \
  $(pkg-config --libs jansson libpcre2-8 libmicrohttpd libcurl libcrypto libedit) -lpthread -lm -o "$build/sampler-cost"
exec "$build/sampler-cost" "$@"
