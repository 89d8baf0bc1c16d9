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


# Per thread (found by a function on the stack; an empty tuple matches any), its
# stages: the first whose functions appear on the stack names the sample.
RULES = [
    (("write_loop",), [
        (("api::accept",), "writer thread: acknowledge and route (the append's callbacks)"),
        ((), "writer thread: journal round trip (XADD)"),
    ]),
    (("snapshotter", "redis_store::write("), [
        ((), "snapshot thread: encode and write builds"),
    ]),
    (("caf::",), [
        # A build actor applying an event, before snapshots: its answer to a snapshot
        # request names snapshot_atom without applying anything.
        (("apply_event",), "CAF: build actor (model and effects)"),
        (("take_snapshot", "snapshot_atom"), "CAF: snapshot collection (registry, build copies)"),
        (("catalog",), "CAF: catalog (listings, builds feed)"),
        (("streak_tracker",), "CAF: streaks"),
        (("notify_dispatcher", "bt::notify::"), "CAF: notification dispatcher (outbox, bodies)"),
        (("bt::actors::registry", "registry_state", "bt::actors::(anonymous namespace)::route",
          "deliver"), "CAF: registry routing"),
        ((), "CAF: scheduling and mailboxes"),
    ]),
    (("http_client",), [
        ((), "client thread: notification requests and answers"),
    ]),
    ((), [
        (("authenticate",), "HTTP thread: authenticate"),
        (("codec::encode",), "HTTP thread: journal encode"),
        (("redis_store::append",), "HTTP thread: hand-off to the journal writer"),
        # Not "_parse": Beast's basic_parser (reading the request) has it too.
        (("bt::sources::",), "HTTP thread: source parse"),
        (("api::",), "HTTP thread: request routing (api)"),
        (("do_write", "on_write", "async_write", "sendmsg"), "HTTP thread: write the answer"),
        (("do_read", "async_read", "basic_parser", "recvmsg", "on_read"),
         "HTTP thread: read the request"),
        (("epoll_wait", "boost::asio"), "HTTP thread: Asio scheduler (epoll, posted answers)"),
        ((), "other"),
    ]),
]


def stage(stack):
    def has(names):
        return not names or any(n in frame for frame in stack for n in names)
    for thread, stages in RULES:
        if has(thread):
            return next(name for names, name in stages if has(names))


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
