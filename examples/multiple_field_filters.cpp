// Several field filters: updates where status == "active" AND age == 21; every filter must hold.
#include <aurora/aurora.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <iostream>
#include <string>
#include <vector>

namespace asio = boost::asio;

// Collects the ids of the matching updates until the feed closes.
asio::awaitable<void> collect(aurora::Subscription sub, std::vector<std::string>& ids) {
  for (;;) {
    aurora::RecvResult r = co_await sub.recv();
    if (r) {
      std::cout << "active 21-year-old updated: " << r->document_id << "  " << r->document->dump() << '\n';
      ids.push_back(r->document_id);
      continue;
    }
    if (r.error().code == aurora::errc::lagged) continue;  // nothing to resync in this example
    break;                                                 // errc::closed
  }
}

int main() {
  asio::io_context io;
  std::vector<std::string> received;
  std::vector<std::string> expected;
  {
    aurora::Database db;
    aurora::EventFilter filter{.operation = aurora::OperationType::Update,
                               .field_filters = {{"status", "active"}, {"age", 21}}};
    asio::co_spawn(io, collect(db.subscribe("users", filter), received), asio::detached);

    // Inserts never match (operation Update); the filters are checked on the document after the update.
    const std::string ann = db.insert("users", {{"name", "Ann"}, {"status", "active"}, {"age", 21}});
    const std::string ben = db.insert("users", {{"name", "Ben"}, {"status", "active"}, {"age", 20}});
    const std::string cat = db.insert("users", {{"name", "Cat"}, {"status", "inactive"}, {"age", 21}});

    db.update("users", ann, {{"city", "Oslo"}});  // still active and 21: match
    expected.push_back(ann);
    db.update("users", ben, {{"age", 21}});  // now active and 21: match
    expected.push_back(ben);
    db.update("users", cat, {{"city", "Rome"}});      // 21 but inactive: no match
    db.update("users", ann, {{"age", 22}});           // active but 22: no match
    db.update("users", ben, {{"age", "21"}});         // the string "21" is not the number 21: no match
    db.update("users", cat, {{"status", "active"}});  // now active and 21: match
    expected.push_back(cat);
    db.update("users", cat, {{"age", 21.0}});        // 21.0 == 21 under JSON equality, but nothing changed:
                                                     // an update that changes nothing publishes nothing
    db.update("users", ben, {{"status", nullptr}});  // removes status: no match
  }
  io.run();

  if (received != expected) {
    std::cerr << "multiple_field_filters: expected " << expected.size() << " matching updates, got " << received.size()
              << '\n';
    return 1;
  }
  return 0;
}
