#pragma once

#include <functional>
#include <optional>
#include <string_view>
#include <vector>

#include "model/build.hpp"

namespace bt::store {

/// Where accepted events and build states are kept. Implementations are
/// thread-safe: HTTP threads append, actors save and load.
class store {
public:
  virtual ~store() = default;

  /// "memory" or "redis".
  virtual std::string_view kind() const = 0;

  /// Journals accepted events. `done(true)` runs once they are durable (it may run
  /// before append returns); `done(false)` when they could not be written.
  virtual void append(const std::vector<model::envelope>& events,
                      std::function<void(bool durable)> done) = 0;

  /// Keeps a build's latest state.
  virtual void save(const model::build& b) = 0;

  /// The last saved state of a build, if any.
  virtual std::optional<model::build> load(const model::build_key& key) = 0;

  /// Visits every saved build (start-up indexing).
  virtual void for_each(const std::function<void(const model::build&)>& visit) = 0;

  /// Whether the store can accept writes now (`/readyz`).
  virtual bool ready() const = 0;
};

} // namespace bt::store
