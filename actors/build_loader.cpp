#include "actors/build_loader.hpp"

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "model/json.hpp"

namespace bt::actors {

build_loader_actor::behavior_type
build_loader(build_loader_actor::stateful_pointer<build_loader_state> self,
             std::shared_ptr<store::store> store) {
  self->state.store = std::move(store);
  return {
    [=](load_atom, const model::build_key& key) -> caf::result<std::optional<model::build>> {
      bool failed = false;
      auto saved = self->state.store->load(key, failed);
      if (failed)
        return caf::make_error(errc::store_unavailable);
      return saved;
    },
    [=](caf::get_atom, const model::build_key& key) -> caf::result<std::string> {
      bool failed = false;
      auto saved = self->state.store->load(key, failed);
      if (failed)
        return caf::make_error(errc::store_unavailable);
      if (!saved)
        return caf::make_error(errc::not_found);
      return model::build_text(*saved);
    },
  };
}

} // namespace bt::actors
