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

// A tiny test-and-test-and-set lock for one slot: held for a pointer copy at most, never while
// anything is destroyed.
class slot_lock {
 public:
  void lock() noexcept {
    if (!flag_.exchange(true, std::memory_order_acquire)) [[likely]]
      return;
    lock_contended();
  }
  void unlock() noexcept { flag_.store(false, std::memory_order_release); }

 private:
  [[gnu::noinline]] void lock_contended() noexcept {
    do {
      for (unsigned spins = 0; flag_.load(std::memory_order_relaxed);) {
        if (spins < 64) {
          ++spins;
        } else {
          std::this_thread::yield();
        }
      }
    } while (flag_.exchange(true, std::memory_order_acquire));
  }

  std::atomic<bool> flag_{false};
};

enum class read_status { ok, empty, lagged, closed };

// A broadcast channel of exactly `capacity` slots. Writers never wait for readers; every reader
// keeps its own cursor, so readers share no written state with each other.
//
// Sequence arithmetic. Items are numbered by position p = start, start + 1, ... in publish order
// (`start` is 0 unless the owner numbers positions after something, e.g. sequences); `tail_` is
// the position the next item gets. Item p lives in slot p % C and the slot's `stamp` is p + 1
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
// Memory grows with use: slots come in segments of `segment_slots`, allocated the first time
// the writer reaches them (`reserve`), so a channel that saw 3 items holds one segment, not C
// slots. A reader that finds no segment where its cursor points sees stamp 0: nothing there.
//
// Layout: each slot has a cache line to itself, and the ring's fields are grouped by who writes
// them (the writer: tail_; parking readers: the waiter list), so that the writer stamping slot
// p + 1 or advancing the tail does not take away the line a reader of slot p is reading.
//
// Thread safety: reserve(), publish() and close() need one caller at a time (the hub's commit
// order); everything else may be called from any thread concurrently.
template <class T>
class broadcast_ring {
 public:
  static constexpr std::size_t segment_slots = 64;

  // Largest capacity whose slot table can be addressed at all; larger ones are rejected.
  static constexpr std::size_t max_capacity() noexcept {
    return std::numeric_limits<std::size_t>::max() / sizeof(void*) / 2 - segment_slots;
  }

  explicit broadcast_ring(std::size_t capacity, std::uint64_t start = 0) : capacity_(capacity), tail_(start) {
    if (capacity == 0) throw std::invalid_argument("broadcast_ring: capacity must be at least 1");
    if (capacity > max_capacity()) throw std::invalid_argument("broadcast_ring: capacity too large");
    segments_ = std::make_unique<std::atomic<slot*>[]>(segment_count());
    tail_index_ = index(start);
  }

  broadcast_ring(const broadcast_ring&) = delete;
  broadcast_ring& operator=(const broadcast_ring&) = delete;

  ~broadcast_ring() {
    for (std::size_t i = 0; i < segment_count(); ++i) delete[] segments_[i].load(std::memory_order_relaxed);
  }

  [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }

  // The position the next item gets (the start position plus how many were published).
  [[nodiscard]] std::uint64_t tail() const noexcept { return tail_.load(std::memory_order_acquire); }

  // Makes sure the next `n` publishes allocate nothing. Throws std::bad_alloc, changing nothing
  // a reader can see.
  void reserve(std::uint64_t n) {
    if (allocated_ == segment_count() || n == 0) return;  // steady state: every segment is there
    const std::uint64_t count = std::min<std::uint64_t>(n, capacity_);
    std::size_t i = tail_index_;
    for (std::uint64_t k = 0; k < count; k += segment_slots) {
      (void)segment_for(i);
      i = (i + segment_slots) % capacity_;
    }
    (void)segment_for(advance(tail_index_, count - 1));
  }

  // Stores `value` as the next item and returns the item it displaced (empty-constructed before
  // the ring wrapped), so the caller can destroy it outside its own locks. Never blocks on
  // readers. Throws std::bad_alloc only when the slot's segment was not reserved (then nothing
  // changed).
  T publish(T value) {
    const std::uint64_t pos = tail_.load(std::memory_order_relaxed);
    slot& s = segment_for(tail_index_)[tail_index_ % segment_slots];
    tail_index_ = tail_index_ + 1 == capacity_ ? 0 : tail_index_ + 1;
    // Relaxed: the stamp's store below releases it, so a reader that sees the stamp sees this.
    tail_.store(pos + 1, std::memory_order_relaxed);
    s.lock.lock();
    std::swap(s.value, value);
    // seq_cst pairs with the seq_cst store of has_waiters_ in add_waiter(): either this
    // writer sees the waiter, or the waiter's re-check sees this item.
    s.stamp.store(pos + 1, std::memory_order_seq_cst);
    s.lock.unlock();
    return value;
  }

  // Publishes `values` (random access, `values.size()` of them) as consecutive items that become
  // readable together: they are written last to first, so a reader that can read the first
  // finds every other one in place. Hands each displaced item to `displaced` (outside the slot
  // lock). Of more than C values only the last C are stored (the others would be overwritten
  // by their own batch). Call reserve(values.size()) first; otherwise throws std::bad_alloc
  // before anything changed, or (for a segment past the first) leaves the batch partly stored.
  template <class Values, class Sink>
  void publish_all(const Values& values, Sink&& displaced) {
    const std::uint64_t pos = tail_.load(std::memory_order_relaxed);
    const std::uint64_t n = values.size();
    if (n == 0) return;
    const std::size_t base = tail_index_;
    (void)segment_for(advance(base, n - 1));  // the first to be written: nothing changes if it throws
    tail_index_ = advance(base, n);
    tail_.store(pos + n, std::memory_order_relaxed);
    const std::uint64_t first = n > capacity_ ? n - capacity_ : 0;
    for (std::uint64_t i = n; i-- > first;) {
      const std::uint64_t p = pos + i;
      const std::size_t at = advance(base, i);
      slot& s = segment_for(at)[at % segment_slots];
      T value = values[static_cast<std::size_t>(i)];
      s.lock.lock();
      std::swap(s.value, value);
      s.stamp.store(p + 1, std::memory_order_seq_cst);
      s.lock.unlock();
      displaced(std::move(value));
    }
  }

  // Reads the item at `cursor` into `out` and advances `cursor` (ok), or reports empty, closed, or
  // lagged (with `missed` set and `cursor` moved to the oldest retained item). The value `out`
  // held before is released after the slot is unlocked, so a reader never runs a destructor
  // while a writer may wait for that slot.
  read_status try_read(std::uint64_t& cursor, T& out, std::uint64_t& missed) const {
    for (;;) {
      const slot* s = find(cursor);
      const std::uint64_t stamp = s == nullptr ? 0 : s->stamp.load(std::memory_order_seq_cst);
      if (stamp == cursor + 1) {
        T copy{};
        s->lock.lock();
        const bool same = s->stamp.load(std::memory_order_relaxed) == cursor + 1;
        if (same) copy = s->value;
        s->lock.unlock();
        if (same) {
          out = std::move(copy);
          ++cursor;
          return read_status::ok;
        }
        continue;  // overwritten between the check and the lock: now it is a lag
      }
      if (stamp < cursor + 1) {
        if (!closed_.load(std::memory_order_seq_cst)) return read_status::empty;
        // Everything published happened before close(); look once more.
        if (stamp_at(cursor) >= cursor + 1) continue;
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
    return stamp_at(cursor) >= cursor + 1 || closed_.load(std::memory_order_seq_cst);
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

  // True when notify_waiters() would wake somebody (or find the channel closed).
  [[nodiscard]] bool has_waiters() const noexcept { return has_waiters_.load(std::memory_order_seq_cst); }

  // Wakes every parked waiter (after publish, outside the caller's locks). Cheap when none is.
  void notify_waiters() {
    if (!has_waiters()) return;
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
  // True when this removed the last subscriber.
  bool remove_subscriber() noexcept { return subscribers_.fetch_sub(1, std::memory_order_acq_rel) == 1; }
  [[nodiscard]] std::size_t subscriber_count() const noexcept { return subscribers_.load(std::memory_order_relaxed); }

  // Slots allocated so far (for tests of memory growth).
  [[nodiscard]] std::size_t allocated_slots() const noexcept {
    std::size_t n = 0;
    for (std::size_t i = 0; i < segment_count(); ++i) {
      if (segments_[i].load(std::memory_order_acquire) != nullptr) n += segment_size(i);
    }
    return n;
  }

 private:
  struct alignas(64) slot {
    std::atomic<std::uint64_t> stamp{0};
    mutable slot_lock lock;
    T value{};
  };

  [[nodiscard]] std::size_t index(std::uint64_t pos) const noexcept {
    return static_cast<std::size_t>(pos % capacity_);
  }
  [[nodiscard]] std::size_t segment_count() const noexcept { return (capacity_ + segment_slots - 1) / segment_slots; }
  [[nodiscard]] std::size_t segment_size(std::size_t seg) const noexcept {
    return std::min(segment_slots, capacity_ - seg * segment_slots);
  }

  // The slot index `k` places after slot index `i`.
  [[nodiscard]] std::size_t advance(std::size_t i, std::uint64_t k) const noexcept {
    return static_cast<std::size_t>((i + k % capacity_) % capacity_);
  }

  // The slot of `pos`, or nullptr when its segment was never written.
  [[nodiscard]] const slot* find(std::uint64_t pos) const noexcept {
    const std::size_t i = index(pos);
    const slot* seg = segments_[i / segment_slots].load(std::memory_order_acquire);
    return seg == nullptr ? nullptr : seg + i % segment_slots;
  }

  [[nodiscard]] std::uint64_t stamp_at(std::uint64_t pos) const noexcept {
    const slot* s = find(pos);
    return s == nullptr ? 0 : s->stamp.load(std::memory_order_seq_cst);
  }

  // The segment holding slot index `i`, allocated if needed (writer side only).
  slot* segment_for(std::size_t i) {
    std::atomic<slot*>& entry = segments_[i / segment_slots];
    slot* seg = entry.load(std::memory_order_relaxed);
    if (seg == nullptr) [[unlikely]]
      seg = allocate(entry, i / segment_slots);
    return seg;
  }

  // Out of line, so that segment_for(), called on every publish, is inlined.
  [[gnu::noinline]] slot* allocate(std::atomic<slot*>& entry, std::size_t seg_index) {
    slot* seg = new slot[segment_size(seg_index)];
    entry.store(seg, std::memory_order_release);
    ++allocated_;
    return seg;
  }

  // Read by everyone, written once (segment pointers: once each, by the writer).
  const std::size_t capacity_;
  std::unique_ptr<std::atomic<slot*>[]> segments_;
  // Written by the writer.
  alignas(64) std::atomic<std::uint64_t> tail_;
  std::size_t tail_index_ = 0;  // tail_ % capacity_, kept by the writer (no division per publish)
  std::size_t allocated_ = 0;   // segments allocated (writer side)
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
