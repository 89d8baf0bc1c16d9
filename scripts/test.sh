#!/usr/bin/env bash
# Runs every test: the release build, then the ASan+UBSan build, each with CTest, then
# each libFuzzer target for 60 s (scripts/fuzz.sh).
# scripts/test.sh tsan runs the suite under ThreadSanitizer instead, against a CAF core
# built with TSan (scripts/caf-tsan.sh; Debian's is not instrumented).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
variants=(release asan)
[ "${1:-}" = tsan ] && variants=(tsan)
for variant in "${variants[@]}"; do
  scripts/build.sh "$variant"
  dir=build; [ "$variant" = release ] || dir=build-$variant
  echo "== tests ($variant)"
  ctest --test-dir "$dir" --output-on-failure -j2
done
[ "${1:-}" = tsan ] || scripts/fuzz.sh 60
