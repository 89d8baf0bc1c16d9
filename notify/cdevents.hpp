#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "notify/sink.hpp"

namespace bt::notify {

/// The CDEvent (0.4.1) a notice becomes: `pipelinerun.finished` for a finished build,
/// `taskrun.finished` for a `job_finished` notice. Its `context.id` is the notice's
/// delivery id, the same on every attempt; `source` is its `context.source`.
nlohmann::json cdevent_of(const outbox_entry& e, const std::string& source);

/// POSTs each notice as a CDEvent in a CloudEvent (SPEC §6 `cdevents`): binary mode
/// (`ce-*` headers, the CDEvent as the body) unless `mode: structured`
/// (`application/cloudevents+json`). Authorization, signature and custom headers as
/// a webhook's.
class cdevents_sink : public sink {
public:
  explicit cdevents_sink(const config::sink_config& cfg) : sink{cfg} {}
  net::outbound_request request(const outbox_entry& e,
                                const std::optional<std::string>& message_ref) const override;
  outcome judge(const net::inbound_response& r,
                const std::optional<std::string>&) const override {
    return judge_status(r);
  }
};

} // namespace bt::notify
