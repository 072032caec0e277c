// Queries: one filter written twice, with the C++ builders and as the JSON a remote client sends;
// both subscriptions receive exactly the same events (large EU/UK orders that are not cancelled).
#include <aurora/aurora.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <iostream>
#include <string>
#include <vector>

namespace asio = boost::asio;

// Records "<operation> <id>" for every event the subscription lets through, until the feed closes.
asio::awaitable<void> record(const char* name, aurora::Subscription sub, std::vector<std::string>& seen) {
  for (;;) {
    aurora::RecvResult r = co_await sub.recv();
    if (r) {
      seen.push_back(std::string(aurora::to_string(r->operation)) + ' ' + r->document_id);
      std::cout << name << ": " << seen.back() << '\n';
      continue;
    }
    if (r.error().code == aurora::errc::lagged) continue;  // not with 8 events and 10,000 slots
    break;                                                 // errc::closed
  }
}

int main() {
  // In C++: builders, checked by the compiler, compiled once.
  using namespace aurora::query;
  const aurora::EventFilter built{.where = field("total") >= 100 && field("region").in({"EU", "UK"}) &&
                                           !field("cancelled").exists()};

  // As JSON: what a remote subscriber sends; parsed strictly (a typo throws invalid_argument).
  const aurora::EventFilter sent = aurora::EventFilter::from_json(nlohmann::json::parse(R"({
    "where": {
      "total": {"$gte": 100},
      "region": {"$in": ["EU", "UK"]},
      "$nor": [{"cancelled": {"$exists": true}}]
    }
  })"));

  // Both spell the same filter: their canonical JSON forms are equal.
  const nlohmann::json built_json = built;
  const nlohmann::json sent_json = sent;
  std::cout << "filter: " << built_json.dump() << '\n';
  if (built_json != sent_json) {
    std::cerr << "queries: the two filters differ: " << sent_json.dump() << '\n';
    return 1;
  }

  asio::io_context io;
  std::vector<std::string> seen_built;
  std::vector<std::string> seen_sent;
  std::vector<std::string> expected;
  {
    aurora::Database db;
    asio::co_spawn(io, record("built", db.subscribe("orders", built), seen_built), asio::detached);
    asio::co_spawn(io, record("sent ", db.subscribe("orders", sent), seen_sent), asio::detached);

    const std::string a = db.insert("orders", {{"total", 250}, {"region", "EU"}});  // in: large, EU
    expected.push_back("Insert " + a);
    const std::string b = db.insert("orders", {{"total", 50}, {"region", "EU"}});  // too small
    db.insert("orders", {{"total", 300}, {"region", "US"}});                       // wrong region
    db.update("orders", b, {{"total", 150.5}});  // grows into the query: the new document counts
    expected.push_back("Update " + b);
    db.update("orders", a, {{"cancelled", true}});  // leaves the query: not delivered without transitions
    const std::string c = db.insert("orders", {{"total", 100}, {"region", "UK"}});  // $gte: 100 is enough
    expected.push_back("Insert " + c);
    db.remove("orders", c);  // a Delete is matched against the removed document
    expected.push_back("Delete " + c);
    db.remove("orders", a);  // removed while cancelled: outside the query
  }                          // closes the feeds: each subscriber reads what is left, then stops
  io.run();

  if (seen_built != expected || seen_sent != expected) {
    std::cerr << "queries: expected " << expected.size() << " events, got " << seen_built.size() << " (built) and "
              << seen_sent.size() << " (sent)\n";
    return 1;
  }
  return 0;
}
