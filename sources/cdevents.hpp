#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "model/event.hpp"
#include "sources/rejection.hpp"
#include "sources/source.hpp"

namespace bt::support {
class json_schema;
}

/// CDEvents (0.4.x) carried as CloudEvents, as `POST /webhooks/cdevents` takes them
/// (SPEC §3.5): a pipelineRun is a build, a taskRun a job of the pipelineRun it names.
namespace bt::sources::cdevents {

/// The CDEvents this input tracks; any other `dev.cdevents.*` type is acknowledged and
/// counted. New values go last.
enum class tracked { pipelinerun_queued, pipelinerun_started, pipelinerun_finished,
                     taskrun_started, taskrun_finished };

/// `pipelinerun.finished`, ...: the type's subject and predicate.
std::string_view to_string(tracked t);

/// The tracked type a `context.type` names (`dev.cdevents.pipelinerun.finished.0.2.0`),
/// whatever its version; none for any other type.
std::optional<tracked> tracked_of(std::string_view type);

/// The schema of each tracked type (`pipelinerunfinished.json`, ...), loaded from one
/// folder.
struct schemas {
  /// Loads the five schemas from `folder`; throws std::runtime_error naming the file
  /// that cannot be read.
  static schemas load(const std::string& folder);
  std::vector<std::shared_ptr<const support::json_schema>> by_type; ///< indexed by tracked
};

/// One CDEvent, checked against its schema (tracked types) and its CloudEvent.
struct cdevent {
  std::optional<tracked> type; ///< none: another CDEvents type
  std::string type_name;       ///< `context.type`
  std::string id;              ///< `context.id`: the CloudEvent id, the delivery id
  std::string source;          ///< `context.source`
  model::timestamp time{};     ///< `context.timestamp`
  std::string subject_id;
  std::string subject_source; ///< `subject.source`, else `context.source`
  std::string name;           ///< `pipelineName` or `taskName`
  std::string url;
  std::string outcome; ///< finished events: success, failure or error (none: success)
  std::string errors;
  std::string run_id; ///< a taskRun's `pipelineRun.id`
};

/// Everything one request carried, in order.
struct request {
  std::vector<cdevent> events;
};

/// Reads one request in any CloudEvents HTTP mode, picked by `Content-Type`: binary
/// (`application/json`, the `ce-*` headers and the CDEvent as the body), structured
/// (`application/cloudevents+json`) or batched (`application/cloudevents-batch+json`,
/// all or nothing). 400 for malformed JSON, 415 for another media type, 422 naming the
/// field (`ce-id`, `data.subject.content.outcome`, `[2].type`, ...) otherwise.
checked<request> parse(const inbound& in, const schemas& s);

/// A build key part for an arbitrary string: '%', '/' and control characters
/// percent-encoded, so that distinct strings stay distinct.
std::string key_part(std::string_view text);

/// The build of a pipelineRun event: `cdevents/<pipelineName, else subject source>/<id>`.
model::build_key build_of(const cdevent& e);

/// The envelopes of tracked events, received at `now`. A taskRun's build is addressed
/// by its pipelineRun's id alone (a key with no pipeline): the registry finds the
/// build, or keeps the event until the pipelineRun shows up.
std::vector<model::envelope> envelopes(const std::vector<cdevent>& events, model::timestamp now);

} // namespace bt::sources::cdevents

namespace bt::sources {

/// `POST /webhooks/cdevents` (`Authorization: Bearer <sources.cdevents.token>`).
/// Loads the schemas from `cfg.schemas` (empty: those that come with buildtrack);
/// throws std::runtime_error when one cannot be read.
std::unique_ptr<source> make_cdevents_source(const config::cdevents_config& cfg);

} // namespace bt::sources
