#pragma once

#include <map>
#include <mutex>
#include <stdexcept>
#include <string>

#include "support/json_schema.hpp"

namespace bt::test {

/// A schema that comes with buildtrack, by its path under `schemas/`
/// (`cdevents-0.4.1/pipelinerunfinished.json`), loaded once; throws when it cannot be.
inline const support::json_schema& schema(const std::string& path) {
  static std::map<std::string, support::json_schema> loaded;
  static std::mutex mutex;
  std::lock_guard guard{mutex};
  if (auto it = loaded.find(path); it != loaded.end())
    return it->second;
  std::string error;
  auto s = support::json_schema::load(std::string{BT_SOURCE_DIR} + "/schemas/" + path, error);
  if (!s)
    throw std::runtime_error{error};
  return loaded.emplace(path, std::move(*s)).first->second;
}

} // namespace bt::test
