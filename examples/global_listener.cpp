// Global listener: one `subscribe_global` feed sees the writes of three collections in commit order.
#include <aurora/aurora.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <iostream>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;

struct Seen {
  std::map<std::string, int> per_collection;
  std::uint64_t events = 0;
  std::uint64_t missed = 0;
  std::uint64_t last_sequence = 0;
  bool in_order = true;
};

// Follows every collection until the feed closes. `sequence` is the database-wide commit number,
// so the global channel delivers strictly increasing sequences (with no gaps unless it lagged).
asio::awaitable<void> listen(aurora::Subscription sub, Seen& seen) {
  for (;;) {
    aurora::RecvResult r = co_await sub.recv();
    if (r) {
      if (r->sequence <= seen.last_sequence) seen.in_order = false;
      seen.last_sequence = r->sequence;
      ++seen.per_collection[r->collection];
      ++seen.events;
      continue;
    }
    if (r.error().code == aurora::errc::lagged) {
      seen.missed += r.error().missed;  // the feed skips ahead; a real listener would resync here
      continue;
    }
    break;  // errc::closed
  }
}

int main() {
  constexpr int writes_per_collection = 1'000;  // 5,250 events in all: fewer than the channel capacity
  const std::vector<std::string> names = {"users", "orders", "products"};

  asio::io_context io;
  Seen seen;
  std::thread io_thread;
  {
    aurora::Database db;
    asio::co_spawn(io, listen(db.subscribe_global(), seen), asio::detached);
    io_thread = std::thread([&io] { io.run(); });

    std::vector<std::jthread> writers;  // one writer thread per collection, all at once
    writers.reserve(names.size());
    for (const std::string& name : names) {
      writers.emplace_back([&db, &name] {
        for (int i = 0; i < writes_per_collection; ++i) {
          const std::string id = db.insert(name, {{"n", i}});
          if (i % 2 == 0) db.update(name, id, {{"even", true}});
          if (i % 4 == 0) db.remove(name, id);
        }
      });
    }
  }  // the writers are joined first, then the database is destroyed, which closes the feed
  io_thread.join();

  // Per collection: 1,000 inserts + 500 updates + 250 removes.
  const std::uint64_t per_collection = writes_per_collection + writes_per_collection / 2 + writes_per_collection / 4;
  std::cout << "received " << seen.events << " events, last sequence " << seen.last_sequence << '\n';
  for (const auto& [name, count] : seen.per_collection) std::cout << "  " << name << ": " << count << '\n';

  bool ok = seen.in_order && seen.missed == 0 && seen.events == 3 * per_collection &&
            seen.last_sequence == seen.events && seen.per_collection.size() == names.size();
  for (const auto& [name, count] : seen.per_collection) ok = ok && static_cast<std::uint64_t>(count) == per_collection;
  if (!ok) {
    std::cerr << "global_listener: events missing or out of order\n";
    return 1;
  }
  return 0;
}
