// Tests for aurora/database.hpp: the write path, errors, events, ids, reads, and threads.
#include <aurora/database.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <limits>
#include <regex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using aurora::Document;
using aurora::errc;
using aurora::OperationType;
using aurora::RecvResult;

namespace {

// Calls `f` and checks that it throws aurora::error with `code`.
template <class F>
void check_throws(errc code, F&& f) {
  try {
    f();
    FAIL_CHECK("no exception, expected errc " << static_cast<int>(code));
  } catch (const aurora::error& e) {
    CHECK(e.code() == code);
  }
}

// Everything a subscription holds right now.
std::vector<std::shared_ptr<const aurora::ChangeEvent>> drain(aurora::Subscription& sub) {
  std::vector<std::shared_ptr<const aurora::ChangeEvent>> out;
  for (;;) {
    RecvResult r = sub.try_recv();
    if (!r) {
      REQUIRE(r.error().code == errc::empty);
      return out;
    }
    out.push_back(std::move(r).event());
  }
}

}  // namespace

TEST_CASE("every row of the errc table", "[database][errors]") {
  aurora::Database db;
  const std::string id = db.insert("users", "u1", {{"name", "Ada"}});

  check_throws(errc::invalid_document, [&] { db.insert("users", Document::array()); });
  check_throws(errc::invalid_document, [&] { db.insert("users", 42); });
  check_throws(errc::invalid_argument, [&] { db.insert("", {{"a", 1}}); });
  check_throws(errc::invalid_argument, [&] { db.insert("users", "", {{"a", 1}}); });
  check_throws(errc::already_exists, [&] { db.insert("users", "u1", {{"a", 1}}); });
  check_throws(errc::not_found, [&] { db.update("users", "nope", {{"a", 1}}); });
  check_throws(errc::not_found, [&] { db.replace("users", "nope", {{"a", 1}}); });
  check_throws(errc::not_found, [&] { db.remove("users", "nope"); });
  check_throws(errc::invalid_document, [&] { db.update("users", id, "text"); });
  check_throws(errc::invalid_document, [&] { db.replace("users", id, nullptr); });
  check_throws(errc::not_found, [&] { db.update("never", id, {{"a", 1}}); });
  check_throws(errc::not_found, [&] { db.replace("never", id, {{"a", 1}}); });
  check_throws(errc::not_found, [&] { db.remove("never", id); });
  check_throws(errc::invalid_argument, [] { aurora::Database bad{aurora::Options{.channel_capacity = 0}}; });
}

TEST_CASE("when several conditions hold, the first in table order wins", "[database][errors]") {
  aurora::Database db;
  db.insert("users", "u1", {{"name", "Ada"}});
  check_throws(errc::invalid_argument, [&] { db.insert("", "", Document::array()); });
  check_throws(errc::invalid_argument, [&] { db.insert("users", "", Document::array()); });
  check_throws(errc::invalid_document, [&] { db.insert("users", "u1", Document::array()); });
  check_throws(errc::invalid_document, [&] { db.update("never", "nope", Document::array()); });
  check_throws(errc::invalid_document, [&] { db.replace("never", "nope", 1); });
}

TEST_CASE("a write that throws changes nothing and publishes nothing", "[database][errors]") {
  aurora::Database db;
  db.insert("users", "u1", {{"name", "Ada"}});
  auto sub = db.subscribe("users");
  auto global = db.subscribe_global();

  check_throws(errc::already_exists, [&] { db.insert("users", "u1", {{"name", "Grace"}}); });
  check_throws(errc::invalid_document, [&] { db.update("users", "u1", "x"); });
  check_throws(errc::invalid_document, [&] { db.replace("users", "u1", Document::array()); });
  check_throws(errc::not_found, [&] { db.remove("users", "u2"); });
  check_throws(errc::invalid_document, [&] { db.insert("fresh", Document::array()); });

  CHECK(db.get("users", "u1") == Document{{"name", "Ada"}});
  CHECK(db.size("users") == 1);
  CHECK(db.collections() == std::vector<std::string>{"users"});  // "fresh" was not created
  CHECK(drain(sub).empty());
  CHECK(drain(global).empty());

  // The sequence did not move either.
  db.insert("users", {{"name", "Grace"}});
  CHECK(drain(global).front()->sequence == 2);
}

TEST_CASE("each write publishes one event to its collection and to the global channel", "[database][events]") {
  aurora::Database db;
  auto users = db.subscribe("users");
  auto orders = db.subscribe("orders");
  auto global = db.subscribe_global();

  const std::string id = db.insert("users", {{"name", "Ada"}, {"age", 36}});
  db.update("users", id, {{"age", 37}, {"title", "Countess"}});
  db.replace("users", id, {{"name", "Ada King"}});
  db.insert("orders", "o1", {{"total", 10}});
  db.remove("users", id);

  const auto u = drain(users);
  const auto o = drain(orders);
  const auto g = drain(global);
  REQUIRE(u.size() == 4);
  REQUIRE(o.size() == 1);
  REQUIRE(g.size() == 5);

  // Gapless sequence, in one order both kinds of channel agree on.
  for (std::size_t i = 0; i < g.size(); ++i) CHECK(g[i]->sequence == i + 1);
  CHECK(u[0].get() == g[0].get());  // one shared event, not a copy per channel
  CHECK(u[3].get() == g[4].get());
  CHECK(o[0].get() == g[3].get());

  CHECK(u[0]->operation == OperationType::Insert);
  CHECK(*u[0]->document == Document{{"name", "Ada"}, {"age", 36}});
  CHECK_FALSE(u[0]->old_document);
  CHECK(u[0]->document_id == id);
  CHECK(u[0]->collection == "users");

  CHECK(u[1]->operation == OperationType::Update);
  CHECK(*u[1]->old_document == Document{{"name", "Ada"}, {"age", 36}});
  CHECK(*u[1]->document == Document{{"name", "Ada"}, {"age", 37}, {"title", "Countess"}});

  CHECK(u[2]->operation == OperationType::Update);  // replace publishes an Update
  CHECK(*u[2]->old_document == Document{{"name", "Ada"}, {"age", 37}, {"title", "Countess"}});
  CHECK(*u[2]->document == Document{{"name", "Ada King"}});

  CHECK(u[3]->operation == OperationType::Delete);
  CHECK_FALSE(u[3]->document);
  CHECK(*u[3]->old_document == Document{{"name", "Ada King"}});

  for (std::size_t i = 1; i < g.size(); ++i) CHECK(g[i - 1]->timestamp <= g[i]->timestamp);
}

TEST_CASE("update is an RFC 7386 merge patch", "[database][update]") {
  aurora::Database db;
  db.insert("users", "u1", {{"name", "Ada"}, {"age", 36}, {"address", {{"city", "London"}, {"zip", "W1"}}}});
  db.update("users", "u1", {{"age", nullptr}, {"address", {{"zip", nullptr}, {"country", "UK"}}}, {"tags", {"a"}}});
  CHECK(db.get("users", "u1") ==
        Document{{"name", "Ada"}, {"address", {{"city", "London"}, {"country", "UK"}}}, {"tags", {"a"}}});
}

TEST_CASE("an update or replace that changes nothing publishes nothing", "[database][update]") {
  aurora::Database db;
  db.insert("users", "u1", {{"name", "Ada"}, {"age", 36}});
  auto global = db.subscribe_global();
  db.update("users", "u1", {{"age", 36}});
  db.update("users", "u1", Document::object());
  db.update("users", "u1", {{"missing", nullptr}});
  db.replace("users", "u1", {{"age", 36}, {"name", "Ada"}});
  CHECK(drain(global).empty());
  db.update("users", "u1", {{"age", 37}});
  const auto g = drain(global);
  REQUIRE(g.size() == 1);
  CHECK(g[0]->sequence == 2);  // no sequence number was spent on the no-ops
}

TEST_CASE("numbers that differ are a change even where nlohmann's == calls them equal", "[database][update]") {
  // nlohmann's operator== calls 2^64-1 equal to -1 and compares an integer with a double as
  // doubles; an update or replace between such values must store and publish the change.
  aurora::Database db;
  const std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
  db.insert("n", "u", {{"a", max}});
  auto global = db.subscribe_global();
  db.replace("n", "u", {{"a", -1}});
  CHECK(db.get("n", "u")->at("a").get<std::int64_t>() == -1);
  db.update("n", "u", {{"a", max}});
  CHECK(db.get("n", "u")->at("a").get<std::uint64_t>() == max);
  db.replace("n", "u", {{"a", 9007199254740993}});    // 2^53 + 1
  db.replace("n", "u", {{"a", 9007199254740992.0}});  // the double nearest it, 2^53
  CHECK(db.get("n", "u")->at("a").is_number_float());
  db.update("n", "u", {{"a", 9007199254740993}});
  CHECK(db.get("n", "u")->at("a").get<std::int64_t>() == 9007199254740993);
  CHECK(drain(global).size() == 5);
  // The same number, however it is held, is no change: nothing is published.
  db.update("n", "u", {{"a", 21}});
  db.update("n", "u", {{"a", 21.0}});
  db.update("n", "u", {{"a", 21U}});
  db.replace("n", "u", {{"a", std::int64_t{21}}});
  db.update("n", "u", {{"a", 0}});
  db.update("n", "u", {{"a", -0.0}});
  CHECK(drain(global).size() == 2);  // to 21, to 0
  CHECK(db.get("n", "u")->dump() == R"({"a":0})");
}

TEST_CASE("generated ids are UUIDv7 strings that sort in generation order", "[database][ids]") {
  aurora::Database db;
  const std::regex uuid7("[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
  std::vector<std::string> ids;
  for (int i = 0; i < 10'000; ++i) ids.push_back(db.insert("users", {{"i", i}}));
  for (const auto& id : {ids.front(), ids[5000], ids.back()}) {
    CHECK(id.size() == 36);
    CHECK(std::regex_match(id, uuid7));
  }
  CHECK(std::is_sorted(ids.begin(), ids.end()));
  CHECK(std::set<std::string>(ids.begin(), ids.end()).size() == ids.size());
  CHECK(std::adjacent_find(ids.begin(), ids.end()) == ids.end());

  // The 48-bit millisecond timestamp is close to now.
  const auto ms = std::stoull(ids.back().substr(0, 8) + ids.back().substr(9, 4), nullptr, 16);
  const auto now = static_cast<unsigned long long>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
  CHECK(ms <= now + 1000);
  CHECK(ms + 60'000 >= now);
}

namespace {
// A clock that steps back by a second on every other call.
struct stepping_back_clock {
  static std::atomic<int> calls;
  static std::chrono::system_clock::time_point now() {
    const int n = calls.fetch_add(1);
    const auto base = std::chrono::system_clock::time_point{std::chrono::hours(24 * 365 * 50)};
    return base + std::chrono::seconds(n % 2 == 0 ? 10 : 9) + std::chrono::milliseconds(n);
  }
};
std::atomic<int> stepping_back_clock::calls{0};
}  // namespace

TEST_CASE("timestamps never decrease in sequence order, even when the clock steps back", "[database][events]") {
  aurora::BasicDatabase<stepping_back_clock> db;
  auto global = db.subscribe_global();
  for (int i = 0; i < 20; ++i) db.insert("users", {{"i", i}});
  const auto g = drain(global);
  REQUIRE(g.size() == 20);
  for (std::size_t i = 1; i < g.size(); ++i) CHECK(g[i - 1]->timestamp <= g[i]->timestamp);
}

TEST_CASE("reads: get, size, collections, insert_into", "[database][reads]") {
  aurora::Database db;
  CHECK(db.size("users") == 0);
  CHECK(db.collections().empty());
  CHECK_FALSE(db.get("users", "x"));

  auto sub = db.subscribe("later");  // subscribing does not create a collection
  CHECK(db.collections().empty());
  check_throws(errc::not_found, [&] { db.remove("later", "x"); });

  const std::string id = db.insert_into("users", {{"name", "Ada"}, {"age", 36}, {"age", 37}});
  CHECK(db.get("users", id) == Document{{"name", "Ada"}, {"age", 37}});
  db.insert("orders", {{"total", 1}});
  CHECK(db.collections() == std::vector<std::string>{"orders", "users"});
  CHECK(db.size("users") == 1);

  db.remove("users", id);
  CHECK(db.size("users") == 0);
  CHECK(db.collections() == std::vector<std::string>{"orders", "users"});  // still exists
  db.update("orders", db.insert("orders", {{"total", 2}}), {{"total", 3}});
  CHECK(db.size("orders") == 2);

  check_throws(errc::invalid_argument, [&] { (void)db.subscribe(""); });
}

TEST_CASE("a caller's id may be any non-empty string", "[database][ids]") {
  aurora::Database db;
  for (const std::string& id :
       std::vector<std::string>{"x", "with space", "ünïcödé", "a/b.c", std::string(1000, 'z')}) {
    CHECK(db.insert("users", id, {{"ok", true}}) == id);
    CHECK(db.get("users", id) == Document{{"ok", true}});
  }
}

TEST_CASE("4 writer threads and 16 subscribers on 2 threads: exact counts and order", "[database][threads]") {
  constexpr int writers = 4;
  constexpr int per_writer = 5'000;
  constexpr int total = writers * per_writer;
  // Large enough that nobody can lag: every count below is exact.
  auto db = std::make_unique<aurora::Database>(aurora::Options{.channel_capacity = total});

  struct subscriber_spec {
    std::string collection;  // empty: global
    bool quarter_filter;     // only kind == "q"
  };
  std::vector<subscriber_spec> specs;
  for (int i = 0; i < 6; ++i) specs.push_back({"", false});
  for (int i = 0; i < 2; ++i) specs.push_back({"", true});
  for (const char* c : {"a", "b"}) {
    for (int i = 0; i < 3; ++i) specs.push_back({c, false});
    specs.push_back({c, true});
  }
  REQUIRE(specs.size() == 16);

  struct record {
    std::vector<std::shared_ptr<const aurora::ChangeEvent>> events;
    int errors_other_than_closed = 0;
    bool closed = false;
  };
  std::vector<record> records(specs.size());

  asio::io_context io;
  for (std::size_t s = 0; s < specs.size(); ++s) {
    std::optional<aurora::EventFilter> filter;
    if (specs[s].quarter_filter) filter = aurora::EventFilter{{}, {{"kind", "q"}}};
    aurora::Subscription sub =
        specs[s].collection.empty() ? db->subscribe_global(filter) : db->subscribe(specs[s].collection, filter);
    asio::co_spawn(
        io,
        [&rec = records[s], sub = std::move(sub)]() mutable -> asio::awaitable<void> {
          for (;;) {
            RecvResult r = co_await sub.recv();
            if (r) {
              rec.events.push_back(std::move(r).event());
            } else if (r.error().code == errc::closed) {
              rec.closed = true;
              co_return;
            } else {
              ++rec.errors_other_than_closed;
            }
          }
        },
        asio::detached);
  }

  std::promise<void> io_done;
  std::atomic<int> io_threads_left{2};
  std::vector<std::thread> runners;
  for (int t = 0; t < 2; ++t) {
    runners.emplace_back([&] {
      io.run();
      if (io_threads_left.fetch_sub(1) == 1) io_done.set_value();
    });
  }

  std::vector<std::thread> threads;
  for (int w = 0; w < writers; ++w) {
    threads.emplace_back([&db, w] {
      for (int i = 0; i < per_writer; ++i) {
        db->insert(w % 2 == 0 ? "a" : "b", {{"w", w}, {"i", i}, {"kind", i % 4 == 0 ? "q" : "x"}});
      }
    });
  }
  for (auto& t : threads) t.join();
  db.reset();  // closes every channel: the subscribers drain, get closed, and io.run() returns

  const bool finished = io_done.get_future().wait_for(std::chrono::seconds(120)) == std::future_status::ready;
  if (!finished) io.stop();
  for (auto& t : runners) t.join();
  REQUIRE(finished);

  const auto& reference = records[0].events;  // a global, unfiltered subscriber
  REQUIRE(reference.size() == static_cast<std::size_t>(total));
  for (std::size_t i = 0; i < reference.size(); ++i) REQUIRE(reference[i]->sequence == i + 1);

  for (std::size_t s = 0; s < specs.size(); ++s) {
    INFO("subscriber " << s << " on '" << specs[s].collection << "' filtered=" << specs[s].quarter_filter);
    const record& rec = records[s];
    CHECK(rec.closed);
    CHECK(rec.errors_other_than_closed == 0);

    // Exactly the events of its channel that pass its filter, in the global order.
    std::vector<const aurora::ChangeEvent*> expected;
    for (const auto& ev : reference) {
      if (!specs[s].collection.empty() && ev->collection != specs[s].collection) continue;
      if (specs[s].quarter_filter && ev->document->at("kind") != "q") continue;
      expected.push_back(ev.get());
    }
    std::vector<const aurora::ChangeEvent*> got;
    for (const auto& ev : rec.events) got.push_back(ev.get());
    CHECK(got == expected);

    // Each writer's inserts arrive in the order it made them.
    std::vector<int> next(writers, 0);
    int order_errors = 0;
    for (const auto& ev : rec.events) {
      const int w = ev->document->at("w").get<int>();
      const int i = ev->document->at("i").get<int>();
      if (i < next[static_cast<std::size_t>(w)]) ++order_errors;
      next[static_cast<std::size_t>(w)] = i + 1;
    }
    CHECK(order_errors == 0);
  }
  CHECK(records[6].events.size() == static_cast<std::size_t>(total / 4));       // global, filtered
  CHECK(records[8].events.size() == static_cast<std::size_t>(total / 2));       // "a", unfiltered
  CHECK(records[11].events.size() == static_cast<std::size_t>(total / 2 / 4));  // "a", filtered
}

TEST_CASE("snapshot copies a collection with the sequence it reflects", "[database][snapshot]") {
  aurora::Database db;
  CHECK(db.snapshot("users").sequence == 0);
  CHECK(db.snapshot("users").documents.empty());

  db.insert("users", "b", {{"n", 2}});
  db.insert("users", "a", {{"n", 1}});
  db.insert("orders", "o", {{"n", 3}});
  db.remove("users", "b");
  auto sub = db.subscribe("users");
  db.insert("users", "c", {{"n", 4}});

  const aurora::Snapshot snap = db.snapshot("users");
  CHECK(snap.sequence == 5);
  REQUIRE(snap.documents.size() == 2);
  CHECK(snap.documents[0] == std::pair<std::string, Document>{"a", {{"n", 1}}});
  CHECK(snap.documents[1] == std::pair<std::string, Document>{"c", {{"n", 4}}});

  // The event for "c" is already reflected: a resync skips it by sequence.
  RecvResult r = sub.try_recv();
  REQUIRE(r);
  CHECK(r->sequence <= snap.sequence);
}

namespace {
// A clock that throws while `failing` is set.
struct failing_clock {
  static inline std::atomic<bool> failing{false};
  static std::chrono::system_clock::time_point now() {
    if (failing) throw std::runtime_error("clock unavailable");
    return std::chrono::system_clock::now();
  }
};
}  // namespace

TEST_CASE("a clock that throws fails the write before anything changed", "[database][errors]") {
  aurora::BasicDatabase<failing_clock> db;
  auto sub = db.subscribe_global();
  db.insert("users", "a", {{"v", 1}});
  REQUIRE(drain(sub).size() == 1);
  failing_clock::failing = true;
  CHECK_THROWS_AS(db.update("users", "a", {{"v", 2}}), std::runtime_error);
  CHECK_THROWS_AS(db.replace("users", "a", {{"v", 3}}), std::runtime_error);
  CHECK_THROWS_AS(db.remove("users", "a"), std::runtime_error);
  CHECK_THROWS_AS(db.insert("users", "b", {{"v", 4}}), std::runtime_error);
  CHECK_THROWS_AS(db.insert("other", {{"v", 5}}), std::runtime_error);
  failing_clock::failing = false;
  CHECK(db.get("users", "a") == Document{{"v", 1}});
  CHECK_FALSE(db.get("users", "b"));
  CHECK(db.collections() == std::vector<std::string>{"users"});
  CHECK(drain(sub).empty());
  CHECK(db.last_sequence() == 1);
  db.update("users", "a", {{"v", 6}});
  const auto events = drain(sub);
  REQUIRE(events.size() == 1);
  CHECK(events[0]->sequence == 2);
}

TEST_CASE("a channel nobody subscribes to any more is released with its events", "[database][memory]") {
  // Capacity 4: the retained history (the global channel) lets go of an event after 4 more
  // commits; the collection channel must not keep it alive beyond that.
  aurora::Database db{aurora::Options{.channel_capacity = 4}};
  std::weak_ptr<const aurora::ChangeEvent> watched;
  {
    auto sub = db.subscribe("secrets");
    db.insert("secrets", "k", {{"password", "hunter2"}});
    RecvResult r = sub.try_recv();
    REQUIRE(r);
    watched = r.event();
  }
  CHECK(db.subscriber_count("secrets") == 0);
  db.remove("secrets", "k");
  for (int i = 0; i < 4; ++i) db.insert("other", {{"i", i}});
  CHECK(watched.expired());

  // Subscribing to many names and leaving leaves nothing behind either: each later subscribe
  // or write releases the channels left idle (checked through the events they held).
  std::vector<std::weak_ptr<const aurora::ChangeEvent>> held;
  for (int i = 0; i < 50; ++i) {
    const std::string name = "tenant-" + std::to_string(i);
    auto sub = db.subscribe(name);
    db.insert(name, {{"i", i}});
    held.push_back(sub.try_recv().event());
  }
  for (int i = 0; i < 4; ++i) db.insert("other", {{"i", i}});
  for (const auto& w : held) CHECK(w.expired());
}

TEST_CASE("last_sequence counts commits", "[database][events]") {
  aurora::Database db;
  CHECK(db.last_sequence() == 0);
  const std::string id = db.insert("users", {{"a", 1}});
  db.update("users", id, {{"a", 1}});  // unchanged: no commit
  CHECK(db.last_sequence() == 1);
  db.remove("users", id);
  CHECK(db.last_sequence() == 2);
}
