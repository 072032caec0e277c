// Tests for aurora/redis/detail/connection.hpp: round trips with a real redis-server over its Unix
// socket, cancellation and close, connection loss, and (with a fake server over TCP) what a real
// server will not send.
#include "test_support.hpp"

#include <aurora/redis/detail/connection.hpp>
#include <aurora/redis/error.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

using namespace aurora_test;
using namespace std::chrono_literals;
using namespace boost::asio::experimental::awaitable_operators;
using aurora::redis::connection_error;
using aurora::redis::Endpoint;
using aurora::redis::detail::connection_options;

namespace {

// Runs `op`, which must throw boost::system::system_error; returns it.
template <class Op>
asio::awaitable<boost::system::system_error> expect_error(Op op) {
  try {
    co_await op();
  } catch (const boost::system::system_error& e) {
    co_return e;
  }
  FAIL("no error");
  co_return boost::system::system_error(boost::system::error_code());
}

}  // namespace

TEST_CASE("connection: pipelined round trips with XADD 0-<seq>, XREVRANGE and XREAD", "[redis][connection]") {
  auto server = start_redis_or_skip();
  if (!server) return;
  run_test([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    connection c(ex, server->endpoint());
    CHECK_FALSE(c.is_open());
    co_await c.connect();
    CHECK(c.is_open());
    const std::vector<command> commands{
        {"PING"},
        {"XADD", "s", "0-1", "f", "v1"},
        {"XADD", "s", "0-2", "f", "v2"},
        {"XADD", "s", "0-2", "f", "again"},
        {"XADD", "s", "0-1", "f", "older"},
        {"XREVRANGE", "s", "+", "-", "COUNT", "1"},
        {"XREAD", "COUNT", "10", "STREAMS", "s", "0-1"},
        {"XLEN", "s"},
    };
    const std::vector<reply> r = co_await c.pipeline(commands);
    REQUIRE(r.size() == commands.size());
    CHECK((r[0].kind == reply_kind::status && r[0].text == "PONG"));
    CHECK((r[1].kind == reply_kind::string && r[1].text == "0-1"));
    CHECK(r[2].text == "0-2");
    // Redis itself refuses an ID at or below the top: a restarted bridge cannot write twice.
    CHECK(r[3].is_error());
    CHECK_THAT(r[3].text, Catch::Contains("equal or smaller"));
    CHECK(r[4].is_error());
    REQUIRE(r[5].elements.size() == 1);
    CHECK(r[5].elements[0].elements[0].text == "0-2");
    // XREAD from 0-1 returns the IDs strictly above it.
    REQUIRE(r[6].kind == reply_kind::array);
    const reply& entries = r[6].elements.at(0).elements.at(1);
    REQUIRE(entries.elements.size() == 1);
    CHECK(entries.elements[0].elements[0].text == "0-2");
    CHECK(entries.elements[0].elements[1].elements[1].text == "v2");
    CHECK(r[7].integer == 2);
    CHECK(c.pending_replies() == 0);
    CHECK(c.is_open());
  });
}

TEST_CASE("connection: values are binary-safe, and large replies arrive whole", "[redis][connection]") {
  auto server = start_redis_or_skip();
  if (!server) return;
  run_test([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    connection c(ex, server->endpoint());
    co_await c.connect();
    std::string value(1 << 20, 'x');
    value.replace(1000, 5, std::string("\r\n\0$*", 5));
    const command set{"SET", "k", value};
    const auto set_reply = co_await call(c, set);
    CHECK(set_reply.text == "OK");
    const command get{"GET", "k"};
    const reply r = co_await call(c, get);
    CHECK(r.kind == reply_kind::string);
    CHECK(r.text == value);
  });
}

TEST_CASE("connection: a cancelled receive keeps the connection and the reply", "[redis][connection]") {
  auto server = start_redis_or_skip();
  if (!server) return;
  run_test([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto c = co_await client_of(*server);
    auto writer = co_await client_of(*server);
    const command xread{"XREAD", "BLOCK", "0", "STREAMS", "s", "$"};
    co_await c->send(std::span<const command>(&xread, 1));
    CHECK(c->pending_replies() == 1);
    for (int round = 0; round < 3; ++round) {
      // Nothing can arrive: the timer wins every time.
      asio::steady_timer timer(ex, 20ms);
      const auto result = co_await (c->receive() || timer.async_wait(asio::use_awaitable));
      CHECK(result.index() == 1);
      CHECK(c->is_open());
      CHECK(c->pending_replies() == 1);
    }
    const command xadd{"XADD", "s", "0-1", "f", "v"};
    const auto added = co_await call(*writer, xadd);
    CHECK(added.text == "0-1");
    const reply r = co_await c->receive();
    REQUIRE(r.kind == reply_kind::array);
    CHECK(r.elements[0].elements[1].elements[0].elements[0].text == "0-1");
    CHECK(c->pending_replies() == 0);
    const command ping{"PING"};
    const auto pong = co_await call(*c, ping);
    CHECK(pong.text == "PONG");
  });
}

TEST_CASE("connection: a cancelled pipeline closes the connection, which connects again", "[redis][connection]") {
  auto server = start_redis_or_skip();
  if (!server) return;
  run_test([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto c = co_await client_of(*server);
    const command blpop{"BLPOP", "nothing", "0"};
    asio::steady_timer timer(ex, 20ms);
    const auto result = co_await (call(*c, blpop) || timer.async_wait(asio::use_awaitable));
    CHECK(result.index() == 1);
    CHECK_FALSE(c->is_open());
    CHECK(c->pending_replies() == 0);
    const command ping{"PING"};
    const auto e = co_await expect_error([&]() -> asio::awaitable<void> { co_await call(*c, ping); });
    CHECK(e.code() == connection_error::not_connected);
    co_await c->connect();
    const auto pong = co_await call(*c, ping);
    CHECK(pong.text == "PONG");
  });
}

TEST_CASE("connection: close() completes a pending receive with operation_aborted", "[redis][connection]") {
  auto server = start_redis_or_skip();
  if (!server) return;
  run_test([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto c = co_await client_of(*server);
    const command blpop{"BLPOP", "nothing", "0"};
    co_await c->send(std::span<const command>(&blpop, 1));
    boost::system::error_code got;
    auto receiver = [&]() -> asio::awaitable<void> {
      const auto e = co_await expect_error([&]() -> asio::awaitable<void> { (void)co_await c->receive(); });
      got = e.code();
    };
    auto closer = [&]() -> asio::awaitable<void> {
      co_await asio::post(ex, asio::use_awaitable);
      c->close();
    };
    co_await (receiver() && closer());
    CHECK(got == asio::error::operation_aborted);
    CHECK_FALSE(c->is_open());
    (void)ex;
  });
}

TEST_CASE("connection: errors name the endpoint and what failed", "[redis][connection]") {
  auto server = start_redis_or_skip();
  if (!server) return;
  run_test([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    const Endpoint missing = Endpoint::local(server->dir() + "/missing.sock");
    connection c(ex, missing);
    const command ping{"PING"};
    auto e = co_await expect_error([&]() -> asio::awaitable<void> { co_await call(c, ping); });
    CHECK(e.code() == connection_error::not_connected);
    CHECK_THAT(e.what(), Catch::Contains("aurora::redis " + missing.to_string() + ": send"));
    e = co_await expect_error([&]() -> asio::awaitable<void> { (void)co_await c.receive(); });
    CHECK(e.code() == connection_error::not_connected);
    e = co_await expect_error([&]() -> asio::awaitable<void> { co_await c.connect(); });
    CHECK(e.code() == boost::system::errc::no_such_file_or_directory);
    CHECK_THAT(e.what(), Catch::Contains("aurora::redis " + missing.to_string() + ": cannot connect"));
    CHECK_FALSE(c.is_open());
  });
}

TEST_CASE("connection: kill -9 of the server fails the pending receive, and its data survives a restart",
          "[redis][connection]") {
  auto server = start_redis_or_skip();
  if (!server) return;
  run_test([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    connection c(ex, server->endpoint());
    co_await c.connect();
    const command xadd{"XADD", "s", "0-7", "f", "v"};
    const auto added = co_await call(c, xadd);
    CHECK(added.text == "0-7");
    const command blpop{"BLPOP", "nothing", "0"};
    co_await c.send(std::span<const command>(&blpop, 1));
    server->kill9();
    const auto e = co_await expect_error([&]() -> asio::awaitable<void> { (void)co_await c.receive(); });
    CHECK((e.code() == asio::error::eof || e.code() == asio::error::connection_reset));
    CHECK_THAT(e.what(), Catch::Contains("the server closed the connection"));
    CHECK_FALSE(c.is_open());
    const auto refused = co_await expect_error([&]() -> asio::awaitable<void> { co_await c.connect(); });
    CHECK(refused.code() == boost::system::errc::connection_refused);

    server->restart();
    co_await c.connect();
    const command xrange{"XRANGE", "s", "-", "+"};
    const reply r = co_await call(c, xrange);
    REQUIRE(r.elements.size() == 1);
    CHECK(r.elements[0].elements[0].text == "0-7");
  });
}

TEST_CASE("connection: TCP, with a host name tried address by address", "[redis][connection]") {
  run_test(
      [&](asio::any_io_executor ex) -> asio::awaitable<void> {
        for (const char* host : {"127.0.0.1", "localhost"}) {
          fake_server fake(ex);
          asio::co_spawn(ex, fake.serve("+PONG\r\n", true), asio::detached);
          connection c(ex, Endpoint::tcp(host, fake.port()));
          co_await c.connect();
          const command ping{"PING"};
          const auto pong = co_await call(c, ping);
          CHECK(pong.text == "PONG");
        }
      },
      std::chrono::seconds(20));
}

TEST_CASE("connection: what a broken server sends is an error, and closes the connection", "[redis][connection]") {
  struct bad_case {
    std::string response;
    boost::system::error_code code;
    std::string why;
  };
  const std::vector<bad_case> cases{
      {"!garbage\r\n", connection_error::protocol_error, "Protocol error"},
      {"*-3\r\n", connection_error::protocol_error, "Multi-bulk length out of range"},
      {"$5000\r\n" + std::string(5000, 'x') + "\r\n", connection_error::reply_too_large, "more than 1024 bytes"},
      {"$10\r\nabc", asio::error::eof, "the server closed the connection"},
  };
  for (const bad_case& c : cases) {
    INFO(c.why);
    run_test(
        [&](asio::any_io_executor ex) -> asio::awaitable<void> {
          fake_server fake(ex);
          asio::co_spawn(ex, fake.serve(c.response, true), asio::detached);
          connection conn(ex, Endpoint::tcp("127.0.0.1", fake.port()), connection_options{.max_reply_bytes = 1024});
          co_await conn.connect();
          const command ping{"PING"};
          const auto e = co_await expect_error([&]() -> asio::awaitable<void> { co_await call(conn, ping); });
          CHECK(e.code() == c.code);
          CHECK_THAT(e.what(), Catch::Contains(c.why));
          CHECK_THAT(e.what(), Catch::StartsWith("aurora::redis tcp://127.0.0.1:"));
          CHECK_FALSE(conn.is_open());
        },
        std::chrono::seconds(20));
  }
}

TEST_CASE("connection: a closed TCP port is connection_refused", "[redis][connection]") {
  run_test(
      [&](asio::any_io_executor ex) -> asio::awaitable<void> {
        std::uint16_t port = 0;
        {
          fake_server closed(ex);  // a port that was free a moment ago, and is closed again
          port = closed.port();
        }
        connection c(ex, Endpoint::tcp("127.0.0.1", port));
        const auto e = co_await expect_error([&]() -> asio::awaitable<void> { co_await c.connect(); });
        CHECK(e.code() == boost::system::errc::connection_refused);
      },
      std::chrono::seconds(20));
}
