#pragma once

#include <memory>

#include "actors/actors.hpp"
#include "store/store.hpp"

namespace bt::actors {

struct build_loader_state {
  static inline const char* name = "build_loader";
  std::shared_ptr<store::store> store;
};

/// Reads builds from the store on behalf of the registry and of reads. Its calls
/// block: spawn it detached, so that no scheduler thread waits for the store.
build_loader_actor::behavior_type
build_loader(build_loader_actor::stateful_pointer<build_loader_state> self,
             std::shared_ptr<store::store> store);

} // namespace bt::actors
