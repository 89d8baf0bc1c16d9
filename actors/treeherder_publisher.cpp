#include "actors/treeherder_publisher.hpp"

#include <algorithm>
#include <array>
#include <stdexcept>

#include <caf/all.hpp>

#include "support/crypto.hpp"
#include "support/log.hpp"
#include "support/metrics.hpp"

#ifndef BT_SCHEMA_DIR
#error "BT_SCHEMA_DIR names the folder of the schemas that come with buildtrack"
#endif

namespace bt::actors {
namespace {

namespace th = sources::treeherder;
using nlohmann::json;
using self_ptr = treeherder_publisher_actor::stateful_pointer<treeherder_publisher_state>;

support::counter& skipped(th::skip_reason r) {
  static auto counters = [] {
    std::array<support::counter*, static_cast<std::size_t>(th::skip_reason::unreadable_task) + 1> out{};
    for (std::size_t i = 0; i < out.size(); ++i)
      out[i] = &support::metrics().get_counter(
        "buildtrack_treeherder_skipped_total",
        "Taskcluster events, or job messages of theirs, acknowledged but not published, by reason.",
        "reason=\"" + std::string{th::to_string(static_cast<th::skip_reason>(i))} + "\"");
    return out;
  }();
  return *counters[static_cast<std::size_t>(r)];
}

/// Reads of the Taskcluster queue, by what was read and whether it worked.
support::counter& queue_reads(const char* what, bool worked) {
  return support::metrics().get_counter("buildtrack_taskcluster_queue_reads_total",
                                        "Reads of the Taskcluster queue by kind and result.",
                                        std::string{"kind=\""} + what + "\",result=\""
                                          + (worked ? "ok" : "failed") + "\"");
}

/// Looks ups of the task definition cache, by whether it held the task.
support::counter& cache_lookups(bool hit) {
  static auto& hits = support::metrics().get_counter(
    "buildtrack_taskcluster_task_cache_total", "Task definition cache lookups by result.",
    R"(result="hit")");
  static auto& misses = support::metrics().get_counter(
    "buildtrack_taskcluster_task_cache_total", "Task definition cache lookups by result.",
    R"(result="miss")");
  return hit ? hits : misses;
}

/// Inputs done with, by how: their job messages published, nothing to publish, or
/// the same message already on its way.
support::counter& done(const char* how) {
  return support::metrics().get_counter(
    "buildtrack_treeherder_events_total",
    "Taskcluster events the Treeherder publisher is done with, by how.",
    std::string{"result=\""} + how + "\"");
}

void skip(const relay_input& in, const th::skip& why) {
  skipped(why.reason).inc();
  support::log(support::log_level::warn, "task event not published on the exchange",
               {{"task", in.task_id}, {"event", th::to_string(in.event)},
                {"reason", th::to_string(why.reason)}, {"detail", why.detail}});
}

std::shared_ptr<const json> cached_task(treeherder_publisher_state& st, const std::string& task_id) {
  auto it = st.cached.find(task_id);
  cache_lookups(it != st.cached.end()).inc();
  if (it == st.cached.end())
    return nullptr;
  st.cache.splice(st.cache.begin(), st.cache, it->second);
  return it->second->second;
}

void remember(treeherder_publisher_state& st, const std::string& task_id,
              std::shared_ptr<const json> task) {
  if (auto it = st.cached.find(task_id); it != st.cached.end()) {
    st.cache.erase(it->second);
    st.cached.erase(it);
  }
  st.cache.emplace_front(task_id, std::move(task));
  st.cached[task_id] = st.cache.begin();
  while (st.cache.size() > st.settings.task_cache) {
    st.cached.erase(st.cache.back().first);
    st.cache.pop_back();
  }
}

void count_pending(treeherder_publisher_state& st) {
  st.stats->pending.store(st.pending.size(), std::memory_order_relaxed);
}

void work(self_ptr self, const std::string& task_id);

/// The task's first input is done with (`how`, for metrics): the next one's turn.
void finish(self_ptr self, const std::string& task_id, const char* how) {
  done(how).inc();
  auto& st = self->state;
  auto it = st.lanes.find(task_id);
  auto& lane = it->second;
  auto id = std::move(lane.inputs.front());
  lane.inputs.pop_front();
  st.pending.erase(id);
  st.changed.insert(std::move(id));
  count_pending(st);
  if (lane.inputs.empty())
    return void(st.lanes.erase(it));
  // The task's definition stays for its next input; what was read for this one goes.
  lane.step = task_lane::ready;
  lane.listed = false;
  lane.artifacts.clear();
  lane.listings_due = 0;
  lane.failures = 0;
  work(self, task_id);
}

/// The step failed: the task's first input is tried again after a wait that doubles
/// with each failure in a row.
void retry_later(self_ptr self, const std::string& task_id) {
  auto& st = self->state;
  auto& lane = st.lanes.at(task_id);
  lane.step = task_lane::waiting;
  auto doubling = std::min<std::uint32_t>(lane.failures++, 16);
  auto wait = std::min(st.settings.longest_wait, st.settings.first_wait * (1u << doubling));
  lane.wait = ++st.waits;
  self->delayed_send(self, wait, retry_atom::value, task_id, lane.wait);
}

/// Takes the task's first input as far as it can go now: its task's definition, its
/// runs' artifact listings, then its job messages onto the exchange.
void work(self_ptr self, const std::string& task_id) {
  auto& st = self->state;
  auto it = st.lanes.find(task_id);
  if (it == st.lanes.end() || it->second.inputs.empty() || it->second.step != task_lane::ready)
    return;
  auto& lane = it->second;
  auto& in = st.pending.at(lane.inputs.front());
  auto handle = caf::actor_cast<treeherder_publisher_actor>(self);
  if (!lane.task) {
    // Real queue messages carry `task: {tags}` only; a forwarder may put the whole
    // definition there, which has its routes and metadata.
    auto embedded = in.payload.find("task");
    if (embedded != in.payload.end() && embedded->is_object() && embedded->contains("routes")
        && embedded->contains("metadata")) {
      lane.task = std::make_shared<const json>(*embedded);
    } else if (auto hit = cached_task(st, task_id)) {
      lane.task = std::move(hit);
    } else {
      lane.step = task_lane::reading_task;
      st.queue->task(task_id, [handle, task_id](net::taskcluster_queue::result<json> r) {
        task_read read{task_id, nullptr, std::move(r.error), r.retry};
        if (r.value)
          read.task = std::make_shared<const json>(std::move(*r.value));
        caf::anon_send(handle, std::move(read));
      });
      return;
    }
  }
  if (!lane.listed) {
    auto runs = th::runs_to_list(in.event, in.payload);
    if (!runs.empty()) {
      lane.step = task_lane::listing;
      lane.listings_due = runs.size();
      for (auto run : runs)
        st.queue->artifacts(task_id, run, [handle, task_id, run](auto r) {
          // A listing that failed on a later page is still a failed listing: no links.
          artifacts_read read{task_id, run, std::nullopt};
          if (r.error.empty())
            read.names = std::move(r.value);
          caf::anon_send(handle, std::move(read));
        });
      return;
    }
    lane.listed = true;
  }
  auto mapped = th::map_task_event(in.event, in.payload, *lane.task, lane.artifacts, st.mapping);
  for (auto& why : mapped.skipped)
    skip(in, why);
  if (mapped.jobs.empty())
    return finish(self, task_id, "skipped");
  std::vector<store::exchange_publication> messages;
  messages.reserve(mapped.jobs.size());
  for (auto& job : mapped.jobs)
    messages.push_back({std::move(job.id), std::move(job.routing_key), job.payload.dump()});
  lane.step = task_lane::publishing;
  self->request(st.exchange, caf::infinite, publish_atom::value, st.settings.exchange, std::move(messages))
    .then([=](std::vector<store::published>&) { finish(self, task_id, "published"); },
          [=](caf::error& err) {
            support::log(support::log_level::warn, "job messages not published yet; trying again",
                         {{"task", task_id}, {"reason", caf::to_string(err)}});
            retry_later(self, task_id);
          });
}

/// A journaled queue message, once: read, then queued behind its task's earlier ones.
/// A message whose own routes already show it is not for Treeherder never waits for
/// its task's definition.
void take(self_ptr self, std::string id, model::envelope input) {
  auto& st = self->state;
  if (st.pending.contains(id))
    return done("duplicate").inc();
  // Whatever becomes of it, the store's copy must follow (a recovered input).
  st.changed.insert(id);
  auto* relayed = std::get_if<model::relayed>(&input.body);
  auto doc = relayed ? json::parse(relayed->message, nullptr, false) : json{};
  auto text = [](const json& j, const char* name) {
    auto it = j.is_object() ? j.find(name) : j.end();
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string{};
  };
  auto event = th::event_of_exchange(text(doc, "exchange"));
  auto payload = doc.is_object() ? doc.value("payload", json{}) : json{};
  auto task_id = text(payload.is_object() ? payload.value("status", json{}) : json{}, "taskId");
  if (!event || task_id.empty()) {
    support::log(support::log_level::error, "relayed input is not a queue task message; dropped",
                 {{"id", id}});
    return done("skipped").inc();
  }
  relay_input in{id, std::move(input), *event, std::move(task_id), std::move(payload)};
  if (auto routes = doc.find("routes"); routes != doc.end() && routes->is_array() && !routes->empty()) {
    std::vector<std::string> names;
    for (auto& r : *routes)
      if (r.is_string())
        names.push_back(r.get<std::string>());
    auto route = th::parse_route(names, st.settings.route_prefix);
    if (auto* why = std::get_if<th::skip>(&route)) {
      skip(in, *why);
      return done("skipped").inc();
    }
  }
  auto& lane = st.lanes[in.task_id];
  lane.inputs.push_back(id);
  auto task = in.task_id;
  st.pending.emplace(std::move(id), std::move(in));
  count_pending(st);
  if (lane.inputs.size() == 1)
    work(self, task);
}

/// The lane of `task_id` when its first input is at `step`; null otherwise (an answer
/// that came too late to matter).
task_lane* lane_at(treeherder_publisher_state& st, const std::string& task_id, task_lane::step_t step) {
  auto it = st.lanes.find(task_id);
  return it == st.lanes.end() || it->second.step != step ? nullptr : &it->second;
}

} // namespace

treeherder_settings treeherder_settings_of(const config::config& cfg) {
  auto& tc = cfg.taskcluster;
  auto folder = tc.schemas.empty() ? std::string{BT_SCHEMA_DIR} : tc.schemas;
  auto load = [&](const char* file) {
    std::string error;
    auto schema = support::json_schema::load(folder + "/" + file, error);
    if (!schema)
      throw std::runtime_error{"sources.taskcluster.schemas: " + error};
    return std::make_shared<const support::json_schema>(std::move(*schema));
  };
  treeherder_settings s;
  s.exchange = tc.exchange;
  s.route_prefix = tc.route_prefix;
  s.root_url = tc.root_url;
  s.job_schema = load("pulse-job.schema.yml");
  s.config_schema = load("task-treeherder-config.schema.yml");
  s.task_cache = static_cast<std::size_t>(tc.task_cache);
  return s;
}

treeherder_publisher_actor::behavior_type
treeherder_publisher(treeherder_publisher_actor::stateful_pointer<treeherder_publisher_state> self,
                     treeherder_settings settings, exchange_actor exchange,
                     std::shared_ptr<treeherder_stats> stats) {
  auto& st = self->state;
  st.settings = std::move(settings);
  st.mapping = th::settings{st.settings.route_prefix, st.settings.root_url,
                            st.settings.config_schema.get(), st.settings.job_schema.get()};
  st.exchange = std::move(exchange);
  st.stats = std::move(stats);
  st.client = std::make_unique<net::http_client>();
  st.queue = std::make_unique<net::taskcluster_queue>(st.settings.root_url, *st.client,
                                                      st.settings.queue_timeout);
  return {
    [=](model::envelope& e) {
      auto* relayed = std::get_if<model::relayed>(&e.body);
      auto id = support::sha256_hex(relayed ? relayed->message : std::string{});
      take(self, std::move(id), std::move(e));
    },
    [=](caf::put_atom, relay_inputs& inputs) {
      for (auto& [id, input] : inputs)
        take(self, std::move(id), std::move(input));
    },
    [=](snapshot_atom) {
      auto& st = self->state;
      std::vector<store::relay_change> out;
      out.reserve(st.changed.size());
      for (auto& id : st.changed) {
        auto it = st.pending.find(id);
        out.push_back({id, it == st.pending.end() ? std::nullopt : std::optional{it->second.input}});
      }
      st.taken.merge(st.changed);
      st.changed.clear();
      return out;
    },
    [=](snapshot_atom, bool written) {
      auto& st = self->state;
      if (!written)
        st.changed.merge(st.taken);
      st.taken.clear();
    },
    [=](rewrite_atom) {
      auto& st = self->state;
      for (auto& [id, in] : st.pending)
        st.changed.insert(id);
    },
    [=](task_read& r) {
      auto& st = self->state;
      queue_reads("task", r.task != nullptr).inc();
      auto* lane = lane_at(st, r.task_id, task_lane::reading_task);
      if (!lane)
        return;
      if (r.task) {
        remember(st, r.task_id, r.task);
        lane->task = std::move(r.task);
        lane->failures = 0;
        lane->step = task_lane::ready;
        return work(self, r.task_id);
      }
      if (r.retry) {
        support::log(support::log_level::warn, "task definition not read; trying again",
                     {{"task", r.task_id}, {"reason", r.error}});
        return retry_later(self, r.task_id);
      }
      skip(st.pending.at(lane->inputs.front()), {th::skip_reason::unreadable_task, r.error});
      finish(self, r.task_id, "skipped");
    },
    [=](artifacts_read& r) {
      auto& st = self->state;
      queue_reads("artifacts", r.names.has_value()).inc();
      auto* lane = lane_at(st, r.task_id, task_lane::listing);
      if (!lane)
        return;
      if (r.names)
        lane->artifacts[r.run] = std::move(*r.names);
      if (--lane->listings_due > 0)
        return;
      lane->listed = true;
      lane->step = task_lane::ready;
      work(self, r.task_id);
    },
    [=](retry_atom, const std::string& task_id, std::uint64_t wait) {
      auto* lane = lane_at(self->state, task_id, task_lane::waiting);
      if (!lane || lane->wait != wait)
        return;
      lane->step = task_lane::ready;
      work(self, task_id);
    },
  };
}

} // namespace bt::actors
