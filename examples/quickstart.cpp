// Quick start: write documents and follow their changes with `co_await sub.recv()`.
#include <aurora/aurora.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <iostream>
#include <string>

namespace asio = boost::asio;

// Prints every change to "users" until the feed closes. Survives lag: a subscriber that falls
// more than the channel capacity behind is told how much it missed and reads on.
asio::awaitable<void> print_changes(aurora::Subscription sub, int& printed) {
  for (;;) {
    aurora::RecvResult r = co_await sub.recv();
    if (r) {
      std::cout << aurora::to_rfc3339(r->timestamp) << "  #" << r->sequence << "  " << aurora::to_string(r->operation)
                << "  " << r->collection << '/' << r->document_id << "  "
                << (r->document ? r->document->dump() : "(removed)") << '\n';
      ++printed;
      continue;
    }
    if (r.error().code == aurora::errc::lagged) {
      std::cout << "lagged: missed " << r.error().missed << " events\n";
      continue;
    }
    break;  // errc::closed: the database is gone and everything was read
  }
}

int main() {
  asio::io_context io;
  int printed = 0;
  {
    aurora::Database db;
    asio::co_spawn(io, print_changes(db.subscribe("users"), printed), asio::detached);

    const std::string id = db.insert("users", {{"name", "Ada Lovelace"}, {"born", 1815}});
    db.update("users", id, {{"title", "Countess of Lovelace"}});  // RFC 7386 merge patch
    db.remove("users", id);
  }  // destroying the database closes the feed: the subscriber reads what is left, then stops
  io.run();

  if (printed != 3) {
    std::cerr << "quickstart: expected 3 events, printed " << printed << '\n';
    return 1;
  }
  return 0;
}
