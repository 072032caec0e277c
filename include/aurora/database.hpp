// BasicDatabase / Database: JSON document collections with a change feed per collection and a
// global one.
#pragma once

#include <aurora/change_event.hpp>
#include <aurora/detail/durable.hpp>
#include <aurora/detail/hub.hpp>
#include <aurora/detail/json_compare.hpp>
#include <aurora/detail/storable.hpp>
#include <aurora/detail/string_map.hpp>
#include <aurora/detail/subscriber.hpp>
#include <aurora/detail/uuid.hpp>
#include <aurora/errc.hpp>
#include <aurora/filter.hpp>
#include <aurora/options.hpp>
#include <aurora/snapshot.hpp>
#include <aurora/start.hpp>
#include <aurora/subscription.hpp>
#include <aurora/transaction.hpp>
#include <aurora/value.hpp>
#include <aurora/watch.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <concepts>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace aurora {

namespace detail {

// Names in error messages, shortened so a huge id does not make a huge message.
inline std::string quoted(std::string_view s) {
  constexpr std::size_t limit = 64;
  std::string out = "'";
  std::size_t cut = std::min(s.size(), limit);
  while (cut < s.size() && cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0U) == 0x80U) --cut;  // UTF-8
  out.append(s.substr(0, cut));
  if (s.size() > limit) out.append("...");
  out.push_back('\'');
  return out;
}

}  // namespace detail

/// A clock for event timestamps: `Clock::now()` gives a `std::chrono::system_clock::time_point`.
/// It may throw; a write whose clock throws changes nothing.
template <class C>
concept EventClock = requires {
  { C::now() } -> std::convertible_to<std::chrono::system_clock::time_point>;
};

/// An in-memory store of JSON document collections whose every write publishes one ChangeEvent
/// to the collection's channel and to the global channel, in one database-wide order.
///
/// `Clock` stamps events (`std::chrono::system_clock` by default; tests may pass their own).
/// Timestamps never decrease in sequence order, even when the clock steps back.
///
/// `Storage` keeps the database beyond the process: the default keeps nothing (in memory only);
/// `aurora::sqlite::DurableStorage` (`aurora::DurableDatabase`, `<aurora/sqlite.hpp>`) makes
/// every commit durable in an SQLite file before it is published. Such a storage adds the path
/// constructor and `id()`; see `<aurora/sqlite.hpp>` for what it guarantees.
///
/// Thread safety: every member function may be called from any thread at any time. Writes are
/// serialised into one commit order; reads run concurrently with each other. Destroying the
/// Database closes every channel: subscriptions read what is still unread, then `errc::closed`.
/// Destroy a durable database only when no write is in progress.
template <EventClock Clock = std::chrono::system_clock, class Storage = detail::memory_storage>
class BasicDatabase {
  static constexpr bool durable = Storage::durable;

 public:
  /// The clock that stamps events.
  using clock_type = Clock;

  /// The storage type (`detail::memory_storage` for the in-memory database).
  using storage_type = Storage;

  /// An empty database. Throws `aurora::error(errc::invalid_argument)` when
  /// `options.channel_capacity` is 0 or above `max_channel_capacity`.
  explicit BasicDatabase(Options options = {}) requires(!Storage::durable)
      : options_(check(options)), hub_(options_.channel_capacity, 0) {}

  /// Durable database only: opens the database file `path`, creating it if it does not exist,
  /// and loads its collections and documents into memory; sequences continue after the last
  /// stored one. `options.durability` and `options.history` set how commits are made durable
  /// and how many change-log events are kept for `Start::after`.
  ///
  /// Errors: `invalid_argument` for `options.channel_capacity` (as the in-memory constructor) and
  /// for `options.max_change_bytes` (0 or above `max_change_bytes_limit`); `storage_error` when
  /// the file cannot be opened or read (locked by another process, not an Aurora database,
  /// corrupt, newer format, I/O error), with the engine's message.
  explicit BasicDatabase(const std::string& path, Options options = {}) requires(Storage::durable)
      : options_(check(options)),
        storage_(
            path, options_, [this](std::span<detail::event_ptr> events) { prepare_group(events); },
            [this](std::span<detail::event_ptr> events) { publish_group(events); },
            [this](std::span<detail::commit_batch> group) { discard_group(group); }),
        hub_(options_.channel_capacity, storage_.last_sequence()) {
    durable_.stamped = storage_.last_sequence();
    durable_.last_published.store(durable_.stamped, std::memory_order_relaxed);
    durable_.log = std::make_shared<log_pages>(storage_);
    load_storage();
  }

  BasicDatabase(const BasicDatabase&) = delete;
  BasicDatabase& operator=(const BasicDatabase&) = delete;

  /// Closes every channel; subscriptions and their pending receives stay valid.
  ~BasicDatabase() {
    if constexpr (durable) durable_.log->close();
    hub_.close();
  }

  /// Stores `doc` under a new UUIDv7 id and returns the id.
  ///
  /// Errors (`aurora::error`): `invalid_argument` if `collection` is empty; `invalid_document`
  /// if `doc` is not a JSON object, nests deeper than `max_document_depth`, or holds a NaN or
  /// infinite number or a discarded value; `std::length_error` if `collection` already holds
  /// 2^30 documents. Nothing changes and nothing is published when it throws.
  std::string insert(std::string_view collection, Document doc) {
    check_outside_transaction("insert");
    check_collection(collection, "insert");
    check_object(doc, "insert: the document");
    commit_scope scope(*this);
    std::string id = scope.insert_new(collection, doc);
    scope.commit();
    return id;
  }

  /// Stores `doc` under the caller's `id` (any non-empty string) and returns the id.
  ///
  /// Errors: `invalid_argument` if `collection` or `id` is empty; `invalid_document` if `doc` is
  /// not a storable JSON object, or `std::length_error` (as for `insert(collection, doc)`);
  /// `already_exists` if `id` is present in `collection`.
  std::string insert(std::string_view collection, std::string id, Document doc) {
    check_outside_transaction("insert");
    check_insert_with_id(collection, id, doc);
    commit_scope scope(*this);
    scope.insert_with_id(collection, id, doc);
    scope.commit();
    return id;
  }

  /// Stores a document made of `fields` (a later duplicate key wins) under a new id; errors as
  /// `insert(collection, doc)`.
  std::string insert_into(std::string_view collection, std::initializer_list<std::pair<std::string, Value>> fields) {
    Document doc = Document::object();
    for (const auto& [key, value] : fields) doc[key] = value;
    return insert(collection, std::move(doc));
  }

  /// Applies `patch` to document `id` as an RFC 7386 JSON merge patch: given fields overwrite,
  /// `null` removes, others stay. Publishes an Update, or nothing when the document is unchanged:
  /// the same keys and values, numbers compared exactly (`21` to `21.0` is no change; `-1` to
  /// `18446744073709551615`, or `2^53 + 1` to the double `2^53`, is one).
  ///
  /// Errors: `invalid_document` if `patch` is not a storable JSON object (as for `insert`);
  /// `not_found` if the collection was never written or `id` is not present.
  void update(std::string_view collection, std::string_view id, const Document& patch) {
    check_outside_transaction("update");
    check_object(patch, "update: the patch");
    commit_scope scope(*this);
    scope.apply_update(collection, id, patch);
    scope.commit();
  }

  /// Replaces document `id` with `doc`. Publishes an Update, or nothing when `doc` is the stored
  /// document unchanged (as for `update`).
  ///
  /// Errors: `invalid_document` if `doc` is not a storable JSON object (as for `insert`);
  /// `not_found` if the collection was never written or `id` is not present.
  void replace(std::string_view collection, std::string_view id, Document doc) {
    check_outside_transaction("replace");
    check_object(doc, "replace: the document");
    commit_scope scope(*this);
    scope.apply_replace(collection, id, doc);
    scope.commit();
  }

  /// Removes document `id` and publishes a Delete carrying it as `old_document`.
  ///
  /// Errors: `not_found` if the collection was never written or `id` is not present.
  void remove(std::string_view collection, std::string_view id) {
    check_outside_transaction("remove");
    commit_scope scope(*this);
    scope.apply_remove(collection, id);
    scope.commit();
  }

  /// Runs `fn(tx)` as one transaction and returns what it returns: all of its writes commit
  /// together, or, if `fn` throws, none does (the exception propagates). Each write becomes one
  /// event; they get consecutive sequences, one timestamp and the same `commit` (the last
  /// one's sequence), and no subscriber can receive one before all of them are published.
  /// Transactions and single writes form one serial order: `fn` runs under the commit lock,
  /// so keep it short, and reads of this Database from `fn` see its writes.
  ///
  /// Errors: what `fn` throws; `invalid_argument` when called from inside a transaction of
  /// this Database (no nesting), as are this Database's writes there (use `tx`).
  template <class Fn>
  requires std::invocable<Fn&, Transaction&> std::invoke_result_t<Fn&, Transaction&> transaction(Fn&& fn) {
    check_outside_transaction("transaction");
    commit_scope scope(*this);
    Transaction tx = detail::transaction_access::make(scope);
    if constexpr (std::is_void_v<std::invoke_result_t<Fn&, Transaction&>>) {
      {
        const detail::transaction_mark mark(this);
        fn(tx);
      }
      scope.commit();
    } else {
      std::invoke_result_t<Fn&, Transaction&> result = [&] {
        const detail::transaction_mark mark(this);
        return fn(tx);
      }();
      scope.commit();
      return result;
    }
  }

  /// A copy of document `id`, or nothing when the collection or the document is not there.
  /// On a durable database it may show a write whose commit is still being made durable (the
  /// write has not returned yet; if that commit fails, the change is undone).
  [[nodiscard]] std::optional<Document> get(std::string_view collection, std::string_view id) const {
    const auto lock = read_lock();
    const Document* doc = find(collection, id);
    if (doc == nullptr) return std::nullopt;
    return *doc;
  }

  /// How many documents `collection` holds; 0 for an unknown one. On a durable database it may
  /// count a write whose commit is still being made durable, as `get` may show it.
  [[nodiscard]] std::size_t size(std::string_view collection) const {
    const auto lock = read_lock();
    auto c = collections_.find(collection);
    return c == collections_.end() ? 0 : c->second.size();
  }

  /// A copy of every document of `collection` (sorted by id) with the sequence of the last
  /// commit it reflects; empty for an unknown collection. Consistent: taken under the commit
  /// order, so no write is half in it. Inside a transaction of this Database it shows that
  /// transaction's writes, not yet committed, at the sequence before it (`watch` refuses
  /// there). Costs a copy of the collection. Errors: `bad_alloc`; on a durable database also
  /// `storage_error` when a commit it waited for failed (the database then refuses writes until
  /// reopened).
  [[nodiscard]] Snapshot snapshot(std::string_view collection) const {
    Snapshot snap;
    {
      const auto lock = read_lock();
      if constexpr (durable) settle();
      snap.sequence = hub_.last_sequence();
      auto c = collections_.find(collection);
      if (c != collections_.end()) {
        snap.documents.reserve(c->second.size());
        for (const auto& [id, doc] : c->second) snap.documents.emplace_back(id, *doc);
      }
    }
    std::sort(snap.documents.begin(), snap.documents.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    return snap;
  }

  /// The names of the collections that had a successful insert, sorted.
  [[nodiscard]] std::vector<std::string> collections() const {
    std::vector<std::string> names;
    {
      const auto lock = read_lock();
      names.reserve(collections_.size());
      for (const auto& [name, docs] : collections_) names.push_back(name);
    }
    std::sort(names.begin(), names.end());
    return names;
  }

  /// The sequence of the last commit (0 before the first).
  [[nodiscard]] std::uint64_t last_sequence() const {
    if constexpr (durable) {
      // Stored by the leader after each publish: read without a lock.
      return durable_.last_published.load(std::memory_order_acquire);
    } else {
      const auto lock = read_lock();
      return hub_.last_sequence();
    }
  }

  /// Durable database only: the database id, a UUID made when the file was created and the
  /// same after every reopen (tells a sequence of this database from another's).
  [[nodiscard]] const std::string& id() const noexcept requires(Storage::durable) { return storage_.id(); }

  /// Durable database only: the storage (`sqlite::DurableStorage::storage()` gives the SQLite
  /// file's `pragmas()` and `integrity_check()`). Do not write through it.
  [[nodiscard]] Storage& storage() noexcept requires(Storage::durable) { return storage_; }

  /// A subscription to `collection`'s changes, optionally filtered, from `start` on: by default
  /// the events committed after this call returns; `Start::after(s)` every event with a
  /// sequence above `s`, then live ones, with no gap and no duplicate; `Start::oldest()` from
  /// the oldest event retained. The collection need not exist yet (subscribing does not create
  /// it).
  ///
  /// Errors: `invalid_argument` if `collection` is empty or `s > last_sequence()`;
  /// `history_lost` if events after `s` are no longer retained (the database keeps its last
  /// `channel_capacity` events, whatever their collection; a durable one also its change log of
  /// `Options::history` events, which `after(s)` and `oldest()` read first when they reach back
  /// further than memory, then hand off to live events); `storage_error` if reading the change
  /// log fails.
  ///
  /// A durable subscription resumed from the change log reads it a page (1,024 events) at a
  /// time as it receives, so it holds one page in memory, not the backlog. Its receives then
  /// also report: `lagged` when writers trimmed the log past what it had read (`missed` counts
  /// the skipped sequences of every collection, as for a collection's catch-up from memory);
  /// `storage_error` once if the log cannot be read, then `closed` (going on would leave a
  /// gap); `lagged` for the part not read yet when the database is destroyed (then what its
  /// channel holds, then `closed`). Such a receive reads SQLite on the receiving thread, and may
  /// wait for the storage while a commit is written.
  ///
  /// On a durable database, a call that must make the collection's channel (nobody subscribes
  /// to `collection` yet) while a group of commits is being written waits until that group is
  /// published: at most one SQLite commit. Writers are not held back meanwhile.
  [[nodiscard]] Subscription subscribe(std::string_view collection, std::optional<EventFilter> filter = {},
                                       Start start = Start::now()) {
    check_collection(collection, "subscribe");
    return subscribe_to(collection, filter, start);
  }

  /// A subscription to every collection's changes in sequence order, from `start` on (as for
  /// `subscribe`). Errors: `invalid_argument` / `history_lost` for a `Start` as for `subscribe`.
  [[nodiscard]] Subscription subscribe_global(std::optional<EventFilter> filter = {}, Start start = Start::now()) {
    return subscribe_to({}, filter, start);
  }

  /// Atomically, a snapshot of the documents of `collection` in the filter's view (those that
  /// satisfy its `field_filters` and `where`; its operation does not apply), sorted by id, taken
  /// at `last_sequence()`, and a subscription that starts exactly after it. Applying the
  /// snapshot, then the events, gives the current state: nothing missed, nothing applied twice.
  /// With `filter->transitions`, apply `enter`/`change` as upsert and `leave` as erase to keep an
  /// exact live copy of the filter's view. Costs a copy of the documents in view.
  ///
  /// Errors: `invalid_argument` if `collection` is empty, or when called inside a transaction
  /// of this Database (its snapshot would hold writes that may still roll back, with no event
  /// to undo them); on a durable database also `storage_error` as `snapshot`.
  [[nodiscard]] Watch watch(std::string_view collection, std::optional<EventFilter> filter = {}) {
    check_outside_transaction("watch");
    check_collection(collection, "watch");
    auto state = std::make_shared<detail::subscriber>(filter);
    std::optional<detail::compiled_filter> view;
    if (filter) view.emplace(*filter);
    std::vector<std::shared_ptr<detail::event_ring>> channels;  // released after the lock
    channels.reserve(4);
    channels.push_back(std::make_shared<detail::event_ring>(options_.channel_capacity));
    Watch w;
    {
      const auto lock = read_lock();
      if constexpr (durable) settle();
      w.snapshot.sequence = hub_.last_sequence();
      if (auto c = collections_.find(collection); c != collections_.end()) {
        for (const auto& [id, doc] : c->second) {
          if (!view || view->in_view(*doc)) w.snapshot.documents.emplace_back(id, *doc);
        }
      }
      hub_.subscribe(*state, collection, Start::now(), channels);
    }
    std::sort(w.snapshot.documents.begin(), w.snapshot.documents.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    w.subscription = detail::subscription_access::make(std::move(state));
    return w;
  }

  /// How many live subscriptions `collection` has.
  [[nodiscard]] std::size_t subscriber_count(std::string_view collection) const {
    if (collection.empty()) return 0;
    const auto lock = read_lock();
    return hub_.subscriber_count(collection);
  }

  /// How many live global subscriptions there are.
  [[nodiscard]] std::size_t global_subscriber_count() const {
    const auto lock = read_lock();
    return hub_.global_subscriber_count();
  }

  /// The options this database was made with.
  [[nodiscard]] const Options& options() const noexcept { return options_; }

 private:
  // The stored documents: each version immutable, shared with the events that carry it.
  using doc_map = detail::inline_key_map<DocumentPtr>;

  // The one way a write reaches the database: takes the commit lock and reads the clock (before
  // anything changes), applies changes to the documents while recording each as an event, then
  // commit() stamps the events (next sequences, one timestamp, `commit`), publishes them to the
  // hub, unlocks and wakes the readers. A scope destroyed without commit() undoes what it
  // applied, newest first, from the before-images its events hold. Single writes validate
  // their input before they make a scope and call the apply_* members; a Transaction calls the
  // transaction_ops members, which validate under the lock. Storage that makes commits durable
  // plugs in at commit(), between stamping and publishing (see commit_durable).
  class commit_scope final : public detail::transaction_ops {
   public:
    explicit commit_scope(BasicDatabase& db) : db_(db), lock_(db.mutex_), now_(Clock::now()) {
      if constexpr (durable) {
        if (db.durable_.refused.load(std::memory_order_acquire)) {
          throw error(errc::storage_error,
                      "write refused: an earlier durable commit failed; the database accepts no more writes until it "
                      "is reopened");
        }
      }
      events_.swap(db.spare_events_);
    }

    commit_scope(const commit_scope&) = delete;
    commit_scope& operator=(const commit_scope&) = delete;

    ~commit_scope() {
      if (!committed_) rollback();
    }

    // transaction_ops: validate, then apply.
    std::string insert(std::string_view collection, Document doc) override {
      check_collection(collection, "insert");
      check_object(doc, "insert: the document");
      return insert_new(collection, doc);
    }

    std::string insert(std::string_view collection, std::string id, Document doc) override {
      check_insert_with_id(collection, id, doc);
      insert_with_id(collection, id, doc);
      return id;
    }

    void update(std::string_view collection, std::string_view id, const Document& patch) override {
      check_object(patch, "update: the patch");
      apply_update(collection, id, patch);
    }

    void replace(std::string_view collection, std::string_view id, Document doc) override {
      check_object(doc, "replace: the document");
      apply_replace(collection, id, doc);
    }

    void remove(std::string_view collection, std::string_view id) override { apply_remove(collection, id); }

    [[nodiscard]] const Document* find(std::string_view collection, std::string_view id) const override {
      return db_.find(collection, id);
    }

    [[nodiscard]] std::size_t size(std::string_view collection) const override {
      auto c = db_.collections_.find(collection);
      return c == db_.collections_.end() ? 0 : c->second.size();
    }

    // Applying validated input.

    // Moves `doc` in under a new id and returns the id.
    std::string insert_new(std::string_view collection, Document& doc) {
      for (;;) {
        std::string id = db_.ids_.next(now_);
        if (apply_insert(collection, id, doc)) return id;
      }
    }

    // Moves `doc` in under `id`; already_exists (nothing changed) when the id is taken.
    void insert_with_id(std::string_view collection, const std::string& id, Document& doc) {
      if (!apply_insert(collection, id, doc)) {
        throw error(errc::already_exists,
                    "insert: id " + detail::quoted(id) + " already exists in " + detail::quoted(collection));
      }
    }

    // Moves `doc` in under `id`; false (nothing changed, `doc` untouched) when the id is taken.
    // The store and the event share the one immutable copy.
    bool apply_insert(std::string_view collection, const std::string& id, Document& doc) {
      auto c = db_.collections_.find(collection);
      const bool creates = c == db_.collections_.end();
      if (creates) {
        created_.reserve(created_.size() + 1);
        c = db_.collections_.emplace(std::string(collection), doc_map{}).first;
      }
      doc_map& docs = c->second;
      try {
        // One lookup tells a taken id from a new one and makes the new one's slot.
        const auto [slot, fresh] = docs.try_emplace(id);
        if (!fresh) return false;  // never when the collection was just made
        try {
          auto ev = make_event(collection, id, OperationType::Insert);
          ev->document = std::make_shared<const Document>(std::move(doc));
          slot->second = ev->document;
          record(std::move(ev));
        } catch (...) {
          docs.erase(slot);
          throw;
        }
      } catch (...) {
        if (creates) db_.collections_.erase(c);
        throw;
      }
      if (creates) created_.push_back(&c->first);  // reserved: cannot throw
      return true;
    }

    void apply_update(std::string_view collection, std::string_view id, const Document& patch) {
      DocumentPtr& stored = find_existing(collection, id, "update");
      Document updated = *stored;
      updated.merge_patch(patch);
      if (detail::json_same_value(updated, *stored)) return;
      change(collection, id, stored, std::move(updated));
    }

    void apply_replace(std::string_view collection, std::string_view id, Document& doc) {
      DocumentPtr& stored = find_existing(collection, id, "replace");
      if (detail::json_same_value(doc, *stored)) return;
      change(collection, id, stored, std::move(doc));
    }

    void apply_remove(std::string_view collection, std::string_view id) {
      const auto [docs, it] = find_slot(collection, id, "remove");
      auto ev = make_event(collection, id, OperationType::Delete);
      reserve_event();
      ev->old_document = std::move(it->second);
      docs->erase(it);
      record(std::move(ev));
    }

    // Stamps, publishes, unlocks, wakes. Throws only what preparing the channels throws
    // (std::bad_alloc), and then the scope is rolled back when destroyed. Durable: publishing
    // waits for the durable commit (commit_durable), which also throws invalid_document (not
    // UTF-8, or more than max_change_bytes; rolled back) and storage_error (undone by
    // discard_group).
    void commit() {
      if (events_.empty()) {
        committed_ = true;
        if constexpr (durable) {
          // Nothing to write, but what this scope read may be a commit that is not durable yet:
          // like a write, return only once it is (storage_error if it failed).
          lock_.unlock();
          db_.storage_.flush();
        }
        return;
      }
      if constexpr (durable) {
        commit_durable();
      } else {
        commit_in_memory();
      }
    }

   private:
    void commit_in_memory() {
      const std::span<const detail::event_ptr> events(events_);
      db_.hub_.prepare(events, batch_);
      const std::uint64_t first = db_.hub_.last_sequence() + 1;
      const std::uint64_t last = first + events.size() - 1;
      const auto timestamp = std::max(db_.last_timestamp_, now_);
      for (std::size_t i = 0; i < events.size(); ++i) {
        // Made non-const by make_event, and not shared with any reader before publish.
        auto& ev = const_cast<ChangeEvent&>(*events[i]);
        ev.sequence = first + i;
        ev.commit = last;
        ev.timestamp = timestamp;
      }
      db_.last_timestamp_ = timestamp;
      db_.hub_.publish(events_, batch_);  // takes the events over
      committed_ = true;
      if (events_.size() == 1 && !events_.front()) {  // published by move: clearing destroys nothing
        events_.clear();
        events_.swap(db_.spare_events_);
      }
      lock_.unlock();
      batch_.wake();
    }

    // Durable: checks the documents can be stored, stamps (timestamps at the microsecond, as the
    // change log keeps them, so live and replayed events are equal), queues the commit for the
    // storage, unlocks, and waits until it is durable and published (by whichever writer leads
    // its group). A failed group's changes are undone by discard_group before this throws.
    void commit_durable() {
      for (const detail::event_ptr& ev : events_) {
        if (const std::string why = db_.storage_.unstorable(*ev); !why.empty()) {
          throw error(errc::invalid_document, std::string(to_string(ev->operation)) + " of " +
                                                  detail::quoted(ev->document_id) + " in " +
                                                  detail::quoted(ev->collection) + ": " + why);
        }
      }
      const std::uint64_t first = db_.durable_.stamped + 1;
      const std::uint64_t last = first + events_.size() - 1;
      const std::chrono::system_clock::time_point timestamp =
          std::chrono::floor<std::chrono::microseconds>(std::max(db_.last_timestamp_, now_));
      for (std::size_t i = 0; i < events_.size(); ++i) {
        auto& ev = const_cast<ChangeEvent&>(*events_[i]);  // not shared with any reader yet
        ev.sequence = first + i;
        ev.commit = last;
        ev.timestamp = timestamp;
      }
      detail::commit_batch batch;
      batch.events = events_;  // a copy: events_ keeps the before-images if enqueue throws
      batch.created.reserve(created_.size());
      for (const std::string* name : created_) batch.created.push_back(*name);
      const std::uint64_t ticket = db_.storage_.enqueue(std::move(batch));
      db_.durable_.stamped = last;
      db_.last_timestamp_ = timestamp;
      committed_ = true;
      lock_.unlock();
      db_.storage_.wait(ticket);
    }

    static std::shared_ptr<ChangeEvent> make_event(std::string_view collection, std::string_view id, OperationType op) {
      auto ev = std::make_shared<ChangeEvent>();
      // Moved in: assigning a string_view takes std::string's general replace path, which costs more.
      ev->collection = std::string(collection);
      ev->document_id = std::string(id);
      ev->operation = op;
      return ev;
    }

    DocumentPtr& find_existing(std::string_view collection, std::string_view id, const char* call) {
      return find_slot(collection, id, call).second->second;
    }

    // The collection holding `id` and the id's entry; not_found naming `call` when either is missing.
    std::pair<doc_map*, typename doc_map::iterator> find_slot(std::string_view collection, std::string_view id,
                                                              const char* call) {
      auto c = db_.collections_.find(collection);
      if (c == db_.collections_.end()) {
        throw error(errc::not_found, std::string(call) + ": no collection " + detail::quoted(collection));
      }
      auto it = c->second.find(id);
      if (it == c->second.end()) {
        throw error(errc::not_found,
                    std::string(call) + ": no document " + detail::quoted(id) + " in " + detail::quoted(collection));
      }
      return {&c->second, it};
    }

    // An Update from `stored` to `updated`: the event's old_document is the stored version
    // itself, and its document the new version the store then holds.
    void change(std::string_view collection, std::string_view id, DocumentPtr& stored, Document updated) {
      auto ev = make_event(collection, id, OperationType::Update);
      ev->document = std::make_shared<const Document>(std::move(updated));
      ev->old_document = stored;
      reserve_event();
      stored = ev->document;
      record(std::move(ev));
    }

    void reserve_event() {
      if (events_.size() == events_.capacity()) events_.reserve(events_.empty() ? 1 : 2 * events_.size());
    }

    void record(std::shared_ptr<ChangeEvent> ev) {
      reserve_event();
      events_.push_back(std::move(ev));  // cannot throw: reserved
    }

    // Undoes the recorded changes, newest first, from the before-images the events hold.
    void rollback() noexcept {
      for (std::size_t i = events_.size(); i-- > 0;) {
        auto& ev = const_cast<ChangeEvent&>(*events_[i]);
        auto c = db_.collections_.find(ev.collection);
        if (c == db_.collections_.end()) continue;
        if (ev.operation == OperationType::Insert) {
          c->second.erase(ev.document_id);
        } else if (ev.old_document) {
          try {
            c->second.insert_or_assign(ev.document_id, std::move(ev.old_document));
          } catch (...) {  // out of memory re-inserting a removed id: cannot be undone
          }
        }
      }
      for (const std::string* name : created_) {
        auto c = db_.collections_.find(*name);
        if (c != db_.collections_.end() && c->second.empty()) db_.collections_.erase(c);
      }
    }

    BasicDatabase& db_;
    std::unique_lock<std::shared_mutex> lock_;
    const std::chrono::system_clock::time_point now_;
    std::vector<detail::event_ptr> events_;
    std::vector<const std::string*> created_;  // collections this scope created
    detail::wake_batch batch_;
    bool committed_ = false;
  };

  static const Options& check(const Options& options) {
    if (options.channel_capacity == 0 || options.channel_capacity > max_channel_capacity) {
      throw error(errc::invalid_argument, "Options::channel_capacity must be from 1 to aurora::max_channel_capacity (" +
                                              std::to_string(max_channel_capacity) + "), not " +
                                              std::to_string(options.channel_capacity));
    }
    if constexpr (Storage::durable) {
      if (options.max_change_bytes == 0 || options.max_change_bytes > max_change_bytes_limit) {
        throw error(errc::invalid_argument,
                    "Options::max_change_bytes must be from 1 to aurora::max_change_bytes_limit (" +
                        std::to_string(max_change_bytes_limit) + "), not " + std::to_string(options.max_change_bytes));
      }
    }
    return options;
  }

  void check_outside_transaction(const char* call) const {
    if (detail::transaction_mark::inside(this)) {
      throw error(errc::invalid_argument,
                  std::string(call) + ": called inside a transaction of this database (use the Transaction)");
    }
  }

  // The shared commit lock for a read, or no lock when this thread runs a transaction of this
  // database (it holds the lock exclusively).
  std::shared_lock<std::shared_mutex> read_lock() const {
    if (detail::transaction_mark::inside(this)) return {};
    return std::shared_lock(mutex_);
  }

  static void check_insert_with_id(std::string_view collection, const std::string& id, const Document& doc) {
    check_collection(collection, "insert");
    if (id.empty()) throw error(errc::invalid_argument, "insert: the id is empty");
    check_object(doc, "insert: the document");
  }

  static void check_collection(std::string_view collection, const char* call) {
    if (collection.empty()) throw error(errc::invalid_argument, std::string(call) + ": the collection name is empty");
  }

  static void check_object(const Document& doc, const char* what) {
    if (!doc.is_object()) {
      throw error(errc::invalid_document, std::string(what) + " must be a JSON object, not " + doc.type_name());
    }
    if (const char* why = detail::unstorable(doc)) throw error(errc::invalid_document, std::string(what) + " " + why);
  }

  const Document* find(std::string_view collection, std::string_view id) const {
    auto c = collections_.find(collection);
    if (c == collections_.end()) return nullptr;
    auto it = c->second.find(id);
    return it == c->second.end() ? nullptr : it->second.get();
  }

  Subscription subscribe_to(std::string_view collection, const std::optional<EventFilter>& filter, Start start) {
    // Allocated before the lock: the state (and its compiled filter), and a channel in case the
    // collection has none yet.
    auto state = std::make_shared<detail::subscriber>(filter);
    std::vector<std::shared_ptr<detail::event_ring>> channels;  // released after the lock
    if (!collection.empty()) {
      channels.reserve(4);
      channels.push_back(std::make_shared<detail::event_ring>(options_.channel_capacity));
    }
    if constexpr (durable) {
      subscribe_durable(*state, collection, start, channels);
    } else {
      const auto lock = read_lock();
      hub_.subscribe(*state, collection, start, channels);
    }
    return detail::subscription_access::make(std::move(state));
  }

  // Durable: a start older than the in-memory history is served from the change log. Under
  // publish_mutex, which guards the hub here (nothing is published meanwhile), note the live
  // head H and attach to the live channel after H; then, without the lock, give the subscription
  // the log from s + 1 to H (all durable, since H was published), which it reads a page at a
  // time as it receives, its collection's events only. The filter applies on delivery, as for
  // live events: no gap, no duplicate.
  // A channel made while a group is in flight (prepared, being written) would miss its events,
  // so a subscribe that needs a new channel then waits for that group to be published; the
  // next leader lets it go first (durable_state::creating). Other subscribes do not wait. The
  // commit lock is not held: writers go on meanwhile.
  void subscribe_durable(detail::subscriber& state, std::string_view collection, const Start requested,
                         std::vector<std::shared_ptr<detail::event_ring>>& channels) {
    bool from_log = false;
    std::uint64_t after = 0;
    std::uint64_t head = 0;
    std::unique_lock hub_lock(durable_.publish_mutex);
    for (;;) {
      Start start = requested;
      from_log = false;
      head = hub_.last_sequence();
      const std::uint64_t in_memory = hub_.oldest_retained();
      const std::uint64_t logged = storage_.oldest_logged();
      if (start.kind() == Start::Kind::oldest && logged < in_memory) start = Start::after(logged - 1);
      if (start.kind() == Start::Kind::after && start.sequence() <= head && start.sequence() + 1 < in_memory) {
        if (start.sequence() + 1 < logged) {
          throw error(errc::history_lost, "subscribe: the events after sequence " + std::to_string(start.sequence()) +
                                              " are no longer retained; the oldest retained sequence is " +
                                              std::to_string(std::min(logged, in_memory)));
        }
        from_log = true;
        after = start.sequence();
        start = Start::now();
      }
      if (hub_.subscribe(state, collection, start, channels, !durable_.in_flight)) break;
      ++durable_.creating;
      durable_.published.wait(hub_lock, [this] { return !durable_.in_flight; });
      --durable_.creating;
      durable_.published.notify_all();  // a leader may wait for creating == 0
    }
    hub_lock.unlock();
    if (!from_log) return;
    for (;;) {
      try {
        state.replay_log(durable_.log, after, head, collection);
        return;
      } catch (const error& e) {
        if (e.code() != errc::history_lost || requested.kind() != Start::Kind::oldest) throw;
      }
      // Start::oldest is the oldest event logged when it is read: writers trimmed the log since.
      after = std::max(after, storage_.oldest_logged() - 1);
      if (after >= head) return;  // all of it trimmed: live events only
    }
  }

  // Durable: the change log as resumed subscriptions read it, on their own threads, after the
  // database may be gone: reads then throw closed. The database closes it before the storage is
  // destroyed; a read in progress finishes first.
  class log_pages final : public detail::log_reader {
   public:
    explicit log_pages(Storage& storage) noexcept : storage_(&storage) {}

    std::uint64_t read(std::uint64_t after, std::uint64_t end, std::string_view collection,
                       std::vector<detail::event_ptr>& out) override {
      const std::shared_lock lock(mutex_);
      Storage& storage = open_storage();
      const auto limit = static_cast<std::size_t>(std::min<std::uint64_t>(end - after, detail::replay_page));
      std::uint64_t last = after;
      const std::size_t n = storage.read_log(after, limit, [&](detail::event_ptr ev) {
        last = ev->sequence;
        if (collection.empty() || ev->collection == collection) out.push_back(std::move(ev));
      });
      if (n == 0) {  // callers read only before `end` (after < end), so the log must hold more
        throw error(errc::storage_error, "the change log ends at sequence " + std::to_string(after) +
                                             ", before sequence " + std::to_string(end) + ", which was published");
      }
      return last;
    }

    std::uint64_t oldest_logged() override {
      const std::shared_lock lock(mutex_);
      return open_storage().oldest_logged();
    }

    void close() noexcept {
      const std::unique_lock lock(mutex_);
      storage_ = nullptr;
    }

   private:
    [[nodiscard]] Storage& open_storage() const {
      if (storage_ == nullptr) throw error(errc::closed, "the database was destroyed");
      return *storage_;
    }

    std::shared_mutex mutex_;
    Storage* storage_;  // guarded by mutex_; null once closed
  };

  // A durable database's commit state. `stamped` (the last sequence handed out; guarded by the
  // commit lock) runs ahead of the hub's last sequence while commits wait to be durable.
  // `publish_mutex` serialises the hub between the leader (which runs without the commit lock)
  // and subscribe. Between preparing a group and publishing it (while it is written) the
  // leader does not hold it but sets `in_flight`: no channel may be made meanwhile, since the
  // group's reservations and event groups cover only the channels that existed at its prepare.
  // `published` is notified after each publish, on failure, and when `creating` drops.
  struct durable_state {
    std::uint64_t stamped = 0;
    mutable std::mutex publish_mutex;
    mutable std::condition_variable published;
    bool failed = false;                           // guarded by publish_mutex
    std::atomic<bool> refused{false};              // a commit failed: every later write throws storage_error
    std::atomic<std::uint64_t> last_published{0};  // the hub's last sequence, read without a lock
    bool in_flight = false;          // guarded by publish_mutex: a group is prepared and not yet published
    std::size_t creating = 0;        // guarded by publish_mutex: subscribes waiting to make a channel
    detail::wake_batch batch;        // the wake-ups of the group being written, on the leader's thread only
    std::shared_ptr<log_pages> log;  // what subscriptions resumed from the change log read
  };
  struct no_durable_state {};

  // Durable: loads the stored collections and documents (at construction, before any sharing).
  void load_storage() {
    struct visitor {
      BasicDatabase& db;
      void collection(std::string_view name) { db.collections_.try_emplace(std::string(name)); }
      void document(std::string_view name, std::string_view id, Document&& doc) {
        auto c = db.collections_.find(name);
        if (c == db.collections_.end()) c = db.collections_.try_emplace(std::string(name)).first;
        c->second.insert_or_assign(std::string(id), std::make_shared<const Document>(std::move(doc)));
      }
    };
    storage_.load(visitor{*this});
    // Timestamps never decrease across a reopen either: start from the last logged one.
    const std::uint64_t last = storage_.last_sequence();
    if (last > 0 && storage_.oldest_logged() <= last) {
      storage_.read_log(last - 1, 1, [this](const detail::event_ptr& ev) { last_timestamp_ = ev->timestamp; });
    }
  }

  // Durable, with the commit lock held (shared, or exclusively by a transaction): waits until
  // every stamped commit is published, so that memory and the hub agree. No commit can be
  // stamped meanwhile, and the commits waiting are led by their own writers (who need only
  // publish_mutex), so this ends. Errors: storage_error when a commit failed and its changes
  // are still in memory (their undo waits for the commit lock this caller holds); once undone,
  // memory and the hub agree again and reads go on.
  void settle() const {
    std::unique_lock lock(durable_.publish_mutex);
    durable_.published.wait(lock, [this] { return durable_.failed || hub_.last_sequence() == durable_.stamped; });
    if (hub_.last_sequence() != durable_.stamped) {
      throw error(errc::storage_error,
                  "a durable commit failed while this read waited for it; the database refuses writes until it is "
                  "reopened");
    }
  }

  // Durable, on the leader's thread before the group is written: allocates everything
  // publishing the group needs, so a group that cannot be published is never written, and
  // marks it in flight (after letting a subscribe that waits to make a channel go first).
  // Throws std::bad_alloc (the group fails unwritten; discard_group undoes it in memory).
  void prepare_group(std::span<detail::event_ptr> events) {
    std::unique_lock lock(durable_.publish_mutex);
    durable_.published.wait(lock, [this] { return durable_.creating == 0; });
    hub_.prepare(events, durable_.batch);
    durable_.in_flight = true;
  }

  // Durable, on the leader's thread after the group is durable: publishes its events in one
  // call (they become readable together), then wakes the readers.
  void publish_group(std::span<detail::event_ptr> events) noexcept {
    {
      const std::lock_guard lock(durable_.publish_mutex);
      hub_.publish(events, durable_.batch);  // prepared: cannot fail; takes the events over
      durable_.in_flight = false;
      durable_.last_published.store(hub_.last_sequence(), std::memory_order_release);
    }
    durable_.published.notify_all();
    durable_.batch.wake();
  }

  // Durable, on the leader's thread when a group failed (its prepare or its write), before its
  // writers wake: refuses every later write, wakes settle() and waiting subscribes, then undoes
  // the failed batches (and those queued behind them) newest first under the commit lock.
  void discard_group(std::span<detail::commit_batch> batches) noexcept {
    durable_.refused.store(true, std::memory_order_release);
    durable_.batch.wake();  // holds no wake-up yet: releases what prepare grouped
    {
      const std::lock_guard lock(durable_.publish_mutex);
      durable_.failed = true;
      durable_.in_flight = false;
    }
    durable_.published.notify_all();
    const std::unique_lock lock(mutex_);
    for (std::size_t b = batches.size(); b-- > 0;) {
      const auto& events = batches[b].events;
      for (std::size_t i = events.size(); i-- > 0;) {
        // Never published (no reader holds it): the before-image can be moved back.
        auto& ev = const_cast<ChangeEvent&>(*events[i]);
        auto c = collections_.find(ev.collection);
        if (c == collections_.end()) continue;
        if (ev.operation == OperationType::Insert) {
          c->second.erase(ev.document_id);
        } else if (ev.old_document) {
          try {
            c->second.insert_or_assign(ev.document_id, std::move(ev.old_document));
          } catch (...) {  // out of memory re-inserting a removed id: cannot be undone (writes are refused anyway)
          }
        }
      }
      for (const std::string& name : batches[b].created) {
        auto c = collections_.find(name);
        if (c != collections_.end() && c->second.empty()) collections_.erase(c);
      }
    }
    durable_.stamped = hub_.last_sequence();
  }

  Options options_;
  mutable std::shared_mutex mutex_;          // the commit lock
  detail::string_map<doc_map> collections_;  // a collection exists from its first insert
  [[no_unique_address]] Storage storage_;
  [[no_unique_address]] std::conditional_t<durable, durable_state, no_durable_state> durable_;
  detail::hub hub_;
  std::vector<detail::event_ptr> spare_events_;  // a commit_scope's buffer kept between single writes (commit lock)
  std::chrono::system_clock::time_point last_timestamp_{};
  detail::uuid_v7_generator ids_;  // used under the commit lock
};

/// The default database: in memory, stamped by `std::chrono::system_clock`.
using Database = BasicDatabase<>;

}  // namespace aurora
