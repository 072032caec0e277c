// subscriber: a subscription's shared state (cursor, filter) and its parked receive.
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

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>

namespace aurora::detail {

using event_ptr = std::shared_ptr<const ChangeEvent>;
using event_ring = broadcast_ring<event_ptr>;

// The state behind one Subscription, shared with the ring's waiter list and with queued
// completions so that none of them dangles.
//
// cursor_ and filter_ are used on the receiving side only: the coroutine's fast path, or a
// completion posted to its executor while the coroutine waits (one receive at a time). The
// parked operation is guarded by mutex_, which is never held while calling into the ring or
// invoking a handler (only while posting one); the op counters are atomics (see below).
//
// Cancellation: each receive gets a number `op`. The cancellation handler marks `op` cancelled;
// if the operation is parked it is completed with operation_aborted at once; if a wake-up is
// already queued, the queued run() sees the mark and completes with operation_aborted without
// reading, so the event stays for the next receive.
//
// Lifetime: a parked receive is listed with the recv_service of its executor's context, which
// destroys it if the context shuts down first. A parked receive is posted with mutex_ held and
// unlisted only after that, so the context cannot finish shutting down during the post.
class subscriber final : public ring_waiter, public parked_owner, public std::enable_shared_from_this<subscriber> {
 public:
  subscriber(std::shared_ptr<event_ring> ring, std::optional<EventFilter> filter)
      : ring_(std::move(ring)), cursor_(ring_->tail()) {
    if (filter) filter_.emplace(*filter);
    ring_->add_subscriber();
  }

  subscriber(const subscriber&) = delete;
  subscriber& operator=(const subscriber&) = delete;
  ~subscriber() { close(); }

  // The next matching event, or lagged / closed / empty. Never waits.
  RecvResult try_recv() {
    if (unsubscribed_.load(std::memory_order_acquire)) return RecvResult(RecvError{errc::closed});
    event_ptr ev;
    for (;;) {
      std::uint64_t missed = 0;
      switch (ring_->try_read(cursor_, ev, missed)) {
        case read_status::ok:
          if (!filter_ || filter_->matches(*ev)) return RecvResult(std::move(ev));
          continue;
        case read_status::lagged: return RecvResult(RecvError{errc::lagged, missed});
        case read_status::empty: return RecvResult();
        case read_status::closed: return RecvResult(RecvError{errc::closed});
      }
    }
  }

  // Starts one receive: completes `op` (never inside this call) with the next matching event or
  // error, parking it until a publish if nothing is ready.
  void start(recv_operation_ptr op) {
    // One receive at a time: only this side writes op_, so no read-modify-write is needed.
    const std::uint64_t id = op_.load(std::memory_order_relaxed) + 1;
    op_.store(id, std::memory_order_release);
    op->id = id;
    auto slot = op->cancellation_slot();
    if (slot.is_connected()) slot.template emplace<cancel_handler>(weak_from_this(), id);
    run(std::move(op), id, /*in_initiation=*/true);
  }

  // Unsubscribes: frees the place on the ring at once and completes a parked receive with
  // closed. Idempotent.
  void close() noexcept {
    if (unsubscribed_.exchange(true, std::memory_order_acq_rel)) return;
    ring_->remove_subscriber();
    try {
      ring_->remove_waiter(this);
    } catch (...) {  // the mutex failed to lock: the ring drops the entry on its next publish
    }
    complete_parked(errc::closed, 0);
  }

  // Called by the ring on publish and close: hands the parked receive to its executor.
  void notify() noexcept override {
    recv_operation_ptr dropped;  // out of memory: the receive is dropped, outside the lock
    const std::lock_guard lock(mutex_);
    if (!parked_) return;
    recv_operation_ptr op = std::move(parked_);
    recv_service* service = op->service();
    if (!post_locked(op, &subscriber::run_posted, shared_from_this())) dropped = std::move(op);
    if (service != nullptr) service->remove(this);
  }

  // Called by the recv_service of a context that shuts down: destroys the receive parked there.
  void drop_parked(const recv_service& service) noexcept override {
    recv_operation_ptr op;  // destroyed after the lock: its coroutine may own this subscription
    const std::lock_guard lock(mutex_);
    if (parked_ && parked_->service() == &service) op = std::move(parked_);  // already unlisted
  }

 private:
  struct cancel_handler {
    cancel_handler(std::weak_ptr<subscriber> s, std::uint64_t i) noexcept : self(std::move(s)), id(i) {}
    std::weak_ptr<subscriber> self;
    std::uint64_t id;
    void operator()(boost::asio::cancellation_type type) const {
      if (type == boost::asio::cancellation_type::none) return;
      if (auto s = self.lock()) s->cancel(id);
    }
  };

  static void run_posted(void* self, recv_operation* op) {
    static_cast<subscriber*>(self)->run(recv_operation_ptr(op), op->id, /*in_initiation=*/false);
  }

  static void deliver_pending(void*, recv_operation* op) {
    op->complete(op->pending_ec, std::move(op->pending_result));
  }

  // Posts `fn(op)`; false (and `op` kept) when out of memory.
  static bool post_locked(recv_operation_ptr& op, void (*fn)(void*, recv_operation*),
                          std::shared_ptr<void> ctx) noexcept {
    try {
      op->post(fn, std::move(ctx));
    } catch (...) {
      return false;
    }
    (void)op.release();
    return true;
  }

  // Completes receive `id` with the next matching event, or parks it. Runs on the receiving
  // side: inside the initiating function, or as a completion posted to the handler's executor.
  void run(recv_operation_ptr op, std::uint64_t id, bool in_initiation) {
    for (;;) {
      if (is_cancelled(id)) {
        finish(std::move(op), boost::asio::error::operation_aborted, RecvResult(), in_initiation);
        return;
      }
      if (in_initiation) {
        // Read only when delivering, on the handler's executor: a result read now and posted
        // could reach a parallel group (`recv() || timer`) after its other operation completed,
        // which would drop it and the event (or lag report) in it.
        if (ring_->ready(cursor_) || unsubscribed_.load(std::memory_order_acquire)) {
          op->post(&subscriber::run_posted, shared_from_this());
          (void)op.release();
          return;
        }
      } else {
        RecvResult r = try_recv();
        if (r || r.error().code != errc::empty) {
          finish(std::move(op), {}, std::move(r), /*must_post=*/false);
          return;
        }
      }
      const std::uint64_t cursor = cursor_;  // a woken completion may own cursor_ after parking
      {
        const std::lock_guard lock(mutex_);
        if (cancelled_id_.load(std::memory_order_relaxed) == id) continue;
        if (recv_service* svc = op->service()) svc->add(this, weak_from_this());
        parked_ = std::move(op);
      }
      ring_->add_waiter(shared_from_this());
      if (!ring_->ready(cursor) && !unsubscribed_.load(std::memory_order_acquire)) return;
      // Something arrived (or we were closed) before the waiter was listed: take the receive
      // back, unless a notify already has it.
      const std::lock_guard lock(mutex_);
      if (!parked_) return;
      op = std::move(parked_);
      if (recv_service* svc = op->service()) svc->remove(this);
      in_initiation = true;  // still inside our own call chain: must not complete inline
    }
  }

  bool is_cancelled(std::uint64_t id) const noexcept { return cancelled_id_.load(std::memory_order_acquire) == id; }

  // Delivers the outcome: directly when on the handler's executor, else posted to it.
  static void finish(recv_operation_ptr op, boost::system::error_code ec, RecvResult r, bool must_post) {
    if (!must_post) {
      op.release()->complete(ec, std::move(r));
      return;
    }
    op->pending_ec = ec;
    op->pending_result = std::move(r);
    op->post(&subscriber::deliver_pending, nullptr);
    (void)op.release();
  }

  void cancel(std::uint64_t id) {
    {
      const std::lock_guard lock(mutex_);
      if (id != op_.load(std::memory_order_acquire)) return;
      cancelled_id_.store(id, std::memory_order_release);
    }
    complete_parked(errc{}, id);
  }

  // Completes the parked receive: with closed (code == closed), or with operation_aborted if it
  // is receive `id`.
  void complete_parked(errc code, std::uint64_t id) noexcept {
    recv_operation_ptr dropped;  // out of memory: the receive is dropped, outside the lock
    const std::lock_guard lock(mutex_);
    if (!parked_ || (code != errc::closed && parked_->id != id)) return;
    recv_operation_ptr op = std::move(parked_);
    recv_service* service = op->service();
    if (code == errc::closed) {
      op->pending_result = RecvResult(RecvError{errc::closed});
    } else {
      op->pending_ec = boost::asio::error::operation_aborted;
    }
    if (!post_locked(op, &subscriber::deliver_pending, nullptr)) dropped = std::move(op);
    if (service != nullptr) service->remove(this);
  }

  std::shared_ptr<event_ring> ring_;
  std::uint64_t cursor_;
  std::optional<compiled_filter> filter_;
  std::atomic<bool> unsubscribed_{false};

  std::mutex mutex_;
  recv_operation_ptr parked_;  // the receive waiting for a publish, if any
  // Written by start() (the receiving side) and by cancel() under mutex_; read lock-free by the
  // receiving side. A receive that parks re-checks cancelled_id_ under mutex_, so it cannot
  // miss a cancel that the handler marked before the receive was listed.
  std::atomic<std::uint64_t> op_{0};            // the newest receive started
  std::atomic<std::uint64_t> cancelled_id_{0};  // the newest receive cancelled
};

}  // namespace aurora::detail
