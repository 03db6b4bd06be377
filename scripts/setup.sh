#!/usr/bin/env bash
# Installs every Debian package hearth's build and tests need. Safe to run again: it installs only
# what is missing.
set -euo pipefail
packages=(
  build-essential cmake pkg-config xz-utils  # toolchain; xz unpacks the shared test data
  libpcre2-dev     # pre-tokenizer regular expressions
  libjansson-dev   # JSON: tokenizer.json, reference data, the APIs
  libcmocka-dev    # unit tests
  libmicrohttpd-dev # the HTTP server
  libcurl4-openssl-dev libssl-dev # registry client and sha256 digests
  libedit-dev      # the interactive prompt of `hearth run`
  docker-registry  # a real OCI registry for the pull/push tests
  curl             # byte-level API tests
  tmux             # drives the interactive prompt in the REPL test
  clang-14 libclang-rt-14-dev # libFuzzer for the fuzz targets (scripts/fuzz.sh)
  nodejs npm       # reference renderers and API clients used by the tests
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node and npm may come from outside Debian's packages; accept any working installation.
if command -v node >/dev/null && command -v npm >/dev/null; then
  filtered=()
  for p in "${missing[@]}"; do [[ $p == nodejs || $p == npm ]] || filtered+=("$p"); done
  missing=("${filtered[@]+"${filtered[@]}"}")
fi
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi
if [ -f package-lock.json ] && [ ! -d node_modules ]; then
  npm ci --silent --no-audit --no-fund
fi
