#pragma once
// Checks the model tests run after every event they apply.
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "model/build.hpp"
#include "model/codec.hpp"
#include "model/json.hpp"
#include "model/notice.hpp"
#include "model/recovery.hpp"

namespace bt::testing {

/// The counts a build keeps beside its jobs (`targets`, `failing`) say what counting
/// its jobs again says: kept true by every event, not only read back.
inline void expect_counts_match_jobs(const model::build& b) {
  auto recounted = b;
  model::count_jobs(recounted);
  EXPECT_EQ(b.targets, recounted.targets) << "targets";
  EXPECT_EQ(b.failing, recounted.failing) << "failing";
}

/// The build's recovery record decides what recovery does as reading the build in
/// full would: whenever it says the build need not be read, the build owes nothing
/// the record does not say (no deadline, notice, release or roll-up), and the record
/// lists and judges it as the build would. Tried with several tracked branches and
/// outbox states; the record also survives its encoding.
inline void expect_record_matches(const model::build& b) {
  auto r = model::record_of(b);
  std::string why;
  auto decoded = model::codec::decode_record(model::codec::encode(r), b.key, &why);
  ASSERT_TRUE(decoded) << why;
  EXPECT_EQ(*decoded, r);
  for (const std::vector<std::string>& tracked :
       {std::vector<std::string>{"*"}, {"main"}, {"release/*"}, {}}) {
    EXPECT_EQ(model::settled(r, tracked), model::settled(b, tracked));
    for (std::uint64_t noticed : {std::uint64_t{0}, b.revision > 0 ? b.revision - 1 : 0, b.revision})
      for (std::uint64_t jobs : {std::uint64_t{0}, b.announced_jobs})
        for (bool notifying : {false, true}) {
          auto need = model::need_of(r, noticed, jobs, notifying, tracked);
          if (need == model::recovery_need::read)
            continue;
          SCOPED_TRACE("noticed " + std::to_string(noticed) + ", jobs " + std::to_string(jobs));
          EXPECT_EQ(r.summary, model::summarize(b));
          EXPECT_TRUE(model::deadlines(b, {}, model::timestamp{}).empty());
          EXPECT_TRUE(model::due_releases(b, {}, tracked).empty());
          if (notifying) {
            EXPECT_FALSE(model::due_notice(b, noticed, tracked));
            EXPECT_TRUE(model::unrecorded_job_notices(b, jobs).empty());
          }
          std::vector<model::finished_effect> judged;
          for (auto& effect : model::announcements(b)) {
            EXPECT_FALSE(std::holds_alternative<model::rollup_effect>(effect));
            if (auto* f = std::get_if<model::finished_effect>(&effect); f && !model::settled(b, tracked))
              judged.push_back(*f);
          }
          ASSERT_EQ(judged.size(), need == model::recovery_need::judge ? 1u : 0u);
          if (judged.empty())
            continue;
          auto f = model::finished_of(r);
          EXPECT_EQ(std::tie(f.key, f.branch, f.number, f.state, f.personal, f.revision),
                    std::tie(judged[0].key, judged[0].branch, judged[0].number, judged[0].state,
                             judged[0].personal, judged[0].revision));
        }
  }
}

/// The documents written as text (the build document, a webhook body) are what
/// nlohmann writes for the tree they parse to: names in its order, its numbers and
/// escapes, nothing dropped on the way. The notices are one of each shape: an outcome
/// for a sink that did not wait, one for every sink that did (released or not yet),
/// and a job notice for the first and last attempt.
/// Skipped for builds of more than 64 jobs: the limit tests apply thousands of events
/// to those, and a text of each after every event would take minutes.
inline void expect_texts_are_canonical(const model::build& b) {
  if (b.jobs.size() > 64)
    return;
  auto canonical = [](const std::string& text) {
    auto doc = nlohmann::json::parse(text, nullptr, false);
    ASSERT_FALSE(doc.is_discarded()) << text;
    EXPECT_EQ(model::to_text(doc), text);
  };
  canonical(model::build_text(b));
  std::vector<std::string> sinks{"no-wait"};
  for (auto& [sink, c] : b.collations)
    sinks.push_back(sink);
  model::notice n{b, model::notice_kind::failed};
  for (auto& sink : sinks)
    canonical(model::notice_text(n, sink, "d"));
  if (!b.jobs.empty()) {
    for (auto* j : {&b.jobs.begin()->second, &b.jobs.rbegin()->second}) {
      if (j->attempts.empty())
        continue;
      n.job = j->latest().id;
      canonical(model::notice_text(n, sinks.front(), "d"));
    }
  }
}

/// Every check above.
inline void expect_derived_facts_hold(const model::build& b) {
  expect_texts_are_canonical(b);
  expect_counts_match_jobs(b);
  expect_record_matches(b);
}

} // namespace bt::testing
