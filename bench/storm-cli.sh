#!/usr/bin/env bash
# The Buildkite storm of bench/RESULTS.md, sent by `buildtrack storm` instead of
# bench/storm: in each run a bare Beast server (the floor) and a fresh buildtrackd with
# the bench's configuration (and, for redis, a fresh redis-server appending with
# appendfsync everysec, as bench/storm runs it) get the same storm from the CLI;
# prints both, the ratio and the verification.
#
#   bench/storm-cli.sh [memory|redis] [RUNS] [buildtrack storm flags...]
#   bench/storm-cli.sh redis 3 --builds 10000 --connections 64
set -euo pipefail
cd "$(dirname "$0")/.."
store=${1:-redis}; runs=${2:-3}; shift $(( $# < 2 ? $# : 2 ))
flags=("$@"); [ ${#flags[@]} -gt 0 ] || flags=(--builds 10000 --connections 64)
token=bench-token-0123456789abcdef
work=$(mktemp -d /tmp/bt-storm-cli-XXXXXX)
pids=()
cleanup() {
  for (( i=${#pids[@]}-1; i>=0; i-- )); do kill "${pids[i]}" 2>/dev/null || true; wait "${pids[i]}" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
await() { for _ in $(seq 500); do curl -sf "$1" >/dev/null 2>&1 && return; sleep 0.02; done; echo "no answer from $1" >&2; exit 1; }
figure() { python3 -c "import json,sys; d=json.load(open('$1')); print($2)"; }

for run in $(seq "$runs"); do
  bare_port=$(free_port)
  build/bench/bare_server "$bare_port" 2 & pids+=($!)
  await "http://127.0.0.1:$bare_port/"
  build/buildtrack storm --target "http://127.0.0.1:$bare_port" --buildkite-token "$token" --run "floor$run" \
    --no-verify --quiet --json "${flags[@]}" > "$work/floor.json" 2>/dev/null || true
  kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true

  redis_port=$(free_port); port=$(free_port)
  if [ "$store" = redis ]; then
    mkdir -p "$work/redis$run"
    redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work/redis$run" --save "" --appendonly yes \
      --appendfsync everysec --logfile "$work/redis$run/log" & pids+=($!)
    for _ in $(seq 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.02; done
  fi
  cat > "$work/buildtrack.yaml" <<YAML
server: {listen: 127.0.0.1:$port, io_threads: 2}
store: {kind: $store, redis: {url: "redis://127.0.0.1:$redis_port/0"}, snapshot_interval: 200ms, snapshot_max_builds: 1000}
sources: {buildkite: {token: $token}}
tracking: {actor_idle_timeout: 5m}
actors: {threads: 2, policy: sharing}
log: {level: error}
YAML
  build/buildtrackd --config "$work/buildtrack.yaml" & pids+=($!)
  await "http://127.0.0.1:$port/readyz"
  status=0
  build/buildtrack storm --target "http://127.0.0.1:$port" --buildkite-token "$token" --run "cli$run" \
    --quiet --json "${flags[@]}" > "$work/daemon.json" 2>"$work/daemon.txt" || status=$?
  [ $status -eq 0 ] || { echo "run $run: buildtrack storm exited $status" >&2; cat "$work/daemon.txt" >&2; }
  printf 'run %s  bare %6.0f req/s  buildtrackd %6.0f req/s (p50 %.2f ms, p99 %.2f ms)  ratio %4.1f%%  verified %s%% of %s builds\n' \
    "$run" "$(figure "$work/floor.json" "d['requests_per_s']")" "$(figure "$work/daemon.json" "d['requests_per_s']")" \
    "$(figure "$work/daemon.json" "d['latency_ms']['p50']")" "$(figure "$work/daemon.json" "d['latency_ms']['p99']")" \
    "$(python3 -c "import json; f=json.load(open('$work/floor.json')); d=json.load(open('$work/daemon.json')); print(100*d['requests_per_s']/f['requests_per_s'])")" \
    "$(figure "$work/daemon.json" "d['verification']['verified_percent']")" "$(figure "$work/daemon.json" "d['verification']['builds']")"
  # buildtrackd before its Redis.
  for (( i=${#pids[@]}-1; i>=0; i-- )); do kill "${pids[i]}" 2>/dev/null || true; wait "${pids[i]}" 2>/dev/null || true; done
  pids=()
done
