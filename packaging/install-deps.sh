#!/bin/sh
# Installs msiproxy's build and test dependencies from Debian 12 packages.
# Used by the README quick start and by .ci/run; safe to run again.
set -eu
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
pkgs="build-essential cmake ninja-build ccache pkg-config git
  libboost1.81-dev libboost-url1.81-dev libssl-dev
  libspdlog-dev libfmt-dev nlohmann-json3-dev libtomlplusplus-dev libcli11-dev catch2
  libsystemd-dev openssl ca-certificates curl"
extra="${MSIPROXY_EXTRA_PACKAGES:-}"
missing=""
for p in $pkgs $extra; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
