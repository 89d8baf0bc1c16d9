#pragma once

#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

#include "store/store.hpp"

namespace bt::store {

/// A store that lives and dies with the process: for tests and throwaway runs.
/// Its journal keeps nothing; appends are "durable" at once.
class memory_store final : public store {
public:
  std::string_view kind() const override { return "memory"; }
  void append(const std::vector<model::envelope>& events, append_done done) override;
  std::string journal_mark() const override { return {}; }
  bool write(const snapshot& s) override;
  bool erase(const std::vector<model::build_key>& keys) override;
  std::optional<model::build> load(const model::build_key& key, bool& failed) override;
  bool for_each(const std::function<void(const model::build&)>& visit) override;
  bool load_streaks(std::optional<model::streak_book>& out) override;
  bool load_relays(relay_inputs& out) override;
  std::optional<std::size_t> replay(const std::function<void(model::envelope)>&) override {
    return 0;
  }
  bool outbox_add(std::span<const outbox_record> records,
                  std::vector<std::vector<std::string>>& admitted) override;
  bool outbox_apply(std::span<const outbox_change> changes) override;
  bool outbox_load(std::vector<std::pair<std::string, std::string>>& out) override;
  bool notified(std::unordered_map<std::string, build_notices>& out) override;
  std::optional<std::string> message_ref(const model::build_key& build, const std::string& sink,
                                         bool& failed) override;
  std::optional<std::vector<published>>
  exchange_publish(const std::string& exchange, std::span<const exchange_publication> messages,
                   std::size_t backlog) override;
  std::optional<std::vector<exchange_message>>
  exchange_read(const std::string& exchange, const std::string& after, std::size_t count) override;
  std::optional<backlog_span> exchange_span(const std::string& exchange) override;
  bool ready() const override { return true; }

  /// The dead-letter list, oldest first (tests, debugging).
  std::vector<std::string> dead_letters() const {
    std::lock_guard guard{mutex_};
    return dead_letters_;
  }

private:
  void apply(const outbox_change& c); ///< with mutex_ held

  mutable std::mutex mutex_;
  std::unordered_map<std::string, model::build> builds_;
  std::optional<model::streak_book> streaks_;
  std::map<std::string, model::envelope> relays_;
  std::unordered_map<std::string, std::string> outbox_;
  std::unordered_map<std::string, build_notices> notified_;
  /// Revisions recorded by build, then by part (outbox_record::part; "" for the
  /// build's own).
  std::unordered_map<std::string, std::unordered_map<std::string, std::uint64_t>> parts_;
  std::unordered_map<std::string, std::unordered_map<std::string, std::string>> messages_;
  std::vector<std::string> dead_letters_;
  /// An exchange's backlog: positions are `<n>-0`, n counting from 1.
  struct backlog {
    std::deque<exchange_message> messages;
    std::deque<std::string> dedup_order; ///< oldest first, trimmed with the messages
    std::unordered_map<std::string, std::string> positions; ///< by dedup id
    std::uint64_t last = 0;
    bool trimmed = false; ///< a message was let go
  };
  std::unordered_map<std::string, backlog> exchanges_;
};

} // namespace bt::store
