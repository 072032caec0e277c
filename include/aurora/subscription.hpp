// Subscription: one reader of a change-feed channel, with co_await-able receive.
#pragma once

#include <aurora/detail/subscriber.hpp>
#include <aurora/errc.hpp>
#include <aurora/recv_result.hpp>

#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <memory>
#include <type_traits>
#include <utility>

namespace aurora {

/// A reader of one channel (a collection's, or the global one), made by `Database::subscribe`
/// or `subscribe_global`. Sees the events published after it was made, filtered on receipt.
///
/// Move-only. One receive at a time. Thread safety: distinct objects are independent; one object
/// is used from one coroutine (or strand) at a time, like an Asio socket. The Database may be
/// destroyed at any time, from any thread: the subscription then reads what is still unread,
/// then `errc::closed`.
class Subscription {
 public:
  /// An empty subscription: every receive yields `errc::closed`.
  Subscription() noexcept = default;

  /// Made by the Database; not for users.
  explicit Subscription(std::shared_ptr<detail::subscriber> state) noexcept : state_(std::move(state)) {}

  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;

  /// Takes over `other`'s place; `other` becomes empty.
  Subscription(Subscription&& other) noexcept = default;

  /// Unsubscribes this one (its place is freed at once), then takes over `other`'s.
  Subscription& operator=(Subscription&& other) noexcept {
    if (this != &other) {
      unsubscribe();
      state_ = std::move(other.state_);
    }
    return *this;
  }

  /// Unsubscribes.
  ~Subscription() { unsubscribe(); }

  /// `recv` for any completion token (callbacks, `use_future`, `deferred`, ...), with the
  /// signature `void(boost::system::error_code, RecvResult)`. The error code is set only for
  /// cancellation (`operation_aborted`). Never completes inside this call; completes on the
  /// handler's associated executor.
  template <class CompletionToken>
  auto async_recv(CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, detail::recv_signature>(initiation{state_}, token);
  }

  /// Waits for the next event that passes the filter: `auto r = co_await sub.recv();`.
  ///
  /// Yields the event, or `errc::lagged` (with `missed`) when more than the channel capacity
  /// arrived unread (the next receive goes on from the oldest event still held), or
  /// `errc::closed` after `unsubscribe()` or once the Database is gone and everything was read.
  /// Returns without suspending or posting when an event is already there (except for the first
  /// receive of a cancellable awaitable thread, such as the one `recv() || timer` spawns, which
  /// posts once so that a cancellation cannot drop the event); otherwise resumes the coroutine
  /// on its own executor when one is published.
  ///
  /// Cancellation: per-operation (`co_await (sub.recv() || timer.async_wait(use_awaitable))`)
  /// with any cancellation type; a cancelled receive loses no event and throws
  /// `boost::system::system_error` with `asio::error::operation_aborted`. As everywhere in Asio,
  /// cancellation needs the coroutine to run on a strand or a single-threaded context.
  boost::asio::awaitable<RecvResult> recv() {
    if (state_) {
      // Taking a ready event at once is safe unless this receive may be cancelled while its
      // result is in flight. That happens in exactly one case: the receive runs in an awaitable
      // thread that has not suspended yet and may be cancelled, as the one `recv() || timer`
      // spawns. co_spawn then posts the result, and the operator drops it (with the event in
      // it) if the timer completes meanwhile. There, async_recv reads only when it delivers.
      // A long-running coroutine keeps the fast path once it has suspended (Asio 1.81 tracks
      // that per awaitable thread).
      const boost::asio::cancellation_state cancel = co_await boost::asio::this_coro::cancellation_state;
      bool take_now = !cancel.slot().is_connected();
      if (!take_now) take_now = co_await boost::asio::detail::awaitable_thread_has_context_switched{};
      if (take_now) {
        RecvResult r = state_->try_recv();
        if (r || r.error().code != errc::empty) co_return r;
      }
    }
    co_return co_await async_recv(boost::asio::use_awaitable);
  }

  /// The next matching event if one is ready, else `errc::empty` (or `lagged` / `closed` as for
  /// `recv`). Never waits.
  RecvResult try_recv() {
    if (!state_) return RecvResult(RecvError{errc::closed});
    return state_->try_recv();
  }

  /// Frees this subscription's place at once (the counts drop). Afterwards every receive yields
  /// `errc::closed`; a receive pending now completes with `errc::closed`. Idempotent.
  void unsubscribe() noexcept {
    if (state_) state_->close();
  }

  /// True unless default-constructed or moved from.
  explicit operator bool() const noexcept { return state_ != nullptr; }

 private:
  struct initiation {
    std::shared_ptr<detail::subscriber> state;

    template <class Handler>
    void operator()(Handler&& handler) const {
      using op_type = detail::recv_operation_impl<std::decay_t<Handler>>;
      auto op = op_type::create(std::forward<Handler>(handler));
      if (!state) {
        // A subscription with no state: complete with closed, on the handler's executor.
        op->post([](void*, detail::recv_operation* o) { o->complete({}, RecvResult(RecvError{errc::closed})); },
                 nullptr);
        (void)op.release();  // posted: the queued completion owns it
        return;
      }
      state->start(std::move(op));
    }
  };

  std::shared_ptr<detail::subscriber> state_;
};

}  // namespace aurora
