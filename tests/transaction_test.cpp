// Tests for Database::transaction and aurora/transaction.hpp: all or nothing, one commit in the
// feed, no nesting, and an invariant kept under threads.
#include <aurora/database.hpp>
#include <aurora/transaction.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using aurora::Document;
using aurora::errc;
using aurora::OperationType;
using aurora::RecvResult;
using aurora::Transaction;

namespace {

std::vector<std::shared_ptr<const aurora::ChangeEvent>> drain(aurora::Subscription& sub) {
  std::vector<std::shared_ptr<const aurora::ChangeEvent>> out;
  for (RecvResult r = sub.try_recv(); r; r = sub.try_recv()) out.push_back(std::move(r).event());
  return out;
}

template <class F>
errc code_of(F&& f) {
  try {
    f();
  } catch (const aurora::error& e) {
    return e.value();
  }
  return errc{};
}

#if defined(__SANITIZE_THREAD__)
constexpr int transfers_per_thread = 2'000;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
constexpr int transfers_per_thread = 2'000;
#else
constexpr int transfers_per_thread = 10'000;
#endif
#else
constexpr int transfers_per_thread = 10'000;
#endif

}  // namespace

TEST_CASE("a transaction that throws changes nothing and publishes nothing", "[transaction]") {
  aurora::Database db;
  db.insert("stock", "A1", {{"qty", 10}});
  auto feed = db.subscribe_global();
  CHECK_THROWS_AS(db.transaction([](Transaction& tx) {
    tx.insert("orders", "o1", {{"sku", "A1"}});
    tx.update("stock", "A1", {{"qty", 8}});
    tx.insert("stock", "B2", {{"qty", 1}});
    tx.remove("stock", "A1");
    throw std::runtime_error("changed my mind");
  }),
                  std::runtime_error);
  CHECK(db.get("stock", "A1") == Document{{"qty", 10}});
  CHECK_FALSE(db.get("stock", "B2"));
  CHECK(db.collections() == std::vector<std::string>{"stock"});  // "orders" was never created
  CHECK(db.last_sequence() == 1);
  CHECK(drain(feed).empty());
}

TEST_CASE("a transaction sees its own writes and returns what its function returns", "[transaction]") {
  aurora::Database db;
  db.insert("stock", "A1", {{"qty", 10}});
  const std::string id = db.transaction([&](Transaction& tx) {
    std::string order = tx.insert("orders", {{"sku", "A1"}, {"qty", 2}});
    tx.update("stock", "A1", {{"qty", 8}});
    CHECK(tx.get("stock", "A1") == Document{{"qty", 8}});
    CHECK(tx.get("orders", order) == Document{{"sku", "A1"}, {"qty", 2}});
    CHECK(tx.size("orders") == 1);
    CHECK(db.get("stock", "A1") == Document{{"qty", 8}});  // the Database's reads see them too
    CHECK(db.size("orders") == 1);
    return order;
  });
  CHECK(db.get("orders", id) == Document{{"sku", "A1"}, {"qty", 2}});
  CHECK(db.get("stock", "A1") == Document{{"qty", 8}});
}

TEST_CASE("a transaction's events: write order, consecutive sequences, one timestamp, commit", "[transaction]") {
  aurora::Database db;
  db.insert("a", "x", {{"v", 0}});
  auto feed = db.subscribe_global();
  auto a = db.subscribe("a");
  db.transaction([](Transaction& tx) {
    tx.update("a", "x", {{"v", 1}});
    tx.update("a", "x", {{"v", 2}});  // not merged with the first
    tx.insert("b", "y", {{"v", 3}});
    tx.replace("a", "x", {{"v", 4}});
    tx.remove("b", "y");
    tx.update("a", "x", {{"v", 4}});  // unchanged: no event
  });
  const auto events = drain(feed);
  REQUIRE(events.size() == 5);
  const std::vector<OperationType> ops = {OperationType::Update, OperationType::Update, OperationType::Insert,
                                          OperationType::Update, OperationType::Delete};
  for (std::size_t i = 0; i < events.size(); ++i) {
    CHECK(events[i]->sequence == 2 + i);
    CHECK(events[i]->commit == 6);
    CHECK(events[i]->timestamp == events[0]->timestamp);
    CHECK(events[i]->operation == ops[i]);
  }
  CHECK(*events[1]->old_document == Document{{"v", 1}});
  const auto on_a = drain(a);
  REQUIRE(on_a.size() == 3);
  CHECK(on_a[2]->sequence == 5);
  db.insert("a", {{"v", 5}});
  CHECK(drain(feed).front()->commit == 7);  // a single write is its own commit
}

TEST_CASE("a write that throws inside a transaction changed nothing; the others commit", "[transaction]") {
  aurora::Database db;
  db.insert("a", "x", {{"v", 0}});
  db.transaction([](Transaction& tx) {
    tx.insert("a", "y", {{"v", 1}});
    CHECK(code_of([&] { tx.insert("a", "x", {{"v", 9}}); }) == errc::already_exists);
    CHECK(code_of([&] { tx.update("a", "nope", {{"v", 9}}); }) == errc::not_found);
    CHECK(code_of([&] { tx.insert("", {{"v", 9}}); }) == errc::invalid_argument);
    CHECK(code_of([&] { tx.replace("a", "x", Document::array()); }) == errc::invalid_document);
    CHECK(code_of([&] { tx.remove("zzz", "x"); }) == errc::not_found);
    tx.update("a", "x", {{"v", 2}});
  });
  CHECK(db.get("a", "x") == Document{{"v", 2}});
  CHECK(db.get("a", "y") == Document{{"v", 1}});
  CHECK(db.last_sequence() == 3);
}

TEST_CASE("no nesting: the Database's writes and transactions and watch inside a transaction are refused",
          "[transaction][errors]") {
  aurora::Database db;
  aurora::Database other;
  db.transaction([&](Transaction& tx) {
    tx.insert("a", "x", {{"v", 1}});
    CHECK(code_of([&] { db.insert("a", {{"v", 2}}); }) == errc::invalid_argument);
    CHECK(code_of([&] { db.update("a", "x", {{"v", 2}}); }) == errc::invalid_argument);
    CHECK(code_of([&] { db.remove("a", "x"); }) == errc::invalid_argument);
    CHECK(code_of([&] { db.transaction([](Transaction&) {}); }) == errc::invalid_argument);
    other.insert("a", {{"v", 3}});  // another database is independent
    auto sub = db.subscribe("a");   // reads and subscribing work
    CHECK(db.snapshot("a").documents.size() == 1);
    // A watch's snapshot would hold the uncommitted write, which no event undoes on rollback.
    CHECK(code_of([&] { (void)db.watch("a"); }) == errc::invalid_argument);
  });
  CHECK(db.size("a") == 1);
  CHECK(other.size("a") == 1);
  db.insert("a", {{"v", 4}});  // allowed again afterwards
}

TEST_CASE("a subscriber never sees part of a transaction", "[transaction][threads]") {
  // A reader spins on try_recv while transactions of 5 events commit: once it can read the
  // first event of a commit, the rest must be readable at once, on both kinds of channel.
  aurora::Database db{aurora::Options{.channel_capacity = 1 << 16}};
  auto global = db.subscribe_global();
  auto a = db.subscribe("a");
  constexpr int commits = 5'000;
  std::atomic<bool> done{false};
  std::uint64_t torn = 0;
  std::uint64_t seen = 0;
  std::thread reader([&] {
    aurora::Subscription* subs[] = {&global, &a};
    for (;;) {
      const bool finished = done.load();
      bool any = false;
      for (aurora::Subscription* sub : subs) {
        for (RecvResult r = sub->try_recv(); r; r = sub->try_recv()) {
          any = true;
          ++seen;
          // Read on to the end of this commit: never empty in between.
          std::uint64_t last = r->sequence;
          while (last < r->commit) {
            RecvResult next = sub->try_recv();
            if (!next) {
              ++torn;
              break;
            }
            ++seen;
            last = next->sequence;
          }
        }
      }
      if (finished && !any) return;
    }
  });
  for (int i = 0; i < commits; ++i) {
    db.transaction([i](Transaction& tx) {
      tx.insert("a", {{"i", i}});
      tx.insert("b", {{"i", i}});
      tx.insert("a", {{"i", i}});
      tx.insert("b", {{"i", i}});
      tx.insert("a", {{"i", i}});
    });
  }
  done = true;
  reader.join();
  CHECK(torn == 0);
  CHECK(seen == commits * 5 + commits * 3);
}

TEST_CASE("bank transfers: 4 threads keep the total, and so does every subscriber's replay", "[transaction][threads]") {
  constexpr int accounts = 10;
  constexpr std::int64_t initial = 1'000;
  aurora::Database db{aurora::Options{.channel_capacity = 1 << 20}};
  for (int i = 0; i < accounts; ++i) db.insert("accounts", "acct-" + std::to_string(i), {{"balance", initial}});
  auto feed = db.subscribe("accounts");
  std::vector<std::thread> threads;
  std::atomic<int> refused{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&db, &refused, t] {
      std::uint64_t state = std::uint64_t{0x9e3779b97f4a7c15} * static_cast<std::uint64_t>(t + 1);
      for (int i = 0; i < transfers_per_thread; ++i) {
        state = state * std::uint64_t{6364136223846793005} + std::uint64_t{1442695040888963407};
        const auto from = "acct-" + std::to_string((state >> 33) % std::uint64_t{accounts});
        const auto to = "acct-" + std::to_string((state >> 45) % std::uint64_t{accounts});
        const auto amount = static_cast<std::int64_t>((state >> 20) % 300);
        try {
          db.transaction([&](Transaction& tx) {
            const std::int64_t a = tx.get("accounts", from)->at("balance").get<std::int64_t>();
            if (a < amount) throw std::runtime_error("insufficient funds");
            tx.update("accounts", from, {{"balance", a - amount}});
            const std::int64_t b = tx.get("accounts", to)->at("balance").get<std::int64_t>();
            tx.update("accounts", to, {{"balance", b + amount}});
          });
        } catch (const std::runtime_error&) {
          refused.fetch_add(1);
        }
      }
    });
  }
  for (auto& t : threads) t.join();

  std::int64_t total = 0;
  for (const auto& [id, doc] : db.snapshot("accounts").documents) total += doc.at("balance").get<std::int64_t>();
  CHECK(total == accounts * initial);

  // Replay the feed: at every commit boundary the replayed total is exact.
  std::map<std::string, std::int64_t> balances;
  for (int i = 0; i < accounts; ++i) balances["acct-" + std::to_string(i)] = initial;
  std::uint64_t boundaries = 0;
  std::uint64_t bad = 0;
  for (RecvResult r = feed.try_recv(); r; r = feed.try_recv()) {
    balances[r->document_id] = r->document->at("balance").get<std::int64_t>();
    if (r->sequence != r->commit) continue;
    ++boundaries;
    std::int64_t sum = 0;
    for (const auto& [id, b] : balances) sum += b;
    if (sum != accounts * initial) ++bad;
  }
  CHECK(bad == 0);
  CHECK(boundaries >= 1);
  INFO("refused transfers: " << refused.load());
  CHECK(boundaries + static_cast<std::uint64_t>(refused.load()) <= 4U * transfers_per_thread);
}
