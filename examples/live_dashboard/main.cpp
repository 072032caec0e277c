// Live dashboard: serves a plain HTML/JS page (web/: live totals, a table kept from a snapshot
// plus enter/change/leave, a chart of changes per second, reconnecting with start.after) and the
// change feed of "orders" with aurora::net::FeedServer. With --demo a writer keeps changing the
// orders. Open the printed address in a browser.
//
//   live_dashboard [--port N] [--demo] [--interval MS] [--print-totals] [--for SECONDS] [--web DIR] [--token T]
//
// --for SECONDS stops after that long (ctest runs it so, with --demo, and checks that the demo
// wrote and that the page was there to serve). --interval sets the demo's pause between writes
// (200 ms). --print-totals prints, after each demo write, the totals the page shows, computed from
// the database itself: `totals {"sequence":S,"orders":N,"amount":A}` (the browser test,
// tests/browser/, compares the page with them at the same sequence).
#include <aurora/aurora.hpp>
#include <aurora/net/feed_server.hpp>

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
#include <cstdint>
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

// The line --print-totals prints: the orders and their amount as of the database's last commit.
void print_totals(const aurora::Database& db) {
  const aurora::Snapshot snap = db.snapshot("orders");
  std::int64_t amount = 0;
  for (const auto& [id, doc] : snap.documents) amount += doc.at("amount").get<std::int64_t>();
  std::cout << "totals {\"sequence\":" << snap.sequence << ",\"orders\":" << snap.documents.size()
            << ",\"amount\":" << amount << "}" << std::endl;
}

// Inserts, updates and removes orders a few times a second, like a small shop would.
asio::awaitable<void> demo_writer(aurora::Database& db, std::chrono::milliseconds interval, bool totals) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  std::mt19937 rng(42);
  const std::vector<std::string> customers = {"ada", "grace", "linus", "barbara", "ken", "margaret"};
  const std::vector<std::string> statuses = {"paid", "shipped"};
  std::vector<std::string> ids;
  for (;;) {
    const auto action = rng() % 10;
    if (ids.size() < 5 || action < 5) {
      aurora::Document order = {{"customer", customers[rng() % customers.size()]},
                                {"amount", 1 + static_cast<int>(rng() % 500)},
                                {"status", "new"}};
      ids.push_back(db.insert("orders", std::move(order)));
    } else if (action < 8) {
      const std::string& id = ids[rng() % ids.size()];
      aurora::Document patch = {{"status", statuses[rng() % statuses.size()]}};
      db.update("orders", id, patch);
    } else {
      const std::size_t at = rng() % ids.size();
      db.remove("orders", ids[at]);
      ids.erase(ids.begin() + static_cast<std::ptrdiff_t>(at));
    }
    if (totals) print_totals(db);
    timer.expires_after(interval);
    co_await timer.async_wait(asio::use_awaitable);
  }
}

}  // namespace

int main(int argc, char** argv) {
  aurora::net::FeedServerOptions options;
  options.static_dir = AURORA_DASHBOARD_WEB;
  bool demo = false;
  bool totals = false;
  std::chrono::milliseconds interval{200};
  int seconds = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--demo") {
      demo = true;
    } else if (arg == "--print-totals") {
      totals = true;
    } else if (arg == "--interval" && has_value) {
      interval = std::chrono::milliseconds(std::stol(argv[++i]));
    } else if (arg == "--port" && has_value) {
      options.port = static_cast<std::uint16_t>(std::stoul(argv[++i]));
    } else if (arg == "--for" && has_value) {
      seconds = std::stoi(argv[++i]);
    } else if (arg == "--web" && has_value) {
      options.static_dir = argv[++i];
    } else if (arg == "--token" && has_value) {
      options.token = argv[++i];
    } else {
      std::cerr << "usage: live_dashboard [--port N] [--demo] [--interval MS] [--print-totals] [--for SECONDS] "
                   "[--web DIR] [--token T]\n";
      return 2;
    }
  }

  aurora::Database db;
  asio::io_context io;
  aurora::net::FeedServer server{io.get_executor(), db, options};
  try {
    server.start();
  } catch (const std::exception& e) {
    std::cerr << "live_dashboard: " << e.what() << '\n';
    return 1;
  }
  std::cout << "listening on http://127.0.0.1:" << server.port() << "/" << std::endl;
  if (demo) asio::co_spawn(io, demo_writer(db, interval, totals), asio::detached);

  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int) {
    server.stop();
    io.stop();
  });
  if (seconds > 0) {
    io.run_for(std::chrono::seconds(seconds));
  } else {
    io.run();
  }
  server.stop();

  const bool page = std::filesystem::is_regular_file(std::filesystem::path(options.static_dir) / "index.html");
  std::cout << "wrote " << db.last_sequence() << " changes; " << db.size("orders") << " orders now\n";
  if (!page) std::cerr << "live_dashboard: no index.html in " << options.static_dir << '\n';
  return page && (!demo || db.last_sequence() > 0) ? 0 : 1;
}
