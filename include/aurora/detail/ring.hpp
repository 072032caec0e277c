// broadcast_ring<T>: the fixed-capacity broadcast channel under every subscription.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

namespace aurora::detail {

// Something parked on a ring, woken by the next publish or by close(). notify() runs on the
// publishing thread with no ring lock held; it must only hand work off, never block.
class ring_waiter {
 public:
  ring_waiter() = default;
  ring_waiter(const ring_waiter&) = delete;
  ring_waiter& operator=(const ring_waiter&) = delete;
  virtual void notify() noexcept = 0;

 protected:
  ~ring_waiter() = default;

 private:
  template <class>
  friend class broadcast_ring;
  bool queued_ = false;  // on the ring's waiter list; guarded by that ring's waiters_mutex_
};

// A tiny test-and-test-and-set lock for one slot: held for a pointer copy at most.
class slot_lock {
 public:
  void lock() noexcept {
    for (int spins = 0; flag_.exchange(true, std::memory_order_acquire); ++spins) {
      while (flag_.load(std::memory_order_relaxed)) {
        if (++spins > 64) std::this_thread::yield();
      }
    }
  }
  void unlock() noexcept { flag_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> flag_{false};
};

enum class read_status { ok, empty, lagged, closed };

// A broadcast channel of exactly `capacity` slots. Writers never wait for readers; every reader
// keeps its own cursor, so readers share no written state with each other.
//
// Sequence arithmetic. Items are numbered by position p = 0, 1, 2, ... in publish order; `tail_`
// is the number published so far. Item p lives in slot p % C and the slot's `stamp` is p + 1
// (0: never written). A reader's cursor c is the position it reads next:
//   stamp(c % C) == c + 1   item c is there: take it, c + 1.
//   stamp(c % C) <  c + 1   item c is not published yet: empty (or closed, once closed).
//   stamp(c % C) >  c + 1   item c was overwritten, so tail > c + C: the reader is N = tail - c
//                           behind and only the last C items remain. It is told missed = N - C
//                           and moves to the oldest retained item, tail - C.
// Example: C = 10,000, 100,000 items to an idle reader at c = 0: slot 0 holds item 90,000
// (stamp 90,001), so the reader gets missed = 90,000, then items 90,000 .. 99,999, then empty.
//
// The writer advances `tail_` before it stamps the slot (whose store releases it), so a reader
// that sees an overwritten stamp also sees a tail at least that new and never computes
// missed == 0.
//
// Layout: each slot has a cache line to itself, and the ring's fields are grouped by who writes
// them (the writer: tail_; parking readers: the waiter list), so that the writer stamping slot
// p + 1 or advancing the tail does not take away the line a reader of slot p is reading.
//
// Thread safety: publish() and close() need one caller at a time (the Database's commit lock);
// everything else may be called from any thread concurrently.
template <class T>
class broadcast_ring {
 public:
  explicit broadcast_ring(std::size_t capacity) : capacity_(capacity) {
    if (capacity == 0) throw std::invalid_argument("broadcast_ring: capacity must be at least 1");
    // Slots are over-aligned; not every compiler turns an overflowing size into
    // bad_array_new_length for those, so check here.
    if (capacity > std::numeric_limits<std::size_t>::max() / sizeof(slot) - 1) throw std::bad_array_new_length();
    slots_ = std::make_unique<slot[]>(capacity);
  }

  broadcast_ring(const broadcast_ring&) = delete;
  broadcast_ring& operator=(const broadcast_ring&) = delete;
  ~broadcast_ring() = default;

  [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }

  // How many items were ever published.
  [[nodiscard]] std::uint64_t tail() const noexcept { return tail_.load(std::memory_order_acquire); }

  // Stores `value` as the next item and returns the item it displaced (empty-constructed before
  // the ring wrapped), so the caller can destroy it outside its own locks. Never blocks on readers.
  T publish(T value) noexcept {
    const std::uint64_t pos = tail_.load(std::memory_order_relaxed);
    // Relaxed: the stamp's store below releases it, so a reader that sees the stamp sees this.
    tail_.store(pos + 1, std::memory_order_relaxed);
    slot& s = slots_[index(pos)];
    s.lock.lock();
    std::swap(s.value, value);
    // seq_cst pairs with the seq_cst store of has_waiters_ in add_waiter(): either this
    // writer sees the waiter, or the waiter's re-check sees this item.
    s.stamp.store(pos + 1, std::memory_order_seq_cst);
    s.lock.unlock();
    return value;
  }

  // Reads the item at `cursor` into `out` and advances `cursor` (ok), or reports empty, closed, or
  // lagged (with `missed` set and `cursor` moved to the oldest retained item).
  read_status try_read(std::uint64_t& cursor, T& out, std::uint64_t& missed) const {
    for (;;) {
      const slot& s = slots_[index(cursor)];
      const std::uint64_t stamp = s.stamp.load(std::memory_order_seq_cst);
      if (stamp == cursor + 1) {
        s.lock.lock();
        const bool same = s.stamp.load(std::memory_order_relaxed) == cursor + 1;
        if (same) out = s.value;
        s.lock.unlock();
        if (same) {
          ++cursor;
          return read_status::ok;
        }
        continue;  // overwritten between the check and the lock: now it is a lag
      }
      if (stamp < cursor + 1) {
        if (!closed_.load(std::memory_order_seq_cst)) return read_status::empty;
        // Everything published happened before close(); look once more.
        if (s.stamp.load(std::memory_order_seq_cst) >= cursor + 1) continue;
        return read_status::closed;
      }
      const std::uint64_t newest = std::max(tail_.load(std::memory_order_seq_cst), stamp);
      const std::uint64_t oldest = newest - capacity_;
      missed = oldest - cursor;
      cursor = oldest;
      return read_status::lagged;
    }
  }

  // True when try_read(cursor) would not report empty.
  [[nodiscard]] bool ready(std::uint64_t cursor) const noexcept {
    return slots_[index(cursor)].stamp.load(std::memory_order_seq_cst) >= cursor + 1 ||
           closed_.load(std::memory_order_seq_cst);
  }

  // Parks `w` until the next publish or close(). Re-check ready() afterwards: an item published
  // before this call does not wake it.
  void add_waiter(std::shared_ptr<ring_waiter> w) {
    const std::lock_guard lock(waiters_mutex_);
    if (!w->queued_) {
      waiters_.push_back(std::move(w));
      waiters_.back()->queued_ = true;
    }
    has_waiters_.store(true, std::memory_order_seq_cst);
  }

  // Takes `w` off the waiter list if it is there.
  void remove_waiter(const ring_waiter* w) {
    const std::lock_guard lock(waiters_mutex_);
    if (!w->queued_) return;
    auto it = std::find_if(waiters_.begin(), waiters_.end(), [w](const auto& p) { return p.get() == w; });
    if (it != waiters_.end()) {
      (*it)->queued_ = false;
      waiters_.erase(it);
    }
    has_waiters_.store(!waiters_.empty(), std::memory_order_seq_cst);
  }

  // Wakes every parked waiter (after publish, outside the caller's locks). Cheap when none is.
  void notify_waiters() {
    if (!has_waiters_.load(std::memory_order_seq_cst)) return;
    std::vector<std::shared_ptr<ring_waiter>> woken;
    {
      const std::lock_guard lock(waiters_mutex_);
      woken.swap(waiters_);
      waiters_.swap(spare_);  // the capacity the last wake-up left: parking does not allocate
      for (const auto& w : woken) w->queued_ = false;
      has_waiters_.store(false, std::memory_order_seq_cst);
    }
    for (const auto& w : woken) w->notify();
    woken.clear();
    const std::lock_guard lock(waiters_mutex_);
    if (spare_.capacity() < woken.capacity()) spare_.swap(woken);
  }

  // Ends the channel: readers drain what is left, then read closed. Wakes every waiter.
  void close() {
    closed_.store(true, std::memory_order_seq_cst);
    has_waiters_.store(true, std::memory_order_seq_cst);
    notify_waiters();
  }

  [[nodiscard]] bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }

  void add_subscriber() noexcept { subscribers_.fetch_add(1, std::memory_order_relaxed); }
  void remove_subscriber() noexcept { subscribers_.fetch_sub(1, std::memory_order_relaxed); }
  [[nodiscard]] std::size_t subscriber_count() const noexcept { return subscribers_.load(std::memory_order_relaxed); }

 private:
  struct alignas(64) slot {
    std::atomic<std::uint64_t> stamp{0};
    mutable slot_lock lock;
    T value{};
  };

  [[nodiscard]] std::size_t index(std::uint64_t pos) const noexcept {
    return static_cast<std::size_t>(pos % capacity_);
  }

  // Read by everyone, written once.
  const std::size_t capacity_;
  std::unique_ptr<slot[]> slots_;
  // Written by the writer.
  alignas(64) std::atomic<std::uint64_t> tail_{0};
  // Written rarely (close, subscribe); read by readers that find nothing new.
  alignas(64) std::atomic<bool> closed_{false};
  std::atomic<std::size_t> subscribers_{0};
  // Written by readers that park; read by the writer on every publish.
  alignas(64) std::atomic<bool> has_waiters_{false};
  std::mutex waiters_mutex_;
  std::vector<std::shared_ptr<ring_waiter>> waiters_;
  std::vector<std::shared_ptr<ring_waiter>> spare_;  // storage for waiters_, kept between wake-ups
};

}  // namespace aurora::detail
