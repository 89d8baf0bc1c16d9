#include "actors/streak_tracker.hpp"

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "model/json.hpp"
#include "model/notice.hpp"

namespace bt::actors {

streak_tracker_actor::behavior_type
streak_tracker(streak_tracker_actor::stateful_pointer<streak_tracker_state> self,
               std::vector<std::string> branches) {
  self->state.branches = std::move(branches);
  return {
    [=](const model::finished_effect& f) -> std::optional<model::streak_result> {
      auto& st = self->state;
      if (!model::streak_judges(f, st.branches))
        return std::nullopt;
      auto verdict = st.book.record({f.key.source, f.key.pipeline, f.branch}, f.number,
                                    f.state == model::build_state::failed);
      verdict.revision = f.revision;
      st.changed = true;
      return verdict;
    },
    [=](forget_atom, const model::finished_effect& f) {
      auto& st = self->state;
      if (model::streak_forgets(f, st.branches)
          && st.book.forget({f.key.source, f.key.pipeline, f.branch}, f.number))
        st.changed = true;
    },
    [=](caf::get_atom) -> std::string { return model::to_text(model::to_json(self->state.book)); },
    [=](snapshot_atom) -> std::optional<model::streak_book> {
      auto& st = self->state;
      st.in_flight = st.changed;
      st.changed = false;
      if (!st.in_flight)
        return std::nullopt;
      return st.book;
    },
    [=](snapshot_atom, bool written) {
      auto& st = self->state;
      st.changed = st.changed || (st.in_flight && !written);
      st.in_flight = false;
    },
    [=](rewrite_atom) { self->state.changed = true; },
    [=](caf::put_atom, model::streak_book& book) { self->state.book = std::move(book); },
  };
}

} // namespace bt::actors
