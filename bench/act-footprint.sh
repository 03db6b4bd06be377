#!/usr/bin/env bash
# act-footprint.sh — builds bench/act-footprint.c against a hearth build directory's library and runs it:
#   bench/act-footprint.sh BUILD_DIR [--type F16|BF16] [--mib N]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: bench/act-footprint.sh BUILD_DIR [--type F16|BF16] [--mib N]}
shift
cc -std=c11 -O2 -D_GNU_SOURCE -Wall -Wextra -Werror -I"$here/../src" "$here/act-footprint.c" "$build/libhearth_core.a" \
  $(pkg-config --libs jansson libpcre2-8 libmicrohttpd libcurl libcrypto libedit) -lpthread -lm -o "$build/act-footprint"
exec "$build/act-footprint" "$@"
