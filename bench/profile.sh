#!/usr/bin/env bash
# Where buildtrackd's CPU goes under a storm, per stage of a request (issue 16).
#
#   bench/profile.sh [bench/storm flags]    e.g. bench/profile.sh --store redis
#
# Runs build/bench/storm with the flags given (default: the Redis storm of
# bench/RESULTS.md), records buildtrackd with perf (DWARF call graphs, 499 Hz, 6 s from
# 3 s after it starts), then prints per stage its share of the daemon's samples and
# the microseconds per request that share is of the run's "cpu per request". perf
# itself slows the run; the shares hold, the absolute figures are a little high.
# Needs perf (linux-perf) and python3, and permission to trace (root, or
# kernel.perf_event_paranoid <= 1).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d /tmp/buildtrack-profile.XXXXXX)
flags=("$@")
((${#flags[@]})) || flags=(--builds 10000 --jobs 10 --connections 64 --store redis)
build/bench/storm "${flags[@]}" > "$out/storm.txt" 2>&1 &
storm=$!
pid=""
for _ in $(seq 1 600); do
  pid=$(pgrep -n -x buildtrackd || true)
  [ -n "$pid" ] && break
  sleep 0.1
done
[ -n "$pid" ] || { echo "buildtrackd did not start" >&2; cat "$out/storm.txt" >&2; exit 1; }
sleep 3
perf record -F 499 -g --call-graph dwarf,16384 -p "$pid" -o "$out/perf.data" -- sleep 6 \
  > "$out/perf.txt" 2>&1
wait "$storm" || true
grep -E "^bare-beast|^bare-after|^buildtrackd|ratio|cpu per|verify" "$out/storm.txt"
# The window is 3 s to 9 s after the daemon started: a shorter load leaves part of it to
# the verification's reads, which would then be profiled as if they were the storm.
load_s=$(sed -n 's/^buildtrackd *[0-9]* req *\([0-9.]*\) s.*/\1/p' "$out/storm.txt")
if [ -n "$load_s" ] && awk "BEGIN { exit !($load_s < 9.5) }"; then
  echo "warning: the load lasted ${load_s} s, less than the 3 + 6 s window: the profile" \
       "includes what came after it (give the storm more --builds)" >&2
fi
perf script -i "$out/perf.data" 2> /dev/null > "$out/perf.script"
us=$(sed -n 's/.*buildtrackd \([0-9.]*\) us.*/\1/p' "$out/storm.txt")
python3 bench/stages.py "$out/perf.script" "${us:-0}"
echo "perf data: $out"
