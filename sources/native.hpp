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

/// A target message (`POST /api/v1/builds/{key}/targets/{target}/messages`, SPEC
/// §3.4): `{"type": "pass|fail|work", "unit": […], "lint": […], "generation": n,
/// "delivery": "…"}`. One invalid unit or lint entry rejects the whole message,
/// naming the entry and field (`unit[2].result`).
checked<model::envelope> native_message(const model::build_key& key, std::string target,
                                        std::string_view content_type, std::string_view body,
                                        model::timestamp now);

/// A build command (`POST /api/v1/builds/{key}/commands`): `{"type":
/// "pause|resume|abort|restart"}`. Whether it applies, the build's actor decides.
checked<model::envelope> native_command(const model::build_key& key,
                                        std::string_view content_type, std::string_view body,
                                        model::timestamp now);

/// A wait timeout longer than this is refused: 30 days.
inline constexpr double max_wait_timeout_s = 30.0 * 24 * 3600;

/// The source name native builds get when their event names none.
inline constexpr std::string_view native_default_source = "native";

} // namespace bt::sources
