#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "model/event.hpp"
#include "sources/rejection.hpp"
#include "sources/source.hpp"

namespace bt::sources {

/// The native event API, `POST /api/v1/events` (SPEC §3.3): any CI, script or plugin
/// reports builds, jobs and statistics in buildtrack's own format, one JSON event or
/// an NDJSON batch. `cfg` must outlive it.
std::unique_ptr<source> make_native_source(const config::native_config& cfg);

/// The events of a native request body, all or none: one JSON event when
/// `content_type` is empty or `application/json`, one per non-empty line for
/// `application/x-ndjson`. A rejection names the field and, in a batch, the line.
checked<std::vector<model::envelope>> native_parse(std::string_view content_type,
                                                   std::string_view body, model::timestamp now);

/// The source name native builds get when their event names none.
inline constexpr std::string_view native_default_source = "native";

} // namespace bt::sources
