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
#include <condition_variable>
#include <cstdint>
#include <iostream>
#include <mutex>
#include <thread>
#include <variant>

namespace asio = boost::asio;
using namespace boost::asio::experimental::awaitable_operators;
using namespace std::chrono_literals;

// What the reader reports to the writer thread.
struct Progress {
  std::mutex mutex;
  std::condition_variable changed;
  std::uint64_t received = 0;
  std::uint64_t idle_after = 0;  // `received` at the latest timeout
  int timeouts = 0;
  bool gap = false;  // a sequence was skipped
};

// Reads the feed, giving up each wait after `deadline`. The loser of `||` is cancelled: a cancelled
// `recv` loses no event (even if the event arrived just as the timer fired), so the next `recv`
// returns it. This coroutine runs on a single-threaded io_context, as cancellation requires.
asio::awaitable<void> read_with_deadline(aurora::Subscription sub, std::chrono::milliseconds deadline,
                                         Progress& progress) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  std::uint64_t last_sequence = 0;
  for (;;) {
    timer.expires_after(deadline);
    std::variant<aurora::RecvResult, std::monostate> first =
        co_await (sub.recv() || timer.async_wait(asio::use_awaitable));
    if (first.index() == 1) {  // the timer won: nothing arrived in time
      const std::lock_guard lock(progress.mutex);
      ++progress.timeouts;
      progress.idle_after = progress.received;
      std::cout << "no event for " << deadline.count() << " ms (" << progress.received << " received so far)\n";
      progress.changed.notify_all();
      continue;
    }
    const aurora::RecvResult& r = std::get<0>(first);
    if (r) {
      const std::lock_guard lock(progress.mutex);
      if (r->sequence != last_sequence + 1) progress.gap = true;
      last_sequence = r->sequence;
      ++progress.received;
      continue;
    }
    if (r.error().code == aurora::errc::lagged) {
      const std::lock_guard lock(progress.mutex);
      progress.gap = true;  // cannot happen here: fewer events than the channel holds
      last_sequence += r.error().missed;
      continue;
    }
    break;  // errc::closed
  }
}

int main() {
  constexpr int rounds = 5;
  constexpr int burst = 1'000;

  asio::io_context io;  // run by one thread: a deadline cancels a recv, and cancellation needs a strand
  Progress progress;
  std::thread io_thread;
  std::uint64_t written = 0;
  {
    aurora::Database db;
    asio::co_spawn(io, read_with_deadline(db.subscribe("metrics"), 20ms, progress), asio::detached);
    io_thread = std::thread([&io] { io.run(); });

    for (int round = 0; round < rounds; ++round) {
      for (int i = 0; i < burst; ++i) db.insert("metrics", {{"round", round}, {"i", i}});
      written += burst;
      // Wait (on the reader's report, not on a clock) until it has timed out with the whole burst read.
      std::unique_lock lock(progress.mutex);
      progress.changed.wait(lock, [&] { return progress.idle_after == written; });
    }
  }  // closes the feed; the reader stops
  io_thread.join();

  std::cout << "received " << progress.received << " of " << written << " events, " << progress.timeouts
            << " timeouts\n";
  if (progress.received != written || progress.gap || progress.timeouts < rounds) {
    std::cerr << "timeout: events were lost or the deadline never fired\n";
    return 1;
  }
  return 0;
}
