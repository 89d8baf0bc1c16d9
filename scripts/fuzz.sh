#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (build-fuzz/) and runs each for SECONDS
# (default 60) from its seed corpus in tests/fuzz/corpus/<target>/. New inputs go to
# a scratch folder, not into the repository; a finding is written to build-fuzz/
# (crash-*, leak-*, timeout-*) and fails the script.
#   scripts/fuzz.sh [SECONDS] [TARGET...]    targets: buildkite native config taskcluster cdevents
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(buildkite native config taskcluster cdevents)
scripts/deps.sh
cmake -S . -B build-fuzz -DBT_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_CXX_COMPILER=clang++ >/dev/null
cmake --build build-fuzz -j2 --target "${targets[@]/#/fuzz_}"
for t in "${targets[@]}"; do
  scratch=$(mktemp -d)
  echo "== fuzz_$t for ${seconds}s"
  set +e
  (cd build-fuzz && tests/fuzz/"fuzz_$t" -max_total_time="$seconds" -timeout=10 \
     -rss_limit_mb=2048 -print_final_stats=1 "$scratch" "../tests/fuzz/corpus/$t") 2>&1 | tail -n 25
  status=${PIPESTATUS[0]}
  set -e
  rm -rf "$scratch"
  if [ "$status" -ne 0 ]; then
    echo "fuzz_$t found a problem (exit $status); see build-fuzz/crash-* and the output above" >&2
    exit "$status"
  fi
done
