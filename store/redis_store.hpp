#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
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
  std::chrono::milliseconds max_backoff{2000}; ///< between reconnect attempts
  std::size_t max_batch = 1024;                ///< appends per group commit
};

/// One journaled event and its stream id.
struct journal_entry {
  std::string id;
  model::envelope event;
};

/// Keeps the journal in a Redis stream and build snapshots in Redis strings.
///
/// Appends are group-committed: callers queue them, one writer thread sends every
/// queued append in one pipeline and completes each caller once Redis confirmed
/// it (or failed it). An append of several events is one MULTI/EXEC, so it is
/// journaled whole or not at all. While Redis is unreachable, appends fail at once
/// between reconnect attempts (exponential backoff), and the writer keeps probing
/// so ready() recovers without traffic.
class redis_store final : public store {
public:
  explicit redis_store(redis_store_config cfg);
  /// Stops the writer; appends still queued are failed.
  ~redis_store() override;

  std::string_view kind() const override { return "redis"; }
  void append(const std::vector<model::envelope>& events,
              std::function<void(bool)> done) override;
  void save(const model::build& b) override;
  std::optional<model::build> load(const model::build_key& key) override;
  void for_each(const std::function<void(const model::build&)>& visit) override;
  bool ready() const override { return ready_.load(std::memory_order_relaxed); }

  /// Journal entries after stream id `after` ("0" for all), oldest first, at most
  /// `count`. Entries that do not decode are skipped and counted in `corrupt`.
  std::vector<journal_entry> read_journal(const std::string& after, std::size_t count,
                                          std::size_t* corrupt = nullptr);

private:
  struct pending {
    std::vector<std::string> encoded; ///< one journal document per event
    std::function<void(bool)> done;
  };

  void write_loop();
  void commit(std::deque<pending>& batch);
  std::string journal_key() const { return cfg_.key_prefix + "journal"; }
  std::string build_key(const std::string& key) const { return cfg_.key_prefix + "build:" + key; }

  redis_store_config cfg_;
  std::atomic<bool> ready_{false};

  std::mutex queue_mutex_;
  std::condition_variable wake_;
  std::deque<pending> queue_;
  bool stopping_ = false;

  redis_client writer_client_; ///< owned by the writer thread
  std::mutex reader_mutex_;    ///< guards reader_client_ (snapshots and reads, off the hot path)
  redis_client reader_client_;
  std::thread writer_;
};

} // namespace bt::store
