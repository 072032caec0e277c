// Audit log: a global subscriber writes one `audit_log` row per change, without auditing its own rows.
#include <aurora/aurora.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

namespace asio = boost::asio;

constexpr const char* audit_collection = "audit_log";

// Writes one audit row for a change. The audit inserts are changes too and come back on the global
// feed: auditing them would add a row per row, forever. So the auditor skips its own collection.
void record(aurora::Database& db, const aurora::RecvResult& r) {
  if (!r) {  // errc::lagged: changes were overwritten unread; leave a visible hole in the trail
    db.insert_into(audit_collection, {{"missed", r.error().missed}});
    return;
  }
  if (r->collection == audit_collection) return;
  // to_json(ChangeEvent) gives collection, document_id, operation, document, old_document,
  // timestamp and sequence. The sequence as the row id makes a row per change, never two.
  db.insert(audit_collection, "audit-" + std::to_string(r->sequence), aurora::Document(*r));
}

// Audits every change until stopped (cancelled). Stopping does not lose the tail: aurora::consume
// hands over what was published before the stop, then returns.
asio::awaitable<void> auditor(aurora::Database& db, aurora::Subscription feed) {
  co_await aurora::consume(feed, [&db](const aurora::RecvResult& r) { record(db, r); });
}

struct Write {
  std::string collection, id, operation;
  friend bool operator==(const Write&, const Write&) = default;
};

// The application: user writes, interleaved with the auditor on the same io_context.
asio::awaitable<void> application(aurora::Database& db, std::vector<Write>& writes, asio::cancellation_signal& stop) {
  auto ex = co_await asio::this_coro::executor;
  for (int i = 0; i < 10; ++i) {
    co_await asio::post(ex, asio::use_awaitable);  // between requests: the auditor catches up
    const std::string user = db.insert("users", {{"name", "user-" + std::to_string(i)}});
    writes.push_back({"users", user, "Insert"});
    db.update("users", user, {{"verified", i % 2 == 0}});
    writes.push_back({"users", user, "Update"});
    co_await asio::post(ex, asio::use_awaitable);
    const std::string order = db.insert("orders", {{"user", user}, {"total", 10 * i}});
    writes.push_back({"orders", order, "Insert"});
    if (i % 3 == 0) {
      db.remove("orders", order);
      writes.push_back({"orders", order, "Delete"});
    }
  }
  // Shutting down, with the last writes not audited yet: the auditor finishes the tail, then returns.
  stop.emit(asio::cancellation_type::terminal);
}

int main() {
  asio::io_context io;
  aurora::Database db;
  std::vector<Write> writes;
  asio::cancellation_signal stop_auditor;
  asio::co_spawn(io, auditor(db, db.subscribe_global()),
                 asio::bind_cancellation_slot(stop_auditor.slot(), asio::detached));
  asio::co_spawn(io, application(db, writes, stop_auditor), asio::detached);
  io.run();

  // Every write made one global event and one audit row (itself an event): sequences 1 .. 2M. Read
  // the rows back in sequence order and compare them with the writes.
  std::vector<Write> audited;
  for (std::uint64_t seq = 1; seq <= 2 * writes.size(); ++seq) {
    if (auto row = db.get(audit_collection, "audit-" + std::to_string(seq))) {
      audited.push_back({row->at("collection").get<std::string>(), row->at("document_id").get<std::string>(),
                         row->at("operation").get<std::string>()});
    }
  }
  std::cout << writes.size() << " writes, " << db.size(audit_collection) << " audit rows\n";
  if (db.size(audit_collection) != writes.size() || audited != writes) {
    std::cerr << "audit_log: expected exactly one audit row per write, in order\n";
    return 1;
  }
  return 0;
}
