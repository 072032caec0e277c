// Tests for aurora/redis/remote_subscription.hpp against a private redis-server, with entries the
// tests write themselves as the bridge will (XADD 0-<seq> to the collection's and the global stream).
#include "test_support.hpp"

#include <aurora/errc.hpp>
#include <aurora/filter.hpp>
#include <aurora/recv_result.hpp>
#include <aurora/redis/error.hpp>
#include <aurora/redis/event_codec.hpp>
#include <aurora/redis/remote_subscription.hpp>
#include <aurora/start.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

using namespace aurora_test;
using namespace std::chrono_literals;
using namespace boost::asio::experimental::awaitable_operators;
using aurora::errc;
using aurora::EventFilter;
using aurora::OperationType;
using aurora::RecvError;
using aurora::RecvResult;
using aurora::Start;
using aurora::redis::connection_error;
using aurora::redis::RemoteOptions;
using aurora::redis::RemoteSubscription;

namespace {

// Options for `server`, with short reconnection delays.
RemoteOptions options_for(const redis_server& server) {
  RemoteOptions o;
  o.endpoint = server.endpoint();
  o.reconnect_delay = 5ms;
  o.max_reconnect_delay = 100ms;
  o.max_reconnect_attempts = 200;
  return o;
}

// Receives once; requires an event with `sequence` and returns it.
asio::awaitable<RecvResult> expect_event(RemoteSubscription& sub, std::uint64_t sequence) {
  RecvResult r = co_await sub.recv();
  INFO("expected event " << sequence << ", got error " << static_cast<int>(r.error().code));
  REQUIRE(r.has_value());
  CHECK(r->sequence == sequence);
  co_return r;
}

// Receives once; requires the error `expected`.
asio::awaitable<void> expect_error(RemoteSubscription& sub, RecvError expected) {
  const RecvResult r = co_await sub.recv();
  INFO("expected error " << static_cast<int>(expected.code) << " missed " << expected.missed);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error() == expected);
}

asio::awaitable<void> trim(connection& c, const std::string& key, int maxlen) {
  const command xtrim{"XTRIM", key, "MAXLEN", std::to_string(maxlen)};
  (void)co_await call(c, xtrim);
}

// Waits (bounded, by asking the server) until `n` clients are blocked in a command such as XREAD BLOCK.
asio::awaitable<void> wait_blocked_clients(connection& c, int n) {
  const command info{"INFO", "clients"};
  const std::string wanted = "blocked_clients:" + std::to_string(n) + "\r\n";
  for (int i = 0; i < 100'000; ++i) {
    const reply r = co_await call(c, info);
    if (r.text.find(wanted) != std::string::npos) co_return;
  }
  FAIL("no client blocked on the server");
}

// RESP of an XREAD reply holding `entry` of the stream `key`.
std::string xread_reply(const std::string& key, const aurora::redis::StreamEntry& entry) {
  const auto bulk = [](const std::string& text) { return "$" + std::to_string(text.size()) + "\r\n" + text + "\r\n"; };
  std::string fields = "*" + std::to_string(2 * entry.fields.size()) + "\r\n";
  for (const auto& [field, value] : entry.fields) fields += bulk(field) + bulk(value);
  return "*1\r\n*2\r\n" + bulk(key) + "*1\r\n*2\r\n" + bulk(entry.id) + fields;
}

// Answers one connection after another, each with the next of `responses`.
asio::awaitable<void> serve_in_turn(fake_server& fake, std::vector<std::string> responses) {
  for (std::string& response : responses) co_await fake.serve(std::move(response), false);
}

// Options for `endpoint` that retry at once (1 ms, then 2 and 4 ms) and give up after `attempts`.
RemoteOptions quick_retries(aurora::redis::Endpoint endpoint, std::size_t attempts) {
  RemoteOptions o;
  o.endpoint = std::move(endpoint);
  o.reconnect_delay = 1ms;
  o.max_reconnect_delay = 4ms;
  o.max_reconnect_attempts = attempts;
  return o;
}

RemoteOptions fake_options(const fake_server& fake, std::size_t attempts) {
  return quick_retries(aurora::redis::Endpoint::tcp("127.0.0.1", fake.port()), attempts);
}

}  // namespace

TEST_CASE("remote: after(s) on the global stream reads every event above s, then live ones", "[redis][remote]") {
  auto server = start_redis_or_skip();
  if (!server) return;
  run_test([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto writer_conn = co_await client_of(*server);
    stream_writer writer(*writer_conn);
    co_await writer.write_range(1, 5);
    co_await writer.write(make_event(6, "users", OperationType::Delete, 3));

    RemoteSubscription sub{ex, options_for(*server), "", std::nullopt, Start::after(2)};
    CHECK(sub.stream_key() == "aurora:*");
    for (std::uint64_t s = 3; s <= 5; ++s) {
      const RecvResult r = co_await expect_event(sub, s);
      const aurora::ChangeEvent expected = make_event(s);
      CHECK(r->collection == "orders");
      CHECK(r->document_id == expected.document_id);
      CHECK(r->operation == OperationType::Insert);
      CHECK(aurora::detail::same_document(r->document, expected.document));
      CHECK(r->old_document == nullptr);
      CHECK(r->timestamp == expected.timestamp);
    }
    const RecvResult del = co_await expect_event(sub, 6);
    CHECK(del->collection == "users");
    CHECK(del->operation == OperationType::Delete);
    CHECK(del->document == nullptr);
    CHECK(aurora::detail::same_document(del->old_document,
                                        make_event(6, "users", OperationType::Delete, 3).old_document));

    // Live: the receive waits in XREAD BLOCK until the writer appends.
    auto write_later = [&]() -> asio::awaitable<void> {
      co_await wait_blocked_clients(*writer_conn, 1);
      co_await writer.write_range(7, 8);
    };
    const RecvResult seven = co_await (expect_event(sub, 7) && write_later());
    CHECK(seven->sequence == 7);
    co_await expect_event(sub, 8);
  });
}

TEST_CASE("remote: a collection's stream, whose IDs have gaps by design", "[redis][remote]") {
  auto server = start_redis_or_skip();
  if (!server) return;
  run_test([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto writer_conn = co_await client_of(*server);
    stream_writer writer(*writer_conn);
    for (std::uint64_t s = 1; s <= 6; ++s) co_await writer.write(make_event(s, s % 2 == 1 ? "orders" : "users"));

    for (const auto& [start, first] : {std::pair{Start::after(0), 1}, std::pair{Start::oldest(), 1},
                                       std::pair{Start::after(2), 3}, std::pair{Start::after(3), 5}}) {
      RemoteSubscription sub{ex, options_for(*server), "orders", std::nullopt, start};
      CHECK(sub.stream_key() == "aurora:orders");
      for (std::uint64_t s = static_cast<std::uint64_t>(first); s <= 5; s += 2) {
        const RecvResult r = co_await expect_event(sub, s);
        CHECK(r->collection == "orders");
      }
      CHECK(sub.try_recv().error().code == errc::empty);
    }
  });
}

TEST_CASE("remote: now() starts after the last entry when it connects, oldest() at the first one held",
          "[redis][remote]") {
  auto server = start_redis_or_skip();
  if (!server) return;
  run_test([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto writer_conn = co_await client_of(*server);
    stream_writer writer(*writer_conn);

    // A stream that does not exist yet: everything it will hold is new.
    RemoteSubscription fresh{ex, options_for(*server), "orders"};
    co_await fresh.connect();
    co_await writer.write_range(1, 3);

    RemoteSubscription global_now{ex, options_for(*server), ""};
    RemoteSubscription orders_now{ex, options_for(*server), "orders", std::nullopt, Start::now()};
    co_await global_now.connect();
    co_await orders_now.connect();
    co_await writer.write_range(4, 5);
    for (std::uint64_t s = 1; s <= 5; ++s) co_await expect_event(fresh, s);
    co_await expect_event(global_now, 4);
    co_await expect_event(global_now, 5);
    co_await expect_event(orders_now, 4);
    co_await expect_event(orders_now, 5);

    // oldest() after trimming: from the first entry still held, and no loss is reported.
    co_await trim(*writer_conn, "aurora:*", 2);
    co_await trim(*writer_conn, "aurora:orders", 2);
    for (const char* collection : {"", "orders"}) {
      RemoteSubscription oldest{ex, options_for(*server), collection, std::nullopt, Start::oldest()};
      co_await expect_event(oldest, 4);
      co_await expect_event(oldest, 5);
    }
  });
}

TEST_CASE("remote: history_lost when the stream was trimmed past s, then the oldest entry held", "[redis][remote]") {
  auto server = start_redis_or_skip();
  if (!server) return;
  run_test([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto writer_conn = co_await client_of(*server);
    stream_writer writer(*writer_conn);
    // orders: 1, 3, 5, 7, 9; users: 2, 4, 6, 8, 10.
    for (std::uint64_t s = 1; s <= 10; ++s) co_await writer.write(make_event(s, s % 2 == 1 ? "orders" : "users"));
    co_await trim(*writer_conn, "aurora:*", 5);       // keeps 6..10
    co_await trim(*writer_conn, "aurora:orders", 2);  // keeps 7 (prev 5) and 9

    SECTION("global stream: the first ID above s + 1 tells") {
      for (const std::uint64_t s : std::vector<std::uint64_t>{0, 2, 4}) {
        INFO("after " << s);
        RemoteSubscription sub{ex, options_for(*server), "", std::nullopt, Start::after(s)};
        co_await expect_error(sub, RecvError{errc::history_lost, 0});
        for (std::uint64_t e = 6; e <= 10; ++e) co_await expect_event(sub, e);
      }
      for (const std::uint64_t s : std::vector<std::uint64_t>{5, 7}) {
        INFO("after " << s);
        RemoteSubscription sub{ex, options_for(*server), "", std::nullopt, Start::after(s)};
        for (std::uint64_t e = s + 1; e <= 10; ++e) co_await expect_event(sub, e);
      }
    }
    SECTION("collection stream: prev tells") {
      for (const std::uint64_t s : std::vector<std::uint64_t>{0, 3, 4}) {
        INFO("after " << s);
        RemoteSubscription sub{ex, options_for(*server), "orders", std::nullopt, Start::after(s)};
        co_await expect_error(sub, RecvError{errc::history_lost, 0});
        co_await expect_event(sub, 7);
        co_await expect_event(sub, 9);
      }
      for (const std::uint64_t s : std::vector<std::uint64_t>{5, 6}) {
        INFO("after " << s);
        RemoteSubscription sub{ex, options_for(*server), "orders", std::nullopt, Start::after(s)};
        co_await expect_event(sub, 7);
        co_await expect_event(sub, 9);
      }
    }
  });
}

TEST_CASE("remote: lagged, with what was missed, when entries are trimmed while reading", "[redis][remote]") {
  auto server = start_redis_or_skip();
  if (!server) return;
  run_test([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto writer_conn = co_await client_of(*server);
    stream_writer writer(*writer_conn);
    co_await writer.write_range(1, 3);
    RemoteOptions options = options_for(*server);
    options.batch = 1;  // nothing is fetched ahead
    RemoteSubscription global{ex, options, "", std::nullopt, Start::after(0)};
    RemoteSubscription orders{ex, options, "orders", std::nullopt, Start::after(0)};
    for (std::uint64_t s = 1; s <= 3; ++s) {
      co_await expect_event(global, s);
      co_await expect_event(orders, s);
    }
    co_await writer.write_range(4, 10);
    co_await trim(*writer_conn, "aurora:*", 3);  // keeps 8..10: 4..7 are lost
    co_await trim(*writer_conn, "aurora:orders", 3);
    co_await expect_error(global, RecvError{errc::lagged, 4});
    co_await expect_error(orders, RecvError{errc::lagged, 4});
    for (std::uint64_t s = 8; s <= 10; ++s) {
      co_await expect_event(global, s);
      co_await expect_event(orders, s);
    }
  });
}

TEST_CASE("remote: the filter is applied on receipt, and the position moves past what it drops", "[redis][remote]") {
  auto server = start_redis_or_skip();
  if (!server) return;
  run_test([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto writer_conn = co_await client_of(*server);
    stream_writer writer(*writer_conn);
    co_await writer.write(make_event(1, "orders", OperationType::Insert, 0));
    co_await writer.write(make_event(2, "orders", OperationType::Insert, 1));
    co_await writer.write(make_event(3, "orders", OperationType::Update, 0));
    co_await writer.write(make_event(4, "orders", OperationType::Update, 1));
    co_await writer.write(make_event(5, "orders", OperationType::Delete, 2));  // old document: n = 1

    EventFilter n_is_1;
    n_is_1.field_filters.push_back({"n", 1});
    EventFilter updates;
    updates.operation = OperationType::Update;
    RemoteOptions options = options_for(*server);
    options.batch = 2;
    RemoteSubscription by_field{ex, options, "orders", n_is_1, Start::after(0)};
    RemoteSubscription by_op{ex, options, "", updates, Start::after(0)};
    co_await expect_event(by_field, 2);
    co_await expect_event(by_field, 4);
    co_await expect_event(by_field, 5);
    co_await expect_event(by_op, 3);
    co_await expect_event(by_op, 4);

    co_await writer.write(make_event(6, "orders", OperationType::Insert, 0));
    co_await writer.write(make_event(7, "orders", OperationType::Update, 1));
    co_await expect_event(by_field, 7);
    co_await expect_event(by_op, 7);
  });
}

TEST_CASE("remote: a malformed entry is invalid_document naming it, and reading goes on after it", "[redis][remote]") {
  auto server = start_redis_or_skip();
  if (!server) return;
  run_test([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto writer_conn = co_await client_of(*server);
    stream_writer writer(*writer_conn);
    co_await writer.write_range(1, 1);
    aurora::redis::StreamEntry bad = aurora::redis::encode_entry(make_event(2), 1);
    for (auto& [name, value] : bad.fields) {
      if (name == "op") value = "Upsert";
    }
    const auto added_bad = co_await call(*writer_conn, xadd_command("aurora:*", bad));
    CHECK(added_bad.text == "0-2");
    const command foreign{"XADD", "aurora:*", "0-3", "hello", "world"};
    const auto added_foreign = co_await call(*writer_conn, foreign);
    CHECK(added_foreign.text == "0-3");
    co_await writer.write_range(4, 4);

    RemoteSubscription sub{ex, options_for(*server), "", std::nullopt, Start::after(0)};
    co_await expect_event(sub, 1);
    for (const char* why : {"stream entry \"0-2\" is not an Aurora event: field \"op\" is \"Upsert\"",
                            "stream entry \"0-3\" is not an Aurora event: field \"seq\" is missing"}) {
      try {
        (void)co_await sub.recv();
        FAIL("no error");
      } catch (const aurora::error& e) {
        CHECK(e.code() == errc::invalid_document);
        CHECK_THAT(e.what(), Catch::Contains(why));
      }
    }
    co_await expect_event(sub, 4);  // no gap reported: 2 and 3 were read
  });
}

TEST_CASE("remote: a cancelled recv loses nothing", "[redis][remote]") {
  auto server = start_redis_or_skip();
  if (!server) return;
  run_test([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto writer_conn = co_await client_of(*server);
    stream_writer writer(*writer_conn);
    RemoteSubscription sub{ex, options_for(*server), "orders", std::nullopt, Start::after(0)};

    // Waiting in XREAD BLOCK: the timer wins; the XREAD stays pending for the next recv.
    for (int round = 0; round < 3; ++round) {
      asio::steady_timer timer(ex, 20ms);
      const auto result = co_await (sub.recv() || timer.async_wait(asio::use_awaitable));
      CHECK(result.index() == 1);
    }
    co_await writer.write_range(1, 1);
    co_await expect_event(sub, 1);

    // Cancellations racing deliveries, with events buffered or in flight. An operation that
    // completes by a post and starts before the receive wins against it even when an event is
    // ready: the receive must then give up without taking it (Asio drops the loser's result). In
    // the other order, or against a timer, either may win. Every event must arrive once, in order.
    constexpr std::uint64_t total = 600;
    co_await writer.write_range(2, total);
    RemoteOptions options = options_for(*server);
    options.batch = 7;
    RemoteSubscription racer{ex, options, "orders", std::nullopt, Start::after(1)};
    std::vector<std::uint64_t> got;
    int cancelled = 0;
    for (int round = 0; got.size() < total - 1; ++round) {
      std::optional<RecvResult> r;
      switch (round % 4) {
        case 0: {
          auto result = co_await (asio::post(ex, asio::use_awaitable) || racer.recv());
          if (result.index() == 1) r = std::get<1>(std::move(result));
          break;
        }
        case 1: {
          auto result = co_await (racer.recv() || asio::post(ex, asio::use_awaitable));
          if (result.index() == 0) r = std::get<0>(std::move(result));
          break;
        }
        case 2: {
          asio::steady_timer timer(ex, 0ms);
          auto result = co_await (racer.recv() || timer.async_wait(asio::use_awaitable));
          if (result.index() == 0) r = std::get<0>(std::move(result));
          break;
        }
        default: r = co_await racer.recv(); break;  // progress, whatever the races do
      }
      if (!r) {
        ++cancelled;
        continue;
      }
      REQUIRE(r->has_value());
      REQUIRE((*r)->sequence == got.size() + 2);  // none lost, none twice
      got.push_back((*r)->sequence);
    }
    CHECK(cancelled > 0);
    CHECK(racer.try_recv().error().code == errc::empty);
  });
}

TEST_CASE("remote: a cancelled connect leaves the start unfixed, and the next one fixes it", "[redis][remote]") {
  auto server = start_redis_or_skip();
  if (!server) return;
  run_test([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto writer_conn = co_await client_of(*server);
    stream_writer writer(*writer_conn);
    co_await writer.write_range(1, 1);
    std::uint64_t next = 2;
    for (int round = 0; round < 60; ++round) {
      RemoteSubscription sub{ex, options_for(*server), "orders", std::nullopt, Start::now()};
      // Cancelled somewhere while connecting or asking for the last ID, or not at all.
      const int posts = round % 4;
      auto racer = [&]() -> asio::awaitable<void> {
        for (int i = 0; i < posts; ++i) co_await asio::post(ex, asio::use_awaitable);
      };
      (void)co_await (sub.connect() || racer());
      co_await sub.connect();
      co_await writer.write_range(next, next);
      co_await expect_event(sub, next);  // not an older one: now() was fixed by this connect
      ++next;
    }
  });
}

TEST_CASE("remote: try_recv reads what recv fetched, and never waits", "[redis][remote]") {
  auto server = start_redis_or_skip();
  if (!server) return;
  run_test([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto writer_conn = co_await client_of(*server);
    stream_writer writer(*writer_conn);
    co_await writer.write_range(1, 3);
    RemoteSubscription sub{ex, options_for(*server), "orders", std::nullopt, Start::after(0)};
    CHECK(sub.try_recv().error().code == errc::empty);  // nothing fetched yet
    co_await expect_event(sub, 1);                      // fetches 1..3
    RecvResult r = sub.try_recv();
    REQUIRE(r);
    CHECK(r->sequence == 2);
    r = sub.try_recv();
    REQUIRE(r);
    CHECK(r->sequence == 3);
    CHECK(sub.try_recv().error().code == errc::empty);
  });
}

TEST_CASE("remote: unsubscribe completes a pending recv with closed, and every later one", "[redis][remote]") {
  auto server = start_redis_or_skip();
  if (!server) return;
  run_test([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto watcher = co_await client_of(*server);
    RemoteSubscription sub{ex, options_for(*server), "orders"};
    auto unsubscribe_when_blocked = [&]() -> asio::awaitable<void> {
      co_await wait_blocked_clients(*watcher, 1);
      sub.unsubscribe();
    };
    const RecvResult r = co_await (sub.recv() && unsubscribe_when_blocked());
    CHECK(r.error().code == errc::closed);
    const auto later = co_await sub.recv();
    CHECK(later.error().code == errc::closed);
    CHECK(sub.try_recv().error().code == errc::closed);
    co_await sub.connect();  // completes at once
    sub.unsubscribe();       // idempotent
    co_await wait_blocked_clients(*watcher, 0);
  });
}

TEST_CASE("remote: unsubscribe from another thread ends the recv pending on the io thread", "[redis][remote]") {
  auto server = start_redis_or_skip();
  if (!server) return;
  for (int round = 0; round < 20; ++round) {
    asio::io_context io;
    RemoteSubscription sub{io.get_executor(), options_for(*server), "orders"};
    RecvResult result;
    bool done = false;
    std::exception_ptr failure;
    asio::co_spawn(
        io, [&]() -> asio::awaitable<void> { result = co_await sub.recv(); },
        [&](std::exception_ptr e) {
          failure = e;
          done = true;
        });
    std::thread runner([&] { io.run_for(30s); });
    // Wherever the receive is (not started, connecting, asking for the start, blocked): closed.
    sub.unsubscribe();
    runner.join();
    REQUIRE(done);
    if (failure) std::rethrow_exception(failure);
    CHECK(result.error().code == errc::closed);
    CHECK(io.stopped());
  }
}

TEST_CASE("remote: reconnects after kill -9 and a restart, losing and repeating nothing", "[redis][remote]") {
  auto server = start_redis_or_skip();
  if (!server) return;
  run_test([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto writer_conn = co_await client_of(*server);
    stream_writer writer(*writer_conn);
    co_await writer.write_range(1, 3);
    RemoteOptions options = options_for(*server);
    options.batch = 1;
    RemoteSubscription global{ex, options, "", std::nullopt, Start::after(0)};
    RemoteSubscription orders{ex, options, "orders", std::nullopt, Start::after(0)};
    co_await expect_event(global, 1);
    co_await expect_event(orders, 1);

    // Killed between receives.
    server->kill9();
    server->restart();
    co_await writer_conn->connect();
    co_await writer.write_range(4, 5);
    for (std::uint64_t s = 2; s <= 5; ++s) {
      co_await expect_event(global, s);
      co_await expect_event(orders, s);
    }

    // Killed while both wait in XREAD BLOCK; restarted while they back off.
    auto kill_restart_write = [&]() -> asio::awaitable<void> {
      co_await wait_blocked_clients(*writer_conn, 2);
      server->kill9();
      server->restart();
      co_await writer_conn->connect();
      co_await writer.write_range(6, 6);
    };
    const auto [six_global, six_orders] =
        co_await (expect_event(global, 6) && (expect_event(orders, 6) && kill_restart_write()));
    CHECK(six_global->collection == "orders");
    CHECK(six_orders->sequence == 6);
    CHECK(global.try_recv().error().code == errc::empty);
  });
}

TEST_CASE("remote: gives up after max_reconnect_attempts, says why, and tries again on the next recv",
          "[redis][remote]") {
  auto server = start_redis_or_skip();
  if (!server) return;
  run_test([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    const RemoteOptions options = quick_retries(aurora::redis::Endpoint::local(server->dir() + "/missing.sock"), 3);
    RemoteSubscription sub{ex, options, "orders"};
    for (int round = 0; round < 2; ++round) {
      try {
        (void)co_await sub.recv();
        FAIL("no error");
      } catch (const boost::system::system_error& e) {
        CHECK(e.code() == boost::system::errc::no_such_file_or_directory);
        CHECK_THAT(e.what(), Catch::Contains("\"aurora:orders\": gave up after 3 failed attempts to reach Redis; "
                                             "the last one: cannot connect"));
        CHECK_THAT(e.what(), Catch::Contains(options.endpoint.to_string()));
      }
    }
  });
}

TEST_CASE("remote: a Redis that answers but is not ready yet (LOADING after a restart) is retried", "[redis][remote]") {
  const std::string loading = "-LOADING Redis is loading the dataset in memory\r\n";
  SECTION("the receive gets the entry once Redis is ready") {
    run_test([&](asio::any_io_executor ex) -> asio::awaitable<void> {
      aurora::ChangeEvent ev;
      ev.sequence = 1;
      ev.commit = 1;
      ev.collection = "orders";
      ev.document_id = "a";
      ev.operation = OperationType::Insert;
      ev.document = std::make_shared<const aurora::Document>(aurora::Document{{"i", 1}});
      fake_server fake(ex);
      asio::co_spawn(ex,
                     serve_in_turn(fake, {loading, "-BUSY Redis is busy running a script.\r\n",
                                          xread_reply("aurora:*", aurora::redis::encode_entry(ev, 0))}),
                     asio::detached);
      RemoteSubscription sub{ex, fake_options(fake, 3), "", std::nullopt, Start::after(0)};
      const RecvResult r = co_await sub.recv();
      REQUIRE(r.has_value());
      CHECK(r->sequence == 1);
      CHECK(r->document_id == "a");
      sub.unsubscribe();
    });
  }
  SECTION("after max_reconnect_attempts it gives up with try_again, saying why") {
    run_test([&](asio::any_io_executor ex) -> asio::awaitable<void> {
      fake_server fake(ex);
      asio::co_spawn(ex, serve_in_turn(fake, {loading, loading}), asio::detached);
      RemoteSubscription sub{ex, fake_options(fake, 2), "", std::nullopt, Start::after(0)};
      try {
        (void)co_await sub.recv();
        FAIL("no error");
      } catch (const boost::system::system_error& e) {
        CHECK(e.code() == asio::error::try_again);
        CHECK_THAT(e.what(), Catch::Contains("gave up after 2 failed attempts") &&
                                 Catch::Contains("Redis is not ready: LOADING Redis is loading"));
      }
    });
  }
}

TEST_CASE("remote: a batch larger than max_reply_bytes is fetched in smaller ones, never as a failure",
          "[redis][remote]") {
  auto server = start_redis_or_skip();
  if (!server) return;
  run_test([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto c = co_await client_of(*server);
    stream_writer writer(*c);
    for (std::uint64_t s = 1; s <= 10; ++s) {
      aurora::ChangeEvent ev = make_event(s);
      ev.document = std::make_shared<const aurora::Document>(aurora::Document{{"pad", std::string(300, 'x')}});
      co_await writer.write(ev);
    }
    RemoteOptions o = options_for(*server);
    o.max_reply_bytes = 1024;      // one entry (about 450 bytes) fits, the default COUNT 256 does not
    o.max_reconnect_attempts = 1;  // any failed attempt would throw
    RemoteSubscription sub{ex, o, "", std::nullopt, Start::after(0)};
    for (std::uint64_t s = 1; s <= 10; ++s) co_await expect_event(sub, s);
    sub.unsubscribe();
  });
}

TEST_CASE("remote: a key that is not a stream is a server_error", "[redis][remote]") {
  auto server = start_redis_or_skip();
  if (!server) return;
  run_test([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto c = co_await client_of(*server);
    const command set{"SET", "aurora:*", "not a stream"};
    (void)co_await call(*c, set);
    for (const Start start : {Start::now(), Start::after(0)}) {
      RemoteSubscription sub{ex, options_for(*server), "", std::nullopt, start};
      try {
        (void)co_await sub.recv();
        FAIL("no error");
      } catch (const boost::system::system_error& e) {
        CHECK(e.code() == connection_error::server_error);
        CHECK_THAT(e.what(), Catch::Contains("WRONGTYPE"));
        CHECK_THAT(e.what(), Catch::Contains("\"aurora:*\""));
        CHECK(occurrences(e.what(), e.code().message()) == 1);
      }
    }
  });
}

TEST_CASE("remote: one recv at a time, and empty or moved-from subscriptions are closed", "[redis][remote]") {
  auto server = start_redis_or_skip();
  if (!server) return;
  run_test([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    RemoteSubscription empty;
    CHECK_FALSE(empty);
    CHECK(empty.stream_key().empty());
    const auto from_empty = co_await empty.recv();
    CHECK(from_empty.error().code == errc::closed);
    CHECK(empty.try_recv().error().code == errc::closed);
    co_await empty.connect();

    RemoteSubscription sub{ex, options_for(*server), "orders"};
    auto second = [&]() -> asio::awaitable<void> {
      co_await asio::post(ex, asio::use_awaitable);  // the first recv is pending by now
      try {
        (void)co_await sub.recv();
        FAIL("no error");
      } catch (const aurora::error& e) {
        CHECK(e.code() == errc::invalid_argument);
        CHECK_THAT(e.what(), Catch::Contains("another recv or connect of this subscription is pending"));
      }
      sub.unsubscribe();
    };
    const RecvResult first = co_await (sub.recv() && second());
    CHECK(first.error().code == errc::closed);

    RemoteSubscription a{ex, options_for(*server), "orders"};
    RemoteSubscription b = std::move(a);
    CHECK_FALSE(a);  // NOLINT(bugprone-use-after-move): moved-from is specified
    const auto from_moved = co_await a.recv();
    CHECK(from_moved.error().code == errc::closed);
    CHECK(b.stream_key() == "aurora:orders");
    b = RemoteSubscription{};
    const auto from_reset = co_await b.recv();
    CHECK(from_reset.error().code == errc::closed);
  });
}

TEST_CASE("remote: options out of range are invalid_argument", "[redis][remote]") {
  asio::io_context io;
  const auto fails = [&](RemoteOptions o, const char* why) {
    INFO(why);
    // Named first: clang 14 garbles a multi-line matcher stringized inside the macro.
    const auto invalid_argument_naming_why = Catch::Predicate<aurora::error>([&](const aurora::error& e) {
      return e.code() == errc::invalid_argument && std::string(e.what()).find(why) != std::string::npos;
    });
    CHECK_THROWS_MATCHES(RemoteSubscription(io.get_executor(), o, "orders"), aurora::error,
                         invalid_argument_naming_why);
  };
  RemoteOptions o;
  o.batch = 0;
  fails(o, "batch must be at least 1");
  o = RemoteOptions{};
  o.block = -1ms;
  fails(o, "block must not be negative");
  o = RemoteOptions{};
  o.connect_timeout = 0ms;
  fails(o, "connect_timeout must be positive");
  o = RemoteOptions{};
  o.reconnect_delay = 0ms;
  fails(o, "reconnect_delay must be at least 1 ms");
  o = RemoteOptions{};
  o.max_reconnect_delay = 1ms;
  fails(o, "max_reconnect_delay must be at least reconnect_delay");
  o = RemoteOptions{};
  o.max_reply_bytes = 10;
  fails(o, "max_reply_bytes must be at least 1024");
  const RemoteSubscription designated{
      io.get_executor(), {.endpoint = aurora::redis::Endpoint{"unix:/x.sock"}, .prefix = "app:"}, ""};
  CHECK(designated.stream_key() == "app:*");
}
