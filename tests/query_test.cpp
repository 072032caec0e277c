// Tests for aurora/query.hpp: every operator from JSON and from the builders, number, string and
// bool ordering, canonical JSON round trips, every malformed spec, depth limits, no allocation
// while matching, and a randomized comparison with the reference evaluator in query_reference.hpp.
#include <aurora/database.hpp>
#include <aurora/filter.hpp>
#include <aurora/query.hpp>

#include "query_reference.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <new>
#include <random>
#include <string>
#include <utility>
#include <vector>

// Counts allocations of this test program, to prove that matching allocates nothing. Every
// unaligned form is replaced, so that none is paired with a sanitizer's own (aligned ones are
// left alone: they pair with themselves). ThreadSanitizer's runtime defines them all itself, so
// there nothing is replaced and nothing counted.
#if defined(__SANITIZE_THREAD__)
#define AURORA_TEST_COUNTS_ALLOCATIONS 0
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define AURORA_TEST_COUNTS_ALLOCATIONS 0
#endif
#endif
#ifndef AURORA_TEST_COUNTS_ALLOCATIONS
#define AURORA_TEST_COUNTS_ALLOCATIONS 1
#endif

namespace {
std::atomic<std::size_t> allocations{0};
}  // namespace

#if AURORA_TEST_COUNTS_ALLOCATIONS

void* operator new(std::size_t size) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) { return operator new(size); }
void* operator new(std::size_t size, const std::nothrow_t& /*tag*/) noexcept {
  allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(size == 0 ? 1 : size);
}
void* operator new[](std::size_t size, const std::nothrow_t& tag) noexcept { return operator new(size, tag); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t /*size*/) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t /*size*/) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t& /*tag*/) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t& /*tag*/) noexcept { std::free(p); }
#endif

using aurora::Query;
using json = nlohmann::json;
using namespace aurora::query;  // NOLINT(google-build-using-namespace): the builders read best this way

namespace {

const json user = {
    {"name", "Ada"},
    {"age", 21},
    {"score", 2.5},
    {"big", std::numeric_limits<std::uint64_t>::max()},
    {"neg", -1},
    {"flag", true},
    {"nothing", nullptr},
    {"tier", "gold"},
    {"address", {{"city", "London"}, {"zip", "N1"}}},
    {"tags", {"math", "poet"}},
    {"a.b", "dotted key"},
    {"$x", "dollar key"},
};

bool matches(const json& spec, const json& doc = user) { return Query::parse(spec).matches(doc); }

json to_json_of(const Query& q) { return json(q); }

// The message of the invalid_argument that parsing `spec` throws ("" when it does not throw).
std::string parse_error(const json& spec) {
  try {
    (void)Query::parse(spec);
  } catch (const aurora::error& e) {
    CHECK(e.code() == aurora::errc::invalid_argument);
    return e.what();
  }
  return "";
}

json nested_arrays(std::size_t depth) {
  json v = 1;
  for (std::size_t i = 0; i < depth; ++i) v = json::array({std::move(v)});
  return v;
}

}  // namespace

TEST_CASE("every operator, from JSON and from the builders, on one document", "[query]") {
  struct row {
    json spec;
    Query built;
    bool expected;
    bool same_json = true;  // the builders write the spec's canonical form
  };
  const std::vector<row> rows = {
      // $eq, written bare and explicitly: JSON equality, integers exactly, no array magic.
      {{{"age", 21}}, field("age") == 21, true},
      {{{"age", {{"$eq", 21.0}}}}, field("age") == 21.0, true},
      {{{"age", "21"}}, field("age") == "21", false},
      {{{"nothing", nullptr}}, field("nothing") == nullptr, true},
      {{{"missing", nullptr}}, field("missing") == nullptr, false},
      {{{"tags", {"math", "poet"}}}, field("tags") == json{"math", "poet"}, true},
      {{{"tags", "math"}}, field("tags") == "math", false},
      {{{"address", {{"city", "London"}, {"zip", "N1"}}}},
       field("address") == json{{"city", "London"}, {"zip", "N1"}},
       true},
      {{{"address", {{"city", "London"}}}}, field("address") == json{{"city", "London"}}, false},
      {{{"big", -1}}, field("big") == -1, false},
      {{{"neg", -1}}, field("neg") == -1, true},
      // $ne: the negation of $eq, so it holds for a missing field.
      {{{"age", {{"$ne", 22}}}}, field("age") != 22, true},
      {{{"age", {{"$ne", 21}}}}, field("age") != 21, false},
      {{{"missing", {{"$ne", 1}}}}, field("missing") != 1, true},
      // $gt $gte $lt $lte: numbers, strings, bools; other types and missing fields never compare.
      {{{"age", {{"$gt", 20}}}}, field("age") > 20, true},
      {{{"age", {{"$gt", 21}}}}, field("age") > 21, false},
      {{{"age", {{"$gt", 20.5}}}}, field("age") > 20.5, true},
      {{{"score", {{"$gt", 2}}}}, field("score") > 2, true},
      {{{"age", {{"$gte", 21}}}}, field("age") >= 21, true},
      {{{"age", {{"$gte", 21.5}}}}, field("age") >= 21.5, false},
      {{{"age", {{"$lt", 22}}}}, field("age") < 22, true},
      {{{"age", {{"$lt", 21}}}}, field("age") < 21, false},
      {{{"age", {{"$lte", 21}}}}, field("age") <= 21, true},
      {{{"age", {{"$lte", 20.99}}}}, field("age") <= 20.99, false},
      {{{"big", {{"$gt", std::numeric_limits<std::int64_t>::max()}}}},
       field("big") > std::numeric_limits<std::int64_t>::max(),
       true},
      {{{"neg", {{"$lt", std::numeric_limits<std::uint64_t>::max()}}}},
       field("neg") < std::numeric_limits<std::uint64_t>::max(),
       true},
      {{{"name", {{"$gt", "Ab"}}}}, field("name") > "Ab", true},
      {{{"name", {{"$lt", "Ada "}}}}, field("name") < "Ada ", true},
      {{{"name", {{"$gt", 1}}}}, field("name") > 1, false},
      {{{"age", {{"$lt", "z"}}}}, field("age") < "z", false},
      {{{"flag", {{"$gt", false}}}}, field("flag") > false, true},
      {{{"flag", {{"$lt", true}}}}, field("flag") < true, false},
      {{{"flag", {{"$gt", 0}}}}, field("flag") > 0, false},
      {{{"nothing", {{"$lte", 0}}}}, field("nothing") <= 0, false},
      {{{"missing", {{"$lt", 100}}}}, field("missing") < 100, false},
      {{{"tags", {{"$gt", "a"}}}}, field("tags") > "a", false},
      // $in / $nin: equality with any element; $nin holds for a missing field.
      {{{"tier", {{"$in", {"gold", "platinum"}}}}}, field("tier").in({"gold", "platinum"}), true},
      {{{"tier", {{"$in", {"silver"}}}}}, field("tier").in({"silver"}), false},
      {{{"age", {{"$in", {1, 21.0}}}}}, field("age").in({1, 21.0}), true},
      {{{"tags", {{"$in", {"math"}}}}}, field("tags").in({"math"}), false},
      {json::parse(R"({"tags": {"$in": [["math", "poet"]]}})"), field("tags").in({json{"math", "poet"}}), true},
      {{{"missing", {{"$in", {nullptr}}}}}, field("missing").in({nullptr}), false},
      {{{"age", {{"$in", json::array()}}}}, field("age").in({}), false},
      {{{"tier", {{"$nin", {"silver"}}}}}, field("tier").nin({"silver"}), true},
      {{{"tier", {{"$nin", {"gold"}}}}}, field("tier").nin({"gold"}), false},
      {{{"missing", {{"$nin", {1}}}}}, field("missing").nin({1}), true},
      // $exists: a stored null exists.
      {{{"nothing", {{"$exists", true}}}}, field("nothing").exists(), true},
      {{{"missing", {{"$exists", true}}}}, field("missing").exists(), false},
      {{{"missing", {{"$exists", false}}}}, field("missing").exists(false), true},
      {{{"age", {{"$exists", false}}}}, field("age").exists(false), false},
      // $not: field-level, so it holds for a missing field.
      {{{"age", {{"$not", {{"$gt", 30}}}}}}, field("age").is_not(gt(30)), true},
      {{{"age", {{"$not", {{"$gte", 21}}}}}}, field("age").is_not(gte(21)), false},
      {{{"age", {{"$not", {{"$lt", 21}}}}}}, field("age").is_not(lt(21)), true},
      {{{"age", {{"$not", {{"$lte", 21}}}}}}, field("age").is_not(lte(21)), false},
      {{{"age", {{"$not", {{"$eq", 21}}}}}}, field("age").is_not(eq(21)), false},
      {{{"age", {{"$not", {{"$ne", 21}}}}}}, field("age").is_not(ne(21)), true},
      {{{"age", {{"$not", {{"$in", {21}}}}}}}, field("age").is_not(in({21})), false},
      {{{"age", {{"$not", {{"$nin", {21}}}}}}}, field("age").is_not(nin({21})), true},
      {{{"age", {{"$not", {{"$exists", true}}}}}}, field("age").is_not(exists()), false},
      {{{"missing", {{"$not", {{"$gt", 1}}}}}}, field("missing").is_not(gt(1)), true},
      // Several operators on one field, and several fields: all must hold.
      // (The builders write {"$and": [{"age": {"$gt": 18}}, {"age": {"$lt": 65}}]} for these.)
      {{{"age", {{"$gt", 18}, {"$lt", 65}}}}, field("age") > 18 && field("age") < 65, true, false},
      {{{"age", {{"$gt", 18}, {"$lt", 20}}}}, field("age") > 18 && field("age") < 20, false, false},
      {{{"age", 21}, {"tier", "gold"}}, field("age") == 21 && field("tier") == "gold", true},
      {{{"age", 21}, {"tier", "silver"}}, field("age") == 21 && field("tier") == "silver", false},
      // $and / $or / $nor.
      {{{"$and", {{{"age", 21}}, {{"name", "Ada"}}}}}, field("age") == 21 && field("name") == "Ada", true},
      {{{"$and", {{{"age", 21}}, {{"name", "Bob"}}}}}, field("age") == 21 && field("name") == "Bob", false},
      {{{"$or", {{{"age", 30}}, {{"name", "Ada"}}}}}, field("age") == 30 || field("name") == "Ada", true},
      {{{"$or", {{{"age", 30}}, {{"name", "Bob"}}}}}, field("age") == 30 || field("name") == "Bob", false},
      {{{"$nor", {{{"age", 30}}, {{"name", "Bob"}}}}}, !(field("age") == 30 || field("name") == "Bob"), true},
      {{{"$nor", {{{"age", 21}}}}}, !(field("age") == 21), false},
      // Paths: dotted into objects, JSON Pointers for dotted keys, array elements and '$' keys.
      {{{"address.city", "London"}}, field("address.city") == "London", true},
      {{{"address.city.x", {{"$exists", false}}}}, field("address.city.x").exists(false), true},
      {{{"tags.0", "math"}}, field("tags.0") == "math", false},
      {{{"/tags/0", "math"}}, field("/tags/0") == "math", true},
      {{{"/a.b", "dotted key"}}, field("/a.b") == "dotted key", true},
      {{{"a.b", {{"$exists", false}}}}, field("a.b").exists(false), true},
      {{{"/$x", "dollar key"}}, field("/$x") == "dollar key", true},
      // An object without '$' keys is a plain value; one whose value has '$' keys needs $eq.
      {{{"address", {{"$eq", {{"city", "London"}, {"zip", "N1"}}}}}},
       field("address") == json{{"city", "London"}, {"zip", "N1"}},
       true},
      {{{"address", {{"$eq", {{"$city", "London"}}}}}}, field("address") == json{{"$city", "London"}}, false},
      // The empty query matches everything.
      {json::object(), Query{}, true},
  };
  for (const row& r : rows) {
    INFO(r.spec.dump());
    CHECK(matches(r.spec) == r.expected);
    CHECK(r.built.matches(user) == r.expected);
    if (r.same_json) CHECK(to_json_of(Query::parse(r.spec)) == to_json_of(r.built));
    CHECK(Query::parse(to_json_of(r.built)).matches(user) == r.expected);
  }
}

TEST_CASE("integers compare exactly, a floating operand as double", "[query]") {
  const auto max_u = std::numeric_limits<std::uint64_t>::max();
  const auto max_i = std::numeric_limits<std::int64_t>::max();
  const auto min_i = std::numeric_limits<std::int64_t>::min();
  const json doc = {{"u", max_u},
                    {"i", max_i},
                    {"m", min_i},
                    {"two63", std::uint64_t{1} << 63U},
                    {"p53", (std::int64_t{1} << 53) + 1},
                    {"zero", 0},
                    {"nzero", -0.0}};
  // nlohmann's own operator== says 2^64-1 == -1; Aurora's queries do not.
  CHECK(json(max_u) == json(-1));
  CHECK_FALSE(matches({{"u", -1}}, doc));
  CHECK(matches({{"u", {{"$gt", -1}}}}, doc));
  CHECK_FALSE(matches({{"u", {{"$lt", -1}}}}, doc));
  CHECK(matches({{"i", {{"$lt", std::uint64_t{1} << 63U}}}}, doc));
  CHECK(matches({{"two63", {{"$gt", max_i}}}}, doc));
  CHECK_FALSE(matches({{"two63", max_i}}, doc));
  CHECK(matches({{"m", {{"$lt", max_u}}}}, doc));
  CHECK(matches({{"m", {{"$lte", min_i}}}}, doc));
  // 2^53 + 1 is not a double: as an integer it exceeds 2^53, against a double it equals 2^53.
  CHECK(matches({{"p53", {{"$gt", std::int64_t{1} << 53}}}}, doc));
  CHECK(matches({{"p53", 9007199254740992.0}}, doc));
  CHECK_FALSE(matches({{"p53", {{"$gt", 9007199254740992.0}}}}, doc));
  CHECK(matches({{"u", {{"$gte", 1.8446744073709552e19}}}}, doc));
  CHECK(matches({{"i", {{"$lt", 1e300}}}}, doc));
  CHECK(matches({{"m", {{"$gt", -1e300}}}}, doc));
  CHECK(matches({{"zero", -0.0}}, doc));
  CHECK(matches({{"nzero", 0}}, doc));
  CHECK(matches({{"nzero", {{"$gte", 0}}}}, doc));
  CHECK_FALSE(matches({{"nzero", {{"$lt", 0}}}}, doc));
}

TEST_CASE("strings compare by UTF-8 bytes, booleans false before true", "[query]") {
  const json doc = {{"e", "\xc3\xa9"}, {"B", "B"}, {"ab", "ab"}, {"empty", ""}, {"f", false}};
  CHECK(matches({{"e", {{"$gt", "z"}}}}, doc));  // U+00E9 after every ASCII letter
  CHECK(matches({{"e", {{"$lt", "\xe2\x82\xac"}}}}, doc));
  CHECK(matches({{"B", {{"$lt", "a"}}}}, doc));  // no case folding
  CHECK(matches({{"ab", {{"$gt", "a"}}}}, doc));
  CHECK(matches({{"empty", {{"$lt", "\x01"}}}}, doc));
  CHECK(matches({{"f", {{"$lt", true}}}}, doc));
  CHECK(matches({{"f", {{"$gte", false}}}}, doc));
  CHECK_FALSE(matches({{"f", {{"$gt", false}}}}, doc));
  CHECK_FALSE(matches({{"f", {{"$lt", 1}}}}, doc));
}

TEST_CASE("NaN and documents that are not objects never match a condition", "[query]") {
  const json doc = {{"x", std::numeric_limits<double>::quiet_NaN()}};
  CHECK_FALSE(matches({{"x", {{"$gte", 0}}}}, doc));
  CHECK_FALSE(matches({{"x", {{"$lte", 0}}}}, doc));
  CHECK(matches({{"x", {{"$ne", 0}}}}, doc));
  CHECK(matches({{"x", {{"$exists", true}}}}, doc));
  CHECK_FALSE(matches({{"a", 1}}, json::array({1})));
  CHECK(matches({{"/0", 1}}, json::array({1})));
  CHECK(matches(json::object(), json("not an object")));
}

TEST_CASE("the builders write the JSON the API describes", "[query]") {
  const Query q = field("age") >= 21 && (field("tier").in({"gold", "platinum"}) || !field("trial").exists());
  CHECK(to_json_of(q) == json::parse(R"({
    "age": {"$gte": 21},
    "$or": [{"tier": {"$in": ["gold", "platinum"]}}, {"$nor": [{"trial": {"$exists": true}}]}]
  })"));
  CHECK(q.matches({{"age", 30}, {"tier", "gold"}, {"trial", true}}));
  CHECK(q.matches({{"age", 30}}));
  CHECK_FALSE(q.matches({{"age", 30}, {"trial", false}}));
  CHECK_FALSE(q.matches({{"age", 20}, {"tier", "gold"}}));

  CHECK(to_json_of(!(field("a") == 1)) == json::parse(R"({"$nor": [{"a": 1}]})"));
  CHECK(to_json_of(!(field("a") == 1 || field("b") == 2)) == json::parse(R"({"$nor": [{"a": 1}, {"b": 2}]})"));
  CHECK(to_json_of(field("a") == 1 && field("a") == 2) == json::parse(R"({"$and": [{"a": 1}, {"a": 2}]})"));
  CHECK(to_json_of((field("a") == 1 && field("b") == 2) && field("c") == 3) ==
        json::parse(R"({"a": 1, "b": 2, "c": 3})"));
  CHECK(to_json_of(Query{} && field("a") == 1) == json::parse(R"({"a": 1})"));
  CHECK(to_json_of(Query{} || field("a") == 1) == json::parse(R"({"$or": [{}, {"a": 1}]})"));
  CHECK(to_json_of(!Query{}) == json::parse(R"({"$nor": [{}]})"));
  CHECK_FALSE((!Query{}).matches(user));
  CHECK(field("x").path() == "x");
}

TEST_CASE("to_json writes a canonical form that parses back to itself", "[query]") {
  const std::vector<std::pair<const char*, const char*>> cases = {
      {R"({})", R"({})"},
      {R"({"age": {"$eq": 21}})", R"({"age": 21})"},
      {R"({"age": {"$eq": 21, "$ne": 22}})", R"({"age": {"$eq": 21, "$ne": 22}})"},
      {R"({"a": {"$eq": {"$x": 1}}})", R"({"a": {"$eq": {"$x": 1}}})"},
      {R"({"a": {"$eq": {"x": 1}}})", R"({"a": {"x": 1}})"},
      {R"({"a": {"$eq": {}}})", R"({"a": {}})"},
      {R"({"$and": [{"a": 1}, {"b": 2}]})", R"({"a": 1, "b": 2})"},
      {R"({"$and": [{"a": 1, "b": 2}]})", R"({"a": 1, "b": 2})"},
      {R"({"$and": [{"a": {"$gt": 1}}, {"a": {"$lt": 5}}]})", R"({"$and": [{"a": {"$gt": 1}}, {"a": {"$lt": 5}}]})"},
      {R"({"$and": [{"a": 1}], "a": 2})", R"({"$and": [{"a": 1}, {"a": 2}]})"},
      {R"({"$and": [{}, {"a": 1}]})", R"({"a": 1})"},
      {R"({"$and": [{}]})", R"({})"},
      {R"({"$or": [{"a": 1}]})", R"({"a": 1})"},
      {R"({"$or": [{}]})", R"({})"},
      {R"({"$or": [{"$or": [{"a": 1}, {"b": 1}]}, {"c": 1}]})", R"({"$or": [{"a": 1}, {"b": 1}, {"c": 1}]})"},
      {R"({"$or": [{"a": 1}, {"b": 1}], "$nor": [{"c": 1}], "d": 1})",
       R"({"$or": [{"a": 1}, {"b": 1}], "$nor": [{"c": 1}], "d": 1})"},
      {R"({"$nor": [{"$or": [{"a": 1}, {"b": 1}]}]})", R"({"$nor": [{"a": 1}, {"b": 1}]})"},
      {R"({"$nor": [{"$nor": [{"a": 1}]}]})", R"({"$nor": [{"$nor": [{"a": 1}]}]})"},
      {R"({"a": {"$not": {"$not": {"$in": [1, [2]]}}}})", R"({"a": {"$not": {"$not": {"$in": [1, [2]]}}}})"},
      {R"({"a": {"$exists": false, "$nin": []}})", R"({"a": {"$exists": false, "$nin": []}})"},
  };
  for (const auto& [in, out] : cases) {
    INFO(in);
    const json written = to_json_of(Query::parse(json::parse(in)));
    CHECK(written == json::parse(out));
    CHECK(to_json_of(Query::parse(written)) == written);
  }
}

TEST_CASE("every malformed spec throws invalid_argument naming its path", "[query]") {
  json nan_operand = {{"a", {{"$eq", std::numeric_limits<double>::quiet_NaN()}}}};
  json inf_operand = {{"a", {{"$in", {1, std::numeric_limits<double>::infinity()}}}}};
  json discarded_operand = {{"a", json(json::value_t::discarded)}};
  json deep_and = {{"a", 1}};
  for (int i = 0; i < 128; ++i) deep_and = {{"$and", {deep_and}}};
  json deep_not = {{"$gt", 1}};
  for (int i = 0; i < 255; ++i) deep_not = {{"$not", deep_not}};
  struct row {
    const char* kind;
    json spec;
    const char* where;  // what the message must contain
  };
  const std::vector<row> rows = {
      {"not an object", json::array(), "query: at $: a query must be a JSON object"},
      {"not an object (discarded parse)", json(json::value_t::discarded), "at $: a query must"},
      {"unknown top-level operator", {{"$foo", 1}}, "at $.$foo: unknown operator"},
      {"$not at the top level", {{"$not", {{"a", 1}}}}, "at $.$not: unknown operator"},
      {"$where is not supported", {{"$where", "x"}}, "at $.$where: unknown operator"},
      {"unknown field operator", {{"a", {{"$foo", 1}}}}, "at $.a.$foo: unknown operator"},
      {"$regex is not supported", {{"a", {{"$regex", "x"}}}}, "at $.a.$regex: unknown operator"},
      {"logical operator on a field", {{"a", {{"$and", {{{"b", 1}}}}}}}, "at $.a.$and: unknown operator here"},
      {"$in without an array", {{"a", {{"$in", 1}}}}, "at $.a.$in: needs an array"},
      {"$nin without an array", {{"a", {{"$nin", {{"x", 1}}}}}}, "at $.a.$nin: needs an array"},
      {"$and with an empty array", {{"$and", json::array()}}, "at $.$and: needs a non-empty array"},
      {"$or without an array", {{"$or", {{"a", 1}}}}, "at $.$or: needs a non-empty array"},
      {"$nor element not an object", {{"$nor", {1}}}, "at $.$nor[0]: a query must be a JSON object"},
      {"nested error", {{"$and", {{{"a", 1}}, {{"b", {{"$in", 3}}}}}}}, "at $.$and[1].b.$in: needs an array"},
      {"$exists without a bool", {{"a", {{"$exists", 1}}}}, "at $.a.$exists: needs true or false"},
      {"comparison with null", {{"a", {{"$gt", nullptr}}}}, "at $.a.$gt: needs a number, string or bool"},
      {"comparison with an array", {{"a", {{"$lte", {1}}}}}, "at $.a.$lte: needs a number, string or bool"},
      {"comparison with an object", {{"a", {{"$lt", json::object()}}}}, "at $.a.$lt: needs a number"},
      {"operators mixed with plain keys",
       {{"a", {{"$gt", 1}, {"b", 2}}}},
       "at $.a.b: operators mixed with a plain key"},
      {"$not without an object", {{"a", {{"$not", 5}}}}, "at $.a.$not: needs an object of operators"},
      {"$not with an empty object", {{"a", {{"$not", json::object()}}}}, "at $.a.$not: needs an object of operators"},
      {"$not with a plain value", {{"a", {{"$not", {{"b", 1}}}}}}, "at $.a.$not: needs an object of operators"},
      {"$not with a bad operator", {{"a", {{"$not", {{"$gt", nullptr}}}}}}, "at $.a.$not.$gt: needs a number"},
      {"empty path", {{"", 1}}, "at $['']: empty path"},
      {"malformed pointer ~2", {{"/a~2", 1}}, "at $['/a~2']: malformed JSON Pointer"},
      {"malformed pointer, dangling ~", {{"/a~", 1}}, "at $['/a~']: malformed JSON Pointer"},
      {"too deep: operand", {{"a", nested_arrays(256)}}, "at $.a: nests deeper than aurora::max_document_depth"},
      {"too deep: $eq operand", {{"a", {{"$eq", nested_arrays(255)}}}}, "at $.a.$eq: nests deeper"},
      {"too deep: $in operand", {{"a", {{"$in", {nested_arrays(254)}}}}}, "at $.a.$in: nests deeper"},
      {"too deep: $and", deep_and, "nests deeper than aurora::max_document_depth"},
      {"too deep: $not", {{"a", deep_not}}, ".$not: nests deeper than aurora::max_document_depth"},
      {"NaN operand", nan_operand, "at $.a.$eq: holds a NaN or infinite number"},
      {"infinite operand", inf_operand, "at $.a.$in: holds a NaN or infinite number"},
      {"discarded operand", discarded_operand, "at $.a: holds a discarded value"},
  };
  for (const row& r : rows) {
    INFO(r.kind);
    const std::string what = parse_error(r.spec);
    CHECK_THAT(what, Catch::Contains(r.where));
  }
}

TEST_CASE("depth: exactly max_document_depth parses, one more level throws", "[query]") {
  CHECK(parse_error({{"a", nested_arrays(255)}}).empty());             // 1 + 255
  CHECK(parse_error({{"a", {{"$eq", nested_arrays(254)}}}}).empty());  // 2 + 254
  json and_chain = {{"a", 1}};
  for (int i = 0; i < 127; ++i) and_chain = {{"$and", {and_chain}}};  // 1 + 2 * 127
  CHECK(parse_error(and_chain).empty());
  json not_chain = {{"$gt", 1}};
  for (int i = 0; i < 254; ++i) not_chain = {{"$not", not_chain}};  // 2 + 254
  CHECK(parse_error({{"a", not_chain}}).empty());
  CHECK_FALSE(Query::parse({{"a", not_chain}}).matches(json::object()));  // 254 negations of false
  CHECK(Query::parse({{"a", not_chain}}).matches({{"a", 2}}));

  // A hostile depth is rejected without recursing through it.
  std::string deep = "{\"a\":";
  deep.append(1'000'000, '[');
  deep.append(1'000'000, ']');
  deep.push_back('}');
  CHECK_THAT(parse_error(json::parse(deep)), Catch::Contains("nests deeper"));

  // The builders refuse to nest deeper too, so whatever they build parses back.
  Query q = field("a") == 1;
  std::size_t negations = 0;
  try {
    for (;; ++negations) q = !q;
  } catch (const aurora::error& e) {
    CHECK(e.code() == aurora::errc::invalid_argument);
  }
  CHECK(negations == 127);  // {"$nor": [...]} adds two levels to a query one level deep
  CHECK(to_json_of(Query::parse(to_json_of(q))) == to_json_of(q));
  Query mixed = field("a") == 1;
  std::size_t levels = 0;
  try {
    for (;; ++levels) mixed = field("x") == 1 && (field("y") == 1 || mixed);  // {"x": 1, "$or": [{"y": 1}, mixed]}
  } catch (const aurora::error& e) {
    CHECK(e.code() == aurora::errc::invalid_argument);
  }
  CHECK(levels == 127);
  CHECK(to_json_of(Query::parse(to_json_of(mixed))) == to_json_of(mixed));
}

TEST_CASE("builders throw what parsing the same JSON throws", "[query]") {
  CHECK_THROWS_WITH(field("") == 1, Catch::Contains("at $['']: empty path"));
  CHECK_THROWS_WITH(field("/a~2").exists(), Catch::Contains("malformed JSON Pointer"));
  CHECK_THROWS_WITH(field("$x") == 1, Catch::Contains("at $.$x: unknown operator"));
  CHECK_THROWS_WITH(field("a") > nullptr, Catch::Contains("at $.a.$gt: needs a number, string or bool"));
  CHECK_THROWS_WITH(field("a").is_not(gt(json::array())), Catch::Contains("at $.a.$not.$gt"));
  CHECK_THROWS_WITH(field("a") == nested_arrays(300), Catch::Contains("nests deeper"));
  CHECK_THROWS_WITH(field("a").in({std::numeric_limits<double>::quiet_NaN()}), Catch::Contains("NaN"));
  CHECK_THROWS_AS(field("a") < json::object(), aurora::error);
}

TEST_CASE("a Query is a value: copies, moves and the default", "[query]") {
  const Query q = Query::parse({{"age", {{"$gte", 21}}}});
  Query copy = q;
  CHECK(copy.matches(user));
  Query moved = std::move(copy);
  CHECK(moved.matches(user));
  CHECK(to_json_of(moved) == to_json_of(q));
  copy = moved;
  CHECK(copy.matches(user));
  const Query everything;
  CHECK(everything.matches(user));
  CHECK(everything.matches(json::object()));
  CHECK(to_json_of(everything) == json::object());
  CHECK(to_json_of(Query::parse(json::object())) == json::object());
}

TEST_CASE("matching allocates nothing", "[query]") {
  const Query q = field("age") >= 21 && field("tier").in({"gold", "platinum"}) && field("address.city") == "London" &&
                  !(field("flag") == false) && field("/tags/1").is_not(eq("math"));
  aurora::EventFilter f;
  f.where = q;
  f.field_filters = {{"name", "Ada"}};
  f.changed = {"age", "tier"};
  f.transitions = true;
  const aurora::detail::compiled_filter compiled(f);
  aurora::ChangeEvent ev;
  ev.operation = aurora::OperationType::Update;
  ev.document = std::make_shared<const aurora::Document>(user);
  aurora::Document older = user;
  older["age"] = 20;
  ev.old_document = std::make_shared<const aurora::Document>(std::move(older));
  const std::size_t before = allocations.load();
  bool all = true;
  for (int i = 0; i < 1000; ++i) {
    all = all && q.matches(user);
    all = all && compiled.deliver(ev) == aurora::Transition::enter;
  }
  const std::size_t after = allocations.load();
  CHECK(all);
  CHECK(after == before);  // (under ThreadSanitizer nothing is counted: see the top of this file)
}

namespace {

// Random documents and queries over a small vocabulary, so that they often meet.
class generator {
 public:
  explicit generator(std::uint64_t seed) : rng_(seed) {}

  json scalar() {
    static const std::vector<json> pool = {0,
                                           1,
                                           -1,
                                           21,
                                           21.0,
                                           21.5,
                                           -0.0,
                                           2.5,
                                           1e300,
                                           std::numeric_limits<std::int64_t>::min(),
                                           std::numeric_limits<std::int64_t>::max(),
                                           std::numeric_limits<std::uint64_t>::max(),
                                           std::uint64_t{1} << 63U,
                                           9007199254740993LL,
                                           9007199254740992.0,
                                           "",
                                           "a",
                                           "ab",
                                           "b",
                                           "B",
                                           "\xc3\xa9",
                                           "gold",
                                           true,
                                           false};
    return pick(pool);
  }

  json value(int depth = 0) {
    switch (below(depth < 2 ? 8 : 6)) {
      case 0: return nullptr;
      case 6: {
        json a = json::array();
        for (std::size_t n = below(3); n > 0; --n) a.push_back(value(depth + 1));
        return a;
      }
      case 7: {
        json o = json::object();
        for (std::size_t n = below(3); n > 0; --n) o[pick(keys_)] = value(depth + 1);
        return o;
      }
      default: return scalar();
    }
  }

  json document() {
    json doc = json::object();
    for (const std::string& k : keys_) {
      if (below(4) != 0) doc[k] = value();
    }
    if (below(2) != 0) doc["n"] = {{"x", value(1)}, {"y", scalar()}};
    if (below(2) != 0) doc["arr"] = {scalar(), scalar()};
    return doc;
  }

  // A valid spec the builders can express ($not holds one operator, which is not $not).
  json query(int depth = 0) {
    json q = json::object();
    for (std::size_t n = below(3) + (depth == 0 ? 1 : 0); n > 0; --n) {
      if (depth < 3 && below(4) == 0) {
        static const std::vector<std::string> logical = {"$and", "$or", "$nor"};
        json subs = json::array();
        for (std::size_t k = below(3) + 1; k > 0; --k) subs.push_back(query(depth + 1));
        q[pick(logical)] = subs;
      } else {
        static const std::vector<std::string> paths = {"a", "b", "c", "n.x", "n.y", "/arr/0", "/arr/1", "n", "arr"};
        const std::string path = pick(paths);
        if (below(4) == 0) {
          json plain = value(1);
          if (aurora::detail::query_program::has_operator_key(plain)) plain = 1;
          q[path] = plain;
        } else {
          json ops = json::object();
          for (std::size_t k = below(2) + 1; k > 0; --k) add_operator(ops, true);
          q[path] = ops;
        }
      }
    }
    return q;
  }

  std::size_t below(std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_); }

 private:
  void add_operator(json& ops, bool allow_not) {
    switch (below(allow_not ? 10 : 9)) {
      case 0: ops["$eq"] = value(1); break;
      case 1: ops["$ne"] = value(1); break;
      case 2: ops["$gt"] = scalar(); break;
      case 3: ops["$gte"] = scalar(); break;
      case 4: ops["$lt"] = scalar(); break;
      case 5: ops["$lte"] = scalar(); break;
      case 6:
      case 7: {
        json values = json::array();
        for (std::size_t k = below(4); k > 0; --k) values.push_back(value(1));
        ops[below(2) == 0 ? "$in" : "$nin"] = values;
        break;
      }
      case 8: ops["$exists"] = below(2) == 0; break;
      default: {
        json inner = json::object();
        add_operator(inner, false);
        ops["$not"] = inner;
      }
    }
  }

  template <class T>
  const T& pick(const std::vector<T>& from) {
    return from[below(from.size())];
  }

  std::mt19937_64 rng_;
  std::vector<std::string> keys_ = {"a", "b", "c"};
};

// The same query as `spec`, made with the builders.
Query build(const json& spec) {
  Query out;
  bool first = true;
  const auto add = [&](Query q) {
    out = first ? std::move(q) : out && q;
    first = false;
  };
  const auto condition = [](const std::string& op, const json& arg) {
    if (op == "$eq") return eq(arg);
    if (op == "$ne") return ne(arg);
    if (op == "$gt") return gt(arg);
    if (op == "$gte") return gte(arg);
    if (op == "$lt") return lt(arg);
    if (op == "$lte") return lte(arg);
    if (op == "$in") return in(arg.get<std::vector<json>>());
    if (op == "$nin") return nin(arg.get<std::vector<json>>());
    return exists(arg.get<bool>());
  };
  for (const auto& [key, value] : spec.items()) {
    if (key == "$and" || key == "$or" || key == "$nor") {
      Query combined = build(value[0]);
      for (std::size_t i = 1; i < value.size(); ++i) {
        combined = key == "$and" ? combined && build(value[i]) : combined || build(value[i]);
      }
      add(key == "$nor" ? !combined : combined);
      continue;
    }
    const Field f = field(key);
    if (!aurora::detail::query_program::has_operator_key(value)) {
      add(f == value);
      continue;
    }
    for (const auto& [op, arg] : value.items()) {
      if (op == "$eq") add(f == arg);
      if (op == "$ne") add(f != arg);
      if (op == "$gt") add(f > arg);
      if (op == "$gte") add(f >= arg);
      if (op == "$lt") add(f < arg);
      if (op == "$lte") add(f <= arg);
      if (op == "$in") add(f.in(arg.get<std::vector<json>>()));
      if (op == "$nin") add(f.nin(arg.get<std::vector<json>>()));
      if (op == "$exists") add(f.exists(arg.get<bool>()));
      if (op == "$not") add(f.is_not(condition(arg.begin().key(), arg.begin().value())));
    }
  }
  return out;
}

std::uint64_t test_seed() {
  std::uint64_t seed = 20260601;
  if (const char* env = std::getenv("AURORA_SEED")) seed = std::strtoull(env, nullptr, 10);
  std::printf("query randomized test: seed %llu (replay with AURORA_SEED=%llu)\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
  return seed;
}

}  // namespace

TEST_CASE("random queries on random documents agree with the reference evaluator", "[query][random]") {
  const std::uint64_t seed = test_seed();
  generator gen(seed);
  std::vector<json> docs;
  for (int i = 0; i < 200; ++i) docs.push_back(gen.document());
  std::size_t checks = 0;
  std::size_t hits = 0;
  for (int i = 0; i < 400; ++i) {
    const json spec = gen.query();
    INFO("seed " << seed << ", query " << i << ": " << spec.dump());
    const Query q = Query::parse(spec);
    const Query built = build(spec);
    const json written = to_json_of(q);
    const Query again = Query::parse(written);
    REQUIRE(to_json_of(again) == written);
    REQUIRE(to_json_of(built) == to_json_of(Query::parse(to_json_of(built))));
    for (const json& doc : docs) {
      const bool expected = query_reference::matches(spec, doc);
      INFO("document " << doc.dump());
      REQUIRE(q.matches(doc) == expected);
      REQUIRE(again.matches(doc) == expected);
      REQUIRE(built.matches(doc) == expected);
      REQUIRE(query_reference::matches(written, doc) == expected);
      ++checks;
      hits += expected ? 1 : 0;
    }
  }
  CHECK(checks == 80'000);
  // Both outcomes are common, or the comparison would prove little.
  CHECK(hits > checks / 20);
  CHECK(hits < checks * 19 / 20);
}

TEST_CASE("a subscription with a where filter receives the matching events", "[query][database]") {
  aurora::Database db;
  aurora::EventFilter adults;
  adults.where = field("age") >= 18 && field("country").in({"FR", "DE"});
  aurora::Subscription sub = db.subscribe("users", adults);
  const std::string ada = db.insert("users", {{"name", "Ada"}, {"age", 36}, {"country", "FR"}});
  db.insert("users", {{"name", "Bob"}, {"age", 12}, {"country", "FR"}});
  db.insert("users", {{"name", "Cleo"}, {"age", 40}, {"country", "US"}});
  db.update("users", ada, {{"age", 37}});
  std::vector<std::pair<std::string, aurora::OperationType>> got;
  for (aurora::RecvResult r = sub.try_recv(); r; r = sub.try_recv()) got.emplace_back(r->document_id, r->operation);
  const std::vector<std::pair<std::string, aurora::OperationType>> expected = {{ada, aurora::OperationType::Insert},
                                                                               {ada, aurora::OperationType::Update}};
  CHECK(got == expected);
}
