#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "store/redis_client.hpp"
#include "store/store.hpp"

namespace bt::store {

/// Settings of the Redis store.
struct redis_store_config {
  redis_endpoint endpoint;
  std::string key_prefix = "buildtrack:";
  std::chrono::milliseconds timeout{1000};    ///< per round trip
  std::chrono::milliseconds max_backoff{1000}; ///< between reconnect attempts
  /// How long the writer may go without hearing from Redis before it asks: readiness
  /// follows Redis within about this plus `timeout`, with no traffic at all.
  std::chrono::milliseconds probe_interval{200};
  std::size_t max_batch = 1024;                ///< appends per group commit
};

/// One journaled event and its stream id.
struct journal_entry {
  std::string id;
  model::envelope event;
};

/// A page of the journal.
struct journal_page {
  std::vector<journal_entry> entries; ///< those that decode
  std::string last_id;                ///< of the last entry read, decoded or not
  std::size_t corrupt = 0;            ///< entries that did not decode (skipped)
};

/// Keeps the journal in a Redis stream, build snapshots and streaks in Redis strings.
///
/// Appends are group-committed: callers queue them, one writer thread sends every
/// queued append in one pipeline and completes each caller once Redis confirmed
/// it (or failed it). An append of several events is one MULTI/EXEC, so it is
/// journaled whole or not at all. While Redis is unreachable, appends fail at once
/// between reconnect attempts (exponential backoff), and the writer keeps probing
/// so ready() recovers without traffic. While Redis is up and nothing is appended,
/// the writer still checks it every `probe_interval`, so ready() also notices
/// Redis going away without traffic.
///
/// A marker key, written at start, tells whether Redis still holds what was written
/// to it: when it is gone while the process runs, Redis lost its data (restarted
/// without persistence, flushed). data_epoch() then moves on, and the owner writes
/// back what memory still holds.
class redis_store final : public store {
public:
  explicit redis_store(redis_store_config cfg);
  /// Stops the writer; appends still queued are failed.
  ~redis_store() override;

  std::string_view kind() const override { return "redis"; }
  void append(const std::vector<model::envelope>& events, append_done done) override;
  std::string journal_mark() const override;
  bool write(const snapshot& s) override;
  bool erase(const std::vector<model::build_key>& keys) override;
  std::optional<model::build> load(const model::build_key& key, bool& failed) override;
  bool for_each(const std::function<void(const model::build&)>& visit) override;
  /// Reads the records kept beside the builds (a hash), or, the first time this
  /// release starts on builds written without them, makes them from the builds and
  /// keeps them.
  bool for_each_record(const std::function<void(model::recovery_record&&)>& visit) override;
  bool load_each(const std::vector<model::build_key>& keys,
                 const std::function<void(const model::build&)>& visit) override;
  bool load_streaks(std::optional<model::streak_book>& out) override;
  bool load_relays(relay_inputs& out) override;
  std::optional<std::size_t> replay(const std::function<void(model::envelope)>& visit) override;
  bool outbox_add(std::span<const outbox_record> records,
                  std::vector<std::vector<std::string>>& admitted) override;
  bool outbox_apply(std::span<const outbox_change> changes) override;
  /// One transaction: the changes' commands, then each record's script.
  bool outbox_write(std::span<const outbox_change> changes, std::span<const outbox_record> records,
                    std::vector<std::vector<std::string>>& admitted) override;
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
  bool ready() const override { return ready_.load(std::memory_order_relaxed); }
  std::uint64_t data_epoch() const override { return data_epoch_.load(std::memory_order_acquire); }

  /// Journal entries after stream id `after` ("0" for all), oldest first, at most
  /// `count`; nothing when Redis could not be read.
  std::optional<journal_page> read_journal(const std::string& after, std::size_t count);

private:
  struct pending {
    /// The append's journal documents, one per line (moved out by commit).
    std::string encoded;
    bool several = false; ///< more than one event: a batch entry
    append_done done;
  };

  void write_loop();
  /// Checks that Redis answers and still holds the marker (writing it when it does
  /// not); sets ready_. On the writer thread.
  bool probe();
  void journal(std::deque<pending>& batch);
  /// Completes the appends of one commit in order, then hands on what they gathered.
  static void complete(std::deque<pending>& batch, bool durable);
  std::string marker_key() const { return cfg_.key_prefix + "instance"; }
  std::string journal_key() const { return cfg_.key_prefix + "journal"; }
  std::string build_key(const std::string& key) const { return cfg_.key_prefix + "build:" + key; }
  std::string streaks_key() const { return cfg_.key_prefix + "streaks"; }
  /// Every stored build's recovery record: a hash, build key → record. Written with
  /// the build in one transaction, erased with it.
  std::string records_key() const { return cfg_.key_prefix + "build-records"; }
  /// Set once every stored build has its record (`records_complete`): builds written
  /// by a release before records were kept have none until this one first starts.
  std::string records_state_key() const { return cfg_.key_prefix + "build-records-complete"; }
  /// The relays' pending inputs: a hash, id → journal document.
  std::string relays_key() const { return cfg_.key_prefix + "relay-pending"; }
  std::string outbox_key() const { return cfg_.key_prefix + "outbox"; }
  std::string notified_key() const { return cfg_.key_prefix + "notified"; }
  /// Job notices recorded, counted by build.
  std::string job_notices_key() const { return cfg_.key_prefix + "notified-jobs"; }
  /// An exchange's backlog stream (`:dedup`, `:dedup-order` beside it).
  std::string exchange_key(const std::string& exchange) const {
    return cfg_.key_prefix + "exchange:" + exchange;
  }
  std::string dead_letters_key() const { return cfg_.key_prefix + "deadletters"; }
  std::string messages_key(const std::string& build) const {
    return cfg_.key_prefix + "messages:" + build;
  }
  /// One round trip on the reader connection (idempotent commands only); nothing,
  /// after logging why, when Redis could not be reached.
  std::optional<std::vector<redis_reply>> read(const std::vector<redis_command>& cmds);
  /// The commands that apply `changes`, appended to `cmds`.
  void change_commands(std::span<const outbox_change> changes, std::vector<redis_command>& cmds) const;
  /// The script call that records `r`: its reply is the ids admitted.
  redis_command record_command(const outbox_record& r) const;
  /// One round trip on the outbox connection; sent again on a fresh connection when
  /// the old one went stale, so every command must be safe to repeat. Nothing, after
  /// logging why, when Redis could not be reached or refused a command.
  std::optional<std::vector<redis_reply>> write_outbox(const std::vector<redis_command>& cmds);
  /// One round trip on `client` under `mutex`, sent again on a fresh connection when
  /// the old one went stale (idempotent commands only); `what` names it in the log.
  template <class Command = redis_command>
  std::optional<std::vector<redis_reply>> run_on(std::mutex& mutex, redis_client& client,
                                                 const std::vector<Command>& cmds,
                                                 std::string_view what);
  /// One page of a SCAN or HSCAN: where the next starts ("0" after the last), and
  /// its replies.
  struct scan_page {
    std::string cursor;
    std::vector<redis_reply> replies;
  };
  /// The page a SCAN or HSCAN answered (its cursor, and its keys or its field and
  /// value pairs); none when Redis could not be read or answered something else.
  static std::optional<scan_page> page_of(std::optional<std::vector<redis_reply>> scan);
  /// Reads pages with `fetch` (from cursor "0" until it answers "0") on a thread of
  /// its own, one ahead of the page `take` is given: Redis and the decoding work at
  /// the same time. False when a page could not be read.
  bool read_ahead(const std::function<std::optional<scan_page>(const std::string& cursor)>& fetch,
                  const std::function<void(scan_page&)>& take);
  /// The records of every stored build, from the records hash.
  bool scan_records(const std::function<void(model::recovery_record&&)>& visit);
  /// Makes every stored build's record from the build, keeps it, visits it.
  bool make_records(const std::function<void(model::recovery_record&&)>& visit);
  /// Runs commands in pipelines of at most `chunk`; false unless every reply is `ok`.
  bool run_all(redis_client& client, const std::vector<redis_command>& cmds,
               const std::function<bool(const redis_reply&)>& ok, std::size_t chunk = 512);

  redis_store_config cfg_;
  std::atomic<bool> ready_{false};
  std::atomic<std::uint64_t> data_epoch_{0};
  bool marker_written_ = false; ///< by this process; owned by the writer thread

  std::mutex queue_mutex_;
  std::condition_variable wake_;
  std::deque<pending> queue_;
  bool stopping_ = false;

  redis_client writer_client_; ///< owned by the writer thread
  mutable std::mutex mark_mutex_;
  std::string mark_;           ///< last journaled id whose commit finished
  std::mutex reader_mutex_;    ///< guards reader_client_ (loads and reads, off the hot path)
  redis_client reader_client_;
  std::mutex snapshot_mutex_;  ///< guards snapshot_client_: long writes never hold up loads
  redis_client snapshot_client_;
  std::mutex outbox_mutex_;   ///< guards outbox_client_ (the dispatcher's writes)
  redis_client outbox_client_;
  std::mutex exchange_mutex_; ///< guards exchange_client_ (the exchange actor's)
  redis_client exchange_client_;
  std::thread writer_;
};

} // namespace bt::store
