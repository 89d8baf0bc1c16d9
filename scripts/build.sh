#!/usr/bin/env bash
# Configures and builds one variant: scripts/build.sh [release|asan|tsan]
set -euo pipefail
cd "$(dirname "$0")/.."
variant=${1:-release}
case "$variant" in
  release) dir=build;      flags=() ;;
  asan)    dir=build-asan; flags=(-DBT_SANITIZE=address -DCMAKE_BUILD_TYPE=Debug) ;;
  tsan)    scripts/caf-tsan.sh
           dir=build-tsan; flags=(-DBT_SANITIZE=thread -DCMAKE_BUILD_TYPE=RelWithDebInfo
                                  -DBT_CAF_ROOT="$PWD/.deps/caf-tsan") ;;
  *) echo "usage: scripts/build.sh [release|asan|tsan]" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" "${flags[@]}" >/dev/null
cmake --build "$dir" -j2
