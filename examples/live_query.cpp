// Live query: an exact, always-current copy of "active gold customers", kept from db.watch()
// (a snapshot, then transitions) while other threads write; at the end it equals a fresh query.
#include <aurora/aurora.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <cstdint>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;

// The result set of a query, kept current: the snapshot, then `enter` and `change` upsert and
// `leave` erases. Events the snapshot already reflects never arrive (the subscription starts
// right after it).
class LiveView {
 public:
  explicit LiveView(const aurora::Snapshot& snapshot) {
    for (const auto& [id, doc] : snapshot.documents) rows_.emplace(id, doc);
  }

  void apply(const aurora::RecvResult& r) {
    if (!r) {  // errc::lagged: cannot happen here (fewer events than the channel holds); resync if it could
      ++lags_;
      return;
    }
    if (r.transition() == aurora::Transition::leave) {
      rows_.erase(r->document_id);
    } else {
      rows_[r->document_id] = *r->document;
    }
  }

  [[nodiscard]] const std::map<std::string, aurora::Document>& rows() const { return rows_; }
  [[nodiscard]] int lags() const { return lags_; }

 private:
  std::map<std::string, aurora::Document> rows_;
  int lags_ = 0;
};

// Customers change tier and status at random: 3 threads, 3,000 writes each.
void churn(aurora::Database& db, unsigned seed) {
  std::mt19937 rng(seed);
  const char* tiers[] = {"bronze", "silver", "gold"};
  const char* statuses[] = {"active", "suspended"};
  for (int i = 0; i < 3'000; ++i) {
    const std::string id = "customer-" + std::to_string(rng() % 200);
    db.update("customers", id, {{"tier", tiers[rng() % 3]}, {"status", statuses[rng() % 2]}});
  }
}

int main() {
  aurora::Database db;
  for (int i = 0; i < 200; ++i) {
    db.insert("customers", "customer-" + std::to_string(i), {{"tier", "bronze"}, {"status", "active"}});
  }

  using namespace aurora::query;
  const aurora::Query active_gold = field("tier") == "gold" && field("status") == "active";
  auto [snapshot, subscription] = db.watch("customers", aurora::EventFilter{.where = active_gold, .transitions = true});
  LiveView view(snapshot);

  asio::io_context io;
  asio::cancellation_signal stop;
  asio::co_spawn(
      io,
      [](aurora::Subscription sub, LiveView& v) -> asio::awaitable<void> {
        co_await aurora::consume(sub, [&v](const aurora::RecvResult& r) { v.apply(r); });
      }(std::move(subscription), view),
      asio::bind_cancellation_slot(stop.slot(), asio::detached));
  std::thread follower([&io] { io.run(); });

  std::vector<std::thread> writers;
  for (unsigned t = 0; t < 3; ++t) writers.emplace_back(churn, std::ref(db), t + 1);
  for (auto& w : writers) w.join();
  asio::post(io, [&stop] { stop.emit(asio::cancellation_type::terminal); });  // on the view's thread
  follower.join();

  // A fresh query over the whole collection gives the same rows.
  std::map<std::string, aurora::Document> fresh;
  for (const auto& [id, doc] : db.snapshot("customers").documents) {
    if (active_gold.matches(doc)) fresh.emplace(id, doc);
  }
  std::cout << "live view: " << view.rows().size() << " active gold customers; fresh query: " << fresh.size() << '\n';
  if (view.rows() != fresh || view.lags() != 0) {
    std::cerr << "live_query: the live view differs from a fresh query\n";
    return 1;
  }
  return 0;
}
