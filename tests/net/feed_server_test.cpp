// Tests of FeedServer through a Beast client: the protocol, the safety rules, static files and
// many connections. Client and server share one io_context run on the test's thread (so Catch2
// asserts on the main thread only), and every test runs under a deadline. Nothing waits for
// time to pass: a test that needs the server to have handled a message sends a "fence" (a message
// that gets an error reply) and reads up to the reply.
#include <aurora/database.hpp>
#include <aurora/net/feed_server.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace websocket = boost::beast::websocket;
using aurora::net::FeedServer;
using aurora::net::FeedServerOptions;
using json = nlohmann::json;
using tcp = asio::ip::tcp;

namespace {

using client = websocket::stream<beast::tcp_stream>;

// One test's world: a database, the io_context everything runs on, and a started server.
struct world {
  explicit world(const FeedServerOptions& options, const aurora::Options& db_options = {})
      : db(db_options), server(io.get_executor(), db, options) {
    server.start();
  }

  // Runs `body` (and the server) until `body` finishes, at most `limit`; rethrows its failure.
  void run(asio::awaitable<void> body, std::chrono::seconds limit = std::chrono::seconds(120)) {
    bool done = false;
    std::exception_ptr failure;
    asio::co_spawn(io, std::move(body), [&](std::exception_ptr e) {
      done = true;
      failure = std::move(e);
      io.stop();
    });
    io.run_for(limit);
    if (failure) std::rethrow_exception(failure);
    REQUIRE(done);  // otherwise the test ran out of time
  }

  aurora::Database db;
  asio::io_context io;
  FeedServer server;
};

asio::awaitable<tcp::socket> dial(std::uint16_t port) {
  tcp::socket socket(co_await asio::this_coro::executor);
  const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), port);
  co_await socket.async_connect(endpoint, asio::use_awaitable);
  socket.set_option(tcp::no_delay(true));
  co_return socket;
}

// A WebSocket handshake: the open client, or none and the HTTP status it was refused with.
struct handshake_result {
  std::unique_ptr<client> ws;
  unsigned status = 0;
};

asio::awaitable<handshake_result> handshake(std::uint16_t port, std::string target, std::string bearer,
                                            std::string origin, std::string host = {}) {
  tcp::socket socket = co_await dial(port);
  auto ws = std::make_unique<client>(std::move(socket));
  ws->set_option(websocket::stream_base::decorator([bearer, origin](websocket::request_type& req) {
    if (!bearer.empty()) req.set(http::field::authorization, "Bearer " + bearer);
    if (!origin.empty()) req.set(http::field::origin, origin);
  }));
  websocket::response_type res;
  if (host.empty()) host = "127.0.0.1:" + std::to_string(port);
  auto [ec] = co_await ws->async_handshake(res, host, target, asio::as_tuple(asio::use_awaitable));
  handshake_result out;
  out.status = res.result_int();
  if (!ec) out.ws = std::move(ws);
  co_return out;
}

asio::awaitable<std::unique_ptr<client>> connect(world& w) {
  handshake_result h = co_await handshake(w.server.port(), "/feed", "", "");
  REQUIRE(h.status == 101);
  REQUIRE(h.ws);
  co_return std::move(h.ws);
}

asio::awaitable<void> send(client& ws, std::string text) {
  ws.text(true);
  co_await ws.async_write(asio::buffer(text), asio::use_awaitable);
}

asio::awaitable<json> next(client& ws) {
  beast::flat_buffer buffer;
  co_await ws.async_read(buffer, asio::use_awaitable);
  REQUIRE(ws.got_text());
  co_return json::parse(beast::buffers_to_string(buffer.data()));
}

// Sends a message that gets an error reply and returns what arrived before the reply: once it
// returns, the server has handled everything sent before.
asio::awaitable<std::vector<json>> fence(client& ws) {
  co_await send(ws, R"({"op":"unsubscribe","id":"fence"})");
  std::vector<json> before;
  for (;;) {
    json m = co_await next(ws);
    if (m["type"] == "error" && m["id"] == "fence") co_return before;
    before.push_back(std::move(m));
  }
}

asio::awaitable<json> expect_error(client& ws, std::string code) {
  json m = co_await next(ws);
  INFO(m.dump());
  CHECK(m["type"] == "error");
  CHECK(m["code"] == code);
  CHECK(m["message"].is_string());
  co_return m;
}

std::string subscribe_after(const std::string& id, const std::string& collection, std::uint64_t after,
                            const std::string& filter = "null") {
  return R"({"op":"subscribe","id":")" + id + R"(","collection":)" +
         (collection.empty() ? std::string("null") : "\"" + collection + "\"") + R"(,"filter":)" + filter +
         R"(,"start":{"after":)" + std::to_string(after) + "}}";
}

// Reads what arrived before the connection was closed (by the server); returns how many messages.
asio::awaitable<int> messages_before_close(client& ws) {
  int count = 0;
  for (;;) {
    beast::flat_buffer buffer;
    auto [ec, n] = co_await ws.async_read(buffer, asio::as_tuple(asio::use_awaitable));
    (void)n;
    if (ec) co_return count;
    ++count;
  }
}

// Yields to the io_context until `done()` holds (no timing involved; the test deadline bounds it).
template <class Pred>
asio::awaitable<void> until(Pred done) {
  const auto executor = co_await asio::this_coro::executor;
  while (!done()) co_await asio::post(executor, asio::use_awaitable);
}

// ---------------------------------------------------------------------------------------------

asio::awaitable<void> events_and_transitions(world& w) {
  auto ws = co_await connect(w);
  co_await send(
      *ws, subscribe_after("s1", "orders", w.db.last_sequence(), R"({"where":{"qty":{"$gte":2}},"transitions":true})"));
  const std::string a = w.db.insert("orders", json{{"qty", 2}});  // enter
  w.db.update("orders", a, json{{"qty", 3}});                     // change
  w.db.update("orders", a, json{{"qty", 1}});                     // leave
  w.db.insert("orders", json{{"qty", 0}});                        // outside the view
  w.db.remove("orders", a);                                       // was outside the view
  const std::string b = w.db.insert("orders", json{{"qty", 5}});  // enter
  const char* transitions[] = {"enter", "change", "leave", "enter"};
  const std::string ids[] = {a, a, a, b};
  std::uint64_t last = 0;
  for (int i = 0; i < 4; ++i) {
    json m = co_await next(*ws);
    INFO(m.dump());
    CHECK(m["type"] == "event");
    CHECK(m["id"] == "s1");
    CHECK(m["transition"] == transitions[i]);
    CHECK(m["event"]["collection"] == "orders");
    CHECK(m["event"]["document_id"] == ids[i]);
    CHECK(m["event"]["sequence"].get<std::uint64_t>() > last);
    CHECK(m["event"]["timestamp"].is_string());
    last = m["event"]["sequence"].get<std::uint64_t>();
  }
  // Unsubscribe; once the server has handled it (the fence), nothing more arrives for s1.
  co_await send(*ws, R"({"op":"unsubscribe","id":"s1"})");
  co_await fence(*ws);
  CHECK(w.db.subscriber_count("orders") == 0);
  w.db.insert("orders", json{{"qty", 9}});
  const std::vector<json> late = co_await fence(*ws);
  CHECK(late.empty());
}

TEST_CASE("events carry the subscription id, the transition and the event", "[net][feed]") {
  world w({});
  w.run(events_and_transitions(w));
}

asio::awaitable<void> several_and_snapshot(world& w) {
  const std::string u1 = w.db.insert("users", json{{"tier", "gold"}});
  w.db.insert("users", json{{"tier", "silver"}});
  const std::string u3 = w.db.insert("users", json{{"tier", "gold"}});
  auto ws = co_await connect(w);
  co_await send(
      *ws, R"({"op":"subscribe","id":"w","collection":"users","filter":{"fields":{"tier":"gold"}},"snapshot":true})");
  json snap = co_await next(*ws);
  INFO(snap.dump());
  CHECK(snap["type"] == "snapshot");
  CHECK(snap["id"] == "w");
  CHECK(snap["sequence"] == w.db.last_sequence());
  REQUIRE(snap["documents"].size() == 2);
  CHECK(snap["documents"][0]["id"] == std::min(u1, u3));
  CHECK(snap["documents"][1]["id"] == std::max(u1, u3));
  CHECK(snap["documents"][0]["document"]["tier"] == "gold");
  const std::uint64_t now = w.db.last_sequence();
  co_await send(*ws, subscribe_after("g", "", now));
  co_await send(*ws, subscribe_after("o", "orders", now));
  co_await fence(*ws);
  const std::string u4 = w.db.insert("users", json{{"tier", "gold"}});
  const std::string o1 = w.db.insert("orders", json{{"sku", "A1"}});
  std::map<std::string, std::vector<std::string>> got;
  for (int i = 0; i < 4; ++i) {
    json m = co_await next(*ws);
    REQUIRE(m["type"] == "event");
    got[m["id"].get<std::string>()].push_back(m["event"]["document_id"].get<std::string>());
  }
  CHECK(got["w"] == std::vector<std::string>{u4});
  CHECK(got["g"] == std::vector<std::string>{u4, o1});
  CHECK(got["o"] == std::vector<std::string>{o1});
  const std::vector<json> extra = co_await fence(*ws);
  CHECK(extra.empty());
}

TEST_CASE("single_threaded connections without strands deliver the same events", "[net][feed]") {
  world w(FeedServerOptions{.single_threaded = true});
  w.run(events_and_transitions(w));
}

TEST_CASE("several subscriptions per connection, and a snapshot first", "[net][feed]") {
  world w({});
  w.run(several_and_snapshot(w));
}

asio::awaitable<void> start_positions(world& w) {
  for (int i = 0; i < 20; ++i) w.db.insert("c", json{{"i", i}});
  auto ws = co_await connect(w);
  co_await send(*ws, subscribe_after("lost", "c", 1));
  json lost = co_await expect_error(*ws, "history_lost");
  CHECK(lost["id"] == "lost");
  co_await send(*ws, subscribe_after("future", "c", 100));
  json future = co_await expect_error(*ws, "invalid_argument");
  CHECK(future["id"] == "future");
  // The connection is still usable.
  co_await send(*ws, R"({"op":"subscribe","id":"old","collection":"c","start":"oldest"})");
  co_await send(*ws, subscribe_after("a", "c", 18));
  std::vector<std::uint64_t> old_seqs;
  std::vector<std::uint64_t> a_seqs;
  while ((old_seqs.empty() || old_seqs.back() != 20) || (a_seqs.empty() || a_seqs.back() != 20)) {
    json m = co_await next(*ws);
    REQUIRE(m["type"] == "event");
    (m["id"] == "old" ? old_seqs : a_seqs).push_back(m["event"]["sequence"].get<std::uint64_t>());
  }
  CHECK(a_seqs == std::vector<std::uint64_t>{19, 20});
  REQUIRE(old_seqs.size() >= 8);
  CHECK(old_seqs.front() > 1);
  for (std::size_t i = 1; i < old_seqs.size(); ++i) CHECK(old_seqs[i] == old_seqs[i - 1] + 1);
}

TEST_CASE("start positions: after, oldest, history_lost and a future sequence", "[net][feed]") {
  world w({}, aurora::Options{.channel_capacity = 8});
  w.run(start_positions(w));
}

// The snapshot names the server's database; a resume that names another one is refused (the
// client's sequence belongs to that other database) and one that names this one goes on.
asio::awaitable<void> database_identity(world& w) {
  const std::string& database = w.server.database_id();
  const std::string first = w.db.insert("orders", json{{"n", 1}});
  auto ws = co_await connect(w);
  co_await send(*ws, R"({"op":"subscribe","id":"w","collection":"orders","snapshot":true})");
  const json snap = co_await next(*ws);
  INFO(snap.dump());
  REQUIRE(snap["type"] == "snapshot");
  CHECK(snap["database"] == database);
  const std::uint64_t seen = snap["sequence"].get<std::uint64_t>();
  const std::string second = w.db.insert("orders", json{{"n", 2}});
  const json live = co_await next(*ws);
  CHECK(live["event"]["document_id"] == second);

  json other = {{"op", "subscribe"},
                {"id", "other"},
                {"collection", "orders"},
                {"start", {{"after", seen}}},
                {"database", database + "x"}};
  co_await send(*ws, other.dump());
  const json refused = co_await expect_error(*ws, "database_mismatch");
  CHECK(refused["id"] == "other");
  CHECK(refused["message"].get<std::string>().find(database) != std::string::npos);

  json same = other;
  same["id"] = "same";
  same["database"] = database;
  co_await send(*ws, same.dump());
  const json resumed = co_await next(*ws);
  CHECK(resumed["id"] == "same");
  CHECK(resumed["event"]["document_id"] == second);
  CHECK(resumed["event"]["sequence"] == seen + 1);
  const std::vector<json> extra = co_await fence(*ws);
  CHECK(extra.empty());
  CHECK(first != second);
}

TEST_CASE("the snapshot names the database and a resume on another database is refused", "[net][feed]") {
  world w({});
  CHECK(w.server.database_id().size() == 36);  // an in-memory database: a UUID made by the server
  world other({});
  CHECK(other.server.database_id() != w.server.database_id());
  w.run(database_identity(w));
}

asio::awaitable<void> malformed_messages(world& w) {
  auto ws = co_await connect(w);
  co_await send(*ws, "not json");
  json e1 = co_await expect_error(*ws, "invalid_json");
  CHECK(e1["id"].is_null());
  ws->binary(true);
  const std::string bytes = "\x01\x02";
  co_await ws->async_write(asio::buffer(bytes), asio::use_awaitable);
  json e2 = co_await expect_error(*ws, "invalid_message");
  CHECK(e2["message"].get<std::string>().find("binary") != std::string::npos);
  co_await send(*ws, R"({"op":"dance","id":"x"})");
  json e3 = co_await expect_error(*ws, "unknown_op");
  CHECK(e3["id"] == "x");
  co_await send(*ws, R"({"op":"subscribe","id":"f","filter":{"where":{"age":{"$gt":[1]}}}})");
  json bad_filter = co_await expect_error(*ws, "invalid_filter");
  CHECK(bad_filter["id"] == "f");
  CHECK(bad_filter["message"].get<std::string>().find("age") != std::string::npos);
  co_await send(*ws, R"({"op":"unsubscribe","id":"nope"})");
  json e4 = co_await expect_error(*ws, "unknown_subscription");
  CHECK(e4["id"] == "nope");
  co_await send(*ws, R"({"op":"subscribe","id":"s","collection":"c"})");
  co_await send(*ws, R"({"op":"subscribe","id":"s","collection":"d"})");
  json e5 = co_await expect_error(*ws, "duplicate_subscription");
  CHECK(e5["id"] == "s");
  // Still usable: the first "s" delivers.
  const std::string id = w.db.insert("c", json{{"ok", true}});
  json ev = co_await next(*ws);
  CHECK(ev["type"] == "event");
  CHECK(ev["id"] == "s");
  CHECK(ev["event"]["document_id"] == id);
}

TEST_CASE("malformed messages get an error and the connection stays usable", "[net][feed][safety]") {
  world w({});
  w.run(malformed_messages(w));
}

asio::awaitable<void> subscription_limit(world& w) {
  auto ws = co_await connect(w);
  const std::uint64_t now = w.db.last_sequence();
  co_await send(*ws, subscribe_after("a", "c", now));
  co_await send(*ws, subscribe_after("b", "c", now));
  co_await send(*ws, subscribe_after("c", "c", now));
  json e = co_await expect_error(*ws, "too_many_subscriptions");
  CHECK(e["id"] == "c");
  co_await send(*ws, R"({"op":"unsubscribe","id":"a"})");
  co_await send(*ws, subscribe_after("c", "c", now));
  const std::vector<json> replies = co_await fence(*ws);
  CHECK(replies.empty());
  CHECK(w.db.subscriber_count("c") == 2);
}

TEST_CASE("subscriptions per connection are limited", "[net][feed][safety]") {
  world w(FeedServerOptions{.max_subscriptions = 2});
  w.run(subscription_limit(w));
}

asio::awaitable<void> token_rules(world& w) {
  const std::uint16_t port = w.server.port();
  const unsigned st1 = (co_await handshake(port, "/feed", "", "")).status;
  CHECK(st1 == 401);
  const unsigned st2 = (co_await handshake(port, "/feed", "wrong", "")).status;
  CHECK(st2 == 401);
  const unsigned st3 = (co_await handshake(port, "/feed?token=wrong", "", "")).status;
  CHECK(st3 == 401);
  const unsigned st4 = (co_await handshake(port, "/feed?token=s3cre", "", "")).status;
  CHECK(st4 == 401);
  handshake_result ok = co_await handshake(port, "/feed", "s3cret", "");
  CHECK(ok.status == 101);
  CHECK(ok.ws);
  const unsigned st5 = (co_await handshake(port, "/feed?token=s3cret", "", "")).status;
  CHECK(st5 == 101);
  const unsigned st6 = (co_await handshake(port, "/feed?x=1&token=s3%63ret", "", "")).status;
  CHECK(st6 == 101);
  const unsigned st7 = (co_await handshake(port, "/elsewhere?token=s3cret", "", "")).status;
  CHECK(st7 == 404);
}

TEST_CASE("with a token, a missing or wrong one gets 401 and no feed", "[net][feed][safety]") {
  world w(FeedServerOptions{.token = "s3cret"});
  w.run(token_rules(w));
}

asio::awaitable<void> origin_list(world& w) {
  const std::uint16_t port = w.server.port();
  const unsigned st8 = (co_await handshake(port, "/feed", "", "http://evil.example")).status;
  CHECK(st8 == 403);
  const unsigned st9 = (co_await handshake(port, "/feed", "", "http://good.example")).status;
  CHECK(st9 == 101);
  const unsigned st10 = (co_await handshake(port, "/feed", "", "")).status;  // not a browser
  CHECK(st10 == 101);
}

TEST_CASE("an Origin outside the allow-list gets 403", "[net][feed][safety]") {
  world w(FeedServerOptions{.allowed_origins = {"http://good.example"}});
  w.run(origin_list(w));
}

asio::awaitable<void> same_origin(world& w) {
  const std::uint16_t port = w.server.port();
  const std::string p = std::to_string(port);
  const unsigned st11 = (co_await handshake(port, "/feed", "", "http://evil.example")).status;
  CHECK(st11 == 403);
  const unsigned st12 = (co_await handshake(port, "/feed", "", "http://127.0.0.1:" + p)).status;
  CHECK(st12 == 101);
  const unsigned st13 = (co_await handshake(port, "/feed", "", "http://localhost:" + p, "localhost:" + p)).status;
  CHECK(st13 == 101);
  const unsigned st14 = (co_await handshake(port, "/feed", "", "http://[::1]:" + p, "[::1]:" + p)).status;
  CHECK(st14 == 101);
  // DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1 is "same origin".
  const unsigned st15 = (co_await handshake(port, "/feed", "", "http://evil.example:" + p, "evil.example:" + p)).status;
  CHECK(st15 == 403);
}

TEST_CASE("without an allow-list only the same origin, on an IP address or localhost, may open the feed",
          "[net][feed][safety]") {
  world w({});
  CHECK(w.server.local_endpoint().address() == asio::ip::make_address("127.0.0.1"));
  CHECK(w.server.port() != 0);
  w.run(same_origin(w));
}

asio::awaitable<void> too_big(world& w) {
  auto big = co_await connect(w);
  auto other = co_await connect(w);
  co_await send(*other, subscribe_after("o", "c", w.db.last_sequence()));
  co_await send(*big, std::string(4096, ' '));
  beast::flat_buffer buffer;
  auto [ec, n] = co_await big->async_read(buffer, asio::as_tuple(asio::use_awaitable));
  (void)n;
  REQUIRE(ec);
  if (ec == websocket::error::closed) {
    CHECK(big->reason().code == websocket::close_code::too_big);
  } else {
    // STYLE.md trap 9: Beast's close can reset the connection after its close frame.
    INFO(ec.message());
    CHECK((ec == asio::error::connection_reset || ec == asio::error::eof || ec == asio::error::broken_pipe));
  }
  // The other connection is unaffected.
  const std::string id = w.db.insert("c", json{{"x", 1}});
  json m = co_await next(*other);
  CHECK(m["event"]["document_id"] == id);
  co_await until([&] { return w.server.connection_count() == 1; });
}

TEST_CASE("a message over the limit closes the connection with 1009", "[net][feed][safety]") {
  world w(FeedServerOptions{.max_message_bytes = 1024});
  w.run(too_big(w));
}

// A client that stops reading while big events pile up gets `lagged` once it reads again, with
// exactly the count of events it did not get; a client that reads meanwhile gets everything.
asio::awaitable<void> slow_then_reads(world& w) {
  auto slow = co_await connect(w);
  auto fast = co_await connect(w);
  const std::uint64_t now = w.db.last_sequence();
  co_await send(*slow, subscribe_after("s", "big", now));
  co_await send(*fast, subscribe_after("f", "big", now));
  co_await fence(*slow);
  co_await fence(*fast);
  const std::string payload(std::size_t{64} * 1024, 'p');
  constexpr int total = 400;  // 25 MiB: more than the socket buffers hold
  for (int i = 0; i < total; ++i) {
    w.db.insert("big", json{{"i", i}, {"p", payload}});
    json m = co_await next(*fast);
    REQUIRE(m["type"] == "event");
    REQUIRE(m["event"]["document"]["i"] == i);
  }
  int received = 0;
  std::uint64_t missed = 0;
  for (;;) {
    json m = co_await next(*slow);
    if (m["type"] == "lagged") {
      CHECK(m["id"] == "s");
      missed = m["missed"].get<std::uint64_t>();
      break;
    }
    REQUIRE(m["type"] == "event");
    REQUIRE(m["event"]["document"]["i"] == received);
    ++received;
  }
  CHECK(missed >= 1);
  CHECK(received + static_cast<int>(missed) == total);
  // After the report it goes on normally.
  w.db.insert("big", json{{"i", total}});
  json after = co_await next(*slow);
  CHECK(after["type"] == "event");
  CHECK(after["event"]["document"]["i"] == total);
  json fast_last = co_await next(*fast);
  CHECK(fast_last["event"]["document"]["i"] == total);
}

TEST_CASE("a client that stops reading gets lagged and the others are unaffected", "[net][feed][safety]") {
  world w(FeedServerOptions{.max_queued_messages = 8, .slow_client_timeout = std::chrono::minutes(5)});
  w.run(slow_then_reads(w));
}

asio::awaitable<void> slow_is_dropped(world& w) {
  auto slow = co_await connect(w);
  auto fast = co_await connect(w);
  const std::uint64_t now = w.db.last_sequence();
  co_await send(*slow, subscribe_after("s", "big", now));
  co_await send(*fast, subscribe_after("f", "big", now));
  co_await fence(*slow);
  co_await fence(*fast);
  const std::string payload(std::size_t{64} * 1024, 'p');
  constexpr int total = 400;
  for (int i = 0; i < total; ++i) {
    w.db.insert("big", json{{"i", i}, {"p", payload}});
    json m = co_await next(*fast);
    REQUIRE(m["event"]["document"]["i"] == i);
  }
  // The slow client never reads: the server drops it after slow_client_timeout.
  co_await until([&] { return w.server.connection_count() == 1; });
  const int received = co_await messages_before_close(*slow);
  CHECK(received < total);
  // The other one goes on.
  w.db.insert("big", json{{"i", total}});
  json fast_last = co_await next(*fast);
  CHECK(fast_last["event"]["document"]["i"] == total);
}

TEST_CASE("a client that still does not read is disconnected", "[net][feed][safety]") {
  world w(FeedServerOptions{.max_queued_messages = 8, .slow_client_timeout = std::chrono::milliseconds(200)});
  w.run(slow_is_dropped(w));
}

// Subscribes with a snapshot and unsubscribes `pairs` times without reading a reply, then reads
// until the server closes the connection.
asio::awaitable<void> snapshot_flood(world& w) {
  const std::string payload(std::size_t{100} * 1024, 'p');
  w.db.insert("docs", json{{"p", payload}});
  auto ws = co_await connect(w);
  constexpr int pairs = 200;  // 20 MB of snapshots: more than the sockets' buffers hold
  for (int i = 0; i < pairs; ++i) {
    co_await send(*ws, R"({"op":"subscribe","id":"a","collection":"docs","snapshot":true})");
    co_await send(*ws, R"({"op":"unsubscribe","id":"a"})");
  }
  // The server stopped reading once the queue was full; the client is cut off after
  // slow_client_timeout. (Before, it read every request and queued all 200 snapshots.)
  co_await until([&] { return w.server.connection_count() == 0; });
  const int snapshots = co_await messages_before_close(*ws);
  CHECK(snapshots < pairs);
}

TEST_CASE("a client that sends requests without reading the replies stays within the queue limits",
          "[net][feed][safety]") {
  // No idle timeout to end it: without the limit on reading, the connection would stay open with
  // every snapshot queued, and the run would time out.
  world w(FeedServerOptions{.max_queued_bytes = std::size_t{64} * 1024,
                            .slow_client_timeout = std::chrono::milliseconds(200),
                            .idle_timeout = std::chrono::hours(1)});
  w.run(snapshot_flood(w), std::chrono::seconds(30));
}

asio::awaitable<void> many_cycles(world& w) {
  for (int i = 0; i < 1000; ++i) {
    auto ws = co_await connect(w);
    co_await send(*ws, R"({"op":"subscribe","id":"s","collection":"c"})");
    if (i % 2 == 0) co_await fence(*ws);  // half of them surely subscribed before closing
    auto [ec] = co_await ws->async_close(websocket::close_code::normal, asio::as_tuple(asio::use_awaitable));
    (void)ec;  // trap 9: a reset after the close frame is fine here
  }
  co_await until([&] { return w.server.connection_count() == 0; });
  CHECK(w.db.subscriber_count("c") == 0);
  // Still serving.
  auto ws = co_await connect(w);
  co_await send(*ws, subscribe_after("s", "c", w.db.last_sequence()));
  const std::string id = w.db.insert("c", json{{"x", 1}});
  json m = co_await next(*ws);
  CHECK(m["event"]["document_id"] == id);
}

TEST_CASE("1000 connect and disconnect cycles leave nothing behind", "[net][feed]") {
  world w({});
  w.run(many_cycles(w));
}

asio::awaitable<void> stop_closes(world& w) {
  auto a = co_await connect(w);
  auto b = co_await connect(w);
  co_await send(*a, subscribe_after("s", "c", 0));
  co_await fence(*a);
  w.server.stop();
  for (client* ws : {a.get(), b.get()}) {
    beast::flat_buffer buffer;
    auto [ec, n] = co_await ws->async_read(buffer, asio::as_tuple(asio::use_awaitable));
    (void)n;
    REQUIRE(ec);
    if (ec == websocket::error::closed) CHECK(ws->reason().code == websocket::close_code::going_away);
  }
  co_await until([&] { return w.server.connection_count() == 0; });
  CHECK(w.db.subscriber_count("c") == 0);
  tcp::socket socket(co_await asio::this_coro::executor);
  const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), w.server.port());
  auto [ec] = co_await socket.async_connect(endpoint, asio::as_tuple(asio::use_awaitable));
  CHECK(ec == asio::error::connection_refused);
}

TEST_CASE("stop closes every connection and stops listening", "[net][feed]") {
  world w({});
  w.run(stop_closes(w));
}

// -- Static files --------------------------------------------------------------------------------

asio::awaitable<http::response<http::string_body>> http_get(std::uint16_t port, std::string target,
                                                            http::verb verb = http::verb::get) {
  tcp::socket socket = co_await dial(port);
  beast::tcp_stream stream(std::move(socket));
  http::request<http::empty_body> req{verb, target, 11};
  req.set(http::field::host, "127.0.0.1:" + std::to_string(port));
  co_await http::async_write(stream, req, asio::use_awaitable);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  co_await http::async_read(stream, buffer, res, asio::use_awaitable);
  co_return res;
}

// A directory of files to serve, and a file beside it that must not be served.
struct site {
  site() {
    const std::string tag = std::to_string(::getpid());
    root = std::filesystem::temp_directory_path() / ("aurora-net-site-" + tag);
    outside = std::filesystem::temp_directory_path() / ("aurora-net-outside-" + tag + ".txt");
    std::filesystem::remove_all(root);
    std::filesystem::create_directories(root / "sub");
    write("index.html", "<h1>index</h1>");
    write("app.js", "let x = 1;");
    write("style.css", "body{}");
    write("img.png", "PNG");
    write("pic.svg", "<svg/>");
    write("data.json", "{}");
    write(".secret", "hidden");
    write("sub/page.html", "<p>page</p>");
    std::ofstream(outside) << "outside";
    std::filesystem::create_symlink(outside, root / "link.txt");
  }
  ~site() {
    std::error_code ec;
    std::filesystem::remove_all(root, ec);
    std::filesystem::remove(outside, ec);
  }
  site(const site&) = delete;
  site& operator=(const site&) = delete;

  void write(const std::string& name, const std::string& text) const { std::ofstream(root / name) << text; }

  std::filesystem::path root;
  std::filesystem::path outside;
};

asio::awaitable<void> static_files(world& w, const site& s) {
  const std::uint16_t port = w.server.port();
  struct expected {
    const char* target;
    const char* type;
    const char* body;
  };
  const expected files[] = {
      {"/", "text/html; charset=utf-8", "<h1>index</h1>"},
      {"/index.html?v=2", "text/html; charset=utf-8", "<h1>index</h1>"},
      {"/app.js", "text/javascript; charset=utf-8", "let x = 1;"},
      {"/style.css", "text/css; charset=utf-8", "body{}"},
      {"/img.png", "image/png", "PNG"},
      {"/pic.svg", "image/svg+xml", "<svg/>"},
      {"/data.json", "application/json", "{}"},
      {"/sub/page.html", "text/html; charset=utf-8", "<p>page</p>"},
      {"/sub/", "", ""},
  };
  for (const expected& f : files) {
    INFO(f.target);
    const auto res = co_await http_get(port, f.target);
    if (*f.type == '\0') {
      CHECK(res.result() == http::status::not_found);  // no sub/index.html
      continue;
    }
    CHECK(res.result() == http::status::ok);
    CHECK(res[http::field::content_type] == f.type);
    CHECK(res.body() == f.body);
  }
  const std::string escapes[] = {
      "/../" + s.outside.filename().string(),
      "/%2e%2e/" + s.outside.filename().string(),
      "/sub/../index.html",
      "/.secret",
      "/link.txt",  // a symlink to a file outside
      "/missing.html",
      "/%zz",
  };
  for (const std::string& target : escapes) {
    INFO(target);
    const auto res = co_await http_get(port, target);
    CHECK(res.result() == http::status::not_found);
  }
  const auto post = co_await http_get(port, "/index.html", http::verb::post);
  CHECK(post.result() == http::status::method_not_allowed);
}

TEST_CASE("static files are served from static_dir and nothing outside it", "[net][http][safety]") {
  const site s;
  world w(FeedServerOptions{.static_dir = s.root.string()});
  w.run(static_files(w, s));
}

TEST_CASE("bad options are refused by start", "[net][feed]") {
  aurora::Database db;
  asio::io_context io;
  FeedServer bad_address{io.get_executor(), db, {.address = "localhost:80"}};
  CHECK_THROWS_AS(bad_address.start(), aurora::error);
  FeedServer bad_dir{io.get_executor(), db, {.static_dir = "/nonexistent/aurora"}};
  CHECK_THROWS_AS(bad_dir.start(), aurora::error);
  FeedServer no_messages{io.get_executor(), db, {.max_message_bytes = 0}};
  CHECK_THROWS_WITH(no_messages.start(), Catch::Contains("max_message_bytes is 0"));
  FeedServer no_queue{io.get_executor(), db, {.max_queued_messages = 0}};
  CHECK_THROWS_WITH(no_queue.start(), Catch::Contains("max_queued_messages is 0"));
  FeedServer no_bytes{io.get_executor(), db, {.max_queued_bytes = 0}};
  CHECK_THROWS_WITH(no_bytes.start(), Catch::Contains("max_queued_bytes is 0"));
  FeedServer twice{io.get_executor(), db, {}};
  twice.start();
  CHECK_THROWS_AS(twice.start(), aurora::error);
  twice.stop();
}

}  // namespace

// -- Threads -------------------------------------------------------------------------------------

// The server's io_context run by several threads while two threads write and the test's thread
// reads (and asserts). Every client must get every event in order, and stop() from the test's
// thread must end every connection. Meant for ThreadSanitizer as much as for its assertions.
struct threaded_server {
  explicit threaded_server(aurora::Database& db) : server(io.get_executor(), db, {}) {
    server.start();
    for (int i = 0; i < 3; ++i) threads.emplace_back([this] { io.run(); });
  }
  ~threaded_server() {
    server.stop();
    guard.reset();
    for (std::thread& t : threads) t.join();
  }
  threaded_server(const threaded_server&) = delete;
  threaded_server& operator=(const threaded_server&) = delete;

  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> guard{io.get_executor()};
  FeedServer server;
  std::vector<std::thread> threads;
};

asio::awaitable<void> follow(std::uint16_t port, std::vector<std::uint64_t>& got, std::uint64_t events, bool& closed) {
  handshake_result h = co_await handshake(port, "/feed", "", "");
  REQUIRE(h.ws);
  co_await send(*h.ws, subscribe_after("s", "orders", 0));
  while (got.size() < events) {
    json m = co_await next(*h.ws);
    INFO(m.dump());
    REQUIRE(m["type"] == "event");
    got.push_back(m["event"]["sequence"].get<std::uint64_t>());
  }
  beast::flat_buffer buffer;
  auto [ec, n] = co_await h.ws->async_read(buffer, asio::as_tuple(asio::use_awaitable));  // until stop()
  (void)n;
  CHECK(ec);
  closed = true;
}

TEST_CASE("several threads run the server while others write", "[net][feed][threads]") {
  static constexpr std::size_t clients = 6;
  static constexpr std::uint64_t per_writer = 300;
  aurora::Database db;
  threaded_server s(db);
  std::vector<std::thread> writers;
  writers.reserve(2);
  for (int i = 0; i < 2; ++i) {
    writers.emplace_back([&db, i] {
      for (std::uint64_t k = 0; k < per_writer; ++k) db.insert("orders", json{{"writer", i}, {"k", k}});
    });
  }
  asio::io_context io;  // the clients, on this thread
  std::vector<std::vector<std::uint64_t>> got(clients);
  std::array<bool, clients> closed{};
  bool done = false;
  std::exception_ptr failure;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (std::size_t c = 0; c < clients; ++c) {
          asio::co_spawn(io, follow(s.server.port(), got[c], 2 * per_writer, closed[c]),
                         [&](const std::exception_ptr& e) {
                           if (e && !failure) {
                             failure = e;
                             io.stop();
                           }
                         });
        }
        co_await until([&] {
          return std::all_of(got.begin(), got.end(), [](const auto& g) { return g.size() == 2 * per_writer; });
        });
        s.server.stop();  // from this thread, while the server's threads run
        co_await until([&] { return std::all_of(closed.begin(), closed.end(), [](bool b) { return b; }); });
        co_await until([&] { return s.server.connection_count() == 0; });
      },
      [&](std::exception_ptr e) {
        done = true;
        if (!failure) failure = std::move(e);
        io.stop();
      });
  io.run_for(std::chrono::seconds(120));
  for (std::thread& t : writers) t.join();
  if (failure) std::rethrow_exception(failure);
  REQUIRE(done);
  for (const auto& g : got) {
    REQUIRE(g.size() == 2 * per_writer);
    for (std::uint64_t i = 0; i < g.size(); ++i) CHECK(g[i] == i + 1);  // gapless and in order
  }
  CHECK(db.subscriber_count("orders") == 0);
}
