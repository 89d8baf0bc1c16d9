#include "actors/service.hpp"

#include <algorithm>
#include <tuple>
#include <unordered_map>
#include <utility>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "actors/build_loader.hpp"
#include "actors/catalog.hpp"
#include "actors/exchange.hpp"
#include "actors/gateway.hpp"
#include "actors/notify_dispatcher.hpp"
#include "actors/registry.hpp"
#include "actors/snapshotter.hpp"
#include "actors/streak_tracker.hpp"
#include "actors/timeout_supervisor.hpp"
#include "actors/treeherder_publisher.hpp"
#include "notify/exchange.hpp"
#include "support/clock.hpp"
#include "support/log.hpp"
#include "support/metrics.hpp"

namespace bt::actors {
namespace {

caf::actor_system_config& configure(caf::actor_system_config& cfg, const config::config& c) {
  // CAF 0.17 names: no "caf." prefix. Sharing was steadier than stealing on 2 cores.
  cfg.set("scheduler.policy", c.actors.policy == "stealing" ? caf::atom("stealing")
                                                            : caf::atom("sharing"));
  cfg.set("scheduler.max-threads", static_cast<size_t>(c.actors.threads));
  cfg.set("scheduler.max-throughput", static_cast<size_t>(c.actors.max_throughput));
  return cfg;
}

/// What the sinks ask of builds: waits for statistics (by sink), job notices.
std::shared_ptr<const model::announce_rules> announce_rules_of(const config::config& c) {
  auto rules = std::make_shared<model::announce_rules>();
  for (auto& sink : c.notifications) {
    rules->job_finished = rules->job_finished
                          || std::find(sink.on.begin(), sink.on.end(), "job_finished")
                               != sink.on.end();
    if (sink.wait_for)
      rules->waits.emplace(sink.name,
                     model::collation_rule{sink.wait_for->statistics,
                                           std::chrono::duration_cast<std::chrono::milliseconds>(
                                             sink.wait_for->build_completed_timeout),
                                           std::chrono::duration_cast<std::chrono::milliseconds>(
                                             sink.wait_for->failure_timeout),
                                           sink.pipelines, sink.branches});
  }
  return rules;
}

/// How the dispatcher delivers: over HTTP, or for an exchange sink onto the topic
/// exchange, whose answer reads as an HTTP status (200 published, even before;
/// 503 when the store refused it, to be tried again).
transport sink_transport(exchange_actor exchange) {
  return [http = http_transport(), exchange](net::outbound_request req, std::chrono::milliseconds timeout,
                                             std::function<void(net::inbound_response)> done) {
    if (req.method != notify::publish_method)
      return http(std::move(req), timeout, std::move(done));
    std::string key, dedup;
    for (auto& [name, value] : req.headers) {
      if (name == notify::routing_key_header)
        key = value;
      else if (name == notify::dedup_header)
        dedup = value;
    }
    std::vector<store::exchange_publication> message{{std::move(dedup), std::move(key), std::move(req.body)}};
    caf::anon_send(exchange, publish_atom::value, std::move(req.url), std::move(message),
                   publish_reply{[done = std::move(done)](auto fates) {
                     net::inbound_response r;
                     r.status = fates ? 200 : 503;
                     if (!fates)
                       r.error = "the exchange's backlog could not be written";
                     done(std::move(r));
                   }});
  };
}

/// The events of one commit on their way to the registry: one message for them all
/// once the commit's callbacks ran.
struct commit_routing {
  explicit commit_routing(registry_actor to) : registry(std::move(to)) {}
  void flush() {
    if (!events.empty())
      caf::anon_send(registry, std::exchange(events, {}), tally_ptr{});
  }
  registry_actor registry;
  std::vector<model::envelope> events;
};

/// Gathers `e` in commit `c` for the registry, behind the commit's earlier events.
void route_in(store::commit& c, const registry_actor& registry, model::envelope&& e) {
  c.gather<commit_routing>(registry).events.push_back(std::move(e));
}

/// Sends what `c` gathered for the registry so far: what follows must not overtake it.
void flush_routing(store::commit& c) {
  if (auto* r = c.find<commit_routing>())
    r->flush();
}

} // namespace

struct service::impl {
  caf::actor_system_config cfg;
  caf::actor_system system;
  std::shared_ptr<registry_stats> stats = std::make_shared<registry_stats>();
  std::shared_ptr<std::atomic<std::uint64_t>> listed
    = std::make_shared<std::atomic<std::uint64_t>>(0);
  std::shared_ptr<store::store> store;
  std::shared_ptr<dispatcher_stats> notify_stats = std::make_shared<dispatcher_stats>();
  build_settings settings;
  /// Where a passed deadline goes, filled in once the registry runs; shared with the
  /// supervisor's callback so that it outlives this object if need be.
  struct deadline_route {
    std::shared_ptr<store::store> store;
    registry_actor registry;
    timeout_supervisor_actor timeouts;

    /// Journals that a build's deadline passed, then routes it (as ingest does: in
    /// journal order, so that a restart replays it in the same place). When the
    /// journal cannot take it, the deadline is set again a second later.
    void passed(const model::build_key& key, const std::string& name) const {
      std::vector<model::envelope> event{model::envelope{key, "", support::wall_clock(),
                                                         std::nullopt, model::deadline_passed{name}}};
      store->append(event, [registry = registry, timeouts = timeouts,
                            event](bool durable, store::commit& c) mutable {
        static const std::string help = "Deadlines that passed, by whether the journal took "
                                        "them (a refused one is set again a second later).";
        static auto& journaled = support::metrics().get_counter(
          "buildtrack_deadlines_passed_total", help, "journaled=\"true\"");
        static auto& refused = support::metrics().get_counter(
          "buildtrack_deadlines_passed_total", help, "journaled=\"false\"");
        (durable ? journaled : refused).inc();
        auto& e = event.front();
        if (durable) // in journal order with the commit's other events
          return route_in(c, registry, std::move(e));
        caf::anon_send(timeouts, deadline_atom::value, e.key,
                       std::get<model::deadline_passed>(e.body).name,
                       std::optional{support::wall_clock() + std::chrono::seconds{1}});
      });
    }
  };
  std::shared_ptr<deadline_route> deadlines = std::make_shared<deadline_route>();
  std::shared_ptr<std::atomic<std::uint64_t>> deadlines_held
    = std::make_shared<std::atomic<std::uint64_t>>(0);
  /// Waits for statistics not ended: each holds exactly one deadline.
  std::shared_ptr<std::atomic<std::uint64_t>> waits_pending
    = std::make_shared<std::atomic<std::uint64_t>>(0);
  timeout_supervisor_actor timeouts;
  streak_tracker_actor tracker;
  std::shared_ptr<std::atomic<std::uint64_t>> subscribers
    = std::make_shared<std::atomic<std::uint64_t>>(0);
  std::atomic<std::uint64_t> last_subscription{0};
  // Its store calls block: a thread of its own.
  exchange_actor exchange;
  std::shared_ptr<treeherder_stats> relay_stats = std::make_shared<treeherder_stats>();
  treeherder_publisher_actor relay;
  // Its store calls block: a thread of its own. Invalid when no sink is configured.
  notify_dispatcher_actor dispatcher;
  catalog_actor catalog;
  // Its store calls block: a thread of its own.
  build_loader_actor loader;
  registry_actor registry;
  gateway_actor gateway;
  snapshotter_actor snapshots;

  impl(const config::config& c, std::shared_ptr<store::store> st, treeherder_settings relay_settings)
    : system{configure(cfg, c)},
      store{std::move(st)},
      settings{c.tracking.actor_idle_timeout,
               std::make_shared<const std::vector<std::string>>(c.tracking.branches),
               model::build_limits{static_cast<size_t>(c.tracking.max_jobs_per_build),
                                   static_cast<size_t>(c.tracking.max_attempts_per_job),
                                   static_cast<size_t>(c.tracking.max_statistics_per_build),
                                   static_cast<size_t>(c.tracking.max_messages_per_build)},
               announce_rules_of(c), c.store.abandoned_after},
      timeouts{system.spawn(timeout_supervisor,
                            timeout_settings{support::wall_clock,
                                             [route = deadlines](const model::build_key& key,
                                                                 const std::string& name,
                                                                 model::timestamp) {
                                               route->passed(key, name);
                                             },
                                             /*held=*/true, deadlines_held, waits_pending,
                                             std::string{model::collation_deadline}})},
      tracker{system.spawn(streak_tracker, c.tracking.branches)},
      exchange{system.spawn<caf::detached>(actors::exchange, store,
                                           static_cast<std::size_t>(c.exchanges.backlog), subscribers)},
      relay{system.spawn(treeherder_publisher, std::move(relay_settings), exchange, relay_stats)},
      dispatcher{c.notifications.empty()
                   ? notify_dispatcher_actor{}
                   : system.spawn<caf::detached>(notify_dispatcher, store, c.notifications,
                                                 c.people, sink_transport(exchange), notify_stats)},
      // Spawned with an argument: CAF 0.17 dereferences a null argument tuple when a
      // function-based actor takes none (UBSan reports it).
      catalog{system.spawn(actors::catalog, listed, exchange)},
      loader{system.spawn<caf::detached>(build_loader, store)},
      registry{system.spawn(actors::registry, loader, build_peers{tracker, catalog, dispatcher, timeouts},
                            settings, stats)},
      gateway{system.spawn(actors::gateway, registry, catalog, tracker, dispatcher)},
      // Its store calls block: a thread of its own, not a scheduler worker.
      snapshots{system.spawn<caf::detached>(
        snapshotter, store, registry, tracker, catalog, relay,
        snapshot_policy{c.store.snapshot_interval, c.store.retention, c.store.abandoned_after,
                        static_cast<std::size_t>(c.store.snapshot_max_builds),
                        c.store.snapshot_delay})} {
    // Before any deadline can be set: build actors and recovery set them later.
    *deadlines = deadline_route{store, registry, timeouts};
    auto& m = support::metrics();
    m.set_gauge("buildtrack_build_actors", "Running build actors.", this,
                [s = stats] { return static_cast<double>(s->live.load()); });
    m.set_gauge("buildtrack_builds_tracked", "Builds known to the registry.", this,
                [s = stats] { return static_cast<double>(s->tracked.load()); });
    m.set_gauge("buildtrack_builds_listed", "Builds in the listing index (GET /api/v1/builds).",
                this, [l = listed] { return static_cast<double>(l->load()); });
    m.set_gauge("buildtrack_deadlines", "Deadlines the timeout supervisor holds.", this,
                [d = deadlines_held] { return static_cast<double>(d->load()); });
    m.set_gauge("buildtrack_collation_waits", "Sinks' waits for statistics not ended yet.", this,
                [w = waits_pending] { return static_cast<double>(w->load()); });
    m.set_gauge("buildtrack_exchange_subscribers", "WebSocket subscribers of the topic exchanges.",
                this, [s = subscribers] { return static_cast<double>(s->load()); });
    m.set_gauge("buildtrack_treeherder_pending",
                "Taskcluster events accepted whose job messages are not published yet.", this,
                [s = relay_stats] { return static_cast<double>(s->pending.load()); });
    m.set_gauge("buildtrack_builds_dirty", "Builds changed since the last snapshot.", this,
                [s = stats] { return static_cast<double>(s->dirty.load()); });
    m.set_gauge("buildtrack_unlinked_events",
                "Events that name their build by id (CDEvents taskRuns) waiting for it to show up.",
                this, [s = stats] { return static_cast<double>(s->unlinked.load()); });
    for (auto& sink : c.notifications)
      support::log(support::log_level::info, "notification sink",
                   {{"name", sink.name}, {"kind", sink.kind}, {"on", sink.on},
                    {"branches", sink.branches}, {"pipelines", sink.pipelines}});
    m.set_gauge("buildtrack_notification_outbox", "Notifications not yet delivered or dead-lettered.",
                this, [s = notify_stats] { return static_cast<double>(s->outbox.load()); });
  }

  ~impl() {
    support::metrics().remove_gauges(this);
    for (auto h : {caf::actor_cast<caf::actor>(snapshots), caf::actor_cast<caf::actor>(gateway),
                   caf::actor_cast<caf::actor>(registry), caf::actor_cast<caf::actor>(loader),
                   caf::actor_cast<caf::actor>(catalog), caf::actor_cast<caf::actor>(tracker),
                   caf::actor_cast<caf::actor>(dispatcher), caf::actor_cast<caf::actor>(timeouts),
                   caf::actor_cast<caf::actor>(relay), caf::actor_cast<caf::actor>(exchange)})
      if (h)
        caf::anon_send_exit(h, caf::exit_reason::user_shutdown);
  }
};

service::service(const config::config& cfg, std::shared_ptr<store::store> store)
  // Read before any actor runs: a schema that does not load stops the start.
  : impl_{std::make_unique<impl>(cfg, std::move(store), treeherder_settings_of(cfg))} {
}

service::~service() = default;

std::optional<std::string> service::recover() {
  auto& st = *impl_->store;
  std::optional<model::streak_book> book;
  if (!st.load_streaks(book))
    return "the stored streaks could not be read";
  if (book)
    caf::anon_send(impl_->tracker, caf::put_atom::value, std::move(*book));
  // Inputs the journal no longer holds that were not published yet; they come before
  // the journal's, as they came before.
  relay_inputs relayed;
  if (!st.load_relays(relayed))
    return "the relays' pending inputs could not be read";
  auto relays_kept = relayed.size();
  caf::anon_send(impl_->relay, caf::put_atom::value, std::move(relayed));
  std::unordered_map<std::string, store::build_notices> notified;
  if (impl_->dispatcher && !st.notified(notified))
    return "the notification outbox could not be read";
  // The catalog and the registry take the recovered builds in chunks while the rest
  // are read: one vector of a million summaries cost ~15 % of a restart in moving
  // them as it grew (and in the page faults of each new copy). Sent from `self`, so
  // that they arrive before the last chunk, whose answer says all were taken.
  caf::scoped_actor self{impl_->system};
  constexpr std::size_t chunk = 4096;
  std::vector<model::build_summary> index;
  std::vector<model::build_key> keys;
  index.reserve(chunk);
  keys.reserve(chunk);
  std::size_t builds = 0;
  auto hand_over = [&] {
    self->send(impl_->catalog, caf::put_atom::value, std::exchange(index, {}));
    self->send(impl_->registry, caf::put_atom::value, std::exchange(keys, {}));
    index.reserve(chunk);
    keys.reserve(chunk);
  };
  std::vector<model::finished_effect> judge;
  std::vector<model::rollup_effect> roll_up;
  std::size_t noticed_again = 0, jobs_noticed_again = 0;
  const auto& tracked = *impl_->settings.tracked_branches;
  std::size_t deadlines = 0;
  auto recorded_for = [&](const std::string& key) {
    auto seen = notified.find(key);
    return seen == notified.end() ? store::build_notices{} : seen->second;
  };
  auto take = [&](model::build_summary&& summary) {
    ++builds;
    keys.push_back(summary.key);
    index.push_back(std::move(summary));
    if (index.size() == chunk)
      hand_over();
  };
  // What a build read in full owes, besides its summary: deadlines, notices, verdicts
  // and roll-ups that a crash may have lost.
  auto look_at = [&](const model::build& b) {
    take(model::summarize(b, &impl_->settings.announce->waits));
    // Deadlines come back from the stored states; the journal tail moves them again
    // as it is replayed (a deadline already passed goes off at once).
    for (auto& [name, due] : model::deadlines(b, impl_->settings.announce->waits, support::wall_clock())) {
      caf::anon_send(impl_->timeouts, deadline_atom::value, b.key, name,
                     std::optional<model::timestamp>{due});
      ++deadlines;
    }
    // A release decided before the crash may not have reached the outbox; the outbox
    // takes each (sink, build, revision) once.
    if (impl_->dispatcher)
      for (auto& n : model::due_releases(b, {}, tracked))
        caf::anon_send(impl_->dispatcher, std::move(n));
    // A verdict, a roll-up or a notice may have been lost with the process that
    // announced it; announcing again is idempotent. A current verdict shows the
    // verdict was not lost, a notice recorded for this revision likewise.
    auto recorded = recorded_for(b.key.str());
    if (auto n = model::due_notice(b, recorded.revision, tracked); n && impl_->dispatcher) {
      caf::anon_send(impl_->dispatcher, std::move(*n));
      ++noticed_again;
    }
    // Likewise a job notice the stored state announced but the outbox never recorded:
    // the journal's tail no longer holds the event that announced it.
    if (impl_->dispatcher)
      for (auto& n : model::unrecorded_job_notices(b, recorded.jobs)) {
        caf::anon_send(impl_->dispatcher, std::move(n));
        ++jobs_noticed_again;
      }
    bool settled = model::settled(b, tracked);
    for (auto& effect : model::announcements(b)) {
      if (auto* f = std::get_if<model::finished_effect>(&effect); f && !settled)
        judge.push_back(std::move(*f));
      else if (auto* r = std::get_if<model::rollup_effect>(&effect))
        roll_up.push_back(std::move(*r));
    }
  };
  // Each build's record says whether the build itself must be read: most are only
  // listed (a restart reads a million records, not a million builds).
  std::vector<model::build_key> to_read;
  bool notifying = static_cast<bool>(impl_->dispatcher);
  bool read = st.for_each_record([&](model::recovery_record&& r) {
    auto recorded = notified.empty() ? store::build_notices{} : recorded_for(r.summary.key.str());
    switch (model::need_of(r, recorded.revision, recorded.jobs, notifying, tracked)) {
      case model::recovery_need::read:
        to_read.push_back(std::move(r.summary.key));
        return;
      case model::recovery_need::judge:
        judge.push_back(model::finished_of(r));
        break;
      case model::recovery_need::index:
        break;
    }
    take(std::move(r.summary));
  });
  read = read && st.load_each(to_read, look_at);
  if (!read)
    return "the stored builds could not be read";
  // Taken, not only sent, before the service says it is ready: with a million builds
  // the catalog needs seconds, and a listing meanwhile would miss builds.
  std::optional<std::string> refused;
  auto taken = [&](caf::error& err) { refused = "recovered builds not taken: " + caf::to_string(err); };
  self->request(impl_->catalog, caf::infinite, caf::put_atom::value, std::move(index))
    .receive([] {}, taken);
  self->request(impl_->registry, caf::infinite, caf::put_atom::value, std::move(keys))
    .receive([] {}, taken);
  if (refused)
    return refused;
  // Builds of one streak are judged in number order, as they finished; the store
  // visits them in no particular order. Each verdict is in before the journal tail
  // is replayed, so the tracker sees them first.
  std::sort(judge.begin(), judge.end(), [](auto& a, auto& b) {
    return std::tie(a.key.source, a.key.pipeline, a.branch, a.number)
           < std::tie(b.key.source, b.key.pipeline, b.branch, b.number);
  });
  for (auto& f : judge)
    self->request(impl_->tracker, caf::infinite, f)
      .receive(
        [&](std::optional<model::streak_result> verdict) {
          if (verdict)
            route(model::envelope{f.key, "", support::wall_clock(), std::nullopt, *verdict});
        },
        [&](caf::error& err) {
          support::log(support::log_level::error, "streak tracker failed",
                       {{"build", f.key.str()}, {"reason", caf::to_string(err)}});
        });
  for (auto& r : roll_up)
    route(model::envelope{r.parent, "", support::wall_clock(), std::nullopt, std::move(r.job)});
  // One event at a time, each answered once applied: effects then reach the
  // streak tracker in journal order, as they did when the events first came.
  auto replayed = st.replay([&](model::envelope e) {
    if (std::holds_alternative<model::relayed>(e.body))
      return route(std::move(e));
    self->request(impl_->registry, caf::infinite, replay_atom::value, std::move(e))
      .receive([](bool) {},
               [](caf::error& err) {
                 support::log(support::log_level::error, "replayed event not applied",
                              {{"reason", caf::to_string(err)}});
               });
  });
  if (!replayed)
    return "the journal could not be read";
  // Now that the journal's order is restored, deadlines (passed ones at once) go off.
  caf::anon_send(impl_->timeouts, start_atom::value);
  support::log(support::log_level::info, "recovered",
               {{"builds", builds}, {"read_in_full", to_read.size()},
                {"judged_again", judge.size()}, {"noticed_again", noticed_again},
                {"job_notices_again", jobs_noticed_again},
                {"rolled_up_again", roll_up.size()}, {"deadlines", deadlines},
                {"relay_inputs_kept", relays_kept},
                {"journal_replayed", *replayed}});
  return std::nullopt;
}

void service::route(model::envelope e) {
  if (std::holds_alternative<model::relayed>(e.body))
    return caf::anon_send(impl_->relay, std::move(e));
  caf::anon_send(impl_->registry, std::move(e));
}

void service::route(model::envelope e, store::commit& c) {
  if (std::holds_alternative<model::relayed>(e.body))
    return caf::anon_send(impl_->relay, std::move(e));
  route_in(c, impl_->registry, std::move(e));
}

void service::route(std::vector<model::envelope> events,
                    std::function<void(std::size_t duplicates)> applied, store::commit& c) {
  flush_routing(c);
  auto tally = std::make_shared<ingest_tally>();
  tally->done = std::move(applied);
  caf::anon_send(impl_->registry, std::move(events), std::move(tally));
}

void service::command(model::envelope e, reply_fn reply, store::commit& c) {
  flush_routing(c);
  auto tally = std::make_shared<ingest_tally>();
  auto* outcome = &tally->command;
  tally->done = [outcome, reply = std::move(reply)](std::size_t) {
    if (!*outcome)
      return reply(500, nlohmann::json{{"error", {{"code", "internal"},
                                                  {"message", "the build failed to answer"}}}}
                          .dump());
    auto& o = **outcome;
    if (!o.known)
      return reply(404, nlohmann::json{{"error", {{"code", "not_found"},
                                                  {"message", "no such build"}}}}
                          .dump());
    auto state = std::string{model::to_string(o.state)};
    if (!o.applied)
      return reply(409, nlohmann::json{{"error", {{"code", "conflict"},
                                                  {"message", o.reason},
                                                  {"state", state}}}}
                          .dump());
    reply(200, nlohmann::json{{"state", state}, {"generation", o.generation}}.dump());
  };
  std::vector<model::envelope> events;
  events.push_back(std::move(e));
  caf::anon_send(impl_->registry, std::move(events), std::move(tally));
}

void service::get_build(const model::build_key& key, reply_fn reply) {
  caf::anon_send(impl_->gateway, caf::get_atom::value, key, http_reply{std::move(reply)});
}

void service::list_builds(const model::build_query& q, reply_fn reply) {
  caf::anon_send(impl_->gateway, caf::get_atom::value, q, http_reply{std::move(reply)});
}

void service::overview(const model::build_query& q, std::size_t per_branch, reply_fn reply) {
  caf::anon_send(impl_->gateway, caf::get_atom::value, q, per_branch, http_reply{std::move(reply)});
}

void service::notifications(const model::build_key& key, reply_fn reply) {
  caf::anon_send(impl_->gateway, caf::get_atom::value, notify_atom::value, key, http_reply{std::move(reply)});
}

void service::streaks(reply_fn reply) {
  caf::anon_send(impl_->gateway, caf::get_atom::value, streaks_atom::value,
                 http_reply{std::move(reply)});
}

void service::publish(std::string exchange, std::vector<store::exchange_publication> messages,
                      publish_fn done) {
  caf::anon_send(impl_->exchange, publish_atom::value, std::move(exchange), std::move(messages),
                 publish_reply{std::move(done)});
}

std::uint64_t service::subscribe(std::string exchange, std::vector<std::string> bindings,
                                 std::string since, std::shared_ptr<support::push_channel> channel) {
  auto id = ++impl_->last_subscription;
  caf::anon_send(impl_->exchange, subscribe_atom::value,
                 subscription{id, std::move(exchange), std::move(bindings), std::move(since),
                              std::move(channel)});
  return id;
}

void service::unsubscribe(std::uint64_t id) {
  caf::anon_send(impl_->exchange, forget_atom::value, id);
}

} // namespace bt::actors
