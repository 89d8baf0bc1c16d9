#!/usr/bin/env bash
# Installs what is missing, builds, and runs buildtrackd with config/example.yaml.
# When the Redis at BUILDTRACK_REDIS_URL (default redis://127.0.0.1:6379/0) does not
# answer and is on this machine, starts a redis-server for it with its data in .data/redis.
# Extra arguments are passed to buildtrackd (e.g. --config my.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh release
# Each source's secret: when not set, a random one for this run, printed once.
for var in BUILDKITE_TOKEN BUILDTRACK_NATIVE_TOKEN BUILDTRACK_TASKCLUSTER_TOKEN; do
  if [ -z "${!var:-}" ]; then
    printf -v "$var" '%s' "$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    export "${var?}"
    echo "$var was not set; using ${!var} for this run" >&2
  fi
done
export BUILDTRACK_REDIS_URL=${BUILDTRACK_REDIS_URL:-redis://127.0.0.1:6379/0}
if ! redis-cli -u "$BUILDTRACK_REDIS_URL" ping >/dev/null 2>&1; then
  hostport=${BUILDTRACK_REDIS_URL#redis://}; hostport=${hostport##*@}; hostport=${hostport%%/*}
  host=${hostport%%:*}; port=6379
  [[ $hostport == *:* ]] && port=${hostport##*:}
  if [[ $host != 127.0.0.1 && $host != localhost ]]; then
    echo "Redis at $BUILDTRACK_REDIS_URL does not answer" >&2
    exit 1
  fi
  mkdir -p .data/redis
  echo "starting redis-server on 127.0.0.1:$port (data in .data/redis)" >&2
  # appendfsync always: a write Redis confirmed survives even a crash of Redis itself.
  redis-server --port "$port" --bind 127.0.0.1 --dir "$PWD/.data/redis" --appendonly yes \
    --appendfsync always --daemonize yes --pidfile "$PWD/.data/redis/redis.pid" \
    --logfile "$PWD/.data/redis/redis.log"
  for _ in $(seq 50); do
    redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
fi
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--config config/example.yaml)
exec build/buildtrackd "${args[@]}"
