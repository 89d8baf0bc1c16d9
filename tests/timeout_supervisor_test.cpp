// The timeout supervisor on CAF's deterministic scheduler: its wall clock is the
// test's, moved in step with the scheduler's clock.
#include <caf/all.hpp>
#include <gtest/gtest.h>

#include "actors/timeout_supervisor.hpp"
#include "tests/actor_fixture.hpp"

using namespace bt;
using namespace std::chrono_literals;

namespace {

struct timeouts : test::actor_fixture {
  model::timestamp now{std::chrono::milliseconds{1'700'000'000'000LL}};
  model::timestamp start = now;
  struct passed_deadline {
    std::string key;
    std::string name;
    model::timestamp due;
    model::timestamp at; ///< the clock when it was reported
  };
  std::vector<passed_deadline> passed;
  actors::timeout_supervisor_actor sup = spawn_supervisor();

  actors::timeout_supervisor_actor spawn_supervisor() {
    return sys->spawn(actors::timeout_supervisor,
                      actors::timeout_settings{
                        [this] { return now; },
                        [this](const model::build_key& k, const std::string& n,
                               model::timestamp due) {
                          passed.push_back({k.id, n, due, now});
                        },
                        false, nullptr, nullptr, ""});
  }

  static model::build_key key(const std::string& id) { return {"native", "p", id}; }
  void set(const std::string& id, std::optional<caf::timespan> in, const std::string& name = "targets") {
    std::optional<model::timestamp> due;
    if (in)
      due = start + std::chrono::duration_cast<model::timestamp::duration>(*in);
    caf::anon_send(sup, actors::deadline_atom::value, key(id), name, due);
    run();
  }
  /// Moves both clocks by `d`, in steps of `step` (a timer goes off at the end of the
  /// step it falls in).
  void wait(caf::timespan d, caf::timespan step = 10ms) {
    for (caf::timespan moved{0}; moved < d; moved += step) {
      auto s = std::min(step, d - moved);
      now += std::chrono::duration_cast<model::timestamp::duration>(s);
      advance(s);
    }
  }
  std::size_t held() { return ask<std::size_t>(sup, caf::get_atom::value); }
  std::vector<std::string> ids() const {
    std::vector<std::string> out;
    for (auto& p : passed)
      out.push_back(p.key + "/" + p.name);
    return out;
  }
};

} // namespace

TEST_F(timeouts, deadlines_pass_in_time_order_whatever_order_they_were_set_in) {
  set("c", 300ms);
  set("a", 100ms);
  set("b", 200ms);
  EXPECT_EQ(held(), 3u);
  wait(150ms);
  EXPECT_EQ(ids(), (std::vector<std::string>{"a/targets"}));
  wait(200ms);
  EXPECT_EQ(ids(), (std::vector<std::string>{"a/targets", "b/targets", "c/targets"}));
  EXPECT_EQ(held(), 0u);
  // Each was reported at its own time, not with the next one.
  for (auto& p : passed)
    EXPECT_EQ(p.at, p.due) << p.key;
}

TEST_F(timeouts, a_cancelled_deadline_never_passes) {
  set("a", 100ms);
  set("b", 200ms);
  set("a", std::nullopt);
  EXPECT_EQ(held(), 1u);
  wait(250ms);
  EXPECT_EQ(ids(), (std::vector<std::string>{"b/targets"}));
}

TEST_F(timeouts, setting_a_deadline_again_moves_it) {
  set("a", 100ms);
  set("a", 300ms); // later
  wait(200ms);
  EXPECT_TRUE(passed.empty());
  set("a", 250ms); // earlier than the armed timer
  wait(60ms);
  ASSERT_EQ(ids(), (std::vector<std::string>{"a/targets"}));
  EXPECT_EQ(passed[0].due, start + 250ms);
  EXPECT_EQ(held(), 0u);
}

TEST_F(timeouts, deadlines_of_one_build_are_told_apart_by_name) {
  set("a", 100ms, "targets");
  set("a", 100ms, "collator:slack");
  set("a", std::nullopt, "targets");
  wait(100ms);
  EXPECT_EQ(ids(), (std::vector<std::string>{"a/collator:slack"}));
}

TEST_F(timeouts, many_deadlines_at_the_same_instant_all_pass_at_once) {
  for (int i = 0; i < 100; ++i)
    set(std::to_string(i), 100ms);
  wait(99ms);
  EXPECT_TRUE(passed.empty());
  wait(1ms);
  EXPECT_EQ(passed.size(), 100u);
  EXPECT_EQ(held(), 0u);
}

TEST_F(timeouts, a_deadline_already_passed_goes_off_at_once) {
  wait(500ms);
  set("late", 100ms); // 400 ms ago
  EXPECT_EQ(ids(), (std::vector<std::string>{"late/targets"}));
}

TEST_F(timeouts, a_held_supervisor_lets_nothing_go_off_until_started) {
  sup = sys->spawn(actors::timeout_supervisor,
                   actors::timeout_settings{[this] { return now; },
                                            [this](const model::build_key& k,
                                                   const std::string& n, model::timestamp due) {
                                              passed.push_back({k.id, n, due, now});
                                            },
                                            true, nullptr, nullptr, ""});
  set("a", 100ms);
  set("b", 300ms);
  wait(200ms);
  EXPECT_TRUE(passed.empty());
  caf::anon_send(sup, actors::start_atom::value);
  run();
  EXPECT_EQ(ids(), (std::vector<std::string>{"a/targets"}));
  wait(100ms);
  EXPECT_EQ(ids(), (std::vector<std::string>{"a/targets", "b/targets"}));
}

TEST_F(timeouts, deadlines_under_a_prefix_are_counted_apart) {
  auto all = std::make_shared<std::atomic<std::uint64_t>>(0);
  auto waits = std::make_shared<std::atomic<std::uint64_t>>(0);
  sup = sys->spawn(actors::timeout_supervisor,
                   actors::timeout_settings{[this] { return now; },
                                            [](const model::build_key&, const std::string&,
                                               model::timestamp) {},
                                            false, all, waits, "collate:"});
  set("a", 100ms, "targets");
  set("a", 200ms, "collate:hook");
  set("b", 300ms, "collate:hook");
  set("b", 400ms, "collate:hook"); // moved, not added
  EXPECT_EQ(all->load(), 3u);
  EXPECT_EQ(waits->load(), 2u);
  set("b", std::nullopt, "collate:hook");
  EXPECT_EQ(waits->load(), 1u);
  wait(250ms);
  EXPECT_EQ(all->load(), 0u);
  EXPECT_EQ(waits->load(), 0u);
}

// After a restart the service sets again the deadlines its stored builds hold: a new
// supervisor reports those still ahead at their time and those passed meanwhile at once.
TEST_F(timeouts, a_new_supervisor_given_the_stored_deadlines_reports_them) {
  set("a", 100ms);
  set("b", 400ms);
  caf::anon_send_exit(sup, caf::exit_reason::kill);
  run();
  wait(200ms); // down while a's deadline passed
  EXPECT_TRUE(passed.empty());
  sup = spawn_supervisor();
  set("a", 100ms);
  set("b", 400ms);
  EXPECT_EQ(ids(), (std::vector<std::string>{"a/targets"}));
  wait(200ms);
  EXPECT_EQ(ids(), (std::vector<std::string>{"a/targets", "b/targets"}));
  EXPECT_EQ(passed[1].at, start + 400ms);
}
