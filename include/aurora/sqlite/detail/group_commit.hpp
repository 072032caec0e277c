// group_commit: one durable write (one fsync) for the commits of many writing threads, led by one
// of the waiting writers (leader/follower, as LevelDB's write queue): no thread of its own.
#pragma once

#include <aurora/detail/error_context.hpp>
#include <aurora/errc.hpp>

#include <algorithm>
#include <concepts>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace aurora::sqlite::detail {

// Commits queued batches in groups. A writer calls enqueue(batch) while it holds the database's
// commit lock (so batches queue in sequence order) and gets a ticket; after releasing that lock
// it calls wait(ticket). The first waiter that finds no leader becomes the leader: it takes the
// queued batches (at most `max_group`), calls `write(group)` once for all of them (the durable
// commit, outside every lock, while other writers keep queueing), then `publish(group)`, marks
// them done and wakes the waiters. A waiter returns once its batch is done; one whose batch was
// not in the group leads the next one. Only one leader runs at a time, so groups are written and
// published in ticket order.
//
// Failure: if write or publish throws, the group's waiters and the waiters of every batch queued
// after it get aurora::error(errc::storage_error) (the later batches are dropped unwritten), and
// every later enqueue throws it too: the storage may have lost data, so nothing after it may
// commit. Before any of those waiters is woken, the leader hands the failed group followed by
// the dropped batches, in ticket order, to `discard` (a no-op by default): where the owner
// undoes what those batches changed in memory (newest first). The owner recovers by reopening.
//
// Tickets: 1, 2, 3, ... in enqueue order; batch t is done when every batch up to t is written
// and published (`done_`). Invariant under the mutex: taken_ - done_ batches are being written
// by the leader (0 when there is none), queue_ holds tickets taken_ + 1 .. enqueued_.
//
// Thread safety: enqueue, wait, flush and failed may be called from any thread. `write` and
// `publish` run on the leader's thread, never two at a time, without the internal lock held.
// Destroy it only when no call is in progress; batches that nobody waited for are dropped.
// The default `discard`: nothing to undo.
struct no_discard {
  template <class Batch>
  void operator()(std::span<Batch> /*batches*/) const noexcept {}
};

template <class Batch, class Write, class Publish, class Discard = no_discard>
requires std::invocable<Write&, std::span<Batch>> && std::invocable<Publish&, std::span<Batch>> &&
    std::invocable<Discard&, std::span<Batch>>
class group_commit {
  static_assert(std::is_nothrow_move_constructible_v<Batch>, "batches move into a group without throwing");

 public:
  using ticket = std::uint64_t;

  // `write` and `publish` as described above; a group holds at most `max_group` batches
  // (at least 1). `discard` must not throw (std::terminate if it does).
  group_commit(Write write, Publish publish, std::size_t max_group = 1024, Discard discard = Discard{})
      : write_(std::move(write)),
        publish_(std::move(publish)),
        discard_(std::move(discard)),
        max_group_(std::max<std::size_t>(max_group, 1)) {
    group_.reserve(max_group_);
  }

  group_commit(const group_commit&) = delete;
  group_commit& operator=(const group_commit&) = delete;

  // Queues `batch` and returns its ticket. Cheap (a lock and a move). Errors: storage_error
  // after a failed group (nothing queued).
  ticket enqueue(Batch batch) {
    const std::lock_guard lock(mutex_);
    if (failed_) throw error(errc::storage_error, "group commit refused: an earlier commit failed (" + reason() + ")");
    // Room for a failure to hand every batch to `discard` without allocating (only a failed
    // leader uses it, after failed_ is set, so never while this runs).
    const std::size_t needed = queue_.size() + 1 + max_group_;
    if (spill_.capacity() < needed) spill_.reserve(2 * needed);
    queue_.push_back(std::move(batch));
    return ++enqueued_;
  }

  // Returns once batch `t` is written and published, leading groups while needed. Errors:
  // storage_error when the group holding `t`, or an earlier one, failed; invalid_argument for a
  // ticket that enqueue did not return.
  void wait(ticket t) {
    std::unique_lock lock(mutex_);
    if (t == 0 || t > enqueued_) {
      throw error(errc::invalid_argument, "group commit: unknown ticket " + std::to_string(t));
    }
    for (;;) {
      if (t <= done_) return;
      if (failed_ && t >= failed_from_) {
        if (t <= failed_to_) throw error(errc::storage_error, "group commit failed: " + reason());
        throw error(errc::storage_error, "group commit refused: an earlier commit failed (" + reason() + ")");
      }
      if (!leading_) {
        lead(lock);
        continue;
      }
      done_cv_.wait(lock);
    }
  }

  // Waits for every batch enqueued so far (as wait() on the last ticket). Errors as wait().
  void flush() {
    ticket last = 0;
    {
      const std::lock_guard lock(mutex_);
      last = enqueued_;
    }
    if (last != 0) wait(last);
  }

  // What made the failed group fail. Call with the lock held.
  [[nodiscard]] std::string reason() const {
    return failure_.empty() ? "out of memory reporting the failure" : failure_;
  }

  // True after a group failed.
  [[nodiscard]] bool failed() const {
    const std::lock_guard lock(mutex_);
    return failed_;
  }

 private:
  // Takes a group, writes and publishes it with the lock released, then records the outcome
  // and wakes every waiter. Called with the lock held, no leader running and a non-empty queue
  // (the caller's own batch is not done, so it is queued).
  void lead(std::unique_lock<std::mutex>& lock) {
    leading_ = true;
    const std::size_t n = std::min(queue_.size(), max_group_);
    for (std::size_t i = 0; i < n; ++i) {
      group_.push_back(std::move(queue_.front()));  // reserved: cannot throw
      queue_.pop_front();
    }
    const ticket first = taken_ + 1;
    taken_ += n;
    const ticket last = taken_;
    lock.unlock();

    const char* stage = "write";
    std::string failure;
    bool ok = true;
    try {
      write_(std::span<Batch>(group_));
      stage = "publish";
      publish_(std::span<Batch>(group_));
    } catch (const std::exception& e) {
      ok = false;
      failure = describe(&e, stage);
    } catch (...) {
      ok = false;
      failure = describe(nullptr, stage);
    }
    if (ok) {
      group_.clear();  // the batches are destroyed outside the lock
      lock.lock();
      done_ = last;
    } else {
      lock.lock();
      failed_ = true;  // from now on enqueue refuses
      failed_from_ = first;
      failed_to_ = last;
      failure_ = std::move(failure);
      dropped_.swap(queue_);
      taken_ = enqueued_;
      lock.unlock();
      for (Batch& b : group_) spill_.push_back(std::move(b));  // reserved by enqueue: cannot throw
      for (Batch& b : dropped_) spill_.push_back(std::move(b));
      group_.clear();
      dropped_.clear();
      discard_spill();
      spill_.clear();
      lock.lock();
    }
    leading_ = false;
    done_cv_.notify_all();
  }

  // The failure's text; empty when even that cannot be allocated, since the failure path must
  // reach the bookkeeping that wakes every waiter.
  static std::string describe(const std::exception* e, const char* stage) noexcept {
    try {
      return e != nullptr ? aurora::detail::error_context(*e) : std::string("unknown exception in ") + stage;
    } catch (...) {
      return {};
    }
  }

  // A throwing discard would leave memory half undone: std::terminate (noexcept) instead.
  void discard_spill() noexcept { discard_(std::span<Batch>(spill_)); }

  Write write_;
  Publish publish_;
  Discard discard_;
  const std::size_t max_group_;

  mutable std::mutex mutex_;
  std::condition_variable done_cv_;  // a group ended (done or failed)
  std::deque<Batch> queue_;
  std::deque<Batch> dropped_;  // for the failure path of lead(): a deque allocates when constructed
  ticket enqueued_ = 0;
  ticket taken_ = 0;
  ticket done_ = 0;
  bool leading_ = false;
  bool failed_ = false;
  ticket failed_from_ = 0;  // the failed group: tickets failed_from_ .. failed_to_
  ticket failed_to_ = 0;
  std::string failure_;
  std::vector<Batch> group_;  // the group being written; used by the leader only
  std::vector<Batch> spill_;  // a failed group and the dropped batches, for `discard`
};

}  // namespace aurora::sqlite::detail
