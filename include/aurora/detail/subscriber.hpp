// subscriber: a subscription's shared state (channel, cursor, compiled filter, catch-up backlog)
// and its one receive in flight.
#pragma once

#include <aurora/change_event.hpp>
#include <aurora/detail/recv_operation.hpp>
#include <aurora/detail/ring.hpp>
#include <aurora/errc.hpp>
#include <aurora/filter.hpp>
#include <aurora/recv_result.hpp>

#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/error.hpp>
#include <boost/system/error_code.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace aurora::detail {

using event_ptr = std::shared_ptr<const ChangeEvent>;
using event_ring = broadcast_ring<event_ptr>;

// How long `co_await recv()` may keep returning ready events without suspending before it yields
// to its executor once (a cooperative budget, like tokio's), so that a subscriber slower than
// its writers cannot starve the other work of its executor. The clock is read once every
// `recv_budget_check` ready receives, so the budget costs nothing measurable when events are
// cheap and yields about every millisecond when they are not.
inline constexpr std::chrono::microseconds recv_time_budget{1000};
inline constexpr unsigned recv_budget_check = 16;

// The part of the retained history a resumed collection subscription reads before its live
// channel: positions [cursor, end) of the global ring, events of `collection` only.
struct backlog {
  std::shared_ptr<event_ring> ring;
  std::uint64_t cursor = 0;
  std::uint64_t end = 0;
  std::string collection;
};

// How many change-log events a subscription resumed from the log reads at a time.
inline constexpr std::size_t replay_page = 1024;

// A durable database's change log, as a subscription resumed from it reads it: a page at a time,
// on its receiving side, while the database may write (and trim the log) concurrently.
// Thread safety: both functions may be called from any thread.
class log_reader {
 public:
  log_reader() = default;
  log_reader(const log_reader&) = delete;
  log_reader& operator=(const log_reader&) = delete;

  // Reads the logged events with sequences in (after, end], at most replay_page of them, in
  // order; appends those of `collection` (all when it is empty) to `out` and returns the
  // sequence of the last one read. Errors (aurora::error): history_lost when the log no longer
  // holds the event after `after`; closed once the database is gone; storage_error when the
  // log cannot be read or ends early; std::bad_alloc.
  virtual std::uint64_t read(std::uint64_t after, std::uint64_t end, std::string_view collection,
                             std::vector<event_ptr>& out) = 0;

  // The oldest sequence the log holds now. Errors: as read().
  virtual std::uint64_t oldest_logged() = 0;

 protected:
  ~log_reader() = default;
};

// The state behind one Subscription, shared with the ring's waiter list and with queued work so
// that none of them dangles.
//
// Receiving side (the coroutine's fast path, or work posted to its executor; one receive at a
// time): cursor_, backlog_, filter_, budget_. The receive in flight is tracked by busy_ (set by
// start(), cleared just before its handler runs or when it is destroyed unrun), and a parked
// receive, its number and its cancellation request are guarded by mutex_. mutex_ is never held
// while calling into the ring, posting, or destroying a receive, so any of those may re-enter
// (a post to a strand whose service has shut down destroys the receive inline, and with it a
// coroutine frame that may own this subscription).
//
// A receive moves through: started -> (ready: completed, or posted to resume on its executor)
// -> parked -> taken by a publish (notify), an unsubscribe (close), a cancellation (cancel) or
// the receiving side itself (when something arrived while parking) -> completed. Exactly one
// party takes a parked receive, under mutex_.
//
// Cancellation: the cancellation handler marks the current receive cancelled (under mutex_) and
// completes it with operation_aborted if it is parked; a receive that is running or queued sees
// the mark before it reads, so the event stays for the next receive.
class subscriber final : public ring_waiter,
                         public parked_owner,
                         public recv_target,
                         public std::enable_shared_from_this<subscriber> {
 public:
  // Compiles the filter; attach() connects it to a channel.
  explicit subscriber(const std::optional<EventFilter>& filter) {
    if (filter) filter_.emplace(*filter);
  }

  subscriber(const subscriber&) = delete;
  subscriber& operator=(const subscriber&) = delete;
  ~subscriber() { close(); }

  // Reads `ring` from `cursor` on (after `history`, if given). Called once, in the channel's
  // commit order; `on_idle` is raised when the last subscriber of `ring` leaves.
  void attach(std::shared_ptr<event_ring> ring, std::uint64_t cursor, std::optional<backlog> history,
              std::shared_ptr<std::atomic<bool>> on_idle) noexcept {
    ring_ = std::move(ring);
    cursor_ = cursor;
    backlog_ = std::move(history);
    on_idle_ = std::move(on_idle);
    ring_->add_subscriber();
  }

  // Reads the change log's events in (after, end] of `collection` (all when empty) before
  // anything else, a page at a time as they are received (the filter applies on delivery, as
  // for live events); `end` is where the live channel attached. Reads the first page now. Call
  // once, after attach() and before the Subscription is handed out. Errors: as
  // log_reader::read (history_lost, storage_error, std::bad_alloc).
  void replay_log(std::shared_ptr<log_reader> reader, std::uint64_t after, std::uint64_t end,
                  std::string_view collection) {
    auto replay = std::make_unique<log_replay>();
    replay->reader = std::move(reader);
    replay->end = end;
    replay->collection = std::string(collection);
    replay->after = replay->reader->read(after, end, collection, replay->page);
    replay_ = std::move(replay);
  }

  // False once unsubscribed.
  [[nodiscard]] bool is_open() const noexcept { return !unsubscribed_.load(std::memory_order_acquire); }

  // True while a receive is in flight.
  [[nodiscard]] bool busy() const noexcept { return busy_.load(std::memory_order_acquire); }

  // Spends one ready receive of the fast path's budget; false (and the budget refilled) when the
  // receiving side has run for recv_time_budget without suspending and should yield once.
  [[nodiscard]] bool spend_budget() noexcept {
    if (--budget_check_ != 0) return true;
    budget_check_ = recv_budget_check;
    const auto now = std::chrono::steady_clock::now();
    if (now - running_since_ < recv_time_budget) return true;
    running_since_ = now;
    return false;
  }

  // The next matching event, or lagged / closed / empty. Never waits.
  RecvResult try_recv() {
    if (!is_open()) return RecvResult(RecvError{errc::closed});
    if (replay_) {
      if (std::optional<RecvResult> r = next_replayed()) return std::move(*r);
    }
    event_ptr ev;
    for (;;) {
      std::uint64_t missed = 0;
      if (backlog_) {
        const read_status status = backlog_->ring->try_read(backlog_->cursor, ev, missed);
        const bool done = backlog_->cursor >= backlog_->end || status == read_status::closed;
        if (status == read_status::lagged) {
          // Only the backlog's own positions were lost; later ones are in the live channel.
          missed -= std::min(missed, backlog_->cursor - std::min(backlog_->cursor, backlog_->end));
          if (done) backlog_.reset();
          if (missed > 0) return RecvResult(RecvError{errc::lagged, missed});
          continue;
        }
        if (status != read_status::ok) {  // empty or closed: cannot happen before the end; go live
          backlog_.reset();
          continue;
        }
        const bool ours = ev->collection == backlog_->collection;
        if (done) backlog_.reset();
        if (!ours) continue;
        if (auto t = deliverable(*ev)) return {std::move(ev), *t};
        continue;
      }
      switch (ring_->try_read(cursor_, ev, missed)) {
        case read_status::ok:
          if (auto t = deliverable(*ev)) return {std::move(ev), *t};
          continue;
        case read_status::lagged: return RecvResult(RecvError{errc::lagged, missed});
        case read_status::empty: return {};
        case read_status::closed: return RecvResult(RecvError{errc::closed});
      }
    }
  }

  // Starts one receive: completes `op` (never inside this call) with the next matching event or
  // error, parking it until a publish if nothing is ready. A receive started while another is
  // in flight completes with asio::error::already_started and leaves the first one alone.
  void start(recv_operation_ptr op) {
    if (busy_.exchange(true, std::memory_order_acq_rel)) {
      recv_operation::post_deliver(std::move(op), nullptr, boost::asio::error::already_started, RecvResult());
      return;
    }
    // Only the receiving side writes receive_number_; a cancellation of an earlier receive marks
    // that earlier number, which no longer matches.
    const std::uint64_t number = receive_number_.load(std::memory_order_relaxed) + 1;
    receive_number_.store(number, std::memory_order_release);
    auto slot = op->cancellation_slot();
    if (slot.is_connected()) slot.template emplace<cancel_handler>(weak_from_this(), number);
    advance(std::move(op), /*on_executor=*/false);
  }

  // Unsubscribes: frees the place on the channel at once and completes a parked receive with
  // closed. Idempotent.
  void close() noexcept {
    if (unsubscribed_.exchange(true, std::memory_order_acq_rel)) return;
    if (!ring_) return;  // never attached
    if (ring_->remove_subscriber() && on_idle_) on_idle_->store(true, std::memory_order_release);
    try {
      ring_->remove_waiter(this);
    } catch (...) {  // the mutex failed to lock: the ring drops the entry on its next publish
    }
    hand_back(take_parked(), boost::system::error_code(), RecvResult(RecvError{errc::closed}));
  }

  // Called by the ring on publish and close: hands the parked receive back to its executor (in
  // the wake_round open on this thread, if any).
  void notify() noexcept override { hand_back(take_parked(), std::nullopt); }

  // Called by the recv_service of a context that shuts down: destroys the receive parked there.
  void drop_parked(const recv_service& service) noexcept override {
    recv_operation_ptr op;  // destroyed after the lock: its coroutine may own this subscription
    const std::lock_guard lock(mutex_);
    if (parked_ && parked_->service() == &service) {
      op = std::move(parked_);  // already unlisted
      abandon();
    }
  }

  // Posted work: goes on with `op` on its executor.
  void resume(recv_operation_ptr op) override { advance(std::move(op), /*on_executor=*/true); }

  // Posted work: completes `op` with this outcome on its executor.
  void deliver(recv_operation_ptr op, boost::system::error_code ec, RecvResult r) override {
    busy_.store(false, std::memory_order_release);
    recv_operation::complete(std::move(op), ec, std::move(r));
  }

  // The receive in flight is destroyed without completing (its context went away, or queuing
  // it failed): the Subscription may receive again, on another context.
  void abandon() noexcept override { busy_.store(false, std::memory_order_release); }

 private:
  struct cancel_handler {
    cancel_handler(std::weak_ptr<subscriber> s, std::uint64_t n) noexcept : self(std::move(s)), number(n) {}
    std::weak_ptr<subscriber> self;
    std::uint64_t number;
    void operator()(boost::asio::cancellation_type type) const {
      if (type == boost::asio::cancellation_type::none) return;
      if (auto s = self.lock()) s->cancel(number);
    }
  };

  // A parked receive taken off its context's list, with that context's shutdown held back until
  // it is posted (see recv_service).
  struct taken {
    recv_operation_ptr op;
    recv_service* service = nullptr;
    bool may_post = true;  // false: its context is shutting down
  };

  // A resume's change-log part: the events in (after, end] of the log, read a page at a time.
  struct log_replay {
    std::shared_ptr<log_reader> reader;
    std::uint64_t after = 0;      // the last sequence read from the log
    std::uint64_t end = 0;        // the live channel goes on after it
    std::string collection;       // empty: every collection
    std::vector<event_ptr> page;  // read and not yet delivered, from page[next] on
    std::size_t next = 0;
  };

  // The replay's next event that passes the filter, or its outcome: lagged when the log was
  // trimmed past what it had read (missed counts the skipped sequences database-wide, as a
  // collection subscription's backlog does), or when the database is gone with the part not
  // read yet (the replay ends: what the channel holds follows, then closed, as for any
  // subscription of a destroyed database); storage_error once when the log cannot be read (the
  // subscription is then closed: the events after the failure cannot be delivered without a
  // gap). nullopt once the replay is over (it is freed).
  std::optional<RecvResult> next_replayed() noexcept {
    log_replay& r = *replay_;
    for (;;) {
      while (r.next < r.page.size()) {
        event_ptr ev = std::move(r.page[r.next++]);
        if (auto t = deliverable(*ev)) return RecvResult(std::move(ev), *t);
      }
      if (r.after >= r.end) {
        replay_.reset();
        return std::nullopt;
      }
      r.page.clear();
      r.next = 0;
      try {
        try {
          r.after = r.reader->read(r.after, r.end, r.collection, r.page);
          continue;
        } catch (const error& e) {
          if (e.code() != errc::history_lost) throw;
        }
        // Trimmed meanwhile: go on from the oldest logged event, as a ring reader that lagged.
        const std::uint64_t resumed = std::min(r.end, r.reader->oldest_logged() - 1);
        if (resumed > r.after) {
          const std::uint64_t missed = resumed - r.after;
          r.after = resumed;
          return RecvResult(RecvError{errc::lagged, missed});
        }
      } catch (const error& e) {
        if (e.code() == errc::closed) {
          const std::uint64_t missed = r.end - r.after;  // above 0: after < end here
          replay_.reset();
          return RecvResult(RecvError{errc::lagged, missed});
        }
      } catch (...) {
      }
      close();
      return RecvResult(RecvError{errc::storage_error});
    }
  }

  // Whether `ev` is delivered, and as which transition relative to the filter's view.
  std::optional<Transition> deliverable(const ChangeEvent& ev) const noexcept {
    if (filter_) return filtered(ev);
    return ev.operation == OperationType::Insert   ? Transition::enter
           : ev.operation == OperationType::Delete ? Transition::leave
                                                   : Transition::change;
  }

  // Out of line, so that the unfiltered test above stays small enough to inline into try_recv.
  [[gnu::noinline]] std::optional<Transition> filtered(const ChangeEvent& ev) const noexcept {
    return filter_->deliver(ev);
  }

  // Goes on with receive `op` on the receiving side: inside the initiating function
  // (on_executor false: it must not complete inline) or as work posted to its executor.
  void advance(recv_operation_ptr op, bool on_executor) {
    for (;;) {
      if (cancelled()) {
        finish(std::move(op), boost::asio::error::operation_aborted, RecvResult(), on_executor);
        return;
      }
      if (!on_executor) {
        // Read only when delivering, on the handler's executor: a result read now and posted
        // could reach a parallel group (`recv() || timer`) after its other operation completed,
        // which would drop it and the event (or lag report) in it.
        if (has_news()) {
          refill_budget();
          recv_operation::post_resume(std::move(op), shared_from_this());
          return;
        }
      } else {
        RecvResult r = try_recv();
        if (r || r.error().code != errc::empty) {
          finish(std::move(op), {}, std::move(r), /*on_executor=*/true);
          return;
        }
      }
      refill_budget();
      const std::uint64_t cursor = cursor_;  // a woken receive may own cursor_ once parked
      {
        const std::lock_guard lock(mutex_);
        if (cancelled()) continue;
        if (recv_service* svc = op->service()) svc->add(this, weak_from_this());
        parked_ = std::move(op);
      }
      ring_->add_waiter(shared_from_this());
      if (!ring_->ready(cursor) && is_open()) return;
      // Something arrived (or we were closed) before the waiter was listed: take the receive
      // back, unless a publish, an unsubscribe or a cancellation already has it.
      {
        const std::lock_guard lock(mutex_);
        if (!parked_) return;
        op = std::move(parked_);
        if (recv_service* svc = op->service()) svc->remove(this);
      }
      on_executor = false;  // still inside our own call chain: must not complete inline
    }
  }

  // The receiving side suspends now: its budget starts over.
  void refill_budget() noexcept {
    budget_check_ = recv_budget_check;
    running_since_ = std::chrono::steady_clock::now();
  }

  // True when try_recv() would not report empty.
  [[nodiscard]] bool has_news() const noexcept { return replay_ || backlog_ || !is_open() || ring_->ready(cursor_); }

  [[nodiscard]] bool cancelled() const noexcept {
    return cancelled_number_.load(std::memory_order_acquire) == receive_number_.load(std::memory_order_relaxed);
  }

  // Completes `op`: directly when on its executor, else posted there.
  void finish(recv_operation_ptr op, boost::system::error_code ec, RecvResult r, bool on_executor) {
    if (on_executor) {
      busy_.store(false, std::memory_order_release);
      recv_operation::complete(std::move(op), ec, std::move(r));
      return;
    }
    recv_operation::post_deliver(std::move(op), shared_from_this(), ec, std::move(r));
  }

  void cancel(std::uint64_t number) {
    taken t;
    {
      const std::lock_guard lock(mutex_);
      if (number != receive_number_.load(std::memory_order_acquire) || !busy()) return;
      cancelled_number_.store(number, std::memory_order_release);
      t = take_parked_locked();
    }
    hand_back(std::move(t), boost::asio::error::operation_aborted, RecvResult());
  }

  taken take_parked() noexcept {
    const std::lock_guard lock(mutex_);
    return take_parked_locked();
  }

  taken take_parked_locked() noexcept {
    taken t;
    if (!parked_) return t;
    t.op = std::move(parked_);
    t.service = t.op->service();
    if (t.service != nullptr) t.may_post = t.service->begin_post(this);
    return t;
  }

  // Hands a taken receive back to its executor: to resume reading (no outcome) or to complete
  // with `outcome`. If its context is going away, or queuing fails (out of memory), the receive
  // is destroyed without completing, as Asio does with the operations of a context shut down.
  void hand_back(taken t, std::optional<std::pair<boost::system::error_code, RecvResult>> outcome) noexcept {
    if (!t.op) return;
    if (t.may_post && !outcome) {
      if (wake_round* round = wake_round::current()) {
        std::shared_ptr<recv_target> self = shared_from_this();
        if (round->add(t.op, self, t.service)) return;  // the round posts it and calls end_post()
      }
    }
    if (t.may_post) {
      try {
        if (outcome) {
          recv_operation::post_deliver(std::move(t.op), shared_from_this(), outcome->first, std::move(outcome->second));
        } else {
          recv_operation::post_resume(std::move(t.op), shared_from_this());
        }
      } catch (...) {  // out of memory: the receive was destroyed unrun and abandon() called (see post_*)
      }
    }
    if (t.service != nullptr && t.may_post) t.service->end_post();
    if (t.op) abandon();  // its context is going away: destroyed here
    t.op.reset();
  }

  void hand_back(taken t, boost::system::error_code ec, RecvResult r) noexcept {
    hand_back(std::move(t), std::make_optional(std::make_pair(ec, std::move(r))));
  }

  // Receiving side.
  std::shared_ptr<event_ring> ring_;
  std::uint64_t cursor_ = 0;
  std::optional<backlog> backlog_;
  std::unique_ptr<log_replay> replay_;  // see replay_log(); freed when done
  std::optional<compiled_filter> filter_;
  unsigned budget_check_ = recv_budget_check;
  std::chrono::steady_clock::time_point running_since_ = std::chrono::steady_clock::now();
  std::shared_ptr<std::atomic<bool>> on_idle_;

  std::atomic<bool> unsubscribed_{false};
  std::atomic<bool> busy_{false};

  std::mutex mutex_;           // guards what follows
  recv_operation_ptr parked_;  // the receive waiting for a publish, if any
  // The receive in flight (written by the receiving side only) and the last one cancelled
  // (written under mutex_ by cancel()); the receive in flight is cancelled when they are equal.
  std::atomic<std::uint64_t> receive_number_{0};
  std::atomic<std::uint64_t> cancelled_number_{0};
};

}  // namespace aurora::detail
