// RemoteSubscription: the change feed read from Redis Streams, with the same recv loop as in-process.
#pragma once

#include <aurora/errc.hpp>
#include <aurora/filter.hpp>
#include <aurora/recv_result.hpp>
#include <aurora/redis/detail/remote_subscriber.hpp>
#include <aurora/redis/remote_options.hpp>
#include <aurora/start.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace aurora::redis {

/// A reader of the change feed that a bridge appends to Redis Streams: one collection's stream
/// (`prefix + collection`) or the global one (`prefix + "*"`, when `collection` is empty). Offers
/// the loop of `aurora::Subscription`: `auto r = co_await sub.recv();` yields the same `RecvResult`,
/// with events rebuilt from the stream entries (see `decode_entry`) and the filter applied on
/// receipt.
///
/// ```
/// aurora::redis::RemoteSubscription sub{io.get_executor(), {.endpoint = redis, .prefix = "aurora:"},
///                                       "orders", filter, aurora::Start::after(41)};
/// for (;;) {
///   auto r = co_await sub.recv();
///   if (r) { handle(*r); continue; }
///   if (r.error().code == aurora::errc::lagged) { resync(); continue; }
///   break;   // closed, or history_lost
/// }
/// ```
///
/// Where it starts (fixed when it first connects, by `connect()` or the first `recv()`):
/// - `Start::after(s)`: the entries with IDs above `0-s`, that is the events with sequence > s;
/// - `Start::oldest()`: from the oldest entry the stream still holds;
/// - `Start::now()`: after the stream's last entry at that moment (XREAD's `$`, but asked for
///   once, so a reconnection never skips entries).
///
/// Lost entries (the stream was trimmed, e.g. by the bridge's MAXLEN, past events not read yet)
/// are detected exactly: on the global stream by a jump in the IDs (every sequence has one), on a
/// collection's stream by the `prev` field each entry carries. The receive then yields, before
/// the first event after the gap, `errc::history_lost` when the gap is at the start of
/// `Start::after(s)` (events after `s` are gone: resync, e.g. from a snapshot), else
/// `errc::lagged` with `missed` = the lost sequences (exact on the global stream; on a collection's
/// stream the sequences in the gap, an upper bound of that collection's lost events). Either is
/// reported once; the subscription then goes on with the oldest entry still held.
///
/// Connection loss: the subscription reconnects with exponential backoff (`RemoteOptions`) and
/// reads on after the last entry it fetched, so nothing is lost or repeated. A Redis that
/// answers but is not ready (`LOADING` its data after a restart, `BUSY`, `TRYAGAIN`,
/// `MASTERDOWN`, `CLUSTERDOWN`) counts as a failed attempt too. After `max_reconnect_attempts`
/// consecutive failures a receive throws `boost::system::system_error` (the last socket error, or
/// `asio::error::try_again` for a Redis not ready, with a message naming the endpoint and
/// stream); the next receive tries again.
///
/// Thread safety: distinct objects are independent. One object is used from one coroutine (or
/// strand) at a time, like an Asio socket, and that coroutine should run on the executor given
/// to the constructor; `unsubscribe()` alone may be called from any thread. The object, or a
/// pending receive of it, must not outlive the execution context of that executor.
class RemoteSubscription {
 public:
  /// An empty subscription: every receive yields `errc::closed`.
  RemoteSubscription() noexcept = default;

  /// A subscription to `collection`'s stream (the global stream when `collection` is empty) at
  /// `options.endpoint`, with `filter` applied on receipt, starting at `start`. Does no I/O: it
  /// connects on `connect()` or the first `recv()`. Throws `aurora::error(errc::invalid_argument)`
  /// for options out of range (see `RemoteOptions`).
  RemoteSubscription(boost::asio::any_io_executor executor, const RemoteOptions& options,
                     std::string_view collection = {}, std::optional<EventFilter> filter = {},
                     Start start = Start::now())
      : state_(std::make_shared<detail::remote_subscriber>(std::move(executor), options, collection, std::move(filter),
                                                           start)) {}

  RemoteSubscription(const RemoteSubscription&) = delete;
  RemoteSubscription& operator=(const RemoteSubscription&) = delete;

  /// Takes over `other`'s stream and position; `other` becomes empty.
  RemoteSubscription(RemoteSubscription&& other) noexcept = default;

  /// Unsubscribes this one, then takes over `other`'s stream and position.
  RemoteSubscription& operator=(RemoteSubscription&& other) noexcept {
    if (this != &other) {
      unsubscribe();
      state_ = std::move(other.state_);
    }
    return *this;
  }

  /// Unsubscribes.
  ~RemoteSubscription() { unsubscribe(); }

  /// Connects to Redis and fixes the start position now, unless already connected. Optional:
  /// `recv()` does it when needed; with `Start::now()` it pins down which entries count as new.
  ///
  /// Throws as `recv()` does for connection problems (after the retries), and
  /// `boost::system::system_error` with `connection_error::server_error` when the key holds
  /// something other than a stream. Completes normally at once after `unsubscribe()`.
  /// Cancellation: per-operation, as for `recv()`; a cancelled connect throws
  /// `boost::system::system_error` with `asio::error::operation_aborted`.
  boost::asio::awaitable<void> connect() {
    if (!state_) return noop();
    return detail::remote_subscriber::connect(state_);
  }

  /// Waits for the next event that passes the filter: `auto r = co_await sub.recv();`.
  ///
  /// Yields the event; `errc::lagged` or `errc::history_lost` once for entries lost to trimming
  /// (see the class comment); `errc::closed` after `unsubscribe()` (also for a receive pending
  /// then, and for every later one). Entries are fetched with `XREAD COUNT batch BLOCK block`
  /// into a local buffer, which later receives drain before fetching again; `try_recv` reads it
  /// too.
  ///
  /// Errors: throws `aurora::error(errc::invalid_document)` for an entry that is not an Aurora
  /// event (the message names the entry and what is wrong; the next receive goes on after it);
  /// `boost::system::system_error` with `connection_error::server_error` when Redis answers with
  /// an error that is not a "not ready" one (e.g. WRONGTYPE: the key is not a stream),
  /// `connection_error::protocol_error` for a
  /// reply Redis would not send, or the last socket error after `max_reconnect_attempts` failed
  /// attempts; `aurora::error(errc::invalid_argument)` when another receive of this
  /// subscription is pending.
  ///
  /// Completion: resumes the awaiting coroutine on its own executor. Cancellation: per-operation
  /// (`co_await (sub.recv() || timer.async_wait(use_awaitable))`), with any cancellation type; a
  /// cancelled receive throws `boost::system::system_error` with `asio::error::operation_aborted`
  /// and loses no event, also when the cancellation arrives after entries were fetched: they stay
  /// in the buffer, and an XREAD in flight stays pending on the connection for the next receive.
  /// As everywhere in Asio, cancellation needs the coroutine to run on a strand or a
  /// single-threaded context.
  boost::asio::awaitable<RecvResult> recv() {
    if (!state_) return closed_result();
    return detail::remote_subscriber::recv(state_);
  }

  /// The next matching event already fetched (or a pending `lagged` / `history_lost`), else
  /// `errc::empty` (also while a `recv` is pending); `errc::closed` after `unsubscribe()`. Never
  /// does I/O or waits. Throws `aurora::error(errc::invalid_document)` as `recv` does.
  RecvResult try_recv() {
    if (!state_) return RecvResult(RecvError{errc::closed});
    return state_->try_recv();
  }

  /// Stops for good: every later receive yields `errc::closed`, and a pending one completes with
  /// `errc::closed` (its connection is closed on the subscription's executor). Thread-safe and
  /// idempotent; never throws.
  void unsubscribe() noexcept {
    if (state_) state_->close();
  }

  /// The stream key read: `prefix + collection`, or `prefix + "*"`; empty for an empty subscription.
  [[nodiscard]] std::string stream_key() const { return state_ ? state_->key() : std::string(); }

  /// True unless default-constructed or moved from.
  explicit operator bool() const noexcept { return state_ != nullptr; }

 private:
  static boost::asio::awaitable<void> noop() { co_return; }

  static boost::asio::awaitable<RecvResult> closed_result() { co_return RecvResult(RecvError{errc::closed}); }

  std::shared_ptr<detail::remote_subscriber> state_;
};

}  // namespace aurora::redis
