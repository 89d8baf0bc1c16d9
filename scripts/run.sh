#!/usr/bin/env bash
# Installs what is missing, builds, and runs buildtrackd with config/example.yaml.
# Extra arguments are passed to buildtrackd (e.g. --config my.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh release
if [ -z "${BUILDKITE_TOKEN:-}" ]; then
  BUILDKITE_TOKEN=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
  export BUILDKITE_TOKEN
  echo "BUILDKITE_TOKEN was not set; using $BUILDKITE_TOKEN for this run" >&2
fi
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--config config/example.yaml)
exec build/buildtrackd "${args[@]}"
