// Tests of where a subscription starts (Start::now / after / oldest), the retained history,
// last_sequence and watch(): the change feed 2.0 contract of API.md.
#include <aurora/database.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <thread>
#include <vector>

using aurora::Document;
using aurora::errc;
using aurora::RecvResult;
using aurora::Start;

namespace {

// The sequences a subscription holds right now, lag reports as 0 followed by the count.
std::vector<std::uint64_t> sequences(aurora::Subscription& sub) {
  std::vector<std::uint64_t> out;
  for (;;) {
    RecvResult r = sub.try_recv();
    if (r) {
      out.push_back(r->sequence);
    } else if (r.error().code == errc::lagged) {
      out.push_back(0);
      out.push_back(r.error().missed);
    } else {
      REQUIRE(r.error().code == errc::empty);
      return out;
    }
  }
}

std::vector<std::uint64_t> range(std::uint64_t first, std::uint64_t last) {
  std::vector<std::uint64_t> out;
  for (std::uint64_t s = first; s <= last; ++s) out.push_back(s);
  return out;
}

// Calls `f` and returns the errc of the aurora::error it throws (errc{} if none) and its message.
template <class F>
std::pair<errc, std::string> thrown(F&& f) {
  try {
    f();
  } catch (const aurora::error& e) {
    return {e.value(), e.what()};
  }
  return {errc{}, {}};
}

}  // namespace

TEST_CASE("Start::after on the global channel: the events after s, then live", "[feed][resume]") {
  aurora::Database db;
  for (int i = 0; i < 10; ++i) db.insert(i % 2 == 0 ? "a" : "b", {{"i", i}});
  REQUIRE(db.last_sequence() == 10);
  auto sub = db.subscribe_global({}, Start::after(4));
  CHECK(sequences(sub) == range(5, 10));
  db.insert("c", {{"i", 10}});
  CHECK(sequences(sub) == std::vector<std::uint64_t>{11});

  auto now = db.subscribe_global({}, Start::after(db.last_sequence()));  // equals Start::now()
  CHECK(sequences(now).empty());
  auto from_zero = db.subscribe_global({}, Start::after(0));
  CHECK(sequences(from_zero) == range(1, 11));
}

TEST_CASE("Start::after on a collection channel: that collection's events after s, then live", "[feed][resume]") {
  aurora::Database db;
  for (int i = 0; i < 10; ++i) db.insert(i % 2 == 0 ? "a" : "b", {{"i", i}});  // a: 1 3 5 7 9
  auto sub = db.subscribe("a", {}, Start::after(4));
  CHECK(sequences(sub) == std::vector<std::uint64_t>{5, 7, 9});
  db.insert("b", {{"i", 10}});
  db.insert("a", {{"i", 11}});
  CHECK(sequences(sub) == std::vector<std::uint64_t>{12});

  // The filter applies to the history too.
  auto filtered = db.subscribe("a", aurora::EventFilter{{}, {{"i", 4}}}, Start::after(0));
  CHECK(sequences(filtered) == std::vector<std::uint64_t>{5});
}

TEST_CASE("retention is database-wide: the boundary on both sides", "[feed][resume]") {
  aurora::Database db{aurora::Options{.channel_capacity = 8}};
  for (int i = 0; i < 20; ++i) db.insert(i % 3 == 0 ? "a" : "b", {{"i", i}});
  // Retained: sequences 13 .. 20.
  auto kept = db.subscribe_global({}, Start::after(12));
  CHECK(sequences(kept) == range(13, 20));
  auto kept_a = db.subscribe("a", {}, Start::after(12));  // a holds 13, 16, 19
  CHECK(sequences(kept_a) == std::vector<std::uint64_t>{13, 16, 19});

  const auto [code, message] = thrown([&] { (void)db.subscribe_global({}, Start::after(11)); });
  CHECK(code == errc::history_lost);
  CHECK(message.find("13") != std::string::npos);  // names the oldest retained sequence
  // On a collection channel too, even though the lost event 12 belonged to "b".
  CHECK(thrown([&] { (void)db.subscribe("a", {}, Start::after(11)); }).first == errc::history_lost);
  CHECK(thrown([&] { (void)db.subscribe("a", {}, Start::after(21)); }).first == errc::invalid_argument);
  CHECK(thrown([&] { (void)db.subscribe_global({}, Start::after(21)); }).first == errc::invalid_argument);
  CHECK(db.subscriber_count("a") == 1);  // the refused ones left nothing behind
}

TEST_CASE("Start::oldest reads everything retained, on collection and global channels", "[feed][resume]") {
  aurora::Database db{aurora::Options{.channel_capacity = 8}};
  auto empty = db.subscribe_global({}, Start::oldest());
  CHECK(sequences(empty).empty());
  for (int i = 0; i < 5; ++i) db.insert("a", {{"i", i}});
  auto few = db.subscribe_global({}, Start::oldest());
  CHECK(sequences(few) == range(1, 5));
  for (int i = 5; i < 20; ++i) db.insert(i % 2 == 0 ? "a" : "b", {{"i", i}});
  auto global = db.subscribe_global({}, Start::oldest());
  CHECK(sequences(global) == range(13, 20));
  auto a = db.subscribe("a", {}, Start::oldest());
  CHECK(sequences(a) == std::vector<std::uint64_t>{13, 15, 17, 19});
}

TEST_CASE("catching up can lag: reported, then the subscription goes on", "[feed][resume]") {
  aurora::Database db{aurora::Options{.channel_capacity = 8}};
  for (int i = 0; i < 8; ++i) db.insert("a", {{"i", i}});
  auto sub = db.subscribe("a", {}, Start::after(0));        // 8 events of history, none read yet
  for (int i = 8; i < 11; ++i) db.insert("a", {{"i", i}});  // the history loses 1, 2, 3
  const auto got = sequences(sub);
  REQUIRE(got.size() >= 2);
  CHECK(got[0] == 0);
  CHECK(got[1] == 3);  // missed 1, 2, 3
  CHECK(std::vector<std::uint64_t>(got.begin() + 2, got.end()) == range(4, 11));
}

TEST_CASE("Start::after with 4 writer threads running: no gap, no duplicate", "[feed][resume][threads]") {
  constexpr int writers = 4;
  constexpr int per_writer = 2'000;
  aurora::Database db{aurora::Options{.channel_capacity = 1 << 16}};
  auto everything = db.subscribe_global();  // the reference: every event
  std::atomic<int> running{writers};
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; ++w) {
    threads.emplace_back([&db, &running, w] {
      for (int i = 0; i < per_writer; ++i) db.insert(i % 2 == 0 ? "a" : "b", {{"w", w}, {"i", i}});
      running.fetch_sub(1);
    });
  }
  struct resumed {
    std::uint64_t after;
    aurora::Subscription a;
    aurora::Subscription global;
  };
  std::vector<resumed> subs;
  std::uint64_t k = 0;
  while (running.load() > 0 || subs.size() < 8) {
    const std::uint64_t last = db.last_sequence();
    const std::uint64_t s = last - std::min<std::uint64_t>(last, k++ % 50);
    subs.push_back({s, db.subscribe("a", {}, Start::after(s)), db.subscribe_global({}, Start::after(s))});
  }
  for (auto& t : threads) t.join();

  std::vector<RecvResult> all;
  for (RecvResult r = everything.try_recv(); r; r = everything.try_recv()) all.push_back(r);
  REQUIRE(all.size() == writers * per_writer);
  for (auto& sub : subs) {
    std::vector<std::uint64_t> want_a;
    std::vector<std::uint64_t> want_global;
    for (const RecvResult& r : all) {
      if (r->sequence <= sub.after) continue;
      want_global.push_back(r->sequence);
      if (r->collection == "a") want_a.push_back(r->sequence);
    }
    REQUIRE(sequences(sub.global) == want_global);
    REQUIRE(sequences(sub.a) == want_a);
  }
}

namespace {

// A copy of a filter's view, kept from a Watch: the snapshot, then enter/change upsert and leave
// erase.
struct live_copy {
  std::map<std::string, Document> docs;
  std::uint64_t last = 0;
  bool ordered = true;

  explicit live_copy(const aurora::Snapshot& snap) : last(snap.sequence) {
    for (const auto& [id, doc] : snap.documents) docs.emplace(id, doc);
  }

  void apply(const RecvResult& r) {
    if (r->sequence <= last) ordered = false;
    last = r->sequence;
    if (r.transition() == aurora::Transition::leave) {
      docs.erase(r->document_id);
    } else {
      docs[r->document_id] = *r->document;
    }
  }
};

aurora::EventFilter active_gold() {
  return aurora::EventFilter::from_json({{"where", {{"status", "active"}, {"tier", "gold"}}}, {"transitions", true}});
}

}  // namespace

TEST_CASE("watch: a snapshot of the view at last_sequence, and the events after it", "[feed][watch]") {
  aurora::Database db;
  db.insert("orders", "a", {{"status", "active"}, {"tier", "gold"}});
  db.insert("orders", "b", {{"status", "closed"}, {"tier", "gold"}});
  db.insert("users", "u", {{"name", "x"}});
  auto [snap, sub] = db.watch("orders", active_gold());
  CHECK(snap.sequence == 3);
  REQUIRE(snap.documents.size() == 1);
  CHECK(snap.documents[0].first == "a");
  CHECK(sub.try_recv().error().code == errc::empty);

  db.update("orders", "b", {{"status", "active"}});  // enters the view
  db.update("orders", "a", {{"note", "x"}});         // changes inside it
  db.update("orders", "a", {{"status", "closed"}});  // leaves it
  db.update("orders", "a", {{"note", "y"}});         // outside before and after: not delivered
  db.remove("orders", "b");                          // leaves it
  std::vector<aurora::Transition> seen;
  for (RecvResult r = sub.try_recv(); r; r = sub.try_recv()) seen.push_back(r.transition());
  CHECK(seen == std::vector<aurora::Transition>{aurora::Transition::enter, aurora::Transition::change,
                                                aurora::Transition::leave, aurora::Transition::leave});

  auto [all, everything] = db.watch("orders");  // no filter: every document
  CHECK(all.documents.size() == 1);
  CHECK(thrown([&] { (void)db.watch(""); }).first == errc::invalid_argument);
  auto [none, nothing] = db.watch("nobody");
  CHECK(none.documents.empty());
  CHECK(db.collections() == std::vector<std::string>{"orders", "users"});  // watching creates nothing
}

TEST_CASE("watch under 4 writer threads: snapshot + events == the final view, every time", "[feed][watch][threads]") {
  constexpr int writers = 4;
  constexpr int per_writer = 1'500;
  aurora::Database db{aurora::Options{.channel_capacity = 1 << 16}};
  for (int i = 0; i < 40; ++i) db.insert("orders", "o" + std::to_string(i), {{"status", "new"}, {"tier", "gold"}});
  std::atomic<int> running{writers};
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; ++w) {
    threads.emplace_back([&db, &running, w] {
      std::uint64_t x = std::uint64_t{88172645463325252} + static_cast<std::uint64_t>(w);
      const char* statuses[] = {"new", "active", "closed"};
      const char* tiers[] = {"gold", "silver"};
      for (int i = 0; i < per_writer; ++i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        const std::string id = "o" + std::to_string(x % 40);
        if (x % 11 == 0) {
          try {
            db.remove("orders", id);
          } catch (const aurora::error&) {  // already removed
          }
          continue;
        }
        const Document doc = {{"status", statuses[(x >> 8) % 3]}, {"tier", tiers[(x >> 12) % 2]}, {"i", i}};
        try {
          db.replace("orders", id, doc);
        } catch (const aurora::error&) {  // removed: put it back, unless another writer just did
          try {
            db.insert("orders", id, doc);
          } catch (const aurora::error&) {
          }
        }
      }
      running.fetch_sub(1);
    });
  }
  std::vector<aurora::Watch> watches;
  while (running.load() > 0 || watches.size() < 10) watches.push_back(db.watch("orders", active_gold()));
  for (auto& t : threads) t.join();

  const aurora::detail::compiled_filter view(active_gold());
  std::map<std::string, Document> expected;
  for (const auto& [id, doc] : db.snapshot("orders").documents) {
    if (view.in_view(doc)) expected.emplace(id, doc);
  }
  for (auto& w : watches) {
    live_copy copy(w.snapshot);
    for (RecvResult r = w.subscription.try_recv(); r; r = w.subscription.try_recv()) copy.apply(r);
    REQUIRE(copy.ordered);
    REQUIRE(copy.docs == expected);
  }
}
