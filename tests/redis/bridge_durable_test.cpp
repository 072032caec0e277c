// Tests of aurora/redis/bridge.hpp over an aurora::DurableDatabase: the application restarts
// (kill -9 of the writing process, then close and reopen in this one) while Redis keeps what
// the bridge wrote, and a new bridge on the reopened file writes exactly what Redis lacks, from
// the change log. Built only when both aurora::redis and aurora::sqlite exist.
#include "../sqlite/fault_vfs.hpp"
#include "../sqlite/support.hpp"
#include "test_support.hpp"

#include <aurora/errc.hpp>
#include <aurora/options.hpp>
#include <aurora/recv_result.hpp>
#include <aurora/redis/bridge.hpp>
#include <aurora/redis/remote_subscription.hpp>
#include <aurora/sqlite.hpp>
#include <aurora/start.hpp>
#include <aurora/transaction.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <catch2/catch.hpp>

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace aurora_test;
using namespace std::chrono_literals;
using aurora::ChangeEvent;
using aurora::DurableDatabase;
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

BridgeOptions bridge_options(const aurora::redis::Endpoint& endpoint) {
  BridgeOptions o;
  o.endpoint = endpoint;
  o.reconnect_delay = 5ms;
  o.max_reconnect_delay = 100ms;
  return o;
}

BridgeOptions bridge_options(const redis_server& server, std::vector<BridgeError>& errors) {
  BridgeOptions o = bridge_options(server.endpoint());
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

asio::awaitable<std::uint64_t> xlen(connection& c, const std::string& key) {
  const command cmd{"XLEN", key};
  const reply r = co_await call(c, cmd);
  REQUIRE(r.kind == reply_kind::integer);
  REQUIRE(r.integer >= 0);
  co_return static_cast<std::uint64_t>(r.integer);
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

// Every event of `db` from sequence 1 on, from its change log (and live events after it).
std::vector<std::shared_ptr<const ChangeEvent>> all_events(DurableDatabase& db) {
  aurora::Subscription sub = db.subscribe_global(std::nullopt, Start::after(0));
  std::vector<std::shared_ptr<const ChangeEvent>> out;
  for (RecvResult r = sub.try_recv(); r; r = sub.try_recv()) out.push_back(r.event());
  return out;
}

// `n` writes of every kind: inserts into two collections, an update, a remove and a transaction
// of three events (so a transaction may straddle what Redis had and what it lacked).
void write_mixed(DurableDatabase& db, int n, const std::string& tag) {
  for (int i = 0; i < n; ++i) {
    switch (i % 5) {
      case 0: db.insert("orders", tag + std::to_string(i), {{"i", i}, {"tag", tag}}); break;
      case 1: db.insert("stock", {{"i", i}}); break;
      case 2: db.update("orders", tag + std::to_string(i - 2), {{"i", i}, {"updated", true}}); break;
      case 3:
        db.transaction([&](aurora::Transaction& tx) {
          tx.insert("orders", {{"tx", i}});
          tx.insert("stock", {{"tx", i}});
          tx.remove("orders", tag + std::to_string(i - 3));
        });
        break;
      default: db.insert("orders", {{"i", i}, {"pad", std::string(static_cast<std::size_t>(i % 50), 'x')}}); break;
    }
  }
}

// What the writer process acknowledges on its pipe once its bridge has written `bridged` events.
struct writer_ack {
  std::uint64_t bridged = 0;  // Bridge::stats().last_written: Redis holds 1..bridged
};

// The writer process: opens the durable database, runs a bridge to `endpoint` on its own
// io_context and writes from a second thread for ever; once Redis holds `ack_after` events it
// acknowledges on `ack_fd` and goes on writing until the parent kills it with SIGKILL.
[[noreturn]] void run_writer(const std::string& path, const aurora::redis::Endpoint& endpoint, int ack_fd,
                             std::uint64_t ack_after) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  try {
    aurora::Options options;
    options.durability = aurora::Durability::full;
    DurableDatabase db(path, options);
    asio::io_context io;
    Bridge bridge{io.get_executor(), db, bridge_options(endpoint)};
    bridge.start();
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          if (co_await bridge.wait_written(ack_after)) {
            const writer_ack ack{bridge.stats().last_written};
            aurora_sqlite_test::write_all(ack_fd, &ack, sizeof ack);
          }
        },
        asio::detached);
    std::thread writer([&db] {
      for (int round = 0;; ++round) write_mixed(db, 5, "w" + std::to_string(round) + "-");
    });
    io.run();
    writer.join();
  } catch (...) {
    ::_exit(3);
  }
  ::_exit(0);
}

// Forks the writer process, waits (bounded) for its acknowledgement, then kills it with SIGKILL
// while it still writes. Returns the acknowledgement.
writer_ack run_and_kill_writer(const std::string& path, const redis_server& server, std::uint64_t ack_after) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::close(fds[0]);
    run_writer(path, server.endpoint(), fds[1], ack_after);
  }
  ::close(fds[1]);
  writer_ack ack;
  pollfd p{fds[0], POLLIN, 0};
  const int ready = ::poll(&p, 1, 120'000);  // a bound on a hung child, not a wait for progress
  const bool acknowledged = ready > 0 && aurora_sqlite_test::read_all(fds[0], &ack, sizeof ack);
  ::kill(child, SIGKILL);
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  REQUIRE(acknowledged);
  REQUIRE(WIFSIGNALED(status));
  REQUIRE(WTERMSIG(status) == SIGKILL);
  return ack;
}

// Options that make a bridge lag soon: a channel of 10 events, commits without fsync.
aurora::Options lag_options(std::uint64_t history = aurora::Options{}.history) {
  aurora::Options o;
  o.channel_capacity = 10;
  o.history = history;
  o.durability = aurora::Durability::normal;
  return o;
}

// Inserts {"i": from} .. {"i": to - 1} into "orders" (sequences from + 1 .. to on a fresh database).
void insert_orders(DurableDatabase& db, int from, int to) {
  for (int i = from; i < to; ++i) db.insert("orders", {{"i", i}});
}

}  // namespace

TEST_CASE("bridge over DurableDatabase: writer killed, offline writes, new bridge: Redis holds 1..N once, in order",
          "[redis][bridge][durable]") {
  auto server = start_redis_or_skip();
  if (!server) return;
  aurora_sqlite_test::temp_dir dir;
  const std::string path = dir.file("app.db");

  // 1. The application runs (a process of its own) with its bridge, and dies by SIGKILL while it
  //    writes and its bridge streams: events may be durable in the file but not yet in Redis.
  constexpr std::uint64_t ack_after = 100;
  const writer_ack ack = run_and_kill_writer(path, *server, ack_after);
  CHECK(ack.bridged >= ack_after);

  run_test(
      [&](asio::any_io_executor ex) -> asio::awaitable<void> {
        auto c = co_await client_of(*server);
        const std::uint64_t in_redis = co_await xlen(*c, "aurora:*");
        CHECK(in_redis >= ack.bridged);  // Redis acknowledged them, with appendfsync always

        // 2. The application restarts: the file holds at least what Redis holds (the bridge only
        //    sees published, hence durable, commits). It writes while no bridge runs, and stops
        //    again: what Redis lacks is now only in the change log (the reopened database's
        //    in-memory history is empty).
        std::optional<DurableDatabase> db;
        db.emplace(path);
        const std::uint64_t at_kill = db->last_sequence();
        INFO("Redis held " << in_redis << " events, the file " << at_kill << " after the kill");
        REQUIRE(at_kill >= in_redis);
        write_mixed(*db, 30, "offline-");
        const std::uint64_t offline = db->last_sequence();
        REQUIRE(offline > at_kill);
        db.reset();
        db.emplace(path);
        REQUIRE(db->last_sequence() == offline);

        // 3. A new bridge on the reopened database writes the rest, while the application writes on.
        std::vector<BridgeError> errors;
        Bridge bridge{ex, *db, bridge_options(*server, errors)};
        bridge.start();
        for (int round = 0; round < 4; ++round) {
          write_mixed(*db, 5, "live" + std::to_string(round) + "-");
          co_await asio::post(ex, asio::use_awaitable);  // the bridge takes some now, some later
        }
        const std::uint64_t n = db->last_sequence();
        REQUIRE(co_await bridge.wait_written(n));

        // A remote consumer of the global stream from 0 receives 1..N exactly once, in order, as
        // the database logged them; the streams hold nothing else.
        const std::vector<std::shared_ptr<const ChangeEvent>> events = all_events(*db);
        REQUIRE(events.size() == n);
        RemoteSubscription global{ex, remote_options(*server), "", std::nullopt, Start::after(0)};
        for (const auto& ev : events) co_await expect_same(global, *ev);
        CHECK(global.try_recv().error().code == errc::empty);
        CHECK(co_await xlen(*c, "aurora:*") == n);
        CHECK(co_await xlen(*c, "aurora:orders") + co_await xlen(*c, "aurora:stock") == n);
        RemoteSubscription stock{ex, remote_options(*server), "stock", std::nullopt, Start::after(0)};
        for (const auto& ev : events) {
          if (ev->collection == "stock") co_await expect_sequence(stock, ev->sequence);
        }
        CHECK(stock.try_recv().error().code == errc::empty);

        const aurora::redis::BridgeStats stats = bridge.stats();
        CHECK(stats.last_written == n);
        CHECK(stats.events == n - in_redis);  // nothing Redis held was written again
        CHECK(stats.duplicates == 0);
        CHECK(stats.lost == 0);
        CHECK(errors.empty());
        bridge.stop();
        global.unsubscribe();
        stock.unsubscribe();
      },
      std::chrono::seconds(120));
}

TEST_CASE("bridge over DurableDatabase: a lagging bridge reads what it skipped from the change log",
          "[redis][bridge][durable]") {
  auto server = start_redis_or_skip();
  if (!server) return;
  aurora_sqlite_test::temp_dir dir;
  run_test([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    DurableDatabase db(dir.file("app.db"), lag_options());
    std::vector<BridgeError> errors;
    Bridge bridge{ex, db, bridge_options(*server, errors)};
    bridge.start();
    insert_orders(db, 0, 5);
    REQUIRE(co_await bridge.wait_written(5));
    insert_orders(db, 5, 50);  // 6..50 while the bridge waits: its channel keeps 41..50
    REQUIRE(co_await bridge.wait_written(50));
    std::string reported;
    for (const BridgeError& e : errors) reported += e.message + "\n";
    INFO(reported);
    CHECK(errors.empty());
    CHECK(bridge.stats().lost == 0);
    CHECK(bridge.stats().events == 50);
    bridge.stop();

    const auto want = all_events(db);
    REQUIRE(want.size() == 50);
    RemoteSubscription global{ex, remote_options(*server), "", std::nullopt, Start::after(0)};
    for (const auto& ev : want) co_await expect_same(global, *ev);
    RemoteSubscription orders{ex, remote_options(*server), "orders", std::nullopt, Start::after(0)};
    for (std::uint64_t s = 1; s <= 50; ++s) co_await expect_sequence(orders, s);
    CHECK(global.try_recv().error().code == errc::empty);
    global.unsubscribe();
    orders.unsubscribe();
  });
}

TEST_CASE("bridge over DurableDatabase: a lagging bridge whose log was partly trimmed loses only what it lacks",
          "[redis][bridge][durable]") {
  auto server = start_redis_or_skip();
  if (!server) return;
  aurora_sqlite_test::temp_dir dir;
  run_test([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    DurableDatabase db(dir.file("app.db"), lag_options(30));
    std::vector<BridgeError> errors;
    Bridge bridge{ex, db, bridge_options(*server, errors)};
    bridge.start();
    insert_orders(db, 0, 5);
    REQUIRE(co_await bridge.wait_written(5));
    insert_orders(db, 5, 105);  // while the bridge waits: its channel keeps 96..105, the change log 76..105
    REQUIRE(co_await bridge.wait_written(105));
    REQUIRE(errors.size() == 1);
    INFO(errors[0].message);
    CHECK(errors[0].code == errc::lagged);
    CHECK(errors[0].after == 5);
    CHECK(errors[0].missed == 70);
    CHECK(errors[0].resumed_at == 76);
    CHECK(bridge.stats().lost == 70);
    CHECK(bridge.stats().events == 35);
    bridge.stop();

    RemoteSubscription global{ex, remote_options(*server), "", std::nullopt, Start::after(0)};
    for (std::uint64_t s = 1; s <= 5; ++s) co_await expect_sequence(global, s);
    const RecvResult gap = co_await global.recv();
    REQUIRE_FALSE(gap.has_value());
    CHECK(gap.error() == RecvError{errc::lagged, 70});
    for (std::uint64_t s = 76; s <= 105; ++s) co_await expect_sequence(global, s);
    CHECK(global.try_recv().error().code == errc::empty);
    global.unsubscribe();
  });
}

TEST_CASE("bridge over DurableDatabase: a change log that cannot be read while it lags is a failed attempt, no loss",
          "[redis][bridge][durable]") {
  auto server = start_redis_or_skip();
  if (!server) return;
  aurora_sqlite_test::temp_dir dir;
  aurora_sqlite_test::shim_registration shim;
  auto& plan = aurora_sqlite_test::plan;
  run_test([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    DurableDatabase db(dir.file("app.db"), lag_options());
    std::vector<BridgeError> errors;
    BridgeOptions o = bridge_options(*server, errors);
    o.on_error = [&](const BridgeError& e) {
      errors.push_back(e);
      plan.fail_reads = false;  // the disk works again for the next attempt
    };
    Bridge bridge{ex, db, o};
    bridge.start();
    insert_orders(db, 0, 5);
    REQUIRE(co_await bridge.wait_written(5));
    // 6..3005 (12 MB, more than SQLite's page cache) while the bridge waits: it lags, and its
    // resubscribe after 5 reads the change log while reads fail.
    const std::string pad(4000, 'p');
    for (int i = 5; i < 3005; ++i) db.insert("orders", {{"i", i}, {"pad", pad}});
    plan.fail_reads = true;
    REQUIRE(co_await bridge.wait_written(3005));
    bridge.stop();
    CHECK(plan.failed_calls.load() > 0);
    REQUIRE_FALSE(errors.empty());
    for (const BridgeError& e : errors) {
      INFO(e.message);
      CHECK(e.code == errc::storage_error);
      CHECK_FALSE(e.fatal);
    }
    CHECK(bridge.stats().lost == 0);

    RemoteSubscription global{ex, remote_options(*server), "", std::nullopt, Start::after(0)};
    for (std::uint64_t s = 1; s <= 3005; ++s) co_await expect_sequence(global, s);
    global.unsubscribe();
  });
}

TEST_CASE("bridge over DurableDatabase: history_lost when the reopened file's log lacks what Redis lacks",
          "[redis][bridge][durable]") {
  auto server = start_redis_or_skip();
  if (!server) return;
  aurora_sqlite_test::temp_dir dir;
  const std::string path = dir.file("app.db");
  run_test([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    aurora::Options options;
    options.history = 10;  // the change log keeps the last 10 events
    options.durability = aurora::Durability::normal;
    std::vector<BridgeError> errors;
    std::optional<DurableDatabase> db;
    db.emplace(path, options);
    {
      Bridge first{ex, *db, bridge_options(*server, errors)};
      first.start();
      for (int i = 0; i < 5; ++i) db->insert("orders", {{"i", i}});
      REQUIRE(co_await first.wait_written(5));
    }
    db.reset();
    db.emplace(path, options);
    for (int i = 5; i < 40; ++i) db->insert("orders", {{"i", i}});  // 6..40, no bridge: the log keeps 31..40
    db.reset();
    db.emplace(path, options);  // its in-memory history is empty: only the log reaches back
    REQUIRE(db->last_sequence() == 40);

    Bridge second{ex, *db, bridge_options(*server, errors)};
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

    // Remote readers see the same gap, never a silent one.
    RemoteSubscription global{ex, remote_options(*server), "", std::nullopt, Start::after(0)};
    for (std::uint64_t s = 1; s <= 5; ++s) co_await expect_sequence(global, s);
    const RecvResult gap = co_await global.recv();
    REQUIRE_FALSE(gap.has_value());
    CHECK(gap.error() == RecvError{errc::lagged, 25});
    for (std::uint64_t s = 31; s <= 40; ++s) co_await expect_sequence(global, s);
    CHECK(global.try_recv().error().code == errc::empty);
    second.stop();
    global.unsubscribe();
  });
}
