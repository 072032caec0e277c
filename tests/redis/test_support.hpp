// Helpers of the Redis tests: running a test coroutine with a time bound, a Redis client, a fake server.
#pragma once

#include "redis_server.hpp"

#include <aurora/change_event.hpp>
#include <aurora/redis/detail/connection.hpp>
#include <aurora/redis/detail/resp.hpp>
#include <aurora/redis/event_codec.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace aurora_test {

// How many times `part` occurs in `text` (an error's what() names its code's text once).
inline std::size_t occurrences(std::string_view text, std::string_view part) {
  std::size_t n = 0;
  for (std::size_t at = text.find(part); at != std::string_view::npos; at = text.find(part, at + part.size())) ++n;
  return n;
}

// A started redis_server, or null when redis-server is not on PATH: the test is then skipped
// (ctest reports it so, by the marker printed here), except under CI=true, where it fails.
inline std::unique_ptr<redis_server> start_redis_or_skip() {
  const std::optional<std::string> exe = find_on_path("redis-server");
  if (!exe) {
    if (under_ci()) FAIL("redis-server is not on PATH, and under CI=true the Redis tests must run");
    std::printf("AURORA_REDIS_SKIPPED: redis-server is not on PATH; install redis-server to run this test\n");
    WARN("skipped: redis-server is not on PATH");
    return nullptr;
  }
  return std::make_unique<redis_server>(*exe);
}

namespace asio = boost::asio;
using aurora::redis::detail::command;
using aurora::redis::detail::connection;
using aurora::redis::detail::reply;
using aurora::redis::detail::reply_kind;

// Runs the coroutine `make(executor)` on a fresh io_context until the context runs out of work,
// at most `limit`. Fails when the coroutine did not finish or work was left behind (a leaked
// operation keeps run() from returning); rethrows what the coroutine threw. Everything runs on
// the calling thread, so Catch2 assertions inside the coroutine are fine.
template <class Make>
void run_test(Make make, std::chrono::seconds limit = std::chrono::seconds(60)) {
  asio::io_context io;
  bool done = false;
  std::exception_ptr failure;
  asio::co_spawn(io, make(io.get_executor()), [&](std::exception_ptr e) {
    done = true;
    failure = e;
  });
  io.run_for(limit);
  if (failure) std::rethrow_exception(failure);
  REQUIRE(done);
  REQUIRE(io.stopped());
}

// Sends one command and returns its reply.
inline asio::awaitable<reply> call(connection& c, const command& cmd) {
  std::vector<reply> replies = co_await c.pipeline(std::span<const command>(&cmd, 1));
  co_return std::move(replies.front());
}

// A connected client of `server`.
inline asio::awaitable<std::unique_ptr<connection>> client_of(const redis_server& server) {
  auto c = std::make_unique<connection>(co_await asio::this_coro::executor, server.endpoint());
  co_await c->connect();
  co_return c;
}

// The XADD command that appends `entry` to `key`.
inline command xadd_command(const std::string& key, const aurora::redis::StreamEntry& entry) {
  command cmd{"XADD", key, entry.id};
  for (const auto& [field, value] : entry.fields) {
    cmd.push_back(field);
    cmd.push_back(value);
  }
  return cmd;
}

// An event as the database would publish it (its timestamp at microseconds).
inline aurora::ChangeEvent make_event(std::uint64_t sequence, std::string collection = "orders",
                                      aurora::OperationType op = aurora::OperationType::Insert, int value = 0) {
  aurora::ChangeEvent ev;
  ev.collection = std::move(collection);
  ev.document_id = "doc-" + std::to_string(sequence);
  ev.operation = op;
  if (op != aurora::OperationType::Delete)
    ev.document = std::make_shared<const aurora::Document>(aurora::Document{{"n", value}, {"seq", sequence}});
  if (op != aurora::OperationType::Insert)
    ev.old_document = std::make_shared<const aurora::Document>(aurora::Document{{"n", value - 1}});
  ev.timestamp = std::chrono::system_clock::time_point(std::chrono::microseconds(1'790'000'000'000'000 + sequence));
  ev.sequence = sequence;
  return ev;
}

// Writes events to Redis as the bridge will: each to its collection's stream and to the global
// stream, with `prev` the previous sequence of that stream.
class stream_writer {
 public:
  explicit stream_writer(connection& c, std::string prefix = "aurora:") : c_(c), prefix_(std::move(prefix)) {}

  asio::awaitable<void> write(const aurora::ChangeEvent& ev) {
    const std::string collection_key = aurora::redis::collection_stream_key(prefix_, ev.collection);
    const std::string global_key = aurora::redis::global_stream_key(prefix_);
    const std::vector<command> commands{
        xadd_command(collection_key, aurora::redis::encode_entry(ev, prev_[collection_key])),
        xadd_command(global_key, aurora::redis::encode_entry(ev, prev_[global_key]))};
    const std::vector<reply> replies = co_await c_.pipeline(commands);
    for (const reply& r : replies) REQUIRE(r.kind == reply_kind::string);
    prev_[collection_key] = ev.sequence;
    prev_[global_key] = ev.sequence;
  }

  // Writes make_event(s, collection) for s in [first, last].
  asio::awaitable<void> write_range(std::uint64_t first, std::uint64_t last, std::string collection = "orders") {
    for (std::uint64_t s = first; s <= last; ++s) co_await write(make_event(s, collection));
  }

 private:
  connection& c_;
  std::string prefix_;
  std::map<std::string, std::uint64_t> prev_;
};

// A fake Redis on 127.0.0.1 (any free port) for what a real server will not do: it accepts one
// connection, reads once (the client's command), writes `response`, then closes or keeps the
// connection open.
class fake_server {
 public:
  explicit fake_server(const asio::any_io_executor& ex)
      : acceptor_(ex, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {}

  [[nodiscard]] std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

  asio::awaitable<void> serve(std::string response, bool close_after) {
    asio::ip::tcp::socket socket = co_await acceptor_.async_accept(asio::use_awaitable);
    char buf[1024];
    (void)co_await socket.async_read_some(asio::buffer(buf), asio::use_awaitable);
    co_await asio::async_write(socket, asio::buffer(response), asio::use_awaitable);
    if (!close_after) {
      // Wait for the client to close.
      boost::system::error_code ec;
      (void)co_await socket.async_read_some(asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
    }
  }

 private:
  asio::ip::tcp::acceptor acceptor_;
};

}  // namespace aurora_test
