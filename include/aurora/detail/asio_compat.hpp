// asio_compat: the one use of Boost.Asio internals, behind a check of the Boost version.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/version.hpp>

// `awaitable_thread_has_context_switched` is an Asio detail. Its meaning was verified on Boost
// 1.81 (Debian 12): true once the awaitable thread has suspended at least once. Check it again
// before allowing another version here.
#if BOOST_VERSION != 108100
#error \
    "Aurora's receive path was verified with Boost 1.81 only: check asio::detail::awaitable_thread_has_context_switched (aurora/detail/asio_compat.hpp) before using this Boost"
#endif

namespace aurora::detail {

// `co_await has_suspended()` inside an `asio::awaitable`: true once the awaitable thread the
// coroutine runs in has suspended at least once (so a result handed back now cannot be dropped
// by a parallel group that spawned this thread).
inline auto has_suspended() noexcept { return boost::asio::detail::awaitable_thread_has_context_switched{}; }

}  // namespace aurora::detail
