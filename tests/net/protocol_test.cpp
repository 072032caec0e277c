// Tests of the feed protocol without sockets: client messages parsed into requests or errors,
// and the server's messages, against a real Database.
#include <aurora/database.hpp>
#include <aurora/net/protocol.hpp>

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <string>
#include <variant>
#include <vector>

using aurora::net::ClientMessage;
using aurora::net::parse_client_message;
using aurora::net::ProtocolError;
using aurora::net::SubscribeRequest;
using aurora::net::UnsubscribeRequest;
using json = nlohmann::json;

namespace {

ProtocolError error_of(const ClientMessage& m) {
  REQUIRE(std::holds_alternative<ProtocolError>(m));
  return std::get<ProtocolError>(m);
}

SubscribeRequest subscribe_of(const ClientMessage& m) {
  if (const auto* e = std::get_if<ProtocolError>(&m)) FAIL(e->code << ": " << e->message);
  REQUIRE(std::holds_alternative<SubscribeRequest>(m));
  return std::get<SubscribeRequest>(m);
}

}  // namespace

TEST_CASE("a full subscribe message is parsed", "[net][protocol]") {
  const SubscribeRequest r = subscribe_of(parse_client_message(
      R"({"op":"subscribe","id":"s1","collection":"orders","filter":{"where":{"qty":{"$gt":1}},"transitions":true},"start":{"after":41}})"));
  CHECK(r.id == "s1");
  REQUIRE(r.collection);
  CHECK(*r.collection == "orders");
  REQUIRE(r.filter);
  CHECK(r.filter->transitions);
  CHECK(r.filter->where);
  CHECK(r.start == aurora::Start::after(41));
  CHECK_FALSE(r.snapshot);
}

TEST_CASE("subscribe defaults: global, no filter, now", "[net][protocol]") {
  SubscribeRequest r = subscribe_of(parse_client_message(R"({"op":"subscribe","id":"g"})"));
  CHECK_FALSE(r.collection);
  CHECK_FALSE(r.filter);
  CHECK(r.start == aurora::Start::now());
  r = subscribe_of(
      parse_client_message(R"({"op":"subscribe","id":"g","collection":null,"filter":null,"start":"oldest"})"));
  CHECK_FALSE(r.collection);
  CHECK(r.start == aurora::Start::oldest());
  r = subscribe_of(parse_client_message(R"({"op":"subscribe","id":"w","collection":"c","snapshot":true})"));
  CHECK(r.snapshot);
  CHECK_FALSE(r.database);
  r = subscribe_of(parse_client_message(R"({"op":"subscribe","id":"r","start":{"after":3},"database":"db-1"})"));
  REQUIRE(r.database);
  CHECK(*r.database == "db-1");
}

TEST_CASE("unsubscribe is parsed", "[net][protocol]") {
  const ClientMessage m = parse_client_message(R"({"op":"unsubscribe","id":"s1"})");
  REQUIRE(std::holds_alternative<UnsubscribeRequest>(m));
  CHECK(std::get<UnsubscribeRequest>(m).id == "s1");
}

TEST_CASE("malformed messages become errors that name the problem", "[net][protocol]") {
  struct bad_case {
    const char* text;
    const char* code;
    const char* mentions;
    bool has_id;
  };
  const bad_case cases[] = {
      {"not json", "invalid_json", "not valid JSON", false},
      {"", "invalid_json", "not valid JSON", false},
      {"[1,2]", "invalid_message", "JSON object", false},
      {R"({"id":"x"})", "invalid_message", "\"op\"", true},
      {R"({"op":7,"id":"x"})", "invalid_message", "\"op\"", true},
      {R"({"op":"dance","id":"x"})", "unknown_op", "\"dance\"", true},
      {R"({"op":"subscribe"})", "invalid_message", "\"id\"", false},
      {R"({"op":"subscribe","id":""})", "invalid_message", "\"id\"", false},
      {R"({"op":"subscribe","id":5})", "invalid_message", "\"id\"", false},
      {R"({"op":"subscribe","id":"x","colection":"c"})", "invalid_message", "\"colection\"", true},
      {R"({"op":"subscribe","id":"x","collection":""})", "invalid_message", "\"collection\"", true},
      {R"({"op":"subscribe","id":"x","collection":3})", "invalid_message", "\"collection\"", true},
      {R"({"op":"subscribe","id":"x","start":"later"})", "invalid_message", "\"start\"", true},
      {R"({"op":"subscribe","id":"x","start":{"after":-1}})", "invalid_message", "\"start\"", true},
      {R"({"op":"subscribe","id":"x","start":{"after":1.5}})", "invalid_message", "\"start\"", true},
      {R"({"op":"subscribe","id":"x","start":{"after":1,"b":2}})", "invalid_message", "\"start\"", true},
      {R"({"op":"subscribe","id":"x","snapshot":"yes"})", "invalid_message", "\"snapshot\"", true},
      {R"({"op":"subscribe","id":"x","database":""})", "invalid_message", "\"database\"", true},
      {R"({"op":"subscribe","id":"x","database":7})", "invalid_message", "\"database\"", true},
      {R"({"op":"subscribe","id":"x","snapshot":true})", "invalid_message", "\"collection\"", true},
      {R"({"op":"subscribe","id":"x","collection":"c","snapshot":true,"start":"oldest"})", "invalid_message",
       "\"start\"", true},
      {R"({"op":"subscribe","id":"x","filter":{"where":{"age":{"$gt":[1]}}}})", "invalid_filter", "age", true},
      {R"({"op":"subscribe","id":"x","filter":{"colour":1}})", "invalid_filter", "colour", true},
      {R"({"op":"subscribe","id":"x","filter":[]})", "invalid_filter", "filter", true},
      {R"({"op":"unsubscribe"})", "invalid_message", "\"id\"", false},
      {R"({"op":"unsubscribe","id":"x","extra":1})", "invalid_message", "\"extra\"", true},
  };
  for (const bad_case& c : cases) {
    INFO(c.text);
    const ProtocolError e = error_of(parse_client_message(c.text));
    CHECK(e.code == c.code);
    CHECK_THAT(e.message, Catch::Contains(c.mentions));
    CHECK(e.id.has_value() == c.has_id);
    if (c.has_id) CHECK(*e.id == "x");
  }
}

TEST_CASE("a message nested too deeply is refused before parsing", "[net][protocol]") {
  const std::string deep =
      R"({"op":"subscribe","id":"x","filter":)" + std::string(100'000, '[') + std::string(100'000, ']') + "}";
  const ProtocolError e = error_of(parse_client_message(deep));
  CHECK(e.code == "invalid_message");
  CHECK_THAT(e.message, Catch::Contains("deeper"));
  // Brackets inside strings do not count.
  const std::string in_string = R"({"op":"subscribe","id":")" + std::string(200, '[') + R"("})";
  CHECK(subscribe_of(parse_client_message(in_string)).id == std::string(200, '['));
}

TEST_CASE("a huge id is refused and unknown values are quoted short", "[net][protocol]") {
  const ProtocolError e = error_of(parse_client_message(R"({"op":"subscribe","id":")" + std::string(300, 'a') + "\"}"));
  CHECK_FALSE(e.id);
  const ProtocolError op = error_of(parse_client_message(R"({"op":")" + std::string(1000, 'z') + "\"}"));
  CHECK(op.code == "unknown_op");
  CHECK(op.message.size() < 200);
}

TEST_CASE("server messages have the documented shape", "[net][protocol]") {
  aurora::Database db;
  aurora::Subscription sub = db.subscribe("orders");
  const std::string id = db.insert("orders", {{"qty", 2}, {"bad", std::string("\xff")}});
  const aurora::RecvResult r = sub.try_recv();
  REQUIRE(r);
  const json ev = json::parse(aurora::net::event_message("s1", r));
  CHECK(ev["type"] == "event");
  CHECK(ev["id"] == "s1");
  CHECK(ev["transition"] == "enter");
  CHECK(ev["event"]["document_id"] == id);
  CHECK(ev["event"]["operation"] == "Insert");
  CHECK(ev["event"]["sequence"] == 1);
  CHECK(ev["event"]["document"]["qty"] == 2);
  CHECK(ev["event"]["document"]["bad"] == "\xEF\xBF\xBD");  // invalid UTF-8 is replaced, not an exception

  auto [snap, live] = db.watch("orders");
  const json s = json::parse(aurora::net::snapshot_message("w", snap));
  CHECK(s == json::parse(R"({"type":"snapshot","id":"w","sequence":1,"documents":[{"id":")" + id +
                         R"(","document":{"qty":2,"bad":"\ufffd"}}]})"));
  const json named = json::parse(aurora::net::snapshot_message("w", snap, "db-1"));
  CHECK(named["database"] == "db-1");
  CHECK(named["documents"] == s["documents"]);

  CHECK(json::parse(aurora::net::lagged_message("s1", 1200)) ==
        json::parse(R"({"type":"lagged","id":"s1","missed":1200})"));
  const json err = json::parse(aurora::net::error_message(std::nullopt, "invalid_json", "nope"));
  CHECK(err == json::parse(R"({"type":"error","id":null,"code":"invalid_json","message":"nope"})"));
  CHECK(aurora::net::errc_name(aurora::errc::history_lost) == "history_lost");
  CHECK(aurora::net::errc_name(aurora::errc::invalid_argument) == "invalid_argument");
}

TEST_CASE("an event message built from the shared event text is the same text", "[net][protocol]") {
  aurora::Database db;
  aurora::Subscription sub = db.subscribe("orders");
  db.insert("orders", {{"qty", 2}, {"bad", std::string("\xff")}, {"quote", "a\"b"}});
  const aurora::RecvResult r = sub.try_recv();
  REQUIRE(r);
  const std::string shared = aurora::net::event_json(*r);
  for (const std::string& id : std::vector<std::string>{"s1", "with \"quotes\" and \\", "\xff"}) {
    const std::string expected = json{{"type", "event"}, {"id", id}, {"transition", "enter"}, {"event", *r}}.dump(
        -1, ' ', false, json::error_handler_t::replace);
    CHECK(aurora::net::event_message(id, r) == expected);
    CHECK(aurora::net::event_message(id, aurora::Transition::enter, shared) == expected);
  }
}
