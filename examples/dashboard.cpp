// Dashboard: live order metrics kept current from the change feed, redrawn at most 10 times a second.
#include <aurora/aurora.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <iomanip>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;

// Orders are numbered by the shop: "order-1", "order-2", ...
std::string order_id(std::uint64_t n) { return "order-" + std::to_string(n); }

struct Metrics {
  std::map<std::string, std::int64_t> by_status;
  std::int64_t revenue_cents = 0;  // paid and shipped orders

  void add(const aurora::Document& order, std::int64_t sign) {
    const std::string status = order.at("status").get<std::string>();
    if ((by_status[status] += sign) == 0) by_status.erase(status);
    if (status == "paid" || status == "shipped") revenue_cents += sign * order.at("cents").get<std::int64_t>();
  }
  friend bool operator==(const Metrics&, const Metrics&) = default;
};

std::ostream& operator<<(std::ostream& out, const Metrics& m) {
  for (const auto& [status, count] : m.by_status) out << status << ' ' << count << " | ";
  return out << "revenue $" << m.revenue_cents / 100 << '.' << std::setw(2) << std::setfill('0')
             << m.revenue_cents % 100 << std::setfill(' ');
}

// The metrics plus the last known state of each order. Applying "order X is now D" replaces X's old
// contribution, so it can be repeated safely: that is what makes the resync after a lag exact.
class OrdersView {
 public:
  void set(const std::string& id, const aurora::Document* doc) {  // nullptr: removed
    if (auto it = orders_.find(id); it != orders_.end()) {
      metrics_.add(it->second, -1);
      orders_.erase(it);
    }
    if (doc) {
      metrics_.add(*doc, +1);
      orders_.emplace(id, *doc);
    }
    ++version_;
  }
  // Starts over from a snapshot of the collection.
  void reset(const std::vector<std::pair<std::string, aurora::Document>>& documents) {
    orders_.clear();
    metrics_ = {};
    for (const auto& [id, doc] : documents) set(id, &doc);
  }
  [[nodiscard]] const Metrics& metrics() const { return metrics_; }
  [[nodiscard]] std::uint64_t version() const { return version_; }

 private:
  std::unordered_map<std::string, aurora::Document> orders_;
  Metrics metrics_;
  std::uint64_t version_ = 0;
};

struct Shop {
  aurora::Database& db;
  std::uint64_t issued = 0;  // orders numbered so far
};

// Keeps the view current until stopped (cancelled), then applies what was already published.
// On errc::lagged it rebuilds the view from a snapshot of the collection; the events the feed
// still holds up to the snapshot's sequence are already in it, and are skipped.
asio::awaitable<void> follow(aurora::Subscription feed, const aurora::Database& db, OrdersView& view, bool& done) {
  std::uint64_t reflected = 0;  // the last snapshot's sequence
  auto apply = [&](const aurora::RecvResult& r) {
    if (!r) {
      const aurora::Snapshot snap = db.snapshot("orders");
      view.reset(snap.documents);
      reflected = snap.sequence;
    } else if (r->sequence > reflected) {
      view.set(r->document_id, r->document.get());  // empty for a Delete
    }
  };
  co_await aurora::consume(feed, apply);
  done = true;
}

// Redraws the dashboard when the view changed, at most once per `period`.
asio::awaitable<void> render(const OrdersView& view, const bool& done, std::chrono::milliseconds period, int& frames) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  const auto start = std::chrono::steady_clock::now();
  std::uint64_t shown = 0;
  while (!done) {
    timer.expires_after(period);
    co_await timer.async_wait(asio::use_awaitable);
    if (view.version() == shown) continue;
    shown = view.version();
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
    std::cout << "[" << std::setw(5) << ms.count() << " ms] " << view.metrics() << '\n';
    ++frames;
  }
}

// Simulated traffic: 40 rounds of 25 changes, one round every 25 ms (a timer paces the load; no
// one waits on it to synchronise). Orders are placed, paid or cancelled, shipped, then archived.
asio::awaitable<void> traffic(Shop& shop, asio::cancellation_signal& stop_feed) {
  asio::steady_timer pace(co_await asio::this_coro::executor);
  std::mt19937 rng(2026);  // fixed seed: the same run every time
  std::vector<std::string> open;
  for (int round = 0; round < 40; ++round) {
    pace.expires_after(25ms);
    co_await pace.async_wait(asio::use_awaitable);
    for (int i = 0; i < 25; ++i) {
      const int dice = std::uniform_int_distribution<int>(0, 99)(rng);
      if (open.empty() || dice < 40) {
        const std::int64_t cents = std::uniform_int_distribution<std::int64_t>(500, 50'000)(rng);
        open.push_back(shop.db.insert("orders", order_id(++shop.issued), {{"status", "pending"}, {"cents", cents}}));
        continue;
      }
      const std::size_t pick = std::uniform_int_distribution<std::size_t>(0, open.size() - 1)(rng);
      const std::string status = shop.db.get("orders", open[pick])->at("status").get<std::string>();
      if (status == "pending") {
        shop.db.update("orders", open[pick], {{"status", dice < 90 ? "paid" : "cancelled"}});
      } else if (status == "paid") {
        shop.db.update("orders", open[pick], {{"status", "shipped"}});
      } else {
        shop.db.remove("orders", open[pick]);  // shipped or cancelled: archived
        open.erase(open.begin() + static_cast<std::ptrdiff_t>(pick));
      }
    }
  }
  stop_feed.emit(asio::cancellation_type::terminal);
}

int main() {
  constexpr auto period = 100ms;  // at most 10 frames a second
  asio::io_context io;
  aurora::Database db;
  Shop shop{db};
  OrdersView view;
  bool done = false;
  int frames = 0;
  asio::cancellation_signal stop_feed;
  asio::co_spawn(io, follow(db.subscribe("orders"), db, view, done),
                 asio::bind_cancellation_slot(stop_feed.slot(), asio::detached));
  asio::co_spawn(io, render(view, done, period, frames), asio::detached);
  asio::co_spawn(io, traffic(shop, stop_feed), asio::detached);
  const auto start = std::chrono::steady_clock::now();
  io.run();
  const auto elapsed = std::chrono::steady_clock::now() - start;

  // The dashboard must agree with a full recount of the collection.
  Metrics recount;
  const aurora::Snapshot orders = db.snapshot("orders");
  for (const auto& [id, order] : orders.documents) recount.add(order, +1);
  const std::size_t found = orders.documents.size();
  std::cout << "final:     " << view.metrics() << "\nrecount:   " << recount << '\n' << frames << " frames\n";
  const auto max_frames = elapsed / period + 1;
  if (!(view.metrics() == recount) || found != db.size("orders") || frames == 0 || frames > max_frames) {
    std::cerr << "dashboard: the live view does not match the database (or redrew too often)\n";
    return 1;
  }
  return 0;
}
