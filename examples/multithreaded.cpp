// Many threads: writers on std::threads, subscribers as coroutines on a thread pool, counts checked exactly.
#include <aurora/aurora.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>

#include <cstddef>
#include <cstdint>
#include <iostream>
#include <optional>
#include <thread>
#include <vector>

namespace asio = boost::asio;

struct Tally {
  std::uint64_t received = 0;
  std::uint64_t missed = 0;
};

// Counts what one subscription delivers until the feed closes. Each coroutine runs on its own
// strand: a Subscription is used by one coroutine at a time, and a strand also makes per-operation
// cancellation (a recv deadline) safe on a multi-threaded pool.
asio::awaitable<void> count(aurora::Subscription sub, Tally& tally) {
  for (;;) {
    aurora::RecvResult r = co_await sub.recv();
    if (r) {
      ++tally.received;
      continue;
    }
    if (r.error().code == aurora::errc::lagged) {
      tally.missed += r.error().missed;
      continue;
    }
    break;  // errc::closed
  }
}

int main() {
  constexpr int writers = 4;
  constexpr int inserts_per_writer = 2'000;  // 8,000 events: the channels (10,000 slots) hold them all

  asio::thread_pool pool(2);
  Tally all;                               // every order
  std::vector<Tally> per_writer(writers);  // one filtered subscriber per writer
  Tally global;                            // the global feed
  {
    aurora::Database db;
    asio::co_spawn(asio::make_strand(pool), count(db.subscribe("orders"), all), asio::detached);
    for (int w = 0; w < writers; ++w) {
      aurora::EventFilter mine{.operation = std::nullopt, .field_filters = {{"writer", w}}};  // any operation
      asio::co_spawn(asio::make_strand(pool),
                     count(db.subscribe("orders", mine), per_writer[static_cast<std::size_t>(w)]), asio::detached);
    }
    asio::co_spawn(asio::make_strand(pool), count(db.subscribe_global(), global), asio::detached);

    std::vector<std::jthread> threads;
    threads.reserve(writers);
    for (int w = 0; w < writers; ++w) {
      threads.emplace_back([&db, w] {
        for (int i = 0; i < inserts_per_writer; ++i) db.insert("orders", {{"writer", w}, {"i", i}});
      });
    }
  }  // joins the writers, then destroys the database: every subscriber drains its feed and stops

  pool.join();  // returns once every coroutine has finished

  constexpr std::uint64_t total = std::uint64_t{writers} * inserts_per_writer;
  std::cout << "orders: " << all.received << ", global: " << global.received << ", per writer:";
  bool ok = all.received == total && global.received == total && all.missed == 0 && global.missed == 0;
  for (const Tally& t : per_writer) {
    std::cout << ' ' << t.received;
    ok = ok && t.received == inserts_per_writer && t.missed == 0;
  }
  std::cout << '\n';
  if (!ok) {
    std::cerr << "multithreaded: expected " << total << " events in all and " << inserts_per_writer << " per writer\n";
    return 1;
  }
  return 0;
}
