#!/bin/sh
# Builds msiproxy and runs it in the foreground on the shipped config/msiproxy.toml (or the
# file given as the first argument): the README's first quick-start command.
# Installs the build dependencies first (Debian 12 packages; sudo when not root).
set -eu
cd "$(dirname "$0")/.."
sh packaging/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j "$(nproc)" --target msiproxy
exec ./build/daemon/msiproxy --config "${1:-config/msiproxy.toml}"
