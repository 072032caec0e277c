// Operation-only filter: follow deletions and print each removed document from `old_document`.
#include <aurora/aurora.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <iostream>
#include <string>
#include <vector>

namespace asio = boost::asio;

// Prints every removed document until the feed closes. A Delete has no `document`; the document as
// it was just before the removal is in `old_document`.
asio::awaitable<void> print_removals(aurora::Subscription sub, std::vector<aurora::Document>& removed) {
  for (;;) {
    aurora::RecvResult r = co_await sub.recv();
    if (r) {
      std::cout << "removed " << r->collection << '/' << r->document_id << ": " << r->old_document->dump() << '\n';
      removed.push_back(*r->old_document);
      continue;
    }
    if (r.error().code == aurora::errc::lagged) {
      std::cout << "lagged: " << r.error().missed << " events were dropped, some removals went unseen\n";
      continue;
    }
    break;  // errc::closed
  }
}

int main() {
  asio::io_context io;
  std::vector<aurora::Document> removed;
  std::vector<aurora::Document> expected;
  {
    aurora::Database db;
    aurora::EventFilter deletions_only{.operation = aurora::OperationType::Delete, .field_filters = {}};
    asio::co_spawn(io, print_removals(db.subscribe("sessions", deletions_only), removed), asio::detached);

    const std::string a = db.insert("sessions", {{"user", "ada"}, {"device", "laptop"}});
    const std::string b = db.insert("sessions", {{"user", "bob"}, {"device", "phone"}});
    const std::string c = db.insert("sessions", {{"user", "cleo"}, {"device", "tablet"}});
    db.update("sessions", b, {{"device", "phone"}, {"last_seen", "2026-11-26T18:30:05Z"}});

    expected.push_back(*db.get("sessions", b));  // the old_document carries the update
    db.remove("sessions", b);
    expected.push_back(*db.get("sessions", a));
    db.remove("sessions", a);
    db.update("sessions", c, {{"device", "desktop"}});  // not a deletion: filtered out
  }
  io.run();

  if (removed != expected) {
    std::cerr << "operation_only: expected " << expected.size() << " removed documents, got " << removed.size() << '\n';
    return 1;
  }
  return 0;
}
