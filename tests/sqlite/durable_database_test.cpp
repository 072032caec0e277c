// aurora::DurableDatabase: reopening, group commit, transactions, UTF-8 and size checks and resuming a
// subscription from the change log across a restart (with writers running during the hand-off).
#include "support.hpp"

#include <aurora/sqlite.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <latch>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace {

using aurora::Document;
using aurora::DurableDatabase;
using aurora::errc;
using aurora::OperationType;
using aurora::Options;
using aurora::Start;
using aurora_sqlite_test::event_ptr;
using aurora_sqlite_test::temp_dir;

// Every event a subscription holds right now (the writers are done: nothing is in flight).
std::vector<event_ptr> drain(aurora::Subscription& sub) {
  std::vector<event_ptr> out;
  for (;;) {
    aurora::RecvResult r = sub.try_recv();
    if (!r) {
      REQUIRE(r.error().code == errc::empty);
      return out;
    }
    out.push_back(r.event());
  }
}

std::error_code code_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const aurora::error& e) {
    return e.code();
  }
  FAIL("no aurora::error thrown");
  return {};
}

Options small(std::size_t capacity = 8, std::uint64_t history = 1'000'000) {
  Options o;
  o.channel_capacity = capacity;
  o.history = history;
  return o;
}

// One round of the "channel made while a group is being written" case: the sequence it
// subscribed after, and the first events it received.
struct hot_round {
  std::uint64_t after = 0;
  std::vector<std::uint64_t> got;
};

// Each round subscribes to "hot" after the last sequence and receives 4 events, then drops the
// subscription. Stops at the first receive that fails (`failed`).
boost::asio::awaitable<void> receive_rounds(DurableDatabase& db, std::vector<hot_round>& rounds, bool& failed) {
  for (auto& r : rounds) {
    r.after = db.last_sequence();
    auto sub = db.subscribe("hot", {}, Start::after(r.after));
    while (r.got.size() < 4) {
      const aurora::RecvResult next = co_await sub.recv();
      if (!next) {
        failed = true;
        co_return;
      }
      r.got.push_back(next->sequence);
    }
  }
}

}  // namespace

TEST_CASE("DurableDatabase: reopening restores documents, collections, sequence and id", "[durable]") {
  temp_dir dir;
  const std::string path = dir.file("db");
  std::string id;
  std::string a;
  std::uint64_t last = 0;
  {
    DurableDatabase db(path);
    id = db.id();
    CHECK(id.size() == 36);
    a = db.insert("orders", {{"sku", "A1"}, {"qty", 2}});
    db.insert("orders", "o-2", {{"sku", "B2"}});
    db.update("orders", a, {{"qty", 3}});
    db.insert("tmp", "x", {{"v", 1}});
    db.remove("tmp", "x");  // an emptied collection stays
    last = db.last_sequence();
    CHECK(last == 5);
    CHECK(db.storage().storage().pragmas().synchronous == 2);
  }
  DurableDatabase db(path, small());
  CHECK(db.id() == id);
  CHECK(db.last_sequence() == last);
  CHECK(db.collections() == std::vector<std::string>{"orders", "tmp"});
  CHECK(db.size("orders") == 2);
  CHECK(db.size("tmp") == 0);
  CHECK(*db.get("orders", a) == Document{{"sku", "A1"}, {"qty", 3}});
  CHECK(*db.get("orders", "o-2") == Document{{"sku", "B2"}});
  auto sub = db.subscribe_global();
  db.insert("orders", "o-3", {{"sku", "C3"}});
  const auto events = drain(sub);
  REQUIRE(events.size() == 1);
  CHECK(events[0]->sequence == last + 1);  // continues, never repeats
  CHECK(code_of([&] { db.insert("orders", "o-3", {{"x", 1}}); }) == errc::already_exists);
}

TEST_CASE("DurableDatabase: Durability::normal is in force", "[durable]") {
  temp_dir dir;
  Options o;
  o.durability = aurora::Durability::normal;
  DurableDatabase db(dir.file("db"), o);
  CHECK(db.storage().storage().pragmas().synchronous == 1);
}

TEST_CASE("DurableDatabase: a write is published only once durable, in order, from many threads", "[durable]") {
  temp_dir dir;
  const std::string path = dir.file("db");
  constexpr int threads = 4;
  constexpr int per_thread = 150;
  {
    DurableDatabase db(path);
    auto sub = db.subscribe_global();
    std::vector<std::thread> writers;
    std::atomic<bool> published_before_durable{false};
    for (int t = 0; t < threads; ++t) {
      writers.emplace_back([&, t] {
        for (int i = 0; i < per_thread; ++i) {
          db.insert("c", "t" + std::to_string(t) + "-" + std::to_string(i), {{"i", i}});
          // Whatever is published is durable: the published head never passes the stored one.
          if (db.last_sequence() > db.storage().last_sequence()) published_before_durable = true;
        }
      });
    }
    for (auto& w : writers) w.join();
    CHECK_FALSE(published_before_durable.load());
    const auto events = drain(sub);
    REQUIRE(events.size() == threads * per_thread);
    for (std::size_t i = 0; i < events.size(); ++i) CHECK(events[i]->sequence == i + 1);
  }
  const auto check = aurora_sqlite_test::check_database(path, threads * per_thread);
  INFO(check.failure);
  CHECK(check.ok());
  DurableDatabase db(path);
  CHECK(db.size("c") == threads * per_thread);
  CHECK(db.last_sequence() == threads * per_thread);
}

TEST_CASE("DurableDatabase: transactions are durable all or nothing", "[durable]") {
  temp_dir dir;
  const std::string path = dir.file("db");
  {
    DurableDatabase db(path);
    db.insert("accounts", "a", {{"balance", 100}});
    db.insert("accounts", "b", {{"balance", 0}});
    db.transaction([](aurora::Transaction& tx) {
      tx.update("accounts", "a", {{"balance", 70}});
      tx.update("accounts", "b", {{"balance", 30}});
      tx.insert("transfers", "t1", {{"amount", 30}});
    });
    CHECK_THROWS_AS(db.transaction([](aurora::Transaction& tx) {
      tx.update("accounts", "a", {{"balance", 0}});
      tx.insert("transfers", "t2", {{"amount", 70}});
      throw std::runtime_error("abort");
    }),
                    std::runtime_error);
    CHECK(db.last_sequence() == 5);
  }
  DurableDatabase db(path);
  CHECK(*db.get("accounts", "a") == Document{{"balance", 70}});
  CHECK(*db.get("accounts", "b") == Document{{"balance", 30}});
  CHECK(db.size("transfers") == 1);
  CHECK_FALSE(db.get("transfers", "t2"));
  auto sub = db.subscribe_global({}, Start::after(2));
  const auto events = drain(sub);
  REQUIRE(events.size() == 3);
  for (const auto& ev : events) CHECK(ev->commit == 5);
  CHECK(events[0]->timestamp == events[2]->timestamp);
}

TEST_CASE("DurableDatabase: a string that is not UTF-8 is refused at write time", "[durable]") {
  temp_dir dir;
  DurableDatabase db(dir.file("db"));
  db.insert("c", "a", {{"v", 1}});
  auto sub = db.subscribe("c");
  CHECK(code_of([&] { db.insert("c", "b", {{"v", "\xff"}}); }) == errc::invalid_document);
  CHECK(code_of([&] { db.update("c", "a", {{"k\xc0", 1}}); }) == errc::invalid_document);
  CHECK(code_of([&] {
          db.transaction([](aurora::Transaction& tx) {
            tx.update("c", "a", {{"v", 2}});
            tx.insert("new", "x", {{"v", "\xed\xa0\x80"}});  // a surrogate
          });
        }) == errc::invalid_document);
  CHECK(*db.get("c", "a") == Document{{"v", 1}});
  CHECK_FALSE(db.get("c", "b"));
  CHECK(db.collections() == std::vector<std::string>{"c"});
  CHECK(drain(sub).empty());
  db.insert("c", "b", {{"v", "caf\xc3\xa9 \xf0\x9f\x98\x80"}});  // not sticky
  CHECK(db.last_sequence() == 2);
}

TEST_CASE("DurableDatabase: a change over Options::max_change_bytes is refused at write time", "[durable]") {
  temp_dir dir;
  const std::string path = dir.file("db");
  Options o;
  o.max_change_bytes = 200;
  auto text = [](std::size_t n) { return std::string(n, 'x'); };
  {
    DurableDatabase db(path, o);
    CHECK(db.storage().max_change_bytes() == 200);
    auto sub = db.subscribe("c");
    // {"v":"x...x"} is 158 bytes, + "c" + "a": 160. The scan's bound counts each 'x' as 6 bytes,
    // so this is measured exactly.
    db.insert("c", "a", {{"v", text(150)}});
    try {
      db.insert("c", "b", {{"v", text(191)}});
      FAIL("an insert of 201 bytes must throw");
    } catch (const aurora::error& e) {
      CHECK(e.code() == errc::invalid_document);
      CHECK_THAT(e.what(), Catch::Contains("Insert of 'b' in 'c': the change is 201 bytes of text (document, "
                                           "collection and id), more than Options::max_change_bytes (200)"));
    }
    db.insert("c", "b", {{"v", text(190)}});  // 200: at the limit
    // An update logs the before-image with the document: 164 + 158 + 2.
    try {
      db.update("c", "a", {{"w", 1}});
      FAIL("an update of 324 bytes must throw");
    } catch (const aurora::error& e) {
      CHECK(e.code() == errc::invalid_document);
      CHECK_THAT(e.what(),
                 Catch::Contains("the change is 324 bytes of text (document, before-image, collection and id)"));
    }
    CHECK(code_of([&] { db.insert("new", "n", {{"v", text(300)}}); }) == errc::invalid_document);
    CHECK(code_of([&] {
            db.transaction([&](aurora::Transaction& tx) {
              tx.insert("c", "d", {{"v", 1}});
              tx.insert("c", "e", {{"v", text(300)}});
            });
          }) == errc::invalid_document);
    CHECK(*db.get("c", "a") == Document{{"v", text(150)}});
    CHECK_FALSE(db.get("c", "d"));
    CHECK(db.collections() == std::vector<std::string>{"c"});
    db.remove("c", "a");  // logs the before-image alone: 160
    std::vector<std::pair<std::uint64_t, OperationType>> seen;
    for (const auto& ev : drain(sub)) seen.emplace_back(ev->sequence, ev->operation);
    CHECK(seen == std::vector<std::pair<std::uint64_t, OperationType>>{
                      {1, OperationType::Insert}, {2, OperationType::Insert}, {3, OperationType::Delete}});
  }
  {
    DurableDatabase db(path, o);  // nothing refused reached the file
    CHECK(db.last_sequence() == 3);
    CHECK(db.size("c") == 1);
    CHECK(*db.get("c", "b") == Document{{"v", text(190)}});
  }
  {
    // Reopened with a lower limit: what the file holds cannot grow, but can still be removed.
    Options lower = o;
    lower.max_change_bytes = 50;
    DurableDatabase db(path, lower);
    CHECK(code_of([&] { db.update("c", "b", {{"w", 1}}); }) == errc::invalid_document);
    db.remove("c", "b");
    CHECK(db.size("c") == 0);
    CHECK(db.last_sequence() == 4);
  }
  // Without a change log there is no before-image: the same update fits (164 + 2).
  Options no_log = o;
  no_log.history = 0;
  DurableDatabase db(dir.file("no_log"), no_log);
  db.insert("c", "a", {{"v", text(150)}});
  db.update("c", "a", {{"w", 1}});
  CHECK(db.get("c", "a")->at("w") == 1);

  Options bad;
  bad.max_change_bytes = 0;
  CHECK(code_of([&] { DurableDatabase d(dir.file("bad"), bad); }) == errc::invalid_argument);
  bad.max_change_bytes = aurora::max_change_bytes_limit + 1;
  CHECK(code_of([&] { DurableDatabase d(dir.file("bad"), bad); }) == errc::invalid_argument);
  bad.max_change_bytes = aurora::max_change_bytes_limit;
  DurableDatabase largest(dir.file("largest"), bad);
  CHECK(largest.storage().max_change_bytes() <= aurora::max_change_bytes_limit);
}

TEST_CASE("DurableDatabase: Start::after reads the change log across a restart", "[durable]") {
  temp_dir dir;
  const std::string path = dir.file("db");
  std::vector<nlohmann::json> live;  // as delivered live in the first run
  {
    DurableDatabase db(path);
    auto sub = db.subscribe_global();
    for (int i = 0; i < 30; ++i) db.insert(i % 2 == 0 ? "even" : "odd", "d" + std::to_string(i), {{"i", i}});
    for (const auto& ev : drain(sub)) live.emplace_back(*ev);
  }
  DurableDatabase db(path, small());
  CHECK(db.last_sequence() == 30);

  // Global: the log from s + 1, equal to what was delivered live (timestamps at the microsecond).
  auto all = db.subscribe_global({}, Start::after(0));
  auto replayed = drain(all);
  REQUIRE(replayed.size() == 30);
  for (std::size_t i = 0; i < replayed.size(); ++i) CHECK(nlohmann::json(*replayed[i]) == live[i]);

  // A collection with a filter, then live events after the hand-off.
  aurora::EventFilter f;
  f.where = aurora::Query::parse({{"i", {{"$gte", 10}}}});
  auto evens = db.subscribe("even", f, Start::after(5));
  db.insert("even", "d30", {{"i", 30}});
  db.insert("odd", "d31", {{"i", 31}});
  const auto got = drain(evens);
  std::vector<int> is;
  for (const auto& ev : got) is.push_back(ev->document->at("i").get<int>());
  CHECK(is == std::vector<int>{10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30});

  // Start::oldest reaches back into the log; after(last) is now; after(last + 1) is invalid.
  auto oldest = db.subscribe_global({}, Start::oldest());
  CHECK(drain(oldest).size() == 32);
  auto now = db.subscribe_global({}, Start::after(db.last_sequence()));
  CHECK(drain(now).empty());
  CHECK(code_of([&] { (void)db.subscribe_global({}, Start::after(db.last_sequence() + 1)); }) ==
        errc::invalid_argument);
}

TEST_CASE("DurableDatabase: history_lost when the log was trimmed", "[durable]") {
  temp_dir dir;
  const std::string path = dir.file("db");
  {
    DurableDatabase db(path, small(4, 10));
    for (int i = 0; i < 30; ++i) db.insert("c", {{"i", i}});
  }
  DurableDatabase db(path, small(4, 10));
  try {
    (void)db.subscribe_global({}, Start::after(5));
    FAIL("expected history_lost");
  } catch (const aurora::error& e) {
    CHECK(e.code() == errc::history_lost);
    CHECK_THAT(e.what(), Catch::Contains("21"));
  }
  auto sub = db.subscribe("c", {}, Start::after(20));
  CHECK(drain(sub).size() == 10);
}

namespace {

// The sequences and lag reports a subscription holds right now, in order: n for an event with
// sequence n, -m for a lag of m events; it must then report `end` (empty: nothing more yet).
std::vector<std::int64_t> drain_with_lags(aurora::Subscription& sub, errc end = errc::empty) {
  std::vector<std::int64_t> out;
  for (;;) {
    aurora::RecvResult r = sub.try_recv();
    if (r) {
      out.push_back(static_cast<std::int64_t>(r->sequence));
    } else if (r.error().code == errc::lagged) {
      out.push_back(-static_cast<std::int64_t>(r.error().missed));
    } else {
      REQUIRE(r.error().code == end);
      return out;
    }
  }
}

}  // namespace

TEST_CASE("DurableDatabase: a resume reads the change log a page at a time; trimmed under it, it lags", "[durable]") {
  constexpr std::uint64_t page = aurora::detail::replay_page;
  temp_dir dir;
  DurableDatabase db(dir.file("db"), small(8, 3 * page + 3));  // the log holds every event written first
  for (std::uint64_t i = 0; i < 3 * page; ++i) db.insert("c", {{"i", i}});
  for (int i = 0; i < 3; ++i) db.insert("rare", {{"i", i}});  // sequences 3 * page + 1 .. + 3
  const std::uint64_t head = db.last_sequence();

  // A collection with 3 events among 3 pages of others: exactly those 3.
  auto rare = db.subscribe("rare", {}, Start::after(0));
  CHECK(drain_with_lags(rare) ==
        std::vector<std::int64_t>{std::int64_t(head) - 2, std::int64_t(head) - 1, std::int64_t(head)});

  // The first page is read at subscribe; 2 pages written after it trim the log up to
  // 2 * page. So the resume delivers its first page, lags over what was trimmed, reads the rest
  // of the log up to `head`, then the live channel (8 slots) lags over the 2 pages it missed too.
  auto all = db.subscribe_global({}, Start::after(0));
  const aurora::RecvResult first = all.try_recv();
  REQUIRE(first);
  CHECK(first->sequence == 1);
  for (std::uint64_t i = 0; i < 2 * page; ++i) db.insert("c", {{"j", i}});
  const std::uint64_t oldest = db.storage().oldest_logged();
  REQUIRE(oldest == 2 * page + 1);
  std::vector<std::int64_t> want;
  for (std::uint64_t s = 2; s <= page; ++s) want.push_back(std::int64_t(s));
  want.push_back(-std::int64_t(oldest - 1 - page));
  for (std::uint64_t s = oldest; s <= head; ++s) want.push_back(std::int64_t(s));
  want.push_back(-std::int64_t(2 * page - 8));
  for (std::uint64_t s = db.last_sequence() - 7; s <= db.last_sequence(); ++s) want.push_back(std::int64_t(s));
  CHECK(drain_with_lags(all) == want);
}

TEST_CASE("DurableDatabase: a resume still reading the log when the database is gone: its page, a lag, its channel",
          "[durable]") {
  constexpr std::uint64_t page = aurora::detail::replay_page;
  temp_dir dir;
  std::optional<DurableDatabase> db(std::in_place, dir.file("db"), small(8));
  for (std::uint64_t i = 0; i < 2 * page; ++i) db->insert("c", {{"i", i}});
  auto sub = db->subscribe_global({}, Start::after(0));
  for (int i = 0; i < 3; ++i) db->insert("c", {{"live", i}});
  db.reset();
  // The page it read, the unread rest of the log (gone with the database) as a lag, then the live
  // events its channel holds, then closed: every event accounted for.
  std::vector<std::int64_t> want;
  for (std::uint64_t s = 1; s <= page; ++s) want.push_back(std::int64_t(s));
  want.push_back(-std::int64_t(page));
  for (std::uint64_t s = 2 * page + 1; s <= 2 * page + 3; ++s) want.push_back(std::int64_t(s));
  CHECK(drain_with_lags(sub, errc::closed) == want);
  CHECK(sub.try_recv().error().code == errc::closed);
}

TEST_CASE("DurableDatabase: resuming across a restart with writers running: no gap, no duplicate", "[durable]") {
  temp_dir dir;
  const std::string path = dir.file("db");
  std::uint64_t stored = 0;  // the consumer's stored position
  {
    DurableDatabase db(path, small(4096));
    auto sub = db.subscribe_global();
    for (int i = 0; i < 200; ++i) db.insert(i % 3 == 0 ? "a" : "b", {{"i", i}});
    const auto first = drain(sub);
    REQUIRE(first.size() == 200);
    stored = first[120]->sequence;  // consumed up to here before the restart
  }
  for (const bool global : {true, false}) {
    DurableDatabase db(path, small(4096));  // after a reopen memory holds no history: the log serves
    const std::uint64_t before = db.last_sequence();
    std::latch go(1);  // the writers start together, as the subscribe below does
    std::vector<std::thread> writers;
    for (int t = 0; t < 3; ++t) {
      writers.emplace_back([&, t] {
        go.wait();
        for (int i = 0; i < 100; ++i) db.insert(t == 0 ? "a" : "b", {{"t", t}, {"i", i}});
      });
    }
    go.count_down();
    auto sub = global ? db.subscribe_global({}, Start::after(stored)) : db.subscribe("a", {}, Start::after(stored));
    for (auto& w : writers) w.join();
    const auto events = drain(sub);
    std::vector<std::uint64_t> want;
    {
      auto check = db.subscribe_global({}, Start::after(stored));
      for (const auto& ev : drain(check)) {
        if (global || ev->collection == "a") want.push_back(ev->sequence);
      }
    }
    std::vector<std::uint64_t> got;
    for (const auto& ev : events) got.push_back(ev->sequence);
    INFO("global " << global << ", resumed after " << stored << ", head before " << before);
    CHECK(db.last_sequence() == before + 300);
    CHECK(got == want);
    CHECK(got.size() == std::set<std::uint64_t>(got.begin(), got.end()).size());
    if (global) CHECK(got.size() == db.last_sequence() - stored);
  }
}

TEST_CASE("DurableDatabase: a channel made while a group is being written gets that group's events", "[durable]") {
  // Three writers keep "hot" busy, so groups of several commits are nearly always being
  // written. Each round subscribes to "hot" after the last sequence, which makes its channel
  // anew (the previous round's subscription was dropped), takes a few events, and drops it.
  // Every round must see exactly the log's "hot" events after its start: none of a group that
  // was prepared before its channel existed may be missing.
  temp_dir dir;
  DurableDatabase db(dir.file("db"), small(1'000'000));
  auto everything = db.subscribe_global();
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int t = 0; t < 3; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; !stop.load(); ++i) db.insert(i % 4 == 0 ? "cold" : "hot", {{"t", t}});
    });
  }
  std::vector<hot_round> rounds(100);
  bool failed = false;
  boost::asio::io_context io;
  boost::asio::co_spawn(io, receive_rounds(db, rounds, failed), boost::asio::detached);
  io.run_for(std::chrono::seconds(60));  // returns when the rounds are done; the bound is for a hang
  stop = true;
  for (auto& w : writers) w.join();
  REQUIRE_FALSE(failed);
  const auto log = drain(everything);
  REQUIRE(log.size() == db.last_sequence());
  for (const auto& r : rounds) {
    REQUIRE(r.got.size() == 4);  // else the 60 s bound passed
    std::vector<std::uint64_t> want;
    for (const auto& ev : log) {
      if (ev->collection == "hot" && ev->sequence > r.after && ev->sequence <= r.got.back()) {
        want.push_back(ev->sequence);
      }
    }
    INFO("subscribed after " << r.after);
    CHECK(r.got == want);
  }
}

TEST_CASE("DurableDatabase: watch while writers run: snapshot plus events is the final state", "[durable]") {
  temp_dir dir;
  DurableDatabase db(dir.file("db"), small(4096));
  for (int i = 0; i < 20; ++i) db.insert("c", "d" + std::to_string(i), {{"v", 0}});
  std::latch go(1);  // the writers start together, as the watch below does
  std::vector<std::thread> writers;
  for (int t = 0; t < 3; ++t) {
    writers.emplace_back([&, t] {
      go.wait();
      for (int i = 0; i < 60; ++i) db.update("c", "d" + std::to_string((i * 3 + t) % 20), {{"v", t * 1000 + i}});
    });
  }
  go.count_down();
  auto [snap, sub] = db.watch("c");
  for (auto& w : writers) w.join();
  std::map<std::string, Document> copy(snap.documents.begin(), snap.documents.end());
  std::uint64_t previous = snap.sequence;
  for (const auto& ev : drain(sub)) {
    CHECK(ev->sequence == previous + 1);  // one collection only: the feed is gapless here
    previous = ev->sequence;
    copy[ev->document_id] = *ev->document;
  }
  const auto final_state = db.snapshot("c");
  CHECK(final_state.sequence == db.last_sequence());
  CHECK(std::map<std::string, Document>(final_state.documents.begin(), final_state.documents.end()) == copy);
}

namespace {

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define AURORA_TEST_TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__) || defined(AURORA_TEST_TSAN)
constexpr int durable_transfers_per_thread = 1'000;
#else
constexpr int durable_transfers_per_thread = 10'000;
#endif

// Replays account events onto `initial` balances; counts the commit boundaries and those where
// the total is not `total`.
struct replay {
  std::map<std::string, std::int64_t> balances;
  std::uint64_t boundaries = 0;
  std::uint64_t bad = 0;

  void apply(const aurora::ChangeEvent& ev, std::int64_t total) {
    balances[ev.document_id] = ev.document->at("balance").get<std::int64_t>();
    if (ev.sequence != ev.commit) return;
    ++boundaries;
    std::int64_t sum = 0;
    for (const auto& [id, b] : balances) sum += b;
    if (sum != total) ++bad;
  }
};

}  // namespace

TEST_CASE("DurableDatabase: 4 threads of bank transfers keep the total in the feed and the log and after reopening",
          "[durable]") {
  constexpr int accounts = 10;
  constexpr std::int64_t initial = 1'000;
  constexpr std::int64_t total = accounts * initial;
  temp_dir dir;
  const std::string path = dir.file("db");
  Options options = small(1 << 20);
  options.durability = aurora::Durability::normal;  // the commit path is the same; fsyncs are fewer
  std::atomic<int> refused{0};
  replay live;
  {
    DurableDatabase db(path, options);
    for (int i = 0; i < accounts; ++i) db.insert("accounts", "acct-" + std::to_string(i), {{"balance", initial}});
    auto feed = db.subscribe("accounts");
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&db, &refused, t] {
        std::uint64_t state = std::uint64_t{0x9e3779b97f4a7c15} * static_cast<std::uint64_t>(t + 1);
        for (int i = 0; i < durable_transfers_per_thread; ++i) {
          state = state * std::uint64_t{6364136223846793005} + std::uint64_t{1442695040888963407};
          const auto from = "acct-" + std::to_string((state >> 33) % std::uint64_t{accounts});
          const auto to = "acct-" + std::to_string((state >> 45) % std::uint64_t{accounts});
          const auto amount = static_cast<std::int64_t>((state >> 20) % 300);
          try {
            db.transaction([&](aurora::Transaction& tx) {
              const std::int64_t a = tx.get("accounts", from)->at("balance").get<std::int64_t>();
              if (a < amount) throw std::runtime_error("insufficient funds");
              tx.update("accounts", from, {{"balance", a - amount}});
              const std::int64_t b = tx.get("accounts", to)->at("balance").get<std::int64_t>();  // sees the update
              tx.update("accounts", to, {{"balance", b + amount}});
            });
          } catch (const std::runtime_error&) {
            refused.fetch_add(1);
          }
        }
      });
    }
    for (auto& t : threads) t.join();
    for (int i = 0; i < accounts; ++i) live.balances["acct-" + std::to_string(i)] = initial;
    for (const auto& ev : drain(feed)) live.apply(*ev, total);
    std::int64_t sum = 0;
    for (const auto& [id, doc] : db.snapshot("accounts").documents) sum += doc.at("balance").get<std::int64_t>();
    CHECK(sum == total);
  }
  CHECK(live.bad == 0);
  CHECK(live.boundaries >= 1);
  INFO("refused transfers: " << refused.load() << ", commits " << live.boundaries);
  CHECK(live.boundaries + static_cast<std::uint64_t>(refused.load()) <= 4U * durable_transfers_per_thread);

  // After reopening: the documents, and the change log replayed from the first transfer.
  DurableDatabase db(path, options);
  std::int64_t sum = 0;
  for (const auto& [id, doc] : db.snapshot("accounts").documents) sum += doc.at("balance").get<std::int64_t>();
  CHECK(sum == total);
  replay logged;
  for (int i = 0; i < accounts; ++i) logged.balances["acct-" + std::to_string(i)] = initial;
  auto sub = db.subscribe("accounts", {}, Start::after(accounts));
  for (const auto& ev : drain(sub)) logged.apply(*ev, total);
  CHECK(logged.bad == 0);
  CHECK(logged.boundaries == live.boundaries);
  CHECK(logged.balances == live.balances);
}
