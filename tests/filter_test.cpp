// Tests for aurora/filter.hpp: operation and field filters, paths and JSON Pointers.
#include <aurora/filter.hpp>

#include <catch2/catch.hpp>

#include <limits>
#include <string>

using aurora::ChangeEvent;
using aurora::EventFilter;
using aurora::FieldFilter;
using aurora::OperationType;

namespace {

ChangeEvent make(OperationType op, aurora::Document doc) {
  ChangeEvent ev;
  ev.collection = "users";
  ev.document_id = "u1";
  ev.operation = op;
  if (op == OperationType::Delete) {
    ev.old_document = std::move(doc);
  } else {
    ev.document = std::move(doc);
  }
  return ev;
}

bool field_matches(const aurora::Document& doc, std::string field, aurora::Value value) {
  EventFilter f;
  f.field_filters.push_back(FieldFilter{std::move(field), std::move(value)});
  return f.matches(make(OperationType::Insert, doc));
}

const aurora::Document user = {
    {"name", "Ada"},
    {"age", 21},
    {"score", 2.5},
    {"nothing", nullptr},
    {"address", {{"city", "London"}, {"geo", {{"lat", 51}}}}},
    {"tags", {"math", "poet"}},
    {"a.b", "dotted key"},
    {"a/b", "slash key"},
    {"m~n", "tilde key"},
    {"", "empty key"},
};

}  // namespace

TEST_CASE("an empty filter matches every event", "[filter]") {
  const EventFilter f;
  CHECK(f.matches(make(OperationType::Insert, user)));
  CHECK(f.matches(make(OperationType::Delete, user)));
}

TEST_CASE("the operation filter selects one operation", "[filter]") {
  EventFilter f;
  f.operation = OperationType::Update;
  CHECK(f.matches(make(OperationType::Update, user)));
  CHECK_FALSE(f.matches(make(OperationType::Insert, user)));
  CHECK_FALSE(f.matches(make(OperationType::Delete, user)));
}

TEST_CASE("top-level keys compare under nlohmann::json equality", "[filter]") {
  CHECK(field_matches(user, "name", "Ada"));
  CHECK_FALSE(field_matches(user, "name", "Grace"));
  CHECK(field_matches(user, "age", 21));
  CHECK(field_matches(user, "age", 21.0));        // 21 == 21.0
  CHECK_FALSE(field_matches(user, "age", "21"));  // "21" != 21
  CHECK(field_matches(user, "score", 2.5));
  CHECK(field_matches(user, "tags", aurora::Value{"math", "poet"}));
}

TEST_CASE("a missing field never matches and null matches only a stored null", "[filter]") {
  CHECK_FALSE(field_matches(user, "missing", nullptr));
  CHECK_FALSE(field_matches(user, "missing", "x"));
  CHECK(field_matches(user, "nothing", nullptr));
  CHECK_FALSE(field_matches(user, "name", nullptr));
}

TEST_CASE("dotted paths walk nested objects only", "[filter]") {
  CHECK(field_matches(user, "address.city", "London"));
  CHECK(field_matches(user, "address.geo.lat", 51));
  CHECK_FALSE(field_matches(user, "address.country", "UK"));
  CHECK_FALSE(field_matches(user, "name.first", "Ada"));  // walks into a string: no
  CHECK_FALSE(field_matches(user, "tags.0", "math"));     // dotted paths do not index arrays
  CHECK_FALSE(field_matches(user, "a.b", "dotted key"));  // dots always split
}

TEST_CASE("JSON Pointers reach dotted keys, array elements and escaped keys", "[filter]") {
  CHECK(field_matches(user, "/name", "Ada"));
  CHECK(field_matches(user, "/address/city", "London"));
  CHECK(field_matches(user, "/tags/0", "math"));
  CHECK(field_matches(user, "/tags/1", "poet"));
  CHECK_FALSE(field_matches(user, "/tags/2", "poet"));
  CHECK(field_matches(user, "/a.b", "dotted key"));
  CHECK(field_matches(user, "/a~1b", "slash key"));
  CHECK(field_matches(user, "/m~0n", "tilde key"));
  CHECK(field_matches(user, "/", "empty key"));
}

TEST_CASE("malformed pointers and empty fields never match", "[filter]") {
  CHECK_FALSE(field_matches(user, "", "Ada"));
  CHECK_FALSE(field_matches(user, "/m~2n", "tilde key"));  // ~2 is not an escape
  CHECK_FALSE(field_matches(user, "/m~", "tilde key"));    // dangling ~
  CHECK_FALSE(field_matches(user, "/tags/01", "poet"));    // leading zero
  CHECK_FALSE(field_matches(user, "/tags/-", "poet"));     // past the end
  CHECK_FALSE(field_matches(user, "/tags/x", "math"));
  CHECK_FALSE(field_matches(user, "/tags/99999999999999999999999", "math"));  // overflows
}

TEST_CASE("all field filters must match", "[filter]") {
  EventFilter f;
  f.field_filters = {{"name", "Ada"}, {"age", 21}};
  CHECK(f.matches(make(OperationType::Insert, user)));
  f.field_filters.push_back({"address.city", "Paris"});
  CHECK_FALSE(f.matches(make(OperationType::Insert, user)));
}

TEST_CASE("Delete is matched against old_document", "[filter]") {
  EventFilter f;
  f.operation = OperationType::Delete;
  f.field_filters = {{"name", "Ada"}};
  CHECK(f.matches(make(OperationType::Delete, user)));
  CHECK_FALSE(f.matches(make(OperationType::Delete, {{"name", "Grace"}})));

  // An Update is matched against the new document, not the old one.
  EventFilter g;
  g.field_filters = {{"name", "Ada"}};
  ChangeEvent up = make(OperationType::Update, {{"name", "Grace"}});
  up.old_document = user;
  CHECK_FALSE(g.matches(up));
}

TEST_CASE("NaN never equals, infinities equal themselves", "[filter]") {
  const aurora::Document doc = {{"x", std::numeric_limits<double>::quiet_NaN()},
                                {"y", std::numeric_limits<double>::infinity()}};
  CHECK_FALSE(field_matches(doc, "x", std::numeric_limits<double>::quiet_NaN()));
  CHECK(field_matches(doc, "y", std::numeric_limits<double>::infinity()));
  CHECK(field_matches({{"z", 0}}, "z", -0.0));  // -0.0 == 0 under JSON equality
}
