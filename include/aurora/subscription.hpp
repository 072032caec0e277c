// Subscription: one reader of a change-feed channel, with co_await-able receive.
#pragma once

#include <aurora/detail/asio_compat.hpp>
#include <aurora/detail/recv_operation.hpp>
#include <aurora/detail/subscriber.hpp>
#include <aurora/errc.hpp>
#include <aurora/recv_result.hpp>

#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/defer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <memory>
#include <type_traits>
#include <utility>

namespace aurora {

class Subscription;

namespace detail {
// How the Database makes a Subscription from its state (the constructor is private).
struct subscription_access {
  static Subscription make(std::shared_ptr<subscriber> state) noexcept;
};
}  // namespace detail

/// A reader of one channel (a collection's, or the global one), made by `Database::subscribe`
/// or `subscribe_global`. Sees the events published after it was made (or after the `Start`
/// it was given), filtered on receipt.
///
/// Move-only. One receive at a time: a receive started while another is in flight completes at
/// once with `asio::error::already_started` and leaves the first alone. Thread safety: distinct
/// objects are independent; one object is used from one coroutine (or strand) at a time, like
/// an Asio socket. The Database may be destroyed at any time, from any thread: the subscription
/// then reads what is still unread, then `errc::closed`.
class Subscription {
 public:
  /// The completion signature of `async_recv`: the error code is set only when the receive did
  /// not run (`operation_aborted` on cancellation, `already_started` for a second receive).
  using completion_signature = void(boost::system::error_code, RecvResult);

  /// How long `recv()` may keep returning ready events without suspending before it yields to
  /// its executor once, so that a subscriber slower than its writers does not starve other work
  /// on that executor (a cooperative budget, like tokio's; checked every 16 ready events).
  static constexpr std::chrono::microseconds recv_budget = detail::recv_time_budget;

  /// An empty subscription: every receive yields `errc::closed`.
  Subscription() noexcept = default;

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

  /// Receives the next event that passes the filter, for any completion token (`use_awaitable`
  /// by default; callbacks, `use_future`, `deferred`, ...), with `completion_signature`.
  ///
  /// Completes with the event, or a `RecvResult` holding `errc::lagged` / `errc::closed` (see
  /// `recv`). Never completes inside this call; completes on the handler's associated executor.
  /// Cancellation: per-operation, any type; a cancelled receive completes with
  /// `operation_aborted` and loses no event. Errors: `already_started` when another receive of
  /// this subscription is in flight.
  template <class CompletionToken = boost::asio::use_awaitable_t<>>
  auto async_recv(CompletionToken&& token = {}) {
    return boost::asio::async_initiate<CompletionToken, completion_signature>(initiation{state_}, token);
  }

  /// Waits for the next event that passes the filter: `auto r = co_await sub.recv();`.
  ///
  /// Yields the event, or `errc::lagged` (with `missed`) when more than the channel capacity
  /// arrived unread (the next receive goes on from the oldest event still held), or
  /// `errc::closed` after `unsubscribe()` or once the Database is gone and everything was read.
  /// A durable subscription still reading the change log may also yield `errc::storage_error`
  /// (see `BasicDatabase::subscribe`), and reads the log here, a page at a time.
  /// An event that is already there is returned without suspending (after `recv_budget` of
  /// that, it yields once); otherwise the coroutine resumes on its own executor when one is
  /// published.
  ///
  /// Cancellation: per-operation (`co_await (sub.recv() || timer.async_wait(use_awaitable))`)
  /// with any cancellation type; a cancelled receive loses no event and throws
  /// `boost::system::system_error` with `asio::error::operation_aborted`. As everywhere in Asio,
  /// cancellation needs the coroutine to run on a strand or a single-threaded context.
  /// A second receive while one is in flight throws `system_error(already_started)`. A receive
  /// destroyed unfinished with its io_context is no longer in flight: the Subscription can
  /// receive again on another context.
  ///
  /// Wake-ups: when a handler running on an io_context writes and wakes exactly one receive
  /// waiting on that context's own executor (not a strand), that receive is not handed to the
  /// context at once but queued after the handler returns (`asio::defer`, tokio's "LIFO slot"):
  /// no other thread is woken for it, so it usually runs next on the writer's thread. Until the
  /// handler returns it is held: a handler that writes must not block waiting for the receive it
  /// wakes, and one that writes a long batch without returning holds it back meanwhile. One such
  /// receive per context is held at a time; other wake-ups go to any thread of the context.
  [[nodiscard]] boost::asio::awaitable<RecvResult> recv() {
    if (state_ && !state_->busy()) {
      if (!state_->spend_budget()) {
        // Budget spent: yield once. defer queues the continuation behind what is already
        // waiting on this executor without taking the scheduler's lock from its own thread.
        co_await boost::asio::defer(co_await boost::asio::this_coro::executor, boost::asio::use_awaitable);
      }
      // A ready event is taken at once unless this receive may be cancelled while its result is
      // in flight: in an awaitable thread that may be cancelled and has not suspended yet (the
      // one `recv() || timer` spawns), co_spawn posts the result and the operator drops it if
      // the timer completes first. There, async_recv reads only when it delivers.
      const boost::asio::cancellation_state cancel = co_await boost::asio::this_coro::cancellation_state;
      bool take_now = !cancel.slot().is_connected();
      if (!take_now) take_now = co_await detail::has_suspended();
      if (take_now) {
        RecvResult r = state_->try_recv();
        if (r || r.error().code != errc::empty) co_return r;
      }
    }
    co_return co_await async_recv(boost::asio::use_awaitable);
  }

  /// The next matching event if one is ready, else `errc::empty` (or `lagged` / `closed` /
  /// `storage_error` as for `recv`). Never waits for an event to be published; a durable
  /// subscription still reading the change log reads its next page from SQLite here (for a
  /// collection with few events there, until one matches). Must not run while a receive is in
  /// flight.
  [[nodiscard]] RecvResult try_recv() {
    if (!state_) return RecvResult(RecvError{errc::closed});
    return state_->try_recv();
  }

  /// Frees this subscription's place at once (the counts drop). Afterwards every receive yields
  /// `errc::closed`; a receive pending now completes with `errc::closed`. Idempotent. Unread
  /// events are dropped.
  void unsubscribe() noexcept {
    if (state_) state_->close();
  }

  /// False when default-constructed, moved from, or unsubscribed.
  [[nodiscard]] bool is_open() const noexcept { return state_ && state_->is_open(); }

  /// True unless default-constructed or moved from.
  explicit operator bool() const noexcept { return state_ != nullptr; }

 private:
  friend struct detail::subscription_access;

  explicit Subscription(std::shared_ptr<detail::subscriber> state) noexcept : state_(std::move(state)) {}

  struct initiation {
    std::shared_ptr<detail::subscriber> state;

    template <class Handler>
    void operator()(Handler&& handler) const {
      using op_type = detail::recv_operation_impl<std::decay_t<Handler>>;
      auto op = op_type::create(std::forward<Handler>(handler));
      if (!state) {  // complete with closed, on the handler's executor
        detail::recv_operation::post_deliver(std::move(op), nullptr, {}, RecvResult(RecvError{errc::closed}));
        return;
      }
      state->start(std::move(op));
    }
  };

  std::shared_ptr<detail::subscriber> state_;
};

inline Subscription detail::subscription_access::make(std::shared_ptr<subscriber> state) noexcept {
  return Subscription(std::move(state));
}

}  // namespace aurora
