// Tests for aurora/redis/bridge.hpp end to end: Database -> Bridge -> private redis-server ->
// RemoteSubscription, with restarts of the bridge, kill -9 of the server and lost history.
#include "test_support.hpp"

#include <aurora/database.hpp>
#include <aurora/errc.hpp>
#include <aurora/options.hpp>
#include <aurora/recv_result.hpp>
#include <aurora/redis/bridge.hpp>
#include <aurora/redis/error.hpp>
#include <aurora/redis/remote_subscription.hpp>
#include <aurora/start.hpp>
#include <aurora/transaction.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace aurora_test;
using namespace std::chrono_literals;
using namespace boost::asio::experimental::awaitable_operators;
using aurora::ChangeEvent;
using aurora::Database;
using aurora::errc;
using aurora::RecvError;
using aurora::RecvResult;
using aurora::Start;
using aurora::redis::Bridge;
using aurora::redis::BridgeError;
using aurora::redis::BridgeOptions;
using aurora::redis::RemoteOptions;
using aurora::redis::RemoteSubscription;

namespace {

// Bridge options for `server` with short reconnection delays; reports are appended to `errors`.
BridgeOptions bridge_options(const redis_server& server, std::vector<BridgeError>& errors) {
  BridgeOptions o;
  o.endpoint = server.endpoint();
  o.reconnect_delay = 5ms;
  o.max_reconnect_delay = 100ms;
  o.on_error = [&errors](const BridgeError& e) { errors.push_back(e); };
  return o;
}

RemoteOptions remote_options(const redis_server& server) {
  RemoteOptions o;
  o.endpoint = server.endpoint();
  o.reconnect_delay = 5ms;
  o.max_reconnect_delay = 100ms;
  o.max_reconnect_attempts = 0;  // the test's time limit bounds it
  return o;
}

// Every event `db` published so far (read from a subscription made before the writes).
std::vector<std::shared_ptr<const ChangeEvent>> drain(aurora::Subscription& sub) {
  std::vector<std::shared_ptr<const ChangeEvent>> out;
  for (RecvResult r = sub.try_recv(); r; r = sub.try_recv()) out.push_back(r.event());
  return out;
}

// Receives once; requires the event `expected` as the bridge wrote it (timestamps at microseconds).
asio::awaitable<void> expect_same(RemoteSubscription& sub, const ChangeEvent& expected) {
  const RecvResult r = co_await sub.recv();
  INFO("expected event " << expected.sequence << " on " << sub.stream_key() << ", got error "
                         << static_cast<int>(r.error().code) << " missed " << r.error().missed);
  REQUIRE(r.has_value());
  REQUIRE(r->sequence == expected.sequence);
  CHECK(r->collection == expected.collection);
  CHECK(r->document_id == expected.document_id);
  CHECK(r->operation == expected.operation);
  CHECK(aurora::detail::same_document(r->document, expected.document));
  CHECK(aurora::detail::same_document(r->old_document, expected.old_document));
  CHECK(r->commit == expected.commit);
  CHECK(r->timestamp == std::chrono::time_point_cast<std::chrono::microseconds>(expected.timestamp));
}

// Receives once; requires an event with `sequence`.
asio::awaitable<void> expect_sequence(RemoteSubscription& sub, std::uint64_t sequence) {
  const RecvResult r = co_await sub.recv();
  INFO("expected event " << sequence << " on " << sub.stream_key() << ", got error " << static_cast<int>(r.error().code)
                         << " missed " << r.error().missed);
  REQUIRE(r.has_value());
  REQUIRE(r->sequence == sequence);
}

// Receives once; requires the error `expected`.
asio::awaitable<void> expect_error(RemoteSubscription& sub, RecvError expected) {
  const RecvResult r = co_await sub.recv();
  INFO("expected error " << static_cast<int>(expected.code) << " missed " << expected.missed);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error() == expected);
}

asio::awaitable<long long> xlen(connection& c, const std::string& key) {
  const command cmd{"XLEN", key};
  const reply r = co_await call(c, cmd);
  REQUIRE(r.kind == reply_kind::integer);
  co_return r.integer;
}

// Inserts `n` documents into `collection`.
void insert_n(Database& db, int n, const std::string& collection = "orders") {
  for (int i = 0; i < n; ++i) db.insert(collection, {{"i", i}});
}

// A bridge that writes everything `db` holds to Redis, then goes away.
asio::awaitable<void> bridge_all_then_stop(asio::any_io_executor ex, const redis_server& server, Database& db,
                                           std::vector<BridgeError>& errors) {
  Bridge bridge{ex, db, bridge_options(server, errors)};
  bridge.start();
  REQUIRE(co_await bridge.wait_written(db.last_sequence()));
}

// Sets Redis's `maxmemory` (with no eviction, 1 refuses every write with OOM).
asio::awaitable<void> set_maxmemory(connection& c, std::string bytes) {
  const command config{"CONFIG", "SET", "maxmemory", std::move(bytes)};
  const reply r = co_await call(c, config);
  REQUIRE_FALSE(r.is_error());
}

// The feed of `db` whose first subscribe throws storage_error, as a DurableDatabase's does when its
// change log cannot be read.
class failing_once_feed final : public aurora::redis::detail::feed_source {
 public:
  explicit failing_once_feed(Database& db) : db_(db) {}
  aurora::Subscription subscribe(Start start) override {
    if (++calls_ == 1) throw aurora::error(errc::storage_error, "subscribe: reading the change log failed (test)");
    return db_.subscribe_global(std::nullopt, start);
  }

 private:
  Database& db_;
  int calls_ = 0;
};

// The feed of `db` that, when the bridge resubscribes from the oldest event (after history_lost),
// publishes `more` events before the bridge reads any: the new subscription lags at once.
class lagging_resubscribe_feed final : public aurora::redis::detail::feed_source {
 public:
  lagging_resubscribe_feed(Database& db, int more) : db_(db), more_(more) {}
  aurora::Subscription subscribe(Start start) override {
    aurora::Subscription sub = db_.subscribe_global(std::nullopt, start);
    if (start.kind() == Start::Kind::oldest) insert_n(db_, more_);
    return sub;
  }

 private:
  Database& db_;
  int more_;
};

// The feed of `db` that calls `on_subscribe` each time the bridge subscribes (once per session,
// after it connected to Redis).
class signalling_feed final : public aurora::redis::detail::feed_source {
 public:
  signalling_feed(Database& db, std::function<void()> on_subscribe) : db_(db), on_subscribe_(std::move(on_subscribe)) {}
  aurora::Subscription subscribe(Start start) override {
    aurora::Subscription sub = db_.subscribe_global(std::nullopt, start);
    on_subscribe_();
    return sub;
  }

 private:
  Database& db_;
  std::function<void()> on_subscribe_;
};

// How many events the kill -9 test streams: AURORA_BRIDGE_KILL_EVENTS, else 100,000 (20,000 under
// ThreadSanitizer, which is ~10 times slower).
std::uint64_t kill_test_events() {
  if (const char* text = std::getenv("AURORA_BRIDGE_KILL_EVENTS")) return std::strtoull(text, nullptr, 10);
#if defined(__SANITIZE_THREAD__)
  return 20'000;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
  return 20'000;
#else
  return 100'000;
#endif
#else
  return 100'000;
#endif
}

}  // namespace

TEST_CASE("bridge: single writes and transactions reach both streams once, in order, as written", "[redis][bridge]") {
  auto server = start_redis_or_skip();
  if (!server) return;
  run_test([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    Database db;
    aurora::Subscription local = db.subscribe_global();
    std::vector<BridgeError> errors;
    Bridge bridge{ex, db, bridge_options(*server, errors)};
    bridge.start();
    CHECK(bridge.running());

    const std::string first = db.insert("orders", {{"sku", "A1"}, {"qty", 1}});
    db.insert("stock", "A1", {{"qty", 10}});
    db.transaction([&](aurora::Transaction& tx) {
      tx.insert("orders", {{"sku", "A1"}, {"qty", 2}});
      tx.update("stock", "A1", {{"qty", 8}});
      tx.remove("orders", first);
    });
    db.update("stock", "A1", {{"qty", 7}});
    for (int round = 0; round < 50; ++round) {
      db.insert(round % 2 == 0 ? "orders" : "stock", {{"round", round}});
      if (round % 10 == 0) {
        db.transaction([&](aurora::Transaction& tx) {
          for (int k = 0; k < 4; ++k) tx.insert("orders", {{"round", round}, {"k", k}});
        });
      }
      co_await asio::post(ex, asio::use_awaitable);  // let the bridge take some now, some later
    }
    const std::vector<std::shared_ptr<const ChangeEvent>> events = drain(local);
    const std::uint64_t n = db.last_sequence();
    REQUIRE(events.size() == n);
    CHECK(events[2]->commit == 5);  // the transaction 3..5

    REQUIRE(co_await bridge.wait_written(n));
    RemoteSubscription global{ex, remote_options(*server), "", std::nullopt, Start::after(0)};
    RemoteSubscription orders{ex, remote_options(*server), "orders", std::nullopt, Start::after(0)};
    RemoteSubscription stock{ex, remote_options(*server), "stock", std::nullopt, Start::after(0)};
    for (const auto& ev : events) {
      co_await expect_same(global, *ev);
      co_await expect_same(ev->collection == "orders" ? orders : stock, *ev);
    }
    auto c = co_await client_of(*server);
    CHECK(co_await xlen(*c, "aurora:*") == static_cast<long long>(n));
    CHECK(co_await xlen(*c, "aurora:orders") + co_await xlen(*c, "aurora:stock") == static_cast<long long>(n));
    CHECK(global.try_recv().error().code == errc::empty);

    const aurora::redis::BridgeStats stats = bridge.stats();
    CHECK(stats.last_written == n);
    CHECK(stats.events == n);
    CHECK(stats.duplicates == 0);
    CHECK(stats.connections == 1);
    CHECK(stats.failures == 0);
    CHECK(errors.empty());
    bridge.stop();
    global.unsubscribe();
    orders.unsubscribe();
    stock.unsubscribe();
  });
}

TEST_CASE("bridge: events written from other threads arrive exactly once, in order", "[redis][bridge][threads]") {
  auto server = start_redis_or_skip();
  if (!server) return;
  constexpr std::uint64_t n = 3000;
  Database db;
  std::vector<BridgeError> errors;
  std::vector<std::thread> writers;
  struct joiner {
    std::vector<std::thread>& threads;
    ~joiner() {
      for (std::thread& t : threads) {
        if (t.joinable()) t.join();
      }
    }
  } join_writers{writers};
  run_test([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    Bridge bridge{ex, db, bridge_options(*server, errors)};
    bridge.start();
    for (int w = 0; w < 2; ++w) {
      writers.emplace_back([&db, w] {
        for (std::uint64_t i = 0; i < n / 2; i += 3) {
          if (i % 30 == 0) {
            db.transaction([&](aurora::Transaction& tx) {
              for (int k = 0; k < 3; ++k) tx.insert(w == 0 ? "a" : "b", {{"i", i}, {"k", k}});
            });
          } else {
            for (int k = 0; k < 3; ++k) db.insert(w == 0 ? "a" : "b", {{"i", i}, {"k", k}});
          }
        }
      });
    }
    RemoteSubscription global{ex, remote_options(*server), "", std::nullopt, Start::after(0)};
    std::uint64_t commit_end = 0;
    for (std::uint64_t s = 1; s <= n; ++s) {
      const RecvResult r = co_await global.recv();
      REQUIRE(r.has_value());
      REQUIRE(r->sequence == s);
      // A transaction's events are consecutive and name the same last sequence.
      if (commit_end >= s) CHECK(r->commit == commit_end);
      commit_end = r->commit;
    }
    CHECK(co_await bridge.wait_written(n));
    CHECK(bridge.stats().duplicates == 0);
    bridge.stop();
    global.unsubscribe();
  });
  for (std::thread& t : writers) t.join();
  CHECK(db.last_sequence() == n);
  CHECK(errors.empty());
}

TEST_CASE("bridge: a new bridge resumes after the last ID in Redis, and a duplicate ID is skipped", "[redis][bridge]") {
  auto server = start_redis_or_skip();
  if (!server) return;
  run_test([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    Database db;
    aurora::Subscription local = db.subscribe_global();
    std::vector<BridgeError> errors;
    insert_n(db, 50);
    {
      Bridge first{ex, db, bridge_options(*server, errors)};
      first.start();
      REQUIRE(co_await first.wait_written(50));
      CHECK(first.stats().events == 50);
      first.stop();
      CHECK_FALSE(co_await first.wait_written(51));
    }
    insert_n(db, 51);  // 51..101, with no bridge running
    const auto events = drain(local);
    REQUIRE(events.size() == 101);

    // As if a writer that does not batch had put event 51 in its collection's stream only.
    auto c = co_await client_of(*server);
    const command by_hand = xadd_command("aurora:orders", aurora::redis::encode_entry(*events[50], 50));
    const reply added = co_await call(*c, by_hand);
    INFO(describe(added));
    REQUIRE(!added.is_error());

    Bridge second{ex, db, bridge_options(*server, errors)};
    second.start();
    REQUIRE(co_await second.wait_written(101));
    const aurora::redis::BridgeStats stats = second.stats();
    CHECK(stats.events == 51);     // 51..101: nothing before was written again
    CHECK(stats.duplicates == 1);  // 51 on aurora:orders: there already, so left out
    CHECK(errors.empty());         // not an error
    CHECK(co_await xlen(*c, "aurora:*") == 101);
    CHECK(co_await xlen(*c, "aurora:orders") == 101);

    RemoteSubscription global{ex, remote_options(*server), "", std::nullopt, Start::after(0)};
    for (const auto& ev : events) co_await expect_same(global, *ev);
    CHECK(global.try_recv().error().code == errc::empty);
    second.stop();
    global.unsubscribe();
  });
}

TEST_CASE("bridge: kill -9 of redis-server mid-stream, and every remote reader gets 1..N exactly once, in order",
          "[redis][bridge][kill]") {
  auto server = start_redis_or_skip();
  if (!server) return;
  const std::uint64_t n = kill_test_events();
  INFO("events: " << n << " (AURORA_BRIDGE_KILL_EVENTS sets it)");
  aurora::Options db_options;
  db_options.channel_capacity = static_cast<std::size_t>(n) + 16;  // retention: no lag, whatever Redis does
  Database db(db_options);
  std::vector<BridgeError> errors;
  std::vector<std::uint64_t> a_sequences;  // what went to collection "a"
  std::uint64_t kills = 0;
  run_test(
      [&](asio::any_io_executor ex) -> asio::awaitable<void> {
        Bridge bridge{ex, db, bridge_options(*server, errors)};
        bridge.start();
        RemoteSubscription global{ex, remote_options(*server), "", std::nullopt, Start::after(0)};
        RemoteSubscription a{ex, remote_options(*server), "a", std::nullopt, Start::after(0)};

        auto write = [&]() -> asio::awaitable<void> {
          std::uint64_t round = 0;
          while (db.last_sequence() < n) {
            const std::uint64_t left = n - db.last_sequence();
            const bool to_a = round % 2 == 0 || left == 1;  // the last event goes to "a": read_a ends there
            if (round % 50 == 0 && left >= 3) {
              db.transaction([&](aurora::Transaction& tx) {
                for (int k = 0; k < 3; ++k) tx.insert(to_a ? "a" : "b", {{"round", round}, {"k", k}});
              });
              if (to_a) {
                for (std::uint64_t s = db.last_sequence() - 2; s <= db.last_sequence(); ++s) a_sequences.push_back(s);
              }
            } else {
              db.insert(to_a ? "a" : "b", {{"round", round}});
              if (to_a) a_sequences.push_back(db.last_sequence());
            }
            if (++round % 64 == 0) co_await asio::post(ex, asio::use_awaitable);
          }
        };
        auto kill = [&]() -> asio::awaitable<void> {
          // In the middle of the stream to Redis: a third of the events are there, the others are
          // in a batch in flight, waiting in the bridge's subscription, or not yet written.
          const bool reached = co_await bridge.wait_written(n / 3);
          REQUIRE(reached);
          server->kill9();
          ++kills;
          server->restart();  // blocks this thread until the server answers PING
        };
        auto read_global = [&]() -> asio::awaitable<void> {
          for (std::uint64_t s = 1; s <= n; ++s) {
            const RecvResult r = co_await global.recv();
            if (!r.has_value() || r->sequence != s) {
              FAIL("global: expected " << s << ", got " << (r ? r->sequence : 0) << " error "
                                       << static_cast<int>(r.error().code) << " missed " << r.error().missed);
            }
          }
        };
        std::vector<std::uint64_t> a_received;
        auto read_a = [&]() -> asio::awaitable<void> {
          for (;;) {
            const RecvResult r = co_await a.recv();
            if (!r.has_value()) FAIL("a: error " << static_cast<int>(r.error().code) << " missed " << r.error().missed);
            a_received.push_back(r->sequence);
            if (r->sequence == n) co_return;
          }
        };
        co_await (write() && kill() && read_global() && read_a());
        CHECK(a_received == a_sequences);
        CHECK(co_await bridge.wait_written(n));
        auto c = co_await client_of(*server);
        CHECK(co_await xlen(*c, "aurora:*") == static_cast<long long>(n));
        CHECK(global.try_recv().error().code == errc::empty);
        const aurora::redis::BridgeStats stats = bridge.stats();
        CHECK(stats.connections >= 2);
        CHECK(stats.failures >= 1);
        CHECK(stats.lost == 0);
        bridge.stop();
        global.unsubscribe();
        a.unsubscribe();
      },
      std::chrono::seconds(600));
  CHECK(kills == 1);
  REQUIRE_FALSE(errors.empty());
  for (const BridgeError& e : errors) {
    INFO(e.message);
    CHECK(e.code.category() != aurora::error_category());  // connection errors only: no gap
    CHECK_FALSE(e.fatal);
    CHECK(e.attempt >= 1);
  }
}

TEST_CASE("bridge: history_lost is reported with the numbers when the database no longer retains what Redis lacks",
          "[redis][bridge]") {
  auto server = start_redis_or_skip();
  if (!server) return;
  run_test([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    aurora::Options small;
    small.channel_capacity = 10;
    Database db(small);
    std::vector<BridgeError> errors;
    insert_n(db, 5);
    co_await bridge_all_then_stop(ex, *server, db, errors);
    insert_n(db, 35);  // 6..40; the database retains 31..40
    Bridge second{ex, db, bridge_options(*server, errors)};
    second.start();
    REQUIRE(co_await second.wait_written(40));
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].code == errc::history_lost);
    CHECK(errors[0].after == 5);
    CHECK(errors[0].missed == 25);
    CHECK(errors[0].resumed_at == 31);
    CHECK_FALSE(errors[0].fatal);
    CHECK_THAT(errors[0].message, Catch::Contains("6 to 30 (25 events)"));
    CHECK(second.stats().lost == 25);
    CHECK(second.stats().events == 10);

    // Readers see the same gap.
    RemoteSubscription global{ex, remote_options(*server), "", std::nullopt, Start::after(0)};
    for (std::uint64_t s = 1; s <= 5; ++s) co_await expect_sequence(global, s);
    co_await expect_error(global, RecvError{errc::lagged, 25});
    for (std::uint64_t s = 31; s <= 40; ++s) co_await expect_sequence(global, s);
    // And on the collection's stream: its first entry after the gap names the gap's end as prev.
    RemoteSubscription orders{ex, remote_options(*server), "orders", std::nullopt, Start::after(0)};
    for (std::uint64_t s = 1; s <= 5; ++s) co_await expect_sequence(orders, s);
    co_await expect_error(orders, RecvError{errc::lagged, 25});
    co_await expect_sequence(orders, 31);
    second.stop();
    global.unsubscribe();
    orders.unsubscribe();
  });
}

TEST_CASE("bridge: a lag right after history_lost is one report over the whole gap", "[redis][bridge]") {
  auto server = start_redis_or_skip();
  if (!server) return;
  run_test([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    using aurora::redis::detail::bridge_runner;
    aurora::Options small;
    small.channel_capacity = 10;
    Database db(small);
    std::vector<BridgeError> errors;
    insert_n(db, 5);
    co_await bridge_all_then_stop(ex, *server, db, errors);
    insert_n(db, 35);  // 6..40; the database retains 31..40
    // The bridge resubscribes from 31, then 41..55 arrive before it reads: it keeps 46..55.
    auto runner = std::make_shared<bridge_runner>(ex, std::make_unique<lagging_resubscribe_feed>(db, 15),
                                                  bridge_options(*server, errors));
    runner->claim();  // as Bridge::start()
    asio::co_spawn(ex, bridge_runner::run(runner), asio::detached);
    REQUIRE(co_await bridge_runner::wait_written(runner, 55));
    runner->stop();
    REQUIRE(errors.size() == 1);
    INFO(errors[0].message);
    CHECK(errors[0].code == errc::history_lost);
    CHECK(errors[0].after == 5);
    CHECK(errors[0].missed == 40);
    CHECK(errors[0].resumed_at == 46);
    CHECK(runner->stats().lost == 40);
    CHECK(runner->stats().events == 10);

    RemoteSubscription global{ex, remote_options(*server), "", std::nullopt, Start::after(0)};
    for (std::uint64_t s = 1; s <= 5; ++s) co_await expect_sequence(global, s);
    co_await expect_error(global, RecvError{errc::lagged, 40});
    for (std::uint64_t s = 46; s <= 55; ++s) co_await expect_sequence(global, s);
    global.unsubscribe();
  });
}

TEST_CASE("bridge: a lagging bridge subscription is reported with the numbers, then goes on", "[redis][bridge]") {
  auto server = start_redis_or_skip();
  if (!server) return;
  run_test([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    aurora::Options small;
    small.channel_capacity = 10;
    Database db(small);
    std::vector<BridgeError> errors;
    Bridge bridge{ex, db, bridge_options(*server, errors)};
    bridge.start();
    insert_n(db, 5);
    REQUIRE(co_await bridge.wait_written(5));
    insert_n(db, 45);  // 6..50 without letting the bridge run: its channel keeps 41..50
    REQUIRE(co_await bridge.wait_written(50));
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].code == errc::lagged);
    CHECK(errors[0].after == 5);
    CHECK(errors[0].missed == 35);
    CHECK(errors[0].resumed_at == 41);
    CHECK(bridge.stats().lost == 35);

    RemoteSubscription global{ex, remote_options(*server), "", std::nullopt, Start::after(0)};
    for (std::uint64_t s = 1; s <= 5; ++s) co_await expect_sequence(global, s);
    co_await expect_error(global, RecvError{errc::lagged, 35});
    for (std::uint64_t s = 41; s <= 50; ++s) co_await expect_sequence(global, s);
    RemoteSubscription orders{ex, remote_options(*server), "orders", std::nullopt, Start::after(0)};
    for (std::uint64_t s = 1; s <= 5; ++s) co_await expect_sequence(orders, s);
    co_await expect_error(orders, RecvError{errc::lagged, 35});
    co_await expect_sequence(orders, 41);
    bridge.stop();
    global.unsubscribe();
    orders.unsubscribe();
  });
}

TEST_CASE("bridge: after a refused batch, the next attempt writes every event the database still holds",
          "[redis][bridge]") {
  // The first batch, 1..3, skips event 2 (not UTF-8: no stream entry can hold it) and Redis
  // refuses it (OOM). The next session reads 1..3 again: the gap that 2 left in the refused
  // batch must not make event 1's collection entry name a `prev` above 1, which lost event 1 too.
  auto server = start_redis_or_skip();
  if (!server) return;
  run_test([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    Database db;
    db.insert("orders", "a", {{"i", 1}});
    db.insert("orders", "b", {{"s", std::string("\xff")}});
    db.insert("orders", "c", {{"i", 3}});
    auto c = co_await client_of(*server);
    co_await set_maxmemory(*c, "1");
    std::vector<BridgeError> errors;
    BridgeOptions o = bridge_options(*server, errors);
    bool healing = false;
    o.on_error = [&errors, &c, &healing, ex](const BridgeError& e) {
      errors.push_back(e);
      if (e.code == aurora::redis::connection_error::server_error && !healing) {
        healing = true;
        asio::co_spawn(ex, set_maxmemory(*c, "0"), asio::detached);
      }
    };
    Bridge bridge{ex, db, o};
    bridge.start();
    REQUIRE(co_await bridge.wait_written(3));
    bridge.stop();
    bool refused = false;
    int skipped = 0;
    for (const BridgeError& e : errors) {
      INFO(e.message);
      if (e.code == aurora::redis::connection_error::server_error) {
        refused = true;
        continue;
      }
      ++skipped;
      CHECK(e.code == errc::invalid_document);  // event 2, once though two sessions read it
      CHECK(e.after == 1);
      CHECK(e.missed == 1);
      CHECK(e.resumed_at == 3);
    }
    CHECK(refused);
    CHECK(skipped == 1);
    CHECK(bridge.stats().lost == 1);

    RemoteSubscription global{ex, remote_options(*server), "", std::nullopt, Start::after(0)};
    co_await expect_sequence(global, 1);
    co_await expect_error(global, RecvError{errc::lagged, 1});
    co_await expect_sequence(global, 3);
    RemoteSubscription orders{ex, remote_options(*server), "orders", std::nullopt, Start::after(0)};
    co_await expect_sequence(orders, 1);
    co_await expect_error(orders, RecvError{errc::lagged, 1});
    co_await expect_sequence(orders, 3);
    global.unsubscribe();
    orders.unsubscribe();
  });
}

TEST_CASE("bridge: a database error while subscribing is reported and retried, not the end of the bridge",
          "[redis][bridge]") {
  auto server = start_redis_or_skip();
  if (!server) return;
  run_test([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    using aurora::redis::detail::bridge_runner;
    Database db;
    insert_n(db, 1);
    std::vector<BridgeError> errors;
    auto runner =
        std::make_shared<bridge_runner>(ex, std::make_unique<failing_once_feed>(db), bridge_options(*server, errors));
    runner->claim();  // as Bridge::start()
    asio::co_spawn(ex, bridge_runner::run(runner), asio::detached);
    REQUIRE(co_await bridge_runner::wait_written(runner, 1));
    runner->stop();
    REQUIRE(errors.size() == 1);
    INFO(errors[0].message);
    CHECK(errors[0].code == errc::storage_error);
    CHECK_THAT(errors[0].message, Catch::Contains("reading the change log failed (test)"));
    CHECK(occurrences(errors[0].message, "storage error") == 1);
    CHECK(errors[0].attempt == 1);
    CHECK_FALSE(errors[0].fatal);
    CHECK(runner->stats().failures == 1);
  });
}

TEST_CASE("bridge: a stream entry that is not an Aurora event is an error for the reader, not a crash",
          "[redis][bridge]") {
  auto server = start_redis_or_skip();
  if (!server) return;
  run_test([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    Database db;
    std::vector<BridgeError> errors;
    Bridge bridge{ex, db, bridge_options(*server, errors)};
    bridge.start();
    insert_n(db, 2);
    REQUIRE(co_await bridge.wait_written(2));
    auto c = co_await client_of(*server);
    const command foreign{"XADD", "aurora:*", "0-3", "hello", "world"};
    const reply added = co_await call(*c, foreign);
    INFO(describe(added));
    REQUIRE(!added.is_error());
    insert_n(db, 2);  // 3 (refused on the global stream: its ID is taken) and 4
    REQUIRE(co_await bridge.wait_written(4));
    CHECK(bridge.stats().duplicates == 1);
    CHECK(errors.empty());

    RemoteSubscription global{ex, remote_options(*server), "", std::nullopt, Start::after(0)};
    co_await expect_sequence(global, 1);
    co_await expect_sequence(global, 2);
    try {
      (void)co_await global.recv();
      FAIL("the foreign entry was accepted");
    } catch (const aurora::error& e) {
      CHECK(e.code() == errc::invalid_document);
      CHECK_THAT(e.what(), Catch::Contains("0-3"));
    }
    co_await expect_sequence(global, 4);
    RemoteSubscription orders{ex, remote_options(*server), "orders", std::nullopt, Start::after(0)};
    for (std::uint64_t s = 1; s <= 4; ++s) co_await expect_sequence(orders, s);
    bridge.stop();
    global.unsubscribe();
    orders.unsubscribe();
  });
}

TEST_CASE("bridge: Redis down at start: attempts are reported with growing counts until it is up", "[redis][bridge]") {
  auto server = start_redis_or_skip();
  if (!server) return;
  run_test([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    Database db;
    insert_n(db, 3);
    server->kill9();
    std::vector<BridgeError> errors;
    BridgeOptions o = bridge_options(*server, errors);
    o.on_error = [&](const BridgeError& e) {
      errors.push_back(e);
      if (e.attempt == 3) server->restart();
    };
    Bridge bridge{ex, db, o};
    bridge.start();
    REQUIRE(co_await bridge.wait_written(3));
    REQUIRE(errors.size() == 3);
    for (std::size_t i = 0; i < errors.size(); ++i) {
      INFO(errors[i].message);
      CHECK(errors[i].attempt == i + 1);
      CHECK_THAT(errors[i].message, Catch::Contains(server->socket_path()));
      CHECK_FALSE(errors[i].fatal);
    }
    CHECK(bridge.stats().failures == 3);
    CHECK(bridge.stats().connections == 1);
    bridge.stop();
  });
}

TEST_CASE("bridge: a session that caught up starts the backoff over, though it had nothing to write",
          "[redis][bridge]") {
  auto server = start_redis_or_skip();
  if (!server) return;
  run_test([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    using aurora::redis::detail::bridge_runner;
    Database db;
    server->kill9();  // attempts 1..3 fail; the third restarts Redis
    std::vector<BridgeError> errors;
    BridgeOptions o = bridge_options(*server, errors);
    o.on_error = [&](const BridgeError& e) {
      errors.push_back(e);
      if (errors.size() == 3 || errors.size() == 4) server->restart();
    };
    // Once connected and caught up (the database is empty), Redis dies and an insert follows:
    // writing it fails, the 4th report. It is the first failure after a working session.
    auto feed = std::make_unique<signalling_feed>(db, [&] {
      if (errors.size() != 3) return;
      asio::post(ex, [&] {
        server->kill9();
        db.insert("orders", {{"i", 1}});
      });
    });
    auto runner = std::make_shared<bridge_runner>(ex, std::move(feed), o);
    runner->claim();  // as Bridge::start()
    asio::co_spawn(ex, bridge_runner::run(runner), asio::detached);
    REQUIRE(co_await bridge_runner::wait_written(runner, 1));
    runner->stop();
    REQUIRE(errors.size() == 4);
    for (std::size_t i = 0; i < 3; ++i) CHECK(errors[i].attempt == i + 1);
    INFO(errors[3].message);
    CHECK(errors[3].attempt == 1);
    CHECK(runner->stats().connections == 2);
  });
}

TEST_CASE("bridge: Redis holding another database's events is fatal, reported, and run() throws", "[redis][bridge]") {
  auto server = start_redis_or_skip();
  if (!server) return;
  run_test([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    std::vector<BridgeError> errors;
    {
      Database old_db;
      insert_n(old_db, 3);
      Bridge first{ex, old_db, bridge_options(*server, errors)};
      first.start();
      REQUIRE(co_await first.wait_written(3));
    }
    Database db;
    insert_n(db, 1);
    Bridge bridge{ex, db, bridge_options(*server, errors)};
    try {
      co_await bridge.run();
      FAIL("run() returned");
    } catch (const aurora::error& e) {
      CHECK(e.code() == errc::invalid_argument);
      CHECK_THAT(e.what(), Catch::Contains("another database"));
    }
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].fatal);
    CHECK(errors[0].after == 3);
    CHECK_FALSE(bridge.running());
    CHECK_THROWS_AS(bridge.start(), aurora::error);  // once per Bridge
  });
}

TEST_CASE("bridge: options out of range are invalid_argument", "[redis][bridge]") {
  boost::asio::io_context io;
  Database db;
  const auto refused = [&](BridgeOptions o, const std::string& what) {
    try {
      Bridge b{io.get_executor(), db, o};
      FAIL("accepted");
    } catch (const aurora::error& e) {
      CHECK(e.code() == errc::invalid_argument);
      CHECK_THAT(e.what(), Catch::Contains(what));
    }
  };
  BridgeOptions o;
  o.maxlen = 0;
  refused(o, "maxlen");
  o = {};
  o.batch = 0;
  refused(o, "batch");
  o = {};
  o.reconnect_delay = 0ms;
  refused(o, "reconnect_delay");
  o = {};
  o.max_reconnect_delay = 1ms;
  refused(o, "max_reconnect_delay");
  o = {};
  o.max_reply_bytes = 10;
  refused(o, "max_reply_bytes");
}
