#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "model/build.hpp"
#include "model/recovery.hpp"
#include "model/streak.hpp"

namespace bt::store {

/// One group commit as the callbacks of its appends see it: they run one after another
/// on one thread, and what they hand on through `gather` goes on together once the last
/// of them returned (`finish`), so that N requests confirmed by one round trip cost one
/// message downstream rather than N. The store moves its journal mark only after
/// `finish`: what the mark covers has been handed on.
class commit {
public:
  commit() = default;
  commit(const commit&) = delete;
  commit& operator=(const commit&) = delete;
  /// Finishes what was not finished.
  ~commit() { finish(); }

  /// This commit's `T`, made from `args` on first use. `T::flush()` runs at `finish`,
  /// in the order the parts were first gathered.
  template <class T, class... Args>
  T& gather(Args&&... args) {
    if (auto* t = find<T>())
      return *t;
    auto part = std::make_unique<holder<T>>(std::forward<Args>(args)...);
    auto& value = part->value;
    parts_.push_back(std::move(part));
    return value;
  }

  /// This commit's `T`, if one was gathered: a caller that must not overtake what was
  /// gathered before it flushes it first.
  template <class T>
  T* find() {
    for (auto& p : parts_)
      if (p->tag() == &tag_of<T>)
        return &static_cast<holder<T>&>(*p).value;
    return nullptr;
  }

  /// Flushes every part, then forgets them.
  void finish() {
    for (auto& p : parts_)
      p->flush();
    parts_.clear();
  }

private:
  template <class T>
  static constexpr char tag_of = 0; // one address per type

  struct part {
    virtual ~part() = default;
    virtual const void* tag() const = 0;
    virtual void flush() = 0;
  };
  template <class T>
  struct holder final : part {
    template <class... Args>
    explicit holder(Args&&... args) : value(std::forward<Args>(args)...) {}
    const void* tag() const override { return &tag_of<T>; }
    void flush() override { value.flush(); }
    T value;
  };
  std::vector<std::unique_ptr<part>> parts_;
};

/// An append's callback: whether its events are durable, and the commit they were
/// confirmed in.
using append_done = std::function<void(bool durable, commit& c)>;

/// A change to what a relay keeps pending (the Treeherder publisher's queue messages
/// not published yet): puts the journaled input under `id`, or (none) deletes it.
struct relay_change {
  std::string id;
  std::optional<model::envelope> input; ///< its body a model::relayed
};

/// The relays' pending inputs as the store gives them back: (id, input).
using relay_inputs = std::vector<std::pair<std::string, model::envelope>>;

/// One batch of state to keep, written by the snapshot supervisor.
struct snapshot {
  std::vector<model::build> builds;          ///< builds changed since the last snapshot
  std::optional<model::streak_book> streaks; ///< every streak, when they may have changed
  /// Every journal entry up to this mark is reflected in the state written (or in an
  /// earlier snapshot), so the journal may be trimmed behind it. Empty: trim nothing.
  std::string journal_mark;
  /// What the relays' pending inputs changed since they were last written: the journal
  /// is trimmed behind inputs they have not published yet, so those must be kept.
  std::vector<relay_change> relays;
};

/// One change to the notification outbox, applied atomically.
struct outbox_change {
  std::string id;                         ///< the entry's id
  model::build_key build;                 ///< the build it is about
  std::string sink;                       ///< the sink it goes to
  std::optional<std::string> entry;       ///< replaces the entry (attempts counted)
  bool remove = false;                    ///< the entry is done with
  std::optional<std::string> dead_letter; ///< appended to the dead-letter list
  std::optional<std::string> message_ref; ///< the sink's message for the build, kept
  bool forget_message = false;            ///< that message is gone
};

/// A notice's outbox entries (id, document): one build at one revision.
struct outbox_record {
  model::build_key build;
  std::uint64_t revision = 0;
  std::vector<std::pair<std::string, std::string>> entries;
  /// Empty: the revision is the build's own. Else a part of the build recorded apart
  /// and taken once on its own (a release to one sink: its name; a job notice:
  /// `job:<attempt id>`); parts go with the build when it is erased.
  std::string part;
  /// A job_finished notice's part: the build's count of them (build_notices::jobs)
  /// grows by one the first time it is recorded.
  bool job_notice = false;
};

/// A message to publish on a topic exchange (SPEC §8).
struct exchange_publication {
  /// Identifies the message whatever published it: the same one again (a retried
  /// delivery, a replayed event) is in the backlog once. Empty: not deduplicated
  /// (live news such as the `builds` feed, where a repeat is harmless), one append.
  std::string dedup_id;
  std::string routing_key;
  std::string payload; ///< JSON text
};

/// A message in an exchange's backlog.
struct exchange_message {
  std::string id; ///< its position: increasing, what a subscriber resumes after
  std::string routing_key;
  std::string payload; ///< JSON text
};

/// What an exchange's backlog holds: its oldest message, and whether older ones were
/// let go (a subscriber resuming from before `oldest` may have missed some).
struct backlog_span {
  std::string oldest; ///< empty when the backlog is empty
  bool trimmed = false;
};

/// What became of one publication.
struct published {
  std::string id;    ///< its position in the backlog
  bool fresh = true; ///< false: it was published before (not to be sent again)
};

/// What the outbox recorded for one build, read back at recovery.
struct build_notices {
  std::uint64_t revision = 0; ///< of the last outcome notice recorded
  std::uint64_t jobs = 0;     ///< job_finished notices recorded
};

/// Where accepted events and build states are kept. Implementations are
/// thread-safe: HTTP threads append, supervisors write snapshots, actors load.
class store {
public:
  virtual ~store() = default;

  /// "memory" or "redis".
  virtual std::string_view kind() const = 0;

  /// Journals accepted events. `done(true, c)` runs once they are durable (it may run
  /// before append returns); `done(false, c)` when they could not be written. The
  /// `done` calls of one commit run one at a time, in journal order, on one thread,
  /// and share `c`.
  virtual void append(const std::vector<model::envelope>& events, append_done done) = 0;

  /// The journal position through which every entry's `done` has returned: what a
  /// snapshot taken after reading it may trim. Empty when there is no journal.
  virtual std::string journal_mark() const = 0;

  /// Writes the streaks, then the builds and the relays' pending inputs, then trims the
  /// journal behind `s.journal_mark`. False (and nothing trimmed) when it could not be
  /// written.
  virtual bool write(const snapshot& s) = 0;

  /// Deletes builds (expiry), with what notifications kept about them. False when
  /// it could not.
  virtual bool erase(const std::vector<model::build_key>& keys) = 0;

  /// The last written state of a build (none if never written); `failed` when the
  /// store could not be read, which is not the same as "never written".
  virtual std::optional<model::build> load(const model::build_key& key, bool& failed) = 0;

  // Recovery reads. Each fails (false, nothing) when the store could not be read to
  // the end: recovering from part of the state would silently lose the rest.

  /// Visits every written build (start-up indexing).
  virtual bool for_each(const std::function<void(const model::build&)>& visit) = 0;

  /// Visits the recovery record of every written build: what a restart reads in place
  /// of the builds themselves. By default each build's, made from it.
  virtual bool for_each_record(const std::function<void(model::recovery_record&&)>& visit) {
    return for_each([&](const model::build& b) { visit(model::record_of(b)); });
  }

  /// Visits the written builds among `keys` (one erased since is left out, one that
  /// does not decode is logged and left out).
  virtual bool load_each(const std::vector<model::build_key>& keys,
                         const std::function<void(const model::build&)>& visit) {
    for (auto& k : keys) {
      bool failed = false;
      if (auto b = load(k, failed))
        visit(*b);
      else if (failed)
        return false;
    }
    return true;
  }

  /// The last written streaks into `out` (left empty when none were written).
  virtual bool load_streaks(std::optional<model::streak_book>& out) = 0;

  /// The relays' pending inputs as last written (id, input). Inputs that do not
  /// decode are logged and skipped.
  virtual bool load_relays(relay_inputs& out) = 0;

  /// Visits every journal entry not yet trimmed, oldest first; returns how many it
  /// visited. Entries that do not decode are logged and skipped. Once it returns, the
  /// journal mark covers every entry visited.
  virtual std::optional<std::size_t> replay(const std::function<void(model::envelope)>& visit) = 0;

  // The notification outbox. Its one writer is the notification dispatcher.

  /// Records notices, each atomically, unless its build has a newer revision
  /// recorded. `admitted[i]` gets the ids of record i's entries that are in the outbox
  /// now and must be sent: all of them when its revision is new; those still there
  /// when it was recorded before (a repeated notice, or this call again after a lost
  /// reply); none for an older revision. False when it could not be written.
  virtual bool outbox_add(std::span<const outbox_record> records,
                          std::vector<std::vector<std::string>>& admitted) = 0;
  /// Applies changes in order, all or none. False when they could not be written.
  virtual bool outbox_apply(std::span<const outbox_change> changes) = 0;
  /// `outbox_apply(changes)`, then `outbox_add(records, admitted)`: the records only
  /// once the changes are written (a change may remove an entry that a record adds
  /// again). False when they could not be written; then the records were not made.
  /// A store that can do both in one round trip, all or none, does.
  virtual bool outbox_write(std::span<const outbox_change> changes,
                            std::span<const outbox_record> records,
                            std::vector<std::vector<std::string>>& admitted) {
    return outbox_apply(changes) && outbox_add(records, admitted);
  }
  /// Every outbox entry (id, document).
  virtual bool outbox_load(std::vector<std::pair<std::string, std::string>>& out) = 0;
  /// What was recorded for each build with a notice, by build key.
  virtual bool notified(std::unordered_map<std::string, build_notices>& out) = 0;
  /// The message `sink` keeps for `build`, if any; `failed` when it could not be read.
  virtual std::optional<std::string> message_ref(const model::build_key& build,
                                                 const std::string& sink, bool& failed) = 0;

  // Topic exchanges: a bounded backlog per exchange. The one writer is the exchange
  // actor.

  /// Appends the publications not in the backlog yet, in order, keeping about the
  /// last `backlog` messages (and as many dedup ids); answers each one's fate.
  /// Nothing when it could not be written.
  virtual std::optional<std::vector<published>>
  exchange_publish(const std::string& exchange, std::span<const exchange_publication> messages,
                   std::size_t backlog) = 0;
  /// At most `count` messages after position `after` (empty: from the oldest), oldest
  /// first. Nothing when it could not be read.
  virtual std::optional<std::vector<exchange_message>>
  exchange_read(const std::string& exchange, const std::string& after, std::size_t count) = 0;
  /// The oldest message kept and whether any was let go. Nothing when it could not be read.
  virtual std::optional<backlog_span> exchange_span(const std::string& exchange) = 0;

  /// Whether the store can accept writes now (`/readyz`).
  virtual bool ready() const = 0;

  /// How many times the store found, while this process ran, that what it had
  /// written was gone (a Redis restarted without its data). When it moves, whoever
  /// holds state in memory writes it all back.
  virtual std::uint64_t data_epoch() const { return 0; }
};

} // namespace bt::store
