#!/bin/sh
# Builds msiproxy and runs every test: the README's test command and CI's first step.
# Installs the build dependencies first (Debian 12 packages; sudo when not root).
set -eu
cd "$(dirname "$0")/.."
sh packaging/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j "$(nproc)"
ctest --test-dir build --output-on-failure -j "$(nproc)"
