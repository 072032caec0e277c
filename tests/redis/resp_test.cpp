// Tests for aurora/redis/detail/resp.hpp and stream_reply.hpp: RESP encoding and decoding through
// hiredis, without I/O, and reading XREAD / XINFO replies.
#include <aurora/redis/detail/resp.hpp>
#include <aurora/redis/detail/stream_reply.hpp>
#include <aurora/redis/error.hpp>

#include <boost/system/system_error.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

using namespace std::string_literals;
using aurora::redis::connection_error;
using aurora::redis::detail::append_command;
using aurora::redis::detail::command;
using aurora::redis::detail::describe;
using aurora::redis::detail::reply;
using aurora::redis::detail::reply_kind;
using aurora::redis::detail::reply_reader;

namespace {

// Every reply in `bytes`, fed at once.
std::vector<reply> decode_all(const std::string& bytes, std::size_t max = 1 << 20) {
  reply_reader reader(max);
  reader.feed(bytes.data(), bytes.size());
  std::vector<reply> out;
  while (std::optional<reply> r = reader.next()) out.push_back(std::move(*r));
  return out;
}

// The error code and message decoding `bytes` ends with.
std::pair<boost::system::error_code, std::string> decode_error(const std::string& bytes, std::size_t max = 1 << 20,
                                                               std::size_t chunk = 1 << 20) {
  reply_reader reader(max);
  try {
    for (std::size_t at = 0; at < bytes.size(); at += chunk) {
      reader.feed(bytes.data() + at, std::min(chunk, bytes.size() - at));
      while (reader.next()) {
      }
    }
  } catch (const boost::system::system_error& e) {
    return {e.code(), reader.last_error()};
  }
  return {};
}

reply string_reply(std::string s) {
  reply r;
  r.kind = reply_kind::string;
  r.text = std::move(s);
  return r;
}

reply array_reply(std::vector<reply> elements) {
  reply r;
  r.kind = reply_kind::array;
  r.elements = std::move(elements);
  return r;
}

}  // namespace

TEST_CASE("resp: commands are encoded by hiredis, binary-safe", "[redis][resp]") {
  std::string out;
  append_command(out, command{"PING"});
  CHECK(out == "*1\r\n$4\r\nPING\r\n");
  out.clear();
  append_command(out, command{"SET", "k", std::string("a\0\r\nb", 5), ""});
  CHECK(out == std::string("*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\na\0\r\nb\r\n$0\r\n\r\n", 37));
  append_command(out, command{"PING"});
  CHECK(out.ends_with("*1\r\n$4\r\nPING\r\n"));
  // Matchers are named first: clang 14 garbles a multi-line matcher stringized inside the macro.
  const auto empty_command = Catch::Predicate<aurora::error>([](const aurora::error& e) {
    return e.code() == aurora::errc::invalid_argument &&
           std::string(e.what()).find("empty command") != std::string::npos;
  });
  CHECK_THROWS_MATCHES(append_command(out, command{}), aurora::error, empty_command);
}

TEST_CASE("resp: every reply kind decodes into an owned value", "[redis][resp]") {
  const std::vector<reply> r = decode_all(
      "+OK\r\n-ERR wrong\r\n:-42\r\n$5\r\nhe\0lo\r\n$0\r\n\r\n$-1\r\n*-1\r\n*0\r\n"
      "*3\r\n:1\r\n*2\r\n$1\r\na\r\n$-1\r\n+x\r\n"s);
  REQUIRE(r.size() == 9);
  CHECK((r[0].kind == reply_kind::status && r[0].text == "OK"));
  CHECK((r[1].kind == reply_kind::error && r[1].text == "ERR wrong" && r[1].is_error()));
  CHECK((r[2].kind == reply_kind::integer && r[2].integer == -42));
  CHECK((r[3].kind == reply_kind::string && r[3].text == std::string("he\0lo", 5)));
  CHECK((r[4].kind == reply_kind::string && r[4].text.empty()));
  CHECK(r[5].kind == reply_kind::nil);
  CHECK(r[6].kind == reply_kind::nil);
  CHECK((r[7].kind == reply_kind::array && r[7].elements.empty()));
  const reply& nested = r[8];
  REQUIRE(nested.kind == reply_kind::array);
  REQUIRE(nested.elements.size() == 3);
  CHECK(nested.elements[0].integer == 1);
  REQUIRE(nested.elements[1].elements.size() == 2);
  CHECK(nested.elements[1].elements[0].text == "a");
  CHECK(nested.elements[1].elements[1].kind == reply_kind::nil);
  CHECK(nested.elements[2].text == "x");
}

TEST_CASE("resp: replies split anywhere decode the same", "[redis][resp]") {
  // A reply shaped like XREAD's, with arrays four deep, fed one byte at a time.
  const std::string bytes =
      "*1\r\n*2\r\n$8\r\naurora:*\r\n*2\r\n*2\r\n$3\r\n0-1\r\n*4\r\n$3\r\nseq\r\n$1\r\n1\r\n$2\r\nop\r\n$"
      "6\r\nInsert\r\n"
      "*2\r\n$3\r\n0-2\r\n*2\r\n$3\r\nseq\r\n$1\r\n2\r\n:7\r\n";
  const std::vector<reply> whole = decode_all(bytes);
  REQUIRE(whole.size() == 2);
  reply_reader reader(1 << 20);
  std::vector<reply> split;
  for (char c : bytes) {
    reader.feed(&c, 1);
    while (std::optional<reply> r = reader.next()) split.push_back(std::move(*r));
  }
  REQUIRE(split.size() == 2);
  const reply& entries = split[0].elements[0].elements[1];
  REQUIRE(entries.elements.size() == 2);
  CHECK(entries.elements[0].elements[0].text == "0-1");
  CHECK(entries.elements[0].elements[1].elements[3].text == "Insert");
  CHECK(entries.elements[1].elements[1].elements[1].text == "2");
  CHECK(split[1].integer == 7);
  CHECK(describe(split[0]) == describe(whole[0]));
  CHECK(reader.buffered() == 0);
}

TEST_CASE("resp: malformed input is a protocol_error with hiredis's reason", "[redis][resp]") {
  SECTION("an unknown type byte") {
    const auto [ec, why] = decode_error("!oops\r\n");
    CHECK(ec == connection_error::protocol_error);
    CHECK_THAT(why, Catch::Contains("Protocol error"));
  }
  SECTION("a negative element count other than -1") {
    const auto [ec, why] = decode_error("*-5\r\n");
    CHECK(ec == connection_error::protocol_error);
    CHECK_THAT(why, Catch::Contains("Multi-bulk length out of range"));
  }
  SECTION("arrays nested deeper than hiredis allows") {
    const auto [ec, why] = decode_error("*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n");
    CHECK(ec == connection_error::protocol_error);
    CHECK_THAT(why, Catch::Contains("nested multi bulk"));
  }
  SECTION("errors are sticky until reset") {
    reply_reader reader(1024);
    const std::string bad = "?\r\n";
    reader.feed(bad.data(), bad.size());
    CHECK_THROWS_AS(reader.next(), boost::system::system_error);
    const std::string good = "+OK\r\n";
    CHECK_THROWS_AS((reader.feed(good.data(), good.size()), reader.next()), boost::system::system_error);
    reader.reset();
    reader.feed(good.data(), good.size());
    CHECK(reader.next()->text == "OK");
  }
}

TEST_CASE("resp: a reply larger than max_reply_bytes is refused, however it arrives", "[redis][resp]") {
  const std::string big = "$2000\r\n" + std::string(2000, 'x') + "\r\n";
  SECTION("announced, and arriving in small pieces: refused once the bound is passed") {
    const auto [ec, why] = decode_error(big, 1024, 100);
    CHECK(ec == connection_error::reply_too_large);
    CHECK_THAT(why, Catch::Contains("more than 1024 bytes"));
  }
  SECTION("complete in one piece") {
    const auto [ec, why] = decode_error(big, 1024);
    CHECK(ec == connection_error::reply_too_large);
  }
  SECTION("many elements") {
    std::string many = "*1000\r\n";
    for (int i = 0; i < 1000; ++i) many += ":1\r\n";
    CHECK(decode_error(many, 1024, 64).first == connection_error::reply_too_large);
    CHECK(decode_all(many, 8192).size() == 1);
  }
  SECTION("small replies in one big chunk are fine") {
    std::string small;
    for (int i = 0; i < 500; ++i) small += "+OK\r\n";
    CHECK(decode_all(small, 1024).size() == 500);
  }
  SECTION("a huge announced count allocates nothing up front") {
    reply_reader reader(1024);
    const std::string announce = "*2000000000\r\n:1\r\n";
    reader.feed(announce.data(), announce.size());
    CHECK_FALSE(reader.next().has_value());
  }
}

TEST_CASE("resp: describe names the kind and the start of the text", "[redis][resp]") {
  CHECK(describe(reply{}) == "nil");
  CHECK(describe(string_reply("abc")) == "string \"abc\"");
  CHECK(describe(string_reply(std::string(500, 'a'))).size() < 140);
  CHECK(describe(array_reply({reply{}, reply{}})) == "array of 2");
  reply err;
  err.kind = reply_kind::error;
  err.text = "ERR x";
  CHECK(describe(err) == "error \"ERR x\"");
}

TEST_CASE("stream replies: XREAD entries are read, odd shapes are protocol errors", "[redis][resp]") {
  using aurora::redis::detail::stream_entries;
  const auto entry = [](std::string id, std::vector<reply> fields) {
    return array_reply({string_reply(std::move(id)), array_reply(std::move(fields))});
  };
  const auto xread = [](std::vector<reply> entries) {
    return array_reply({array_reply({string_reply("aurora:*"), array_reply(std::move(entries))})});
  };

  CHECK(stream_entries(reply{}, "k").empty());  // BLOCK timed out
  const auto entries =
      stream_entries(xread({entry("0-1", {string_reply("a"), string_reply("1"), string_reply("b"), string_reply("")}),
                            entry("0-2", {})}),
                     "k");
  REQUIRE(entries.size() == 2);
  CHECK(entries[0].id == "0-1");
  CHECK(entries[0].fields == std::vector<std::pair<std::string, std::string>>{{"a", "1"}, {"b", ""}});
  CHECK(entries[1].fields.empty());

  reply err;
  err.kind = reply_kind::error;
  err.text = "WRONGTYPE Operation against a key holding the wrong kind of value";
  try {
    (void)stream_entries(err, "aurora:x");
    FAIL("no error");
  } catch (const boost::system::system_error& e) {
    CHECK(e.code() == connection_error::server_error);
    CHECK_THAT(e.what(), Catch::Contains("XREAD on \"aurora:x\" failed: WRONGTYPE"));
  }

  reply integer;
  integer.kind = reply_kind::integer;
  const reply bad_shapes[] = {
      string_reply("x"),
      array_reply({string_reply("not a stream")}),
      array_reply({array_reply({string_reply("k")})}),
      xread({string_reply("not an entry")}),
      xread({array_reply({string_reply("0-1")})}),
      xread({array_reply({integer, array_reply({})})}),
      xread({array_reply({string_reply("0-1"), reply{}})}),
      xread({entry("0-1", {string_reply("odd")})}),
      xread({entry("0-1", {string_reply("a"), integer})}),
      xread({entry("0-1", {reply{}, string_reply("v")})}),
  };
  for (const reply& bad : bad_shapes) {
    try {
      (void)stream_entries(bad, "k");
      FAIL("no error for a reply of shape " << describe(bad));
    } catch (const boost::system::system_error& e) {
      CHECK(e.code() == connection_error::protocol_error);
      CHECK_THAT(e.what(), Catch::Contains("unexpected reply"));
    }
  }
}

TEST_CASE("stream replies: XINFO STREAM's last-generated-id", "[redis][resp]") {
  using aurora::redis::detail::last_generated_id;
  reply length;
  length.kind = reply_kind::integer;
  length.integer = 3;
  CHECK(last_generated_id(
            array_reply({string_reply("length"), length, string_reply("last-generated-id"), string_reply("0-42")}),
            "k") == "0-42");
  const auto protocol_error = Catch::Predicate<boost::system::system_error>(
      [](const boost::system::system_error& e) { return e.code() == connection_error::protocol_error; });
  CHECK_THROWS_MATCHES(last_generated_id(array_reply({string_reply("length"), length}), "k"),
                       boost::system::system_error, protocol_error);
  reply err;
  err.kind = reply_kind::error;
  err.text = "ERR no such key";
  CHECK_THROWS_WITH(last_generated_id(err, "k"), Catch::Contains("XINFO STREAM \"k\" failed: ERR no such key"));
}

TEST_CASE("connection_error: a category of its own, usable as std::error_code", "[redis][resp]") {
  const boost::system::error_code ec = connection_error::reply_too_large;
  CHECK(std::string(ec.category().name()) == "aurora.redis");
  CHECK(ec.message() == "Redis reply larger than the connection allows");
  const std::error_code std_ec = connection_error::server_error;
  CHECK(std_ec == connection_error::server_error);
  CHECK(std_ec.message() == "Redis answered with an error");
  CHECK(make_error_code(connection_error::not_connected).message() == "not connected to Redis");
  CHECK(ec != aurora::errc::invalid_argument);
}
