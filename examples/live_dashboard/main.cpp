// Live dashboard: serves a plain HTML/JS page (web/: live totals, a table kept from a snapshot
// plus enter/change/leave, a chart of changes per second, reconnecting with start.after) and the
// change feed of "orders" with aurora::net::FeedServer. With --demo a writer keeps changing the
// orders. Open the printed address in a browser. `live_dashboard --help` lists the options.
//
// With --data FILE (when built with the aurora::sqlite component) the orders live in a
// DurableDatabase on that file: a restarted server continues the same sequence numbers, and a
// page that was open reconnects and resumes with start.after from the change log, missing
// nothing that was written while it was away. --write N (with --data) writes N changes to the
// file and exits, without serving: that is how the browser test (tests/browser/) writes while
// the server is down.
#include <aurora/aurora.hpp>
#include <aurora/net/feed_server.hpp>
#ifdef AURORA_DASHBOARD_DURABLE
#include <aurora/sqlite.hpp>
#endif

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <iostream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#ifndef AURORA_DASHBOARD_WEB
#define AURORA_DASHBOARD_WEB "web"
#endif

namespace asio = boost::asio;

namespace {

constexpr std::string_view usage =
    "usage: live_dashboard [--port N] [--demo] [--interval MS] [--print-totals] [--for SECONDS]\n"
#ifdef AURORA_DASHBOARD_DURABLE
    "                      [--web DIR] [--token T] [--data FILE [--write N]]\n"
#else
    "                      [--web DIR] [--token T]\n"
#endif
    "\n"
    "Serves the page in --web (default: the example's web/) and the change feed of \"orders\" at /feed.\n"
    "  --port N         listen on 127.0.0.1:N (default 0: any free port; the address is printed)\n"
    "  --demo           keep writing orders: insert, update, remove\n"
    "  --interval MS    the demo's pause between writes (default 200)\n"
    "  --print-totals   print `totals {\"sequence\":S,\"orders\":N,\"amount\":A}` at start and after\n"
    "                   each write, computed from the database (the browser test compares the page)\n"
    "  --for SECONDS    stop after that long (default: run until SIGINT or SIGTERM)\n"
    "  --token T        require the token on /feed (the page passes its own ?token=)\n"
#ifdef AURORA_DASHBOARD_DURABLE
    "  --data FILE      keep the orders in a DurableDatabase (SQLite) on FILE instead of in memory:\n"
    "                   after a restart the sequence numbers continue, and an open page resumes\n"
    "                   where it stopped (start.after, read from the change log) instead of\n"
    "                   starting over from a snapshot\n"
    "  --write N        with --data: write N demo changes to FILE and exit, without serving\n"
#else
    "  (--data FILE is not available: built without the aurora::sqlite component)\n"
#endif
    ;

// The line --print-totals prints: the orders and their amount as of the snapshot's sequence
// (print_totals(db.snapshot("orders")): the database's last commit).
void print_totals(const aurora::Snapshot& snap) {
  std::int64_t amount = 0;
  for (const auto& [id, doc] : snap.documents) amount += doc.at("amount").get<std::int64_t>();
  std::cout << "totals {\"sequence\":" << snap.sequence << ",\"orders\":" << snap.documents.size()
            << ",\"amount\":" << amount << "}" << std::endl;
}

// A small shop's writes: inserts, updates and removes orders. Starts from the orders the database
// already holds (a durable one keeps them across restarts).
class Shop {
 public:
  template <class Db>
  explicit Shop(const Db& db) {
    const aurora::Snapshot orders = db.snapshot("orders");
    for (const auto& [id, doc] : orders.documents) ids_.push_back(id);
  }

  // One write to "orders" (an update that sets the status the order has changes nothing).
  template <class Db>
  void write(Db& db) {
    const auto action = rng_() % 10;
    if (ids_.size() < 5 || action < 5) {
      aurora::Document order = {{"customer", customers_[rng_() % customers_.size()]},
                                {"amount", 1 + static_cast<int>(rng_() % 500)},
                                {"status", "new"}};
      ids_.push_back(db.insert("orders", std::move(order)));
    } else if (action < 8) {
      const std::string& id = ids_[rng_() % ids_.size()];
      const aurora::Document patch = {{"status", statuses_[rng_() % statuses_.size()]}};
      db.update("orders", id, patch);
    } else {
      const std::size_t at = rng_() % ids_.size();
      db.remove("orders", ids_[at]);
      ids_.erase(ids_.begin() + static_cast<std::ptrdiff_t>(at));
    }
  }

 private:
  std::mt19937 rng_{42};
  std::vector<std::string> customers_ = {"ada", "grace", "linus", "barbara", "ken", "margaret"};
  std::vector<std::string> statuses_ = {"paid", "shipped"};
  std::vector<std::string> ids_;
};

// Writes every `interval`, like a shop that is open.
template <class Db>
asio::awaitable<void> demo_writer(Db& db, std::chrono::milliseconds interval, bool totals) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  Shop shop(db);
  for (;;) {
    shop.write(db);
    if (totals) print_totals(db.snapshot("orders"));
    timer.expires_after(interval);
    co_await timer.async_wait(asio::use_awaitable);
  }
}

constexpr long no_write = -1;

struct Settings {
  aurora::net::FeedServerOptions server;
  bool demo = false;
  bool totals = false;
  std::chrono::milliseconds interval{200};
  int seconds = 0;
  std::string data;       // empty: in memory
  long write = no_write;  // --write N: write N changes to `data` and exit, without serving
};

// Serves `db` until SIGINT, SIGTERM or --for; returns the exit status.
template <class Db>
int serve(Db& db, const Settings& settings) {
  asio::io_context io;
  aurora::net::FeedServer server{io.get_executor(), db, settings.server};
  try {
    server.start();
  } catch (const std::exception& e) {
    std::cerr << "live_dashboard: " << e.what() << '\n';
    return 1;
  }
  std::cout << "listening on http://127.0.0.1:" << server.port() << "/" << std::endl;
  if (settings.totals) print_totals(db.snapshot("orders"));
  const std::uint64_t first = db.last_sequence();
  if (settings.demo) asio::co_spawn(io, demo_writer(db, settings.interval, settings.totals), asio::detached);

  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int) {
    server.stop();
    io.stop();
  });
  if (settings.seconds > 0) {
    io.run_for(std::chrono::seconds(settings.seconds));
  } else {
    io.run();
  }
  server.stop();

  const auto& dir = settings.server.static_dir;
  const bool page = std::filesystem::is_regular_file(std::filesystem::path(dir) / "index.html");
  std::cout << "wrote " << db.last_sequence() - first << " changes; " << db.size("orders") << " orders now\n";
  if (!page) std::cerr << "live_dashboard: no index.html in " << dir << '\n';
  return page && (!settings.demo || db.last_sequence() > first) ? 0 : 1;
}

#ifdef AURORA_DASHBOARD_DURABLE
int run_durable(const Settings& settings) {
  aurora::DurableDatabase db(settings.data);  // creates the file, or reopens it where it stopped
  if (settings.write == no_write) return serve(db, settings);
  Shop shop(db);
  const std::uint64_t target = db.last_sequence() + static_cast<std::uint64_t>(settings.write);
  while (db.last_sequence() < target) {
    shop.write(db);  // an update to the status an order already has changes nothing: no sequence
    if (settings.totals) print_totals(db.snapshot("orders"));
  }
  std::cout << "wrote " << settings.write << " changes to " << settings.data << "; last sequence " << db.last_sequence()
            << '\n';
  return 0;
}
#endif

// Reads the command line into `settings`; false when it is not understood. Throws what std::stol
// throws for a number that is not one.
bool parse(int argc, char** argv, Settings& settings) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--demo") {
      settings.demo = true;
    } else if (arg == "--print-totals") {
      settings.totals = true;
    } else if (arg == "--interval" && has_value) {
      settings.interval = std::chrono::milliseconds(std::stol(argv[++i]));
    } else if (arg == "--port" && has_value) {
      settings.server.port = static_cast<std::uint16_t>(std::stoul(argv[++i]));
    } else if (arg == "--for" && has_value) {
      settings.seconds = std::stoi(argv[++i]);
    } else if (arg == "--web" && has_value) {
      settings.server.static_dir = argv[++i];
    } else if (arg == "--token" && has_value) {
      settings.server.token = argv[++i];
#ifdef AURORA_DASHBOARD_DURABLE
    } else if (arg == "--data" && has_value) {
      settings.data = argv[++i];
    } else if (arg == "--write" && has_value) {
      settings.write = std::stol(argv[++i]);
#endif
    } else {
      return false;
    }
  }
  return settings.write == no_write || (settings.write >= 0 && !settings.data.empty());
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string_view> args(argv + 1, argv + argc);
  if (args.size() == 1 && (args[0] == "--help" || args[0] == "-h")) {
    std::cout << usage;
    return 0;
  }
  Settings settings;
  settings.server.static_dir = AURORA_DASHBOARD_WEB;
  try {
    if (!parse(argc, argv, settings)) {
      std::cerr << usage;
      return 2;
    }
#ifdef AURORA_DASHBOARD_DURABLE
    if (!settings.data.empty()) return run_durable(settings);
#endif
    aurora::Database db;
    return serve(db, settings);
  } catch (const std::exception& e) {  // a bad number, or storage_error: the file is locked, not a database, ...
    std::cerr << "live_dashboard: " << e.what() << '\n';
    return 1;
  }
}
