// consume: the receive loop a consumer runs until its feed closes or it is told to stop.
#pragma once

#include <aurora/errc.hpp>
#include <aurora/recv_result.hpp>
#include <aurora/subscription.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/error.hpp>
#include <boost/system/system_error.hpp>

#include <concepts>

namespace aurora {

/// Receives from `sub` and calls `handle(const RecvResult&)` for every event and every
/// `errc::lagged` report (and the `errc::storage_error` that ends a durable subscription whose
/// change log cannot be read), until the channel is closed (the Database is gone and everything
/// was read, or `sub` was unsubscribed), then returns.
///
/// Stopping: cancel the coroutine that awaits it (e.g. `co_spawn(ex, consumer(...),
/// bind_cancellation_slot(signal.slot(), detached))`, then `signal.emit(cancellation_type::terminal)`).
/// The cancelled receive loses no event, so `consume` then hands what was already published to
/// `handle` (without waiting for more) and returns normally.
///
/// Errors: whatever `handle` throws propagates (the subscription keeps the events not yet
/// handed over); `already_started` if another receive of `sub` is in flight. Thread safety: as
/// for `Subscription::recv`; cancellation needs a strand or a single-threaded context.
template <class Handler>
requires std::invocable<Handler&, const RecvResult&> boost::asio::awaitable<void> consume(Subscription& sub,
                                                                                          Handler handle) {
  try {
    for (;;) {
      const RecvResult r = co_await sub.recv();
      if (!r && r.error().code == errc::closed) co_return;
      handle(r);
    }
  } catch (const boost::system::system_error& e) {
    if (e.code() != boost::asio::error::operation_aborted) throw;
  }
  for (RecvResult r = sub.try_recv(); r || (r.error().code != errc::empty && r.error().code != errc::closed);
       r = sub.try_recv()) {
    handle(r);
  }
}

}  // namespace aurora
