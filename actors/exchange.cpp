#include "actors/exchange.hpp"

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "model/topic.hpp"
#include "support/log.hpp"
#include "support/metrics.hpp"

namespace bt::actors {
namespace {

using self_ptr = exchange_actor::stateful_pointer<exchange_state>;

/// Backlog entries read per round trip while a subscriber catches up.
constexpr std::size_t replay_page = 256;

bool wants(const subscription& s, const std::string& routing_key) {
  for (auto& b : s.bindings)
    if (model::topic_matches(b, routing_key))
      return true;
  return false;
}

/// Whether backlog position `a` (`<ms>-<seq>`, or `<ms>`) comes before `b`.
bool position_before(const std::string& a, const std::string& b) {
  auto parts = [](const std::string& p) {
    auto dash = p.find('-');
    return std::pair{std::strtoull(p.c_str(), nullptr, 10),
                     dash == std::string::npos ? 0ull : std::strtoull(p.c_str() + dash + 1, nullptr, 10)};
  };
  return parts(a) < parts(b);
}

/// Offers the backlog after `s.since` to a new subscriber, first telling it when
/// messages after its position were already let go. What its queue cannot take is
/// counted in its gap, and its note tells where to resume.
void replay(self_ptr self, const subscription& s) {
  auto unread = [&] {
    support::log(support::log_level::error, "exchange backlog not read; subscriber closed",
                 {{"exchange", s.exchange}});
    s.channel->close();
  };
  auto span = self->state.store->exchange_span(s.exchange);
  if (!span)
    return unread();
  if (span->trimmed && (span->oldest.empty() || position_before(s.since, span->oldest)))
    s.channel->offer(nlohmann::json{{"truncated", true}, {"since", s.since}, {"oldest", span->oldest}}.dump(),
                     s.since);
  auto after = s.since;
  for (;;) {
    auto page = self->state.store->exchange_read(s.exchange, after, replay_page);
    if (!page)
      return unread();
    for (auto& m : *page)
      if (wants(s, m.routing_key))
        s.channel->offer(exchange_frame(s.exchange, m), m.id);
    if (page->size() < replay_page)
      return;
    after = page->back().id;
  }
}

/// Writes `messages` to the backlog, then offers the new ones to the subscribers
/// whose bindings match. Nothing when the store refused them.
std::optional<std::vector<store::published>>
publish(self_ptr self, const std::string& name, const std::vector<store::exchange_publication>& messages) {
  auto& st = self->state;
  auto fates = st.store->exchange_publish(name, messages, st.backlog);
  if (!fates)
    return std::nullopt;
  std::size_t fresh = 0;
  for (std::size_t i = 0; i < messages.size() && i < fates->size(); ++i) {
    if (!(*fates)[i].fresh)
      continue;
    ++fresh;
    store::exchange_message m{(*fates)[i].id, messages[i].routing_key, messages[i].payload};
    std::string frame;
    for (auto& [id, s] : st.subscribers)
      if (s.exchange == name && wants(s, m.routing_key)) {
        if (frame.empty())
          frame = exchange_frame(name, m);
        s.channel->offer(frame, m.id);
      }
  }
  support::metrics()
    .get_counter("buildtrack_exchange_published_total",
                 "Messages published on a topic exchange (each once), by exchange.",
                 "exchange=\"" + support::label_value(name) + "\"")
    .inc(fresh);
  return fates;
}

} // namespace

std::string exchange_frame(const std::string& exchange, const store::exchange_message& m) {
  std::string frame = R"({"exchange":)";
  frame += nlohmann::json(exchange).dump();
  frame += R"(,"routingKey":)";
  frame += nlohmann::json(m.routing_key).dump();
  frame += R"(,"payload":)";
  frame += m.payload;
  frame += R"(,"id":)";
  frame += nlohmann::json(m.id).dump();
  frame += '}';
  return frame;
}

exchange_actor::behavior_type exchange(exchange_actor::stateful_pointer<exchange_state> self,
                                       std::shared_ptr<store::store> store, std::size_t backlog,
                                       std::shared_ptr<std::atomic<std::uint64_t>> subscribed) {
  self->state.store = std::move(store);
  self->state.backlog = backlog;
  self->state.subscribed = std::move(subscribed);
  return {
    [=](publish_atom, const std::string& name, const std::vector<store::exchange_publication>& messages)
      -> caf::result<std::vector<store::published>> {
      if (auto fates = publish(self, name, messages))
        return std::move(*fates);
      return caf::make_error(errc::store_unavailable);
    },
    [=](publish_atom, const std::string& name, const std::vector<store::exchange_publication>& messages,
        const publish_reply& reply) { reply(publish(self, name, messages)); },
    [=](subscribe_atom, subscription& s) {
      auto& st = self->state;
      if (!s.since.empty())
        replay(self, s);
      auto id = s.id;
      st.subscribers.emplace(id, std::move(s));
      st.subscribed->store(st.subscribers.size(), std::memory_order_relaxed);
    },
    [=](forget_atom, std::uint64_t id) {
      auto& st = self->state;
      st.subscribers.erase(id);
      st.subscribed->store(st.subscribers.size(), std::memory_order_relaxed);
    },
  };
}

} // namespace bt::actors
