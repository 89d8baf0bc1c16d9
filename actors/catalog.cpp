#include "actors/catalog.hpp"

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "config/config.hpp"
#include "model/json.hpp"
#include "model/json_text.hpp"
#include "model/topic.hpp"
#include "support/log.hpp"

namespace bt::actors {

namespace {

using self_ptr = catalog_actor::stateful_pointer<catalog_state>;

void count(catalog_state& st) {
  st.listed->store(st.index.size(), std::memory_order_relaxed);
}

/// A build change as the `builds` exchange carries it. Not deduplicated: a change
/// published again (a journal replayed after a restart) tells subscribers what they
/// know, and deduplicating would cost the store four more writes per change.
store::exchange_publication feed_message(const model::build_summary& s) {
  return {"", model::build_routing_key(s.key, model::to_string(s.state)), model::summary_text(s)};
}

/// Queues a change for the feed; the first one queued asks for a flush, which comes
/// after whatever is in the mailbox now, so a storm's changes go out in batches.
void queue_change(self_ptr self, const model::build_summary& s) {
  auto& st = self->state;
  if (!st.feed)
    return;
  if (st.unpublished.empty())
    self->send(self, tick_atom::value);
  st.unpublished.push_back(feed_message(s));
}

/// Appends `[summary,…]`.
void summaries(std::string& out, const std::vector<const model::build_summary*>& list) {
  out += '[';
  for (auto* s : list) {
    if (out.back() != '[')
      out += ',';
    model::append_summary(out, *s);
  }
  out += ']';
}

} // namespace

catalog_actor::behavior_type catalog(self_ptr self, std::shared_ptr<std::atomic<std::uint64_t>> listed,
                                     exchange_actor feed) {
  self->state.listed = std::move(listed);
  self->state.feed = std::move(feed);
  return {
    [=](caf::put_atom, const model::build_summary& s) {
      self->state.index.upsert(s);
      count(self->state);
      queue_change(self, s);
    },
    [=](caf::put_atom, std::vector<model::build_summary>& all) {
      for (auto& s : all)
        self->state.index.upsert(std::move(s));
      count(self->state);
    },
    [=](caf::get_atom, const model::build_query& q) -> std::string {
      std::string out = "[";
      for (auto& s : self->state.index.list(q)) {
        if (out.back() != '[')
          out += ',';
        model::append_summary(out, s);
      }
      return out += ']';
    },
    [=](caf::get_atom, const model::build_query& q, std::size_t per_branch) -> std::string {
      auto view = self->state.index.overview_of(q, per_branch);
      // As nlohmann would write it: each object's fields by name.
      std::string out = R"({"active":)";
      summaries(out, view.active);
      out += R"(,"branches":[)";
      for (auto& g : view.branches) {
        if (&g != &view.branches.front())
          out += ',';
        out += R"({"branch":)";
        model::append_json_string(out, g.branch);
        out += R"(,"builds":)";
        summaries(out, g.builds);
        out += R"(,"pipeline":)";
        model::append_json_string(out, g.pipeline);
        out += R"(,"source":)";
        model::append_json_string(out, g.source);
        out += '}';
      }
      return out += "]}";
    },
    [=](tick_atom) {
      auto& st = self->state;
      auto batch = std::move(st.unpublished);
      st.unpublished.clear();
      // The exchange answers on its own thread; a refused batch is logged, not
      // retried: the feed is live news, and the next change of each build follows.
      self->send(st.feed, publish_atom::value, std::string{config::builds_exchange}, std::move(batch),
                 publish_reply{[](std::optional<std::vector<store::published>> fates) {
                   if (!fates)
                     support::log(support::log_level::warn, "build changes not published: store unavailable",
                                  {{"exchange", config::builds_exchange}});
                 }});
    },
    [=](expire_atom, const expiry_rule& rule) -> expired_builds {
      expired_builds out;
      self->state.index.for_each([&](const model::build_summary& s) {
        if (!s.updated)
          return;
        auto age = rule.now - *s.updated;
        bool finished = model::is_final(s.state);
        if (finished ? age < rule.retention : age < rule.abandoned_after)
          return;
        (finished ? out.finished : out.abandoned).push_back(s.key);
      });
      return out;
    },
    [=](forget_atom, const expired_builds& gone) {
      for (auto* keys : {&gone.finished, &gone.abandoned})
        for (auto& key : *keys)
          self->state.index.erase(key);
      count(self->state);
    },
    [=](forget_atom, const lost_builds& lost) {
      for (auto& key : lost.keys)
        self->state.index.erase(key);
      count(self->state);
    },
  };
}

} // namespace bt::actors
