// hub: the change feed's channels (one per subscribed collection, plus the global one that is
// also the retained history), subscribe, publish in commit order, and the wake-ups after a commit.
#pragma once

#include <aurora/change_event.hpp>
#include <aurora/detail/ring.hpp>
#include <aurora/detail/string_map.hpp>
#include <aurora/detail/subscriber.hpp>
#include <aurora/errc.hpp>
#include <aurora/filter.hpp>
#include <aurora/start.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace aurora::detail {

// What one commit leaves to do after the commit lock is released: wake the readers parked on
// the channels it published to, and destroy what the channels let go of (displaced events,
// channels nobody subscribes to any more), so that no destructor runs under the lock.
class wake_batch {
 public:
  wake_batch() = default;
  wake_batch(const wake_batch&) = delete;
  wake_batch& operator=(const wake_batch&) = delete;
  // Wakes what wake() was not called for; the members then release the rest.
  ~wake_batch() {
    if (has_waiters()) notify_all();
  }

  // Wakes the parked readers, then releases what was displaced and retired, leaving the batch
  // empty for reuse. Idempotent. (A single write's batch leaves displaced_[0] to its collection
  // channel and displaced_[1] to the global one.) The readers parked on one io_context are
  // handed back together, in one piece of work per context (see wake_round); when nobody
  // waits, no round is opened.
  void wake() noexcept {
    if (has_waiters()) notify_all();
    global_ = nullptr;
    channel_.reset();
    displaced_[0].reset();
    displaced_[1].reset();
    if (more_) [[unlikely]]
      release_more();
  }

 private:
  friend class hub;

  // What a single write does not need: a transaction's channels and displaced events, and the
  // channels released by this commit.
  struct extra {
    std::vector<std::shared_ptr<event_ring>> channels;
    std::vector<event_ptr> displaced;
    std::vector<std::shared_ptr<event_ring>> retired;
    // A multi-event commit's events, grouped by collection channel (made by hub::prepare).
    std::vector<std::pair<std::shared_ptr<event_ring>, std::vector<event_ptr>>> groups;
  };

  [[nodiscard]] bool has_waiters() const noexcept {
    if (global_ != nullptr && global_->has_waiters()) return true;
    if (channel_ && channel_->has_waiters()) return true;
    if (more_) {
      for (const auto& ring : more_->channels) {
        if (ring->has_waiters()) return true;
      }
    }
    return false;
  }

  // Out of line, as notify_all(): only a commit of several events (a transaction, a durable
  // group) or a channel release fills more_.
  [[gnu::noinline]] void release_more() noexcept { more_.reset(); }

  // Out of line: a write that wakes nobody (the common case) then pays for no wake_round frame.
  [[gnu::noinline]] void notify_all() noexcept {
    const wake_round round;
    if (global_ != nullptr) notify(*global_);
    if (channel_) notify(*channel_);
    if (more_) {
      for (const auto& ring : more_->channels) notify(*ring);
    }
  }

  static void notify(event_ring& ring) noexcept {
    try {
      ring.notify_waiters();
    } catch (...) {  // a waiter-list lock failed: its readers are woken by the next publish
    }
  }

  extra& more() {
    if (!more_) more_ = std::make_unique<extra>();
    return *more_;
  }

  // Channels are held by a reference: once the commit lock is released, a subscribe may release
  // a collection channel that lost its last subscriber. (The global one lives as long as the
  // Database, which outlives the write that made this batch.)
  void add_channel(const std::shared_ptr<event_ring>& ring) {
    if (channel_ == ring) return;
    if (!channel_) {
      channel_ = ring;
      return;
    }
    auto& channels = more().channels;
    if (std::find(channels.begin(), channels.end(), ring) == channels.end()) channels.push_back(ring);
  }

  void add_displaced(event_ptr ev) noexcept {
    if (!ev) return;
    for (event_ptr& slot : displaced_) {
      if (!slot) {
        slot = std::move(ev);
        return;
      }
    }
    try {
      more().displaced.push_back(std::move(ev));
    } catch (...) {  // released here, under the lock, rather than lost
    }
  }

  event_ring* global_ = nullptr;
  std::shared_ptr<event_ring> channel_;  // one write touches one collection channel at most
  event_ptr displaced_[2];
  std::unique_ptr<extra> more_;
};

// The channels of one database. The global channel always exists: it receives every event and
// is the retained history (the last `capacity` events database-wide) that Start::after and
// Start::oldest read. A collection channel exists while somebody subscribes to it; after its
// last subscription is gone it is released by the next commit, with the events it held.
//
// Positions: the global channel numbers its items by sequence (the event with sequence q is at
// position q - 1), so "events after s" starts at position s.
//
// Thread safety: the owner serialises it with its commit lock. publish(), prepare() and close()
// need the lock exclusively; subscribe() and the counts need it at least shared (subscribe()
// may run concurrently with other subscribes; it serialises them itself).
class hub {
 public:
  // Channels of `capacity` slots; the next event published gets sequence `last_sequence + 1`.
  hub(std::size_t capacity, std::uint64_t last_sequence)
      : capacity_(capacity),
        first_position_(last_sequence),
        global_(std::make_shared<event_ring>(capacity, last_sequence)),
        idle_(std::make_shared<std::atomic<bool>>(false)) {}

  hub(const hub&) = delete;
  hub& operator=(const hub&) = delete;
  ~hub() { close(); }

  [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }

  // The sequence of the last event published (0 before any).
  [[nodiscard]] std::uint64_t last_sequence() const noexcept { return global_->tail(); }

  // The oldest sequence still retained; last_sequence() + 1 when none is.
  [[nodiscard]] std::uint64_t oldest_retained() const noexcept {
    const std::uint64_t tail = global_->tail();
    return tail - std::min<std::uint64_t>(tail - first_position_, capacity_) + 1;
  }

  // Connects `sub` to `collection`'s channel (the global one when `collection` is empty) at
  // `start`. `fresh` is a channel made by the caller outside the lock, used if the collection
  // has none; on return it holds what the caller must release after the lock (the fresh
  // channel if unused, or channels nobody subscribes to any more). With `may_create` false it
  // neither makes a channel nor releases idle ones, and returns false (nothing changed) when the
  // collection has no channel. Errors: history_lost when `start` asks for events no longer
  // retained; invalid_argument for a sequence after the last one.
  bool subscribe(subscriber& sub, std::string_view collection, Start start,
                 std::vector<std::shared_ptr<event_ring>>& fresh, bool may_create = true) {
    const std::uint64_t tail = global_->tail();
    std::uint64_t from = tail;  // global position to read from
    if (start.kind() == Start::Kind::after) {
      if (start.sequence() > tail) {
        throw error(errc::invalid_argument, "subscribe: Start::after(" + std::to_string(start.sequence()) +
                                                ") is after the last sequence, " + std::to_string(tail));
      }
      if (start.sequence() + 1 < oldest_retained()) {
        throw error(errc::history_lost, "subscribe: the events after sequence " + std::to_string(start.sequence()) +
                                            " are no longer retained; the oldest retained sequence is " +
                                            std::to_string(oldest_retained()));
      }
      from = start.sequence();
    } else if (start.kind() == Start::Kind::oldest) {
      from = oldest_retained() - 1;
    }
    if (collection.empty()) {
      sub.attach(global_, from, std::nullopt, nullptr);
      return true;
    }
    const std::lock_guard lock(channels_mutex_);
    if (may_create && idle_->load(std::memory_order_relaxed) && idle_->exchange(false, std::memory_order_acq_rel)) {
      release_idle_locked(fresh);
    }
    auto it = channels_.find(collection);
    if (it == channels_.end()) {
      if (!may_create) return false;
      it = channels_.emplace(std::string(collection), std::move(fresh.front())).first;
      fresh.erase(fresh.begin());
    }
    std::optional<backlog> history;
    if (from < tail) history.emplace(backlog{global_, from, tail, std::string(collection)});
    sub.attach(it->second, it->second->tail(), std::move(history), idle_);
    return true;
  }

  // How many live subscriptions `collection`'s channel has.
  [[nodiscard]] std::size_t subscriber_count(std::string_view collection) const {
    const std::lock_guard lock(channels_mutex_);
    auto it = channels_.find(collection);
    return it == channels_.end() ? 0 : it->second->subscriber_count();
  }

  // How many live global subscriptions there are.
  [[nodiscard]] std::size_t global_subscriber_count() const noexcept { return global_->subscriber_count(); }

  // Allocates what publishing `events` needs, so that publish() cannot fail, and groups the
  // events of a multi-event commit by channel in `batch`. Throws std::bad_alloc, changing
  // nothing a reader can see.
  void prepare(std::span<const event_ptr> events, wake_batch& batch) {
    global_->reserve(events.size());
    if (channels_.empty()) return;
    if (events.size() == 1) {
      auto it = channels_.find(events.front()->collection);
      if (it != channels_.end()) it->second->reserve(1);
      return;
    }
    for (const event_ptr& ev : events) {
      auto it = channels_.find(ev->collection);
      if (it == channels_.end()) continue;
      auto& groups = batch.more().groups;
      auto group = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == it->second; });
      if (group == groups.end()) {
        groups.emplace_back(it->second, std::vector<event_ptr>{});
        group = groups.end() - 1;
      }
      group->second.push_back(ev);
    }
    if (!batch.more_) return;
    for (auto& [ring, group] : batch.more_->groups) ring->reserve(group.size());
    batch.more_->channels.reserve(batch.more_->groups.size());
  }

  // Publishes `events` (stamped with the next sequences, in order) to their collections'
  // channels and the global one, which takes them over (they are left empty); the events of
  // one call become readable together on each channel. The wake-ups and the releases are left
  // in `batch`, for after the commit lock. Call prepare() first, with the same batch.
  void publish(std::span<event_ptr> events, wake_batch& batch) noexcept {
    if (idle_->load(std::memory_order_relaxed) && idle_->exchange(false, std::memory_order_acq_rel)) {
      release_idle(batch);
    }
    if (events.size() == 1) [[likely]] {
      event_ptr& ev = events.front();
      if (!channels_.empty()) publish_to_collection(ev, batch);
      batch.displaced_[1] = global_->publish(std::move(ev));  // reserved by prepare(): cannot throw
    } else {
      publish_many(events, batch);
    }
    batch.global_ = global_.get();
  }

  // Closes every channel: subscriptions read what is left, then closed.
  void close() noexcept {
    std::vector<std::shared_ptr<event_ring>> rings;
    {
      const std::lock_guard lock(channels_mutex_);
      for (auto& [name, ring] : channels_) rings.push_back(ring);
    }
    rings.push_back(global_);
    for (const auto& ring : rings) {
      try {
        ring->close();
      } catch (...) {  // a waiter-list lock failed; the channel is closed, its readers see it
      }
    }
  }

 private:
  static event_ptr publish_to(event_ring& ring, const event_ptr& ev) noexcept {
    try {
      return ring.publish(ev);  // reserved by prepare(): cannot throw
    } catch (...) {
      return nullptr;
    }
  }

  // A single event's collection channel, if it has one.
  void publish_to_collection(const event_ptr& ev, wake_batch& batch) noexcept {
    auto it = channels_.find(ev->collection);
    if (it == channels_.end()) return;
    batch.displaced_[0] = publish_to(*it->second, ev);
    add_channel(batch, it->second);
  }

  // A commit of several events (a transaction, a durable group): each channel's group (made by
  // prepare()), then the global channel.
  [[gnu::noinline]] void publish_many(std::span<event_ptr> events, wake_batch& batch) noexcept {
    auto keep = [&batch](event_ptr displaced) { batch.add_displaced(std::move(displaced)); };
    if (batch.more_) {
      for (auto& [ring, group] : batch.more_->groups) {
        publish_all_to(*ring, group, keep);
        add_channel(batch, ring);
      }
    }
    publish_all_to(*global_, events, keep);
  }

  template <class Values, class Sink>
  static void publish_all_to(event_ring& ring, const Values& values, Sink& sink) noexcept {
    try {
      ring.publish_all(values, sink);  // reserved by prepare(): cannot throw
    } catch (...) {
    }
  }

  static void add_channel(wake_batch& batch, const std::shared_ptr<event_ring>& ring) noexcept {
    try {
      batch.add_channel(ring);
    } catch (...) {  // out of memory for a transaction's extra channels: woken by the next publish
    }
  }

  // Moves the channels that have no subscriber left into `batch`, which frees them after the lock.
  void release_idle(wake_batch& batch) noexcept {
    const std::lock_guard lock(channels_mutex_);
    try {
      release_idle_locked(batch.more().retired);
    } catch (...) {  // no memory for the list: released at the next commit instead
      idle_->store(true, std::memory_order_relaxed);
    }
  }

  void release_idle_locked(std::vector<std::shared_ptr<event_ring>>& retired) noexcept {
    for (auto it = channels_.begin(); it != channels_.end();) {
      if (it->second->subscriber_count() == 0) {
        try {
          retired.push_back(std::move(it->second));
        } catch (...) {  // freed here instead
        }
        it = channels_.erase(it);
      } else {
        ++it;
      }
    }
  }

  const std::size_t capacity_;
  const std::uint64_t first_position_;  // the global channel's first position: nothing before it is retained
  std::shared_ptr<event_ring> global_;
  std::shared_ptr<std::atomic<bool>> idle_;  // raised when a collection channel lost its last subscriber
  mutable std::mutex channels_mutex_;        // subscribe() vs subscribe(); publish() holds the commit lock
  string_map<std::shared_ptr<event_ring>> channels_;
};

}  // namespace aurora::detail
