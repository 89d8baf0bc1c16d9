// What one actor hop costs on this machine (issue 16): a thread outside CAF sends a
// batch of events to a router actor, which sends each to its own build-like actor, as
// a group commit reaches the registry and the registry the build actors. The actors do
// nothing else, so this is the floor of CAF's share of an event. The scheduler is set
// as buildtrackd sets it (`actors.*`: sharing, 300 per resume), with 2 workers (the
// default before 2026-12-03) and 1 (the default since).
//
//   build/bench/caf_hop [--benchmark_filter=...]
//
// Besides the wall time per batch, `cpu_per_event` is the CPU time of the whole process
// (every thread) per event: what the hops take from the cores the server shares.
#include <benchmark/benchmark.h>
#include <caf/all.hpp>

#include <atomic>
#include <sys/resource.h>
#include <vector>

namespace {

using leaf_actor = caf::typed_actor<caf::reacts_to<int>>;
using router_actor = caf::typed_actor<caf::reacts_to<std::vector<int>>>;

/// Counts what the leaves handled; the benchmark's thread waits for the count.
struct progress {
  std::atomic<long> handled{0};
  std::atomic<long> target{0};
};

leaf_actor::behavior_type leaf(leaf_actor::pointer, progress* p) {
  return {[p](int) {
    auto now = p->handled.fetch_add(1, std::memory_order_acq_rel) + 1;
    if (now == p->target.load(std::memory_order_acquire))
      p->handled.notify_one();
  }};
}

struct router_state {
  std::vector<leaf_actor> leaves;
};

router_actor::behavior_type router(router_actor::stateful_pointer<router_state> self,
                                   std::vector<leaf_actor> leaves) {
  self->state.leaves = std::move(leaves);
  return {[self](std::vector<int>& events) {
    for (int i : events)
      self->send(self->state.leaves[static_cast<std::size_t>(i) % self->state.leaves.size()], i);
  }};
}

double process_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec)
         + static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

caf::actor_system_config& configured(caf::actor_system_config& cfg, std::size_t workers) {
  cfg.set("scheduler.policy", caf::atom("sharing"));
  cfg.set("scheduler.max-threads", workers);
  cfg.set("scheduler.max-throughput", std::size_t{300});
  return cfg;
}

/// Batches of `range(0)` events, each event to another of 10,000 idle actors, with up
/// to `range(1)` batches in flight, on `range(2)` workers: 1 waits for each batch (every
/// hop wakes a sleeping thread), more keep the workers busy.
void caf_route_to_idle_actors(benchmark::State& state) {
  caf::actor_system_config cfg;
  caf::actor_system system{configured(cfg, static_cast<std::size_t>(state.range(2)))};
  progress p;
  std::vector<leaf_actor> leaves;
  for (int i = 0; i < 10000; ++i)
    leaves.push_back(system.spawn(leaf, &p));
  auto r = system.spawn(router, leaves);
  auto per_batch = static_cast<long>(state.range(0));
  auto in_flight = per_batch * state.range(1);
  // Once the window is full, wait for its older half (for a window of one batch, all of it).
  auto keep = per_batch * (state.range(1) / 2);
  auto wait_until = [&p](long count) {
    p.target.store(count, std::memory_order_release);
    for (auto seen = p.handled.load(std::memory_order_acquire); seen < count;
         seen = p.handled.load(std::memory_order_acquire))
      p.handled.wait(seen, std::memory_order_acquire);
  };
  int next = 0;
  long sent = 0;
  auto cpu_before = process_cpu_seconds();
  for (auto _ : state) {
    std::vector<int> batch(static_cast<std::size_t>(per_batch));
    for (auto& i : batch)
      i = next++;
    sent += per_batch;
    caf::anon_send(r, std::move(batch));
    if (sent - p.handled.load(std::memory_order_acquire) >= in_flight)
      wait_until(sent - keep);
  }
  wait_until(sent);
  auto cpu = process_cpu_seconds() - cpu_before;
  state.SetItemsProcessed(sent);
  state.counters["cpu_per_event"] = cpu / static_cast<double>(sent);
  caf::anon_send_exit(r, caf::exit_reason::user_shutdown);
  for (auto& l : leaves)
    caf::anon_send_exit(l, caf::exit_reason::user_shutdown);
}
BENCHMARK(caf_route_to_idle_actors)
  ->Args({1, 1, 2})
  ->Args({12, 1, 2})
  ->Args({12, 64, 2})
  ->Args({1, 1, 1})
  ->Args({12, 1, 1})
  ->Args({12, 64, 1})
  ->UseRealTime();

} // namespace

BENCHMARK_MAIN();
