// Tests for aurora/filter.hpp: operation and field filters, paths and JSON Pointers; where,
// changed and transitions (compiled_filter::deliver); the JSON form of EventFilter.
#include <aurora/filter.hpp>

#include <catch2/catch.hpp>

#include <cstddef>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

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
    ev.old_document = std::make_shared<const aurora::Document>(std::move(doc));
  } else {
    ev.document = std::make_shared<const aurora::Document>(std::move(doc));
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

TEST_CASE("top-level keys compare under JSON equality, integers exactly", "[filter]") {
  CHECK(field_matches(user, "name", "Ada"));
  CHECK_FALSE(field_matches(user, "name", "Grace"));
  CHECK(field_matches(user, "age", 21));
  CHECK(field_matches(user, "age", 21.0));        // 21 == 21.0
  CHECK_FALSE(field_matches(user, "age", "21"));  // "21" != 21
  CHECK(field_matches(user, "score", 2.5));
  CHECK(field_matches(user, "tags", aurora::Value{"math", "poet"}));
  // nlohmann's operator== casts the unsigned side: 2^64-1 would "equal" -1, as $eq never does.
  const aurora::Document big = {{"n", std::numeric_limits<std::uint64_t>::max()}};
  CHECK_FALSE(field_matches(big, "n", -1));
  CHECK(field_matches(big, "n", std::numeric_limits<std::uint64_t>::max()));
  CHECK(field_matches({{"n", -1}}, "n", -1));
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

TEST_CASE("field lookups find every key, whatever its bytes", "[filter]") {
  // Keys that are prefixes of each other, empty, and bytes above 0x7f (ordered as unsigned char).
  const std::vector<std::string> keys = {
      "", "a", "ab", "abc", "b", "B", "\x7f", "\xc3\xa9", "\xff", std::string("a\0b", 3), "z"};
  aurora::Document doc = aurora::Document::object();
  for (std::size_t i = 0; i < keys.size(); ++i) doc[keys[i]] = i;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    INFO(i);
    if (!keys[i].empty()) CHECK(field_matches(doc, keys[i], i));
    std::string pointer = "/" + keys[i];
    CHECK(field_matches(doc, pointer, i));
  }
  CHECK_FALSE(field_matches(doc, "abcd", 3));
  CHECK_FALSE(field_matches(doc, "\xc3", 7));
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
  up.old_document = std::make_shared<const aurora::Document>(user);
  CHECK_FALSE(g.matches(up));
}

TEST_CASE("NaN never equals, infinities equal themselves", "[filter]") {
  const aurora::Document doc = {{"x", std::numeric_limits<double>::quiet_NaN()},
                                {"y", std::numeric_limits<double>::infinity()}};
  CHECK_FALSE(field_matches(doc, "x", std::numeric_limits<double>::quiet_NaN()));
  CHECK(field_matches(doc, "y", std::numeric_limits<double>::infinity()));
  CHECK(field_matches({{"z", 0}}, "z", -0.0));  // -0.0 == 0 under JSON equality
}

// ---------------------------------------------------------------- where, changed, transitions

namespace {

using aurora::Transition;
using json = nlohmann::json;

ChangeEvent event(OperationType op, std::optional<aurora::Document> before, std::optional<aurora::Document> after) {
  ChangeEvent ev;
  ev.collection = "orders";
  ev.document_id = "o1";
  ev.operation = op;
  if (before) ev.old_document = std::make_shared<const aurora::Document>(std::move(*before));
  if (after) ev.document = std::make_shared<const aurora::Document>(std::move(*after));
  return ev;
}

std::optional<Transition> deliver(const EventFilter& f, const ChangeEvent& ev) {
  const aurora::detail::compiled_filter compiled(f);
  const std::optional<Transition> t = compiled.deliver(ev);
  CHECK(compiled.matches(ev) == t.has_value());
  CHECK(f.matches(ev) == t.has_value());
  return t;
}

const aurora::Document active = {{"status", "active"}, {"price", 1}};
const aurora::Document gone = {{"status", "gone"}, {"price", 1}};

// The message of the invalid_argument that EventFilter::from_json throws ("" when it does not).
std::string from_json_error(const json& j) {
  try {
    (void)EventFilter::from_json(j);
  } catch (const aurora::error& e) {
    CHECK(e.code() == aurora::errc::invalid_argument);
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("transitions: per operation and per membership before and after", "[filter][transition]") {
  const auto none = std::optional<Transition>{};
  const auto enter = std::optional<Transition>{Transition::enter};
  const auto change = std::optional<Transition>{Transition::change};
  const auto leave = std::optional<Transition>{Transition::leave};
  struct row {
    OperationType op;
    std::optional<aurora::Document> before;
    std::optional<aurora::Document> after;
    std::optional<Transition> plain;        // transitions = false
    std::optional<Transition> transitions;  // transitions = true
  };
  const std::vector<row> rows = {
      {OperationType::Insert, std::nullopt, active, enter, enter},
      {OperationType::Insert, std::nullopt, gone, none, none},
      {OperationType::Delete, active, std::nullopt, leave, leave},
      {OperationType::Delete, gone, std::nullopt, none, none},
      {OperationType::Update, gone, active, enter, enter},
      {OperationType::Update, active, active, change, change},
      {OperationType::Update, active, gone, none, leave},
      {OperationType::Update, gone, gone, none, none},
      {OperationType::Update, std::nullopt, active, enter, enter},  // no before-image: outside
  };
  // The same view from a field filter and from a query.
  EventFilter by_field;
  by_field.field_filters = {{"status", "active"}};
  EventFilter by_query;
  by_query.where = aurora::Query::parse({{"status", "active"}});
  for (EventFilter f : {by_field, by_query}) {
    for (const row& r : rows) {
      INFO(aurora::to_string(r.op) << " " << (r.before ? r.before->dump() : "-") << " -> "
                                   << (r.after ? r.after->dump() : "-"));
      const ChangeEvent ev = event(r.op, r.before, r.after);
      f.transitions = false;
      CHECK(deliver(f, ev) == r.plain);
      f.transitions = true;
      CHECK(deliver(f, ev) == r.transitions);
    }
  }
}

TEST_CASE("transitions: without document conditions every document is in the view", "[filter][transition]") {
  for (const bool transitions : {false, true}) {
    EventFilter f;
    f.transitions = transitions;
    CHECK(deliver(f, event(OperationType::Insert, std::nullopt, gone)) == Transition::enter);
    CHECK(deliver(f, event(OperationType::Update, gone, active)) == Transition::change);
    CHECK(deliver(f, event(OperationType::Delete, gone, std::nullopt)) == Transition::leave);
    f.operation = OperationType::Update;
    CHECK_FALSE(deliver(f, event(OperationType::Insert, std::nullopt, gone)));
    CHECK(deliver(f, event(OperationType::Update, gone, active)) == Transition::change);
  }
}

TEST_CASE("transitions: the operation and the view combine", "[filter][transition]") {
  EventFilter f;
  f.operation = OperationType::Update;
  f.where = aurora::Query::parse({{"status", "active"}});
  f.transitions = true;
  CHECK_FALSE(deliver(f, event(OperationType::Insert, std::nullopt, active)));
  CHECK_FALSE(deliver(f, event(OperationType::Delete, active, std::nullopt)));
  CHECK(deliver(f, event(OperationType::Update, active, gone)) == Transition::leave);
  // Both document conditions must hold for a document to be in the view.
  f.field_filters = {{"price", 2}};
  CHECK_FALSE(deliver(f, event(OperationType::Update, gone, active)));
  CHECK(deliver(f, event(OperationType::Update, gone, json{{"status", "active"}, {"price", 2}})) == Transition::enter);
}

TEST_CASE("changed: an Update passes when a listed path differs, present vs missing included", "[filter][changed]") {
  EventFilter f;
  f.changed = {"price", "/tags/0", "meta.rev"};
  const auto update = [&](json before, json after) {
    return deliver(f, event(OperationType::Update, std::move(before), std::move(after)));
  };
  CHECK(update({{"price", 1}}, {{"price", 2}}) == Transition::change);
  CHECK_FALSE(update({{"price", 1}, {"x", 1}}, {{"price", 1}, {"x", 2}}));
  CHECK_FALSE(update({{"price", 1}, {"x", 1}}, {{"price", 1.0}, {"x", 2}}));  // JSON equality
  CHECK(update({{"x", 1}}, {{"price", 1}}) == Transition::change);            // missing -> present
  CHECK(update({{"price", 1}}, {{"x", 1}}) == Transition::change);            // present -> missing
  CHECK(update({{"price", nullptr}}, {{"x", 1}}) == Transition::change);      // null -> missing
  CHECK_FALSE(update({{"x", 1}}, {{"x", 2}}));                                // missing both times
  CHECK(update({{"tags", {"a"}}}, {{"tags", {"b"}}}) == Transition::change);
  CHECK_FALSE(update({{"tags", {"a"}}}, {{"tags", {"a", "b"}}}));
  CHECK(update({{"meta", {{"rev", 1}}}}, {{"meta", {{"rev", 2}}}}) == Transition::change);
  CHECK_FALSE(update({{"meta", {{"rev", 1}, {"by", "x"}}}}, {{"meta", {{"rev", 1}, {"by", "y"}}}}));
  // Insert and Delete pass.
  CHECK(deliver(f, event(OperationType::Insert, std::nullopt, json{{"x", 1}})) == Transition::enter);
  CHECK(deliver(f, event(OperationType::Delete, json{{"x", 1}}, std::nullopt)) == Transition::leave);
  // An empty or malformed path never differs.
  f.changed = {"", "/a~2"};
  CHECK_FALSE(update({{"x", 1}}, {{"x", 2}}));
  f.changed.clear();
  CHECK(update({{"x", 1}}, {{"x", 2}}) == Transition::change);
}

TEST_CASE("changed: with transitions it filters only change", "[filter][changed][transition]") {
  EventFilter f;
  f.field_filters = {{"status", "active"}};
  f.changed = {"price"};
  const json active2 = {{"status", "active"}, {"price", 2}};
  const json gone2 = {{"status", "gone"}, {"price", 2}};
  f.transitions = true;
  CHECK(deliver(f, event(OperationType::Update, gone, active)) == Transition::enter);  // price unchanged
  CHECK(deliver(f, event(OperationType::Update, active, gone)) == Transition::leave);  // price unchanged
  CHECK_FALSE(deliver(f, event(OperationType::Update, active, json{{"status", "active"}, {"price", 1}, {"x", 1}})));
  CHECK(deliver(f, event(OperationType::Update, active, active2)) == Transition::change);
  // Without transitions it applies to every Update, entering ones included.
  f.transitions = false;
  CHECK_FALSE(deliver(f, event(OperationType::Update, gone, active)));
  CHECK(deliver(f, event(OperationType::Update, gone, active2)) == Transition::enter);
  CHECK_FALSE(deliver(f, event(OperationType::Update, active, gone2)));
}

TEST_CASE("in_view checks the document conditions only", "[filter][transition]") {
  EventFilter f;
  f.operation = OperationType::Delete;
  f.field_filters = {{"status", "active"}};
  f.where = aurora::Query::parse({{"price", {{"$lt", 5}}}});
  const aurora::detail::compiled_filter compiled(f);
  CHECK(compiled.in_view(active));
  CHECK_FALSE(compiled.in_view(gone));
  CHECK_FALSE(compiled.in_view({{"status", "active"}, {"price", 9}}));
  CHECK(aurora::detail::compiled_filter(EventFilter{}).in_view(json::object()));
  EventFilter deep;
  deep.field_filters = {{"x", json::array()}};
  for (std::size_t i = 0; i < aurora::max_document_depth; ++i)
    deep.field_filters[0].value = json::array({deep.field_filters[0].value});
  REQUIRE(aurora::detail::nests_too_deep(deep.field_filters[0].value));
  CHECK_FALSE(aurora::detail::compiled_filter(deep).in_view({{"x", 1}}));
  CHECK_FALSE(
      aurora::detail::compiled_filter(deep).matches(event(OperationType::Insert, std::nullopt, json{{"x", 1}})));
}

TEST_CASE("EventFilter JSON: every key, defaults, and round trips", "[filter][json]") {
  const json full = json::parse(R"({
    "operation": "Update",
    "where": {"age": {"$gte": 21}},
    "fields": {"status": "active", "/a.b": [1, 2]},
    "changed": ["price", "/tags/0"],
    "transitions": true
  })");
  const EventFilter f = EventFilter::from_json(full);
  CHECK(f.operation == OperationType::Update);
  REQUIRE(f.where);
  CHECK(f.where->matches({{"age", 30}}));
  REQUIRE(f.field_filters.size() == 2);
  CHECK(f.field_filters[0].field == "/a.b");
  CHECK(f.field_filters[0].value == json{1, 2});
  CHECK(f.field_filters[1].field == "status");
  CHECK(f.changed == std::vector<std::string>{"price", "/tags/0"});
  CHECK(f.transitions);
  CHECK(json(f) == full);

  const EventFilter empty = EventFilter::from_json(json::object());
  CHECK_FALSE(empty.operation);
  CHECK_FALSE(empty.where);
  CHECK(empty.field_filters.empty());
  CHECK(empty.changed.empty());
  CHECK_FALSE(empty.transitions);
  CHECK(json(empty) == json::parse(R"({"operation": null, "fields": {}, "changed": [], "transitions": false})"));
  CHECK_FALSE(EventFilter::from_json({{"operation", nullptr}}).operation);
  for (const OperationType op : {OperationType::Insert, OperationType::Update, OperationType::Delete}) {
    CHECK(EventFilter::from_json({{"operation", aurora::to_string(op)}}).operation == op);
  }

  // A filter made in C++ round-trips too; repeated fields keep the last value.
  EventFilter cpp;
  cpp.operation = OperationType::Delete;
  cpp.field_filters = {{"a", 1}, {"a", 2}};
  cpp.where = aurora::Query::parse({{"$or", {{{"x", 1}}, {{"y", 1}}}}});
  const json written = cpp;
  CHECK(written["fields"] == json{{"a", 2}});
  CHECK(json(EventFilter::from_json(written)) == written);

  EventFilter deep;
  deep.field_filters = {{"x", json::array()}};
  for (std::size_t i = 0; i < aurora::max_document_depth; ++i)
    deep.field_filters[0].value = json::array({deep.field_filters[0].value});
  REQUIRE(aurora::detail::nests_too_deep(deep.field_filters[0].value));
  CHECK_THROWS_WITH(json(deep), Catch::Contains("filter: at $.fields.x: nests deeper"));
}

TEST_CASE("EventFilter JSON: every malformed form throws invalid_argument naming its path", "[filter][json]") {
  json deep = 1;
  for (std::size_t i = 0; i <= aurora::max_document_depth; ++i) deep = json::array({deep});
  struct row {
    const char* kind;
    json spec;
    const char* where;
  };
  const std::vector<row> rows = {
      {"not an object", json::array(), "filter: at $: a filter must be a JSON object"},
      {"unknown key", {{"wher", json::object()}}, "filter: at $.wher: unknown key"},
      {"operation of the wrong type", {{"operation", 1}}, "at $.operation: must be \"Insert\""},
      {"unknown operation", {{"operation", "insert"}}, "at $.operation: must be"},
      {"where not an object", {{"where", json::array()}}, "at $.where: a query must be a JSON object"},
      {"where with a bad operand",
       {{"where", {{"a", {{"$gt", nullptr}}}}}},
       "filter: at $.where.a.$gt: needs a number"},
      {"fields not an object", {{"fields", json::array({"a"})}}, "at $.fields: must be an object"},
      {"fields with an empty path", {{"fields", {{"", 1}}}}, "at $.fields['']: empty path"},
      {"fields with a malformed pointer", {{"fields", {{"/~", 1}}}}, "at $.fields['/~']: malformed JSON Pointer"},
      {"fields with a deep value", {{"fields", {{"x", deep}}}}, "at $.fields.x: nests deeper"},
      {"fields with NaN",
       {{"fields", {{"x", std::numeric_limits<double>::quiet_NaN()}}}},
       "at $.fields.x: holds a NaN"},
      {"changed not an array", {{"changed", "price"}}, "at $.changed: must be an array of paths"},
      {"changed with a number", {{"changed", {"a", 1}}}, "at $.changed[1]: must be a path"},
      {"changed with an empty path", {{"changed", {""}}}, "at $.changed[0]: empty path"},
      {"changed with a malformed pointer", {{"changed", {"/a~"}}}, "at $.changed[0]: malformed JSON Pointer"},
      {"transitions not a bool", {{"transitions", 1}}, "at $.transitions: must be true or false"},
  };
  for (const row& r : rows) {
    INFO(r.kind);
    CHECK_THAT(from_json_error(r.spec), Catch::Contains(r.where));
  }
}
