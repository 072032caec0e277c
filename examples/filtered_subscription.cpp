// Filtered subscription: receive only new premium users (operation Insert + field subscription == "premium").
#include <aurora/aurora.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <iostream>
#include <string>
#include <vector>

namespace asio = boost::asio;

// Welcomes every new premium user until the feed closes. The filter runs inside the subscription:
// free users, updates and deletions never wake this coroutine.
asio::awaitable<void> welcome_premium_users(aurora::Subscription sub, std::vector<std::string>& welcomed) {
  for (;;) {
    aurora::RecvResult r = co_await sub.recv();
    if (r) {
      std::cout << "welcome, " << r->document->at("name").get<std::string>() << " (premium)\n";
      welcomed.push_back(r->document_id);
      continue;
    }
    if (r.error().code == aurora::errc::lagged) {
      std::cout << "lagged: missed " << r.error().missed << " events\n";  // a welcome mail to resend, at worst
      continue;
    }
    break;  // errc::closed
  }
}

int main() {
  asio::io_context io;
  std::vector<std::string> welcomed;
  std::vector<std::string> expected;  // the premium inserts, in write order
  {
    aurora::Database db;
    aurora::EventFilter new_premium{.operation = aurora::OperationType::Insert,
                                    .field_filters = {{"subscription", "premium"}}};
    asio::co_spawn(io, welcome_premium_users(db.subscribe("users", new_premium), welcomed), asio::detached);

    expected.push_back(db.insert("users", {{"name", "Ada"}, {"subscription", "premium"}}));
    const std::string bob = db.insert("users", {{"name", "Bob"}, {"subscription", "free"}});
    expected.push_back(db.insert("users", {{"name", "Cleo"}, {"subscription", "premium"}}));
    db.insert("users", {{"name", "Dan"}});                                // no subscription field at all
    db.insert("users", {{"name", "Eve"}, {"subscription", "Premium"}});   // equality is exact
    db.update("users", bob, {{"subscription", "premium"}});               // an upgrade is an Update, not new
    db.remove("users", expected.front());                                 // a Delete, not new
    db.insert("orders", {{"name", "Fay"}, {"subscription", "premium"}});  // another collection
  }  // closes the feed: the subscriber reads what is left, then stops
  io.run();

  if (welcomed != expected) {
    std::cerr << "filtered_subscription: expected " << expected.size() << " premium inserts, got " << welcomed.size()
              << '\n';
    return 1;
  }
  return 0;
}
