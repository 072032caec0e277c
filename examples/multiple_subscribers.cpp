// Multiple subscribers: a logger and a notifier follow `orders` independently, each through its own filter.
#include <aurora/aurora.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <iostream>
#include <string>

namespace asio = boost::asio;

// Logs every change to the collection.
asio::awaitable<void> logger(aurora::Subscription sub, int& logged) {
  for (;;) {
    aurora::RecvResult r = co_await sub.recv();
    if (r) {
      std::cout << "[log]    #" << r->sequence << ' ' << aurora::to_string(r->operation) << ' ' << r->document_id
                << '\n';
      ++logged;
      continue;
    }
    if (r.error().code == aurora::errc::lagged) {
      std::cout << "[log]    ... " << r.error().missed << " changes not logged\n";
      continue;
    }
    break;  // errc::closed
  }
}

// Tells the customer when an order ships. Its filter passes every update whose result is "shipped";
// filters see only the new document, so a later update of a shipped order is skipped here by hand.
asio::awaitable<void> notifier(aurora::Subscription sub, int& notified) {
  for (;;) {
    aurora::RecvResult r = co_await sub.recv();
    if (r) {
      if (r->old_document->value("status", "") == "shipped") continue;  // already told
      std::cout << "[notify] dear " << r->document->at("customer").get<std::string>() << ", your order "
                << r->document_id << " has shipped\n";
      ++notified;
      continue;
    }
    if (r.error().code == aurora::errc::lagged) continue;
    break;  // errc::closed
  }
}

int main() {
  asio::io_context io;
  int logged = 0;
  int notified = 0;
  {
    aurora::Database db;
    // Each subscription has its own cursor on the channel: neither slows down or steals from the other.
    asio::co_spawn(io, logger(db.subscribe("orders"), logged), asio::detached);
    asio::co_spawn(io,
                   notifier(db.subscribe("orders", aurora::EventFilter{.operation = aurora::OperationType::Update,
                                                                       .field_filters = {{"status", "shipped"}}}),
                            notified),
                   asio::detached);
    std::cout << "orders has " << db.subscriber_count("orders") << " subscribers\n";

    const std::string a = db.insert("orders", {{"customer", "Ada"}, {"status", "new"}});
    const std::string b = db.insert("orders", {{"customer", "Bob"}, {"status", "new"}});
    const std::string c = db.insert("orders", {{"customer", "Cleo"}, {"status", "new"}});
    db.update("orders", a, {{"status", "paid"}});
    db.update("orders", a, {{"status", "shipped"}});  // notify
    db.update("orders", b, {{"status", "shipped"}});  // notify
    db.update("orders", c, {{"status", "cancelled"}});
    db.remove("orders", c);
    db.update("orders", b, {{"tracking", "ZX-42"}});  // still shipped: passes the filter, not notified again
  }
  io.run();

  std::cout << "logged " << logged << ", notified " << notified << '\n';
  if (logged != 9 || notified != 2) {
    std::cerr << "multiple_subscribers: expected 9 logged and 2 notified\n";
    return 1;
  }
  return 0;
}
