#!/usr/bin/env python3
"""Sorts the samples of `perf script` (DWARF call graphs of buildtrackd) into the
stages of a request and prints a Markdown table: stage, share of the samples, and
microseconds per request given the daemon's CPU per request (bench/storm prints it).

    bench/stages.py perf.script [cpu_us_per_request]

A sample belongs to the first stage whose rule matches a function in its stack,
in the order below: the thread first (the journal writer, the snapshot supervisor,
CAF workers, Asio's threads), then what runs on it. Allocation and kernel time count
for the stage that caused them."""
import collections
import sys


def samples(path):
    stack = []
    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        if not line.strip():
            if stack:
                yield stack
            stack = []
        elif line[0] in " \t":
            parts = line.strip().split(" ", 1)
            if len(parts) == 2:
                stack.append(parts[1])
        else:
            stack = []
    if stack:
        yield stack


def stage(stack):
    def has(*names):
        return any(n in frame for frame in stack for n in names)
    if has("write_loop"):
        if has("api::accept"):
            return "writer thread: acknowledge and route (the append's callbacks)"
        return "writer thread: journal round trip (XADD)"
    if has("snapshotter", "redis_store::write("):
        return "snapshot thread: encode and write builds"
    if has("caf::"):
        if has("take_snapshot") or (has("snapshot_atom") and not has("apply_event")):
            return "CAF: snapshot collection (registry, build copies)"
        if has("apply_event"):
            return "CAF: build actor (model and effects)"
        if has("catalog"):
            return "CAF: catalog (listings, builds feed)"
        if has("streak_tracker"):
            return "CAF: streaks"
        if has("bt::actors::registry", "registry_state", "bt::actors::(anonymous namespace)::route",
               "deliver"):
            return "CAF: registry routing"
        return "CAF: scheduling and mailboxes"
    if has("authenticate"):
        return "HTTP thread: authenticate"
    if has("codec::encode"):
        return "HTTP thread: journal encode"
    if has("redis_store::append"):
        return "HTTP thread: hand-off to the journal writer"
    if has("_parse", "::parse("):
        return "HTTP thread: source parse"
    if has("api::"):
        return "HTTP thread: request routing (api)"
    if has("do_write", "on_write", "async_write", "sendmsg"):
        return "HTTP thread: write the answer"
    if has("do_read", "async_read", "basic_parser", "recvmsg", "on_read"):
        return "HTTP thread: read the request"
    if has("epoll_wait", "boost::asio"):
        return "HTTP thread: Asio scheduler (epoll, posted answers)"
    return "other"


def main():
    counts = collections.Counter(stage(s) for s in samples(sys.argv[1]))
    total = sum(counts.values())
    if not total:
        sys.exit("no samples")
    us = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    print("| stage | share | us per request |")
    print("|---|---|---|")
    for name, n in counts.most_common():
        print("| %s | %.1f %% | %.1f |" % (name, 100.0 * n / total, us * n / total))
    print("| (%d samples) | 100 %% | %.1f |" % (total, us))


if __name__ == "__main__":
    main()
