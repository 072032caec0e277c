// Receive with a deadline: `co_await (sub.recv() || timer.async_wait(...))`; a timeout loses no event.
#include <aurora/aurora.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <iostream>
#include <optional>

namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;
using namespace std::chrono_literals;

// The next receive's result, or nothing when none came within `deadline`. The loser of `||` is
// cancelled, and a cancelled recv loses no event: the next call returns it.
asio::awaitable<std::optional<aurora::RecvResult>> recv_for(aurora::Subscription& sub,
                                                            std::chrono::milliseconds deadline) {
  asio::steady_timer timer(co_await asio::this_coro::executor, deadline);
  auto first = co_await (sub.recv() || timer.async_wait(asio::use_awaitable));
  if (first.index() == 1) co_return std::nullopt;
  co_return std::get<0>(std::move(first));
}

int main() {
  asio::io_context io;  // one thread: a deadline cancels a recv, and cancellation needs a strand
  aurora::Database db;
  aurora::Subscription sub = db.subscribe("metrics");
  int received = 0;
  int quiet_periods = 0;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (int round = 0; round < 3; ++round) {
          for (int i = 0; i < 100; ++i) db.insert("metrics", {{"round", round}, {"i", i}});
          while (std::optional<aurora::RecvResult> r = co_await recv_for(sub, 10ms)) {
            if (*r) ++received;  // (no lag here: fewer events than the channel holds)
          }
          ++quiet_periods;
          std::cout << "round " << round << ": no event for 10 ms after " << received << " events\n";
        }
      },
      asio::detached);
  io.run();
  if (received != 300 || quiet_periods != 3) {
    std::cerr << "timeout: expected 300 events and 3 quiet periods\n";
    return 1;
  }
  return 0;
}
