#include "actors/service.hpp"

#include <caf/all.hpp>

#include "actors/gateway.hpp"
#include "actors/registry.hpp"
#include "actors/streak_tracker.hpp"
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

} // namespace

struct service::impl {
  caf::actor_system_config cfg;
  caf::actor_system system;
  std::shared_ptr<registry_stats> stats = std::make_shared<registry_stats>();
  streak_tracker_actor tracker;
  registry_actor registry;
  gateway_actor gateway;

  impl(const config::config& c, std::shared_ptr<store::store> store)
    : system{configure(cfg, c)},
      tracker{system.spawn(streak_tracker, c.tracking.branches)},
      registry{system.spawn(actors::registry, std::move(store), tracker,
                            c.tracking.actor_idle_timeout, stats)},
      gateway{system.spawn(actors::gateway, registry, tracker)} {
    auto& m = support::metrics();
    m.set_gauge("buildtrack_build_actors", "Running build actors.", this,
                [s = stats] { return static_cast<double>(s->live.load()); });
    m.set_gauge("buildtrack_builds_tracked", "Builds known to the registry.", this,
                [s = stats] { return static_cast<double>(s->tracked.load()); });
  }

  ~impl() {
    support::metrics().remove_gauges(this);
    for (auto h : {caf::actor_cast<caf::actor>(gateway), caf::actor_cast<caf::actor>(registry),
                   caf::actor_cast<caf::actor>(tracker)})
      caf::anon_send_exit(h, caf::exit_reason::user_shutdown);
  }
};

service::service(const config::config& cfg, std::shared_ptr<store::store> store)
  : impl_{std::make_unique<impl>(cfg, std::move(store))} {
}

service::~service() = default;

void service::route(model::envelope e) {
  caf::anon_send(impl_->registry, std::move(e));
}

void service::get_build(const model::build_key& key, reply_fn reply) {
  caf::anon_send(impl_->gateway, caf::get_atom::value, key, http_reply{std::move(reply)});
}

void service::list_builds(const model::build_query& q, reply_fn reply) {
  caf::anon_send(impl_->gateway, caf::get_atom::value, q, http_reply{std::move(reply)});
}

void service::streaks(reply_fn reply) {
  caf::anon_send(impl_->gateway, caf::get_atom::value, streaks_atom::value,
                 http_reply{std::move(reply)});
}

} // namespace bt::actors
