#!/usr/bin/env bash
# Installs the Debian 12 packages buildtrack needs, when some are missing.
set -euo pipefail
packages=(g++ cmake make pkg-config ccache curl
          libcaf-dev libboost-dev libhiredis-dev libyaml-cpp-dev nlohmann-json3-dev
          libsimdjson-dev libssl-dev libgtest-dev libbenchmark-dev redis-server
          libkainjow-mustache-dev libvalijson-dev libjemalloc-dev
          clang libclang-rt-14-dev
          chromium chromium-driver python3-selenium)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >&2
fi
