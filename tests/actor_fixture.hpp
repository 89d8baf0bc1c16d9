#pragma once

#include <memory>

#include <caf/all.hpp>
#include <gtest/gtest.h>

namespace bt::test {

/// An actor system on CAF's deterministic test scheduler: nothing runs until
/// the test calls run(), and time moves only with advance().
struct actor_fixture : ::testing::Test {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::scheduler::test_coordinator* sched = nullptr;

  actor_fixture() {
    cfg.set("scheduler.policy", caf::atom("testing"));
    sys = std::make_unique<caf::actor_system>(cfg);
    sched = &dynamic_cast<caf::scheduler::test_coordinator&>(sys->scheduler());
  }

  ~actor_fixture() {
    // Pending timers hold their receivers; drop them so the system can shut down.
    sched->clock().cancel_all();
    sched->run();
  }

  void run() { sched->run(); }

  void advance(caf::timespan d) {
    sched->advance_time(d);
    sched->run();
  }

  /// Sends a request, runs the system, and returns the single reply.
  template <class T, class Handle, class... Ts>
  T ask(const Handle& h, Ts&&... xs) {
    caf::scoped_actor self{*sys};
    auto rh = self->request(h, caf::infinite, std::forward<Ts>(xs)...);
    run();
    T out{};
    rh.receive([&](T& x) { out = std::move(x); },
               [&](caf::error& e) { ADD_FAILURE() << caf::to_string(e); });
    return out;
  }

  /// Sends a request that must fail; returns its error.
  template <class Handle, class... Ts>
  caf::error ask_error(const Handle& h, Ts&&... xs) {
    caf::scoped_actor self{*sys};
    auto rh = self->request(h, caf::infinite, std::forward<Ts>(xs)...);
    run();
    caf::error out;
    rh.receive([&](std::string&) { ADD_FAILURE() << "expected an error"; },
               [&](caf::error& e) { out = std::move(e); });
    return out;
  }
};

} // namespace bt::test
