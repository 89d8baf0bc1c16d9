#include "actors/catalog.hpp"

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "model/json.hpp"

namespace bt::actors {

namespace {

void publish(catalog_state& st) {
  st.listed->store(st.index.size(), std::memory_order_relaxed);
}

} // namespace

catalog_actor::behavior_type catalog(catalog_actor::stateful_pointer<catalog_state> self,
                                     std::shared_ptr<std::atomic<std::uint64_t>> listed) {
  self->state.listed = std::move(listed);
  return {
    [=](caf::put_atom, const model::build_summary& s) {
      self->state.index.upsert(s);
      publish(self->state);
    },
    [=](caf::put_atom, const std::vector<model::build_summary>& all) {
      for (auto& s : all)
        self->state.index.upsert(s);
      publish(self->state);
    },
    [=](caf::get_atom, const model::build_query& q) -> std::string {
      auto out = nlohmann::json::array();
      for (auto& s : self->state.index.list(q))
        out.push_back(model::to_json(s));
      return model::to_text(out);
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
      publish(self->state);
    },
    [=](forget_atom, const lost_builds& lost) {
      for (auto& key : lost.keys)
        self->state.index.erase(key);
      publish(self->state);
    },
  };
}

} // namespace bt::actors
