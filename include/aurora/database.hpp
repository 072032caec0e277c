// BasicDatabase / Database: JSON document collections with a change feed per collection and a
// global one.
#pragma once

#include <aurora/change_event.hpp>
#include <aurora/detail/ring.hpp>
#include <aurora/detail/storable.hpp>
#include <aurora/detail/subscriber.hpp>
#include <aurora/detail/uuid.hpp>
#include <aurora/errc.hpp>
#include <aurora/filter.hpp>
#include <aurora/options.hpp>
#include <aurora/snapshot.hpp>
#include <aurora/subscription.hpp>
#include <aurora/value.hpp>

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace aurora {

namespace detail {

struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

template <class V>
using string_map = std::unordered_map<std::string, V, string_hash, std::equal_to<>>;

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
/// Thread safety: every member function may be called from any thread at any time. Writes are
/// serialised into one commit order; reads run concurrently with each other. Destroying the
/// Database closes every channel: subscriptions read what is still unread, then `errc::closed`.
template <EventClock Clock = std::chrono::system_clock>
class BasicDatabase {
 public:
  /// The clock that stamps events.
  using clock_type = Clock;

  /// An empty database. Throws `aurora::error(errc::invalid_argument)` when
  /// `options.channel_capacity == 0`.
  explicit BasicDatabase(Options options = {}) : options_(options) {
    if (options_.channel_capacity == 0) throw error(errc::invalid_argument, "Options::channel_capacity must be >= 1");
  }

  BasicDatabase(const BasicDatabase&) = delete;
  BasicDatabase& operator=(const BasicDatabase&) = delete;

  /// Closes every channel; subscriptions and their pending receives stay valid.
  ~BasicDatabase() {
    const std::unique_lock lock(mutex_);
    for (auto& [name, entry] : collections_) {
      if (entry.channel) entry.channel->close();
    }
    if (global_) global_->close();
  }

  /// Stores `doc` under a new UUIDv7 id and returns the id.
  ///
  /// Errors (`aurora::error`): `invalid_argument` if `collection` is empty; `invalid_document`
  /// if `doc` is not a JSON object, nests deeper than `max_document_depth`, or holds a NaN or
  /// infinite number or a discarded value. Nothing changes and nothing is published when it
  /// throws.
  std::string insert(std::string_view collection, Document doc) {
    check_collection(collection, "insert");
    check_object(doc, "insert: the document");
    for (;;) {
      std::string id = ids_.next(Clock::now());
      if (try_insert(collection, id, doc)) return id;
    }
  }

  /// Stores `doc` under the caller's `id` (any non-empty string) and returns the id.
  ///
  /// Errors: `invalid_argument` if `collection` or `id` is empty; `invalid_document` if `doc` is
  /// not a storable JSON object (as for `insert(collection, doc)`); `already_exists` if `id` is
  /// present in `collection`.
  std::string insert(std::string_view collection, std::string id, Document doc) {
    check_collection(collection, "insert");
    if (id.empty()) throw error(errc::invalid_argument, "insert: the id is empty");
    check_object(doc, "insert: the document");
    if (!try_insert(collection, id, doc)) {
      throw error(errc::already_exists,
                  "insert: id " + detail::quoted(id) + " already exists in " + detail::quoted(collection));
    }
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
  /// `null` removes, others stay. Publishes an Update, or nothing when the document is unchanged.
  ///
  /// Errors: `invalid_document` if `patch` is not a storable JSON object (as for `insert`);
  /// `not_found` if the collection was never written or `id` is not present.
  void update(std::string_view collection, std::string_view id, const Document& patch) {
    check_object(patch, "update: the patch");
    auto ev = make_event(collection, id, OperationType::Update);
    published batch;
    {
      const std::unique_lock lock(mutex_);
      auto [entry, it] = find_locked(collection, id, "update");
      Document updated = it->second;
      updated.merge_patch(patch);
      if (updated == it->second) return;
      ev->document.emplace(updated);
      ev->old_document.emplace(std::move(it->second));
      it->second = std::move(updated);
      commit_locked(*entry, std::move(ev), batch);
    }
    batch.notify();
  }

  /// Replaces document `id` with `doc`. Publishes an Update, or nothing when `doc` equals the
  /// stored document.
  ///
  /// Errors: `invalid_document` if `doc` is not a storable JSON object (as for `insert`);
  /// `not_found` if the collection was never written or `id` is not present.
  void replace(std::string_view collection, std::string_view id, Document doc) {
    check_object(doc, "replace: the document");
    auto ev = make_event(collection, id, OperationType::Update);
    ev->document.emplace(doc);
    published batch;
    {
      const std::unique_lock lock(mutex_);
      auto [entry, it] = find_locked(collection, id, "replace");
      if (doc == it->second) return;
      ev->old_document.emplace(std::move(it->second));
      it->second = std::move(doc);
      commit_locked(*entry, std::move(ev), batch);
    }
    batch.notify();
  }

  /// Removes document `id` and publishes a Delete carrying it as `old_document`.
  ///
  /// Errors: `not_found` if the collection was never written or `id` is not present.
  void remove(std::string_view collection, std::string_view id) {
    auto ev = make_event(collection, id, OperationType::Delete);
    published batch;
    {
      const std::unique_lock lock(mutex_);
      auto [entry, it] = find_locked(collection, id, "remove");
      ev->old_document.emplace(std::move(it->second));
      entry->docs.erase(it);
      commit_locked(*entry, std::move(ev), batch);
    }
    batch.notify();
  }

  /// A copy of document `id`, or nothing when the collection or the document is not there.
  [[nodiscard]] std::optional<Document> get(std::string_view collection, std::string_view id) const {
    const std::shared_lock lock(mutex_);
    auto c = collections_.find(collection);
    if (c == collections_.end()) return std::nullopt;
    auto it = c->second.docs.find(id);
    if (it == c->second.docs.end()) return std::nullopt;
    return it->second;
  }

  /// How many documents `collection` holds; 0 for an unknown one.
  [[nodiscard]] std::size_t size(std::string_view collection) const {
    const std::shared_lock lock(mutex_);
    auto c = collections_.find(collection);
    return c == collections_.end() ? 0 : c->second.docs.size();
  }

  /// A copy of every document of `collection` (sorted by id) with the sequence of the last
  /// commit it reflects; empty for an unknown collection. Consistent: taken under the commit
  /// order, so no write is half in it. Costs a copy of the collection. Throws only `bad_alloc`.
  [[nodiscard]] Snapshot snapshot(std::string_view collection) const {
    Snapshot snap;
    {
      const std::shared_lock lock(mutex_);
      snap.sequence = sequence_;
      auto c = collections_.find(collection);
      if (c != collections_.end()) {
        snap.documents.reserve(c->second.docs.size());
        for (const auto& [id, doc] : c->second.docs) snap.documents.emplace_back(id, doc);
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
      const std::shared_lock lock(mutex_);
      for (const auto& [name, entry] : collections_) {
        if (entry.created) names.push_back(name);
      }
    }
    std::sort(names.begin(), names.end());
    return names;
  }

  /// A subscription to `collection`'s changes from now on, optionally filtered. The collection
  /// need not exist yet (subscribing does not create it).
  ///
  /// Errors: `invalid_argument` if `collection` is empty.
  [[nodiscard]] Subscription subscribe(std::string_view collection, std::optional<EventFilter> filter = {}) {
    check_collection(collection, "subscribe");
    const std::unique_lock lock(mutex_);
    auto& entry = entry_locked(collection);
    if (!entry.channel) entry.channel = std::make_shared<detail::event_ring>(options_.channel_capacity);
    return Subscription(std::make_shared<detail::subscriber>(entry.channel, std::move(filter)));
  }

  /// A subscription to every collection's changes from now on, in sequence order.
  [[nodiscard]] Subscription subscribe_global(std::optional<EventFilter> filter = {}) {
    const std::unique_lock lock(mutex_);
    if (!global_) global_ = std::make_shared<detail::event_ring>(options_.channel_capacity);
    return Subscription(std::make_shared<detail::subscriber>(global_, std::move(filter)));
  }

  /// How many live subscriptions `collection` has.
  [[nodiscard]] std::size_t subscriber_count(std::string_view collection) const {
    const std::shared_lock lock(mutex_);
    auto c = collections_.find(collection);
    return c == collections_.end() || !c->second.channel ? 0 : c->second.channel->subscriber_count();
  }

  /// How many live global subscriptions there are.
  [[nodiscard]] std::size_t global_subscriber_count() const {
    const std::shared_lock lock(mutex_);
    return global_ ? global_->subscriber_count() : 0;
  }

  /// The options this database was made with.
  [[nodiscard]] const Options& options() const noexcept { return options_; }

 private:
  using doc_map = detail::string_map<Document>;

  struct collection_entry {
    bool created = false;                         // had a successful insert
    doc_map docs;                                 // id -> document
    std::shared_ptr<detail::event_ring> channel;  // made by the first subscribe
  };

  // What a commit published: the channels to wake and the events the rings displaced, both
  // handled after the commit lock is released.
  struct published {
    detail::event_ring* rings[2] = {nullptr, nullptr};
    detail::event_ptr displaced[2];

    void notify() {
      for (detail::event_ring* ring : rings) {
        if (ring != nullptr) ring->notify_waiters();
      }
    }
  };

  static void check_collection(std::string_view collection, const char* call) {
    if (collection.empty()) throw error(errc::invalid_argument, std::string(call) + ": the collection name is empty");
  }

  static void check_object(const Document& doc, const char* what) {
    if (!doc.is_object()) {
      throw error(errc::invalid_document, std::string(what) + " must be a JSON object, not " + doc.type_name());
    }
    if (const char* why = detail::unstorable(doc)) throw error(errc::invalid_document, std::string(what) + " " + why);
  }

  static std::shared_ptr<ChangeEvent> make_event(std::string_view collection, std::string_view id, OperationType op) {
    auto ev = std::make_shared<ChangeEvent>();
    ev->collection = collection;
    ev->document_id = id;
    ev->operation = op;
    return ev;
  }

  // Moves `doc` in under `id`; false (nothing changed, `doc` untouched) when the id is taken.
  bool try_insert(std::string_view collection, const std::string& id, Document& doc) {
    auto ev = make_event(collection, id, OperationType::Insert);
    ev->document.emplace(doc);
    published batch;
    {
      const std::unique_lock lock(mutex_);
      auto& entry = entry_locked(collection);
      if (entry.docs.contains(id)) return false;
      entry.docs.emplace(id, std::move(doc));
      entry.created = true;
      commit_locked(entry, std::move(ev), batch);
    }
    batch.notify();
    return true;
  }

  collection_entry& entry_locked(std::string_view collection) {
    auto it = collections_.find(collection);
    if (it == collections_.end()) it = collections_.emplace(std::string(collection), collection_entry{}).first;
    return it->second;
  }

  std::pair<collection_entry*, typename doc_map::iterator> find_locked(std::string_view collection, std::string_view id,
                                                                       const char* call) {
    auto c = collections_.find(collection);
    if (c == collections_.end() || !c->second.created) {
      throw error(errc::not_found, std::string(call) + ": no collection " + detail::quoted(collection));
    }
    auto it = c->second.docs.find(id);
    if (it == c->second.docs.end()) {
      throw error(errc::not_found,
                  std::string(call) + ": no document " + detail::quoted(id) + " in " + detail::quoted(collection));
    }
    return {&c->second, it};
  }

  // Stamps `ev` with the next sequence and a non-decreasing timestamp and publishes it to the
  // collection's channel and the global one. Called with mutex_ held exclusively; never throws.
  void commit_locked(collection_entry& entry, std::shared_ptr<ChangeEvent> ev, published& out) noexcept {
    ev->sequence = ++sequence_;
    const std::chrono::system_clock::time_point now = Clock::now();
    last_timestamp_ = std::max(last_timestamp_, now);
    ev->timestamp = last_timestamp_;
    detail::event_ptr shared = std::move(ev);
    if (entry.channel) {
      out.displaced[0] = entry.channel->publish(shared);
      out.rings[0] = entry.channel.get();
    }
    if (global_) {
      out.displaced[1] = global_->publish(std::move(shared));
      out.rings[1] = global_.get();
    }
  }

  Options options_;
  mutable std::shared_mutex mutex_;
  detail::string_map<collection_entry> collections_;
  std::shared_ptr<detail::event_ring> global_;
  std::uint64_t sequence_ = 0;
  std::chrono::system_clock::time_point last_timestamp_{};
  detail::uuid_v7_generator ids_;
};

/// The default database: in memory, stamped by `std::chrono::system_clock`.
using Database = BasicDatabase<>;

}  // namespace aurora
