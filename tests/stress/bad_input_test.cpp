// Bad input: every kind of malformed argument the API can receive, what Aurora does with it,
// and that a rejected write changes nothing and publishes nothing.
#include <aurora/aurora.hpp>

#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace {

using json = nlohmann::json;

// Everything a Database shows: its collections and their documents.
std::map<std::string, std::map<std::string, json>> snapshot(
    const aurora::Database& db, const std::vector<std::pair<std::string, std::string>>& keys) {
  std::map<std::string, std::map<std::string, json>> out;
  for (const auto& name : db.collections()) out[name];
  for (const auto& [c, id] : keys) {
    if (auto doc = db.get(c, id)) out[c][id] = *doc;
  }
  return out;
}

// A database with two stored documents and a global subscription, to check that a rejected
// write changes and publishes nothing.
struct fixture {
  aurora::Database db;
  aurora::Subscription feed = db.subscribe_global();
  std::vector<std::pair<std::string, std::string>> keys;

  fixture() {
    keys.emplace_back("c", db.insert("c", {{"a", 1}, {"nested", {{"b", {1, 2, 3}}}}}));
    keys.emplace_back("c", db.insert("c", "mine", {{"z", "zz"}}));
    while (feed.try_recv()) {
    }
  }

  // Runs `write`, which must throw aurora::error with `code`, and checks that nothing changed.
  template <class Write>
  void rejects(Write&& write, aurora::errc code) {
    const auto before = snapshot(db, keys);
    const auto sizes = db.size("c");
    std::optional<aurora::errc> thrown;
    try {
      std::forward<Write>(write)();
    } catch (const aurora::error& e) {
      thrown = e.value();
      REQUIRE(e.code() == code);
      REQUIRE(std::string(e.what()).size() < 400);  // huge arguments do not make huge messages
    }
    REQUIRE(thrown == code);
    REQUIRE(snapshot(db, keys) == before);
    REQUIRE(db.size("c") == sizes);
    REQUIRE(feed.try_recv().error().code == aurora::errc::empty);
  }
};

json nested_objects(std::size_t depth) {  // the document itself is level 1
  json j = json::object();
  for (std::size_t i = 1; i < depth; ++i) j = json{{"d", std::move(j)}};
  return j;
}

json nested_arrays_in_object(std::size_t depth) {  // {"a": [[...]]} with `depth` levels in all
  json j = json::array();
  for (std::size_t i = 2; i < depth; ++i) j = json::array({std::move(j)});
  return json{{"a", std::move(j)}};
}

// A value nested `depth` levels, built by the (iterative) parser as a hostile input would be.
json parsed_deep(std::size_t depth) {
  std::string text(depth, '[');
  text.append(depth, ']');
  return json::parse(text);
}

json merged_patch_of(json target, const json& patch) {
  target.merge_patch(patch);
  return target;
}

bool valid_utf8_dump(const std::string& s) {
  try {
    (void)json(s).dump();
    return true;
  } catch (const json::type_error&) {
    return false;
  }
}

const std::string bad_utf8 = "\xff\xfe\xc3(";  // not UTF-8

}  // namespace

TEST_CASE("Documents that are not JSON objects are rejected with invalid_document", "[bad_input]") {
  fixture f;
  const std::vector<json> non_objects = {json::array(),
                                         json::array({1, 2}),
                                         json("text"),
                                         json(42),
                                         json(-1.5),
                                         json(true),
                                         json(nullptr),
                                         json::binary({1, 2, 3}),
                                         json::parse("{", nullptr, false)};  // discarded
  for (const json& doc : non_objects) {
    INFO("document: " << doc.type_name());
    f.rejects([&] { f.db.insert("c", doc); }, aurora::errc::invalid_document);
    f.rejects([&] { f.db.insert("c", "new-id", doc); }, aurora::errc::invalid_document);
    f.rejects([&] { f.db.replace("c", "mine", doc); }, aurora::errc::invalid_document);
    f.rejects([&] { f.db.update("c", "mine", doc); }, aurora::errc::invalid_document);
    // invalid_document wins over not_found / already_exists
    f.rejects([&] { f.db.insert("c", "mine", doc); }, aurora::errc::invalid_document);
    f.rejects([&] { f.db.update("nowhere", "none", doc); }, aurora::errc::invalid_document);
    f.rejects([&] { f.db.replace("nowhere", "none", doc); }, aurora::errc::invalid_document);
  }
}

TEST_CASE("Empty collection names and ids", "[bad_input]") {
  fixture f;
  f.rejects([&] { f.db.insert("", {{"a", 1}}); }, aurora::errc::invalid_argument);
  f.rejects([&] { f.db.insert("", "id", {{"a", 1}}); }, aurora::errc::invalid_argument);
  f.rejects([&] { f.db.insert_into("", {{"a", 1}}); }, aurora::errc::invalid_argument);
  f.rejects([&] { f.db.insert("c", "", {{"a", 1}}); }, aurora::errc::invalid_argument);
  // invalid_argument wins over invalid_document
  f.rejects([&] { f.db.insert("", json::array()); }, aurora::errc::invalid_argument);
  f.rejects([&] { f.db.insert("c", "", json::array()); }, aurora::errc::invalid_argument);
  // update / replace / remove name no collection or document that exists
  f.rejects([&] { f.db.update("", "mine", {{"a", 2}}); }, aurora::errc::not_found);
  f.rejects([&] { f.db.replace("", "mine", {{"a", 2}}); }, aurora::errc::not_found);
  f.rejects([&] { f.db.remove("", "mine"); }, aurora::errc::not_found);
  f.rejects([&] { f.db.update("c", "", {{"a", 2}}); }, aurora::errc::not_found);
  f.rejects([&] { f.db.replace("c", "", {{"a", 2}}); }, aurora::errc::not_found);
  f.rejects([&] { f.db.remove("c", ""); }, aurora::errc::not_found);
  REQUIRE_THROWS_MATCHES(f.db.subscribe(""), aurora::error, Catch::Predicate<aurora::error>([](const aurora::error& e) {
                           return e.code() == aurora::errc::invalid_argument;
                         }));
  REQUIRE_FALSE(f.db.get("", "mine"));
  REQUIRE_FALSE(f.db.get("c", ""));
  REQUIRE(f.db.size("") == 0);
  REQUIRE(f.db.subscriber_count("") == 0);
}

TEST_CASE("Writes to a collection that only has subscribers are not_found", "[bad_input]") {
  fixture f;
  aurora::Subscription sub = f.db.subscribe("only-subscribed");
  f.rejects([&] { f.db.update("only-subscribed", "x", {{"a", 1}}); }, aurora::errc::not_found);
  f.rejects([&] { f.db.replace("only-subscribed", "x", {{"a", 1}}); }, aurora::errc::not_found);
  f.rejects([&] { f.db.remove("only-subscribed", "x"); }, aurora::errc::not_found);
  REQUIRE(f.db.collections() == std::vector<std::string>{"c"});
}

TEST_CASE("Huge collection names and ids are stored as given, with short error messages", "[bad_input]") {
  // No length limit: any non-empty string is a valid name or id (1 MiB here).
  fixture f;
  const std::string huge(std::size_t{1} << 20U, 'n');
  const std::string id = f.db.insert(huge, huge + "-id", {{"a", 1}});
  REQUIRE(id.size() == huge.size() + 3);
  REQUIRE(f.db.get(huge, id) == json{{"a", 1}});
  aurora::RecvResult r = f.feed.try_recv();
  REQUIRE(r);
  REQUIRE(r->collection == huge);
  REQUIRE(r->document_id == id);
  f.keys.emplace_back(huge, id);
  f.rejects([&] { f.db.insert(huge, id, {{"a", 2}}); }, aurora::errc::already_exists);
  f.rejects([&] { f.db.remove(huge, huge); }, aurora::errc::not_found);
  f.rejects([&] { f.db.update(huge + "x", id, {{"a", 2}}); }, aurora::errc::not_found);
}

TEST_CASE("Names and ids are compared as bytes, embedded NUL included", "[bad_input]") {
  aurora::Database db;
  const std::string with_nul("a\0b", 3);
  db.insert(with_nul, with_nul, {{"v", 1}});
  db.insert("a", "a", {{"v", 2}});
  REQUIRE(db.get(with_nul, with_nul) == json{{"v", 1}});
  REQUIRE_FALSE(db.get("a", with_nul));
  REQUIRE(db.size("a") == 1);
  REQUIRE(db.collections().size() == 2);
}

TEST_CASE("Strings that are not UTF-8 are stored, and to_json does not throw on them", "[bad_input]") {
  // Aurora stores bytes; nlohmann::json::dump throws type_error 316 on them, so to_json must
  // not dump, and a logger must dump with error_handler_t::replace.
  aurora::Database db;
  aurora::Subscription feed = db.subscribe_global();
  const json doc = {{bad_utf8, bad_utf8}, {"ok", "fine"}};
  const std::string id = db.insert(bad_utf8, bad_utf8, doc);
  REQUIRE(id == bad_utf8);
  REQUIRE(db.get(bad_utf8, bad_utf8) == doc);
  aurora::RecvResult r = feed.try_recv();
  REQUIRE(r);
  json j;
  REQUIRE_NOTHROW(j = *r);
  REQUIRE(j["document_id"] == bad_utf8);
  REQUIRE_THROWS_AS(j.dump(), json::type_error);
  REQUIRE_NOTHROW(j.dump(-1, ' ', false, json::error_handler_t::replace));
  // Error messages quote ids verbatim (so they are not UTF-8 when the id is not)...
  try {
    db.remove("c", bad_utf8);
    FAIL("remove of a missing id did not throw");
  } catch (const aurora::error& e) {
    REQUIRE(e.code() == aurora::errc::not_found);
  }
  // ...but never cut a valid UTF-8 character in two when they shorten a long one.
  std::string accents;
  for (int i = 0; i < 100; ++i) accents += "\xc3\xa9";  // U+00E9, 2 bytes each
  for (const std::string& name : {accents, "x" + accents}) {
    try {
      db.update("c", name, {{"a", 1}});
      FAIL("update of a missing collection did not throw");
    } catch (const aurora::error& e) {
      REQUIRE(e.code() == aurora::errc::not_found);
      REQUIRE(valid_utf8_dump(e.what()));
    }
  }
}

TEST_CASE("Documents nested deeper than max_document_depth are rejected without recursion", "[bad_input]") {
  fixture f;
  constexpr std::size_t limit = aurora::max_document_depth;
  // At the limit: stored, replaced, merged.
  const json at_limit = nested_objects(limit);
  const std::string id = f.db.insert("c", at_limit);
  f.keys.emplace_back("c", id);
  REQUIRE(f.db.get("c", id) == at_limit);
  f.db.replace("c", id, nested_arrays_in_object(limit));
  f.db.update("c", id, at_limit);
  REQUIRE(f.db.get("c", id) == merged_patch_of(nested_arrays_in_object(limit), at_limit));
  while (f.feed.try_recv()) {
  }
  // One past it.
  for (const json& doc : {nested_objects(limit + 1), nested_arrays_in_object(limit + 1)}) {
    f.rejects([&] { f.db.insert("c", doc); }, aurora::errc::invalid_document);
    f.rejects([&] { f.db.insert("c", "deep", doc); }, aurora::errc::invalid_document);
    f.rejects([&] { f.db.replace("c", id, doc); }, aurora::errc::invalid_document);
    f.rejects([&] { f.db.update("c", id, doc); }, aurora::errc::invalid_document);
  }
  // Far past it: a hostile 1,000,000 levels, built by the iterative parser and moved in (a copy
  // by the caller would itself overflow the stack, near 58,000 levels at -O2 on 8 MiB).
  auto hostile = [] {
    json doc = json::object();
    doc["x"] = parsed_deep(1'000'000);
    return doc;
  };
  f.rejects([&] { f.db.insert("c", hostile()); }, aurora::errc::invalid_document);
  f.rejects([&] { f.db.insert("c", "deep", hostile()); }, aurora::errc::invalid_document);
  f.rejects([&] { f.db.replace("c", id, hostile()); }, aurora::errc::invalid_document);
  const json patch = hostile();
  f.rejects([&] { f.db.update("c", id, patch); }, aurora::errc::invalid_document);
}

TEST_CASE("NaN, infinities and discarded values in documents are rejected", "[bad_input]") {
  fixture f;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  json discarded_inside = {{"a", 1}};
  discarded_inside["b"] = json(json::value_t::discarded);
  const std::vector<json> docs = {json{{"x", nan}}, json{{"x", inf}}, json{{"x", -inf}}, json{{"x", {{"y", {1, nan}}}}},
                                  discarded_inside};
  for (const json& doc : docs) {
    INFO(doc.dump(-1, ' ', false, json::error_handler_t::replace));
    f.rejects([&] { f.db.insert("c", doc); }, aurora::errc::invalid_document);
    f.rejects([&] { f.db.insert("c", "nan", doc); }, aurora::errc::invalid_document);
    f.rejects([&] { f.db.replace("c", "mine", doc); }, aurora::errc::invalid_document);
    f.rejects([&] { f.db.update("c", "mine", doc); }, aurora::errc::invalid_document);
  }
  // Finite extremes are fine.
  const json extremes = {
      {"max", std::numeric_limits<double>::max()},         {"min", std::numeric_limits<double>::lowest()},
      {"tiny", std::numeric_limits<double>::denorm_min()}, {"neg0", -0.0},
      {"u64", std::numeric_limits<std::uint64_t>::max()},  {"i64", std::numeric_limits<std::int64_t>::min()}};
  const std::string id = f.db.insert("c", extremes);
  REQUIRE(f.db.get("c", id) == extremes);
  // An unchanged replace publishes nothing (which NaN would have broken: NaN != NaN).
  while (f.feed.try_recv()) {
  }
  f.db.replace("c", id, extremes);
  REQUIRE(f.feed.try_recv().error().code == aurora::errc::empty);
}

TEST_CASE("Malformed and odd field paths never throw and match as specified", "[bad_input][filter]") {
  aurora::ChangeEvent ev;
  ev.operation = aurora::OperationType::Insert;
  ev.document = std::make_shared<const aurora::Document>(
      json::parse(R"({"a": {"b": 1}, "a.b": 2, "": {"": 3}, "~": 4, "/": 5, "t": [10, 11], "0": 6})"));
  auto matches = [&](const std::string& field, const json& value) {
    aurora::EventFilter f;
    f.field_filters.push_back({field, value});
    return f.matches(ev);
  };
  // Malformed pointers and the empty field never match.
  for (const char* field : {"", "/~", "/~2", "/a~", "/~/", "/t/~", "/a/b~x"}) {
    INFO("field " << field);
    REQUIRE_FALSE(matches(field, 1));
    REQUIRE_FALSE(matches(field, nullptr));
  }
  // Well-formed but odd ones.
  REQUIRE(matches("/", json{{"", 3}}));  // the key ""
  REQUIRE(matches("//", 3));             // "" then ""
  REQUIRE(matches("/~0", 4));            // the key "~"
  REQUIRE(matches("/~1", 5));            // the key "/"
  REQUIRE(matches("/a.b", 2));           // a pointer does not split on dots
  REQUIRE(matches("a.b", 1));            // a dotted path always does
  REQUIRE(matches("~", 4));              // not a pointer: the key "~"
  REQUIRE(matches("/t/1", 11));
  REQUIRE(matches("/0", 6));                                 // on an object, "0" is a key
  REQUIRE_FALSE(matches("/t/01", 11));                       // leading zero
  REQUIRE_FALSE(matches("/t/-", 11));                        // "-" is past the end
  REQUIRE_FALSE(matches("/t/2", 11));                        // out of range
  REQUIRE_FALSE(matches("/t/99999999999999999999999", 11));  // overflow
  REQUIRE_FALSE(matches("/t/+1", 11));
  REQUIRE_FALSE(matches("t.1", 11));  // dotted paths do not index arrays
  REQUIRE_FALSE(matches("a.", 1));
  REQUIRE_FALSE(matches(".a", 1));
  REQUIRE_FALSE(matches("a..b", 1));
  REQUIRE_FALSE(matches(".", 1));
  REQUIRE_FALSE(matches(std::string("a\0b", 3), 1));
  REQUIRE_FALSE(matches(bad_utf8, 1));
  REQUIRE_FALSE(matches("/" + bad_utf8, 1));
}

TEST_CASE("Filter values nested too deep never match and are not copied, NaN never matches", "[bad_input][filter]") {
  aurora::Database db;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  auto only = [](json value) {
    aurora::EventFilter f;
    f.field_filters.push_back({"x", std::move(value)});
    return f;
  };
  aurora::Subscription nan_sub = db.subscribe("c", only(nan));
  aurora::Subscription inf_sub = db.subscribe("c", only(inf));
  aurora::Subscription deep_sub = db.subscribe("c", only(parsed_deep(1'000'000)));  // no stack overflow
  aurora::Subscription zero_sub = db.subscribe("c", only(-0.0));
  aurora::Subscription all = db.subscribe("c");
  db.insert("c", {{"x", 0}});
  db.insert("c", {{"x", nullptr}});
  db.insert("c", {{"x", 1e308}});
  REQUIRE(nan_sub.try_recv().error().code == aurora::errc::empty);
  REQUIRE(inf_sub.try_recv().error().code == aurora::errc::empty);
  REQUIRE(deep_sub.try_recv().error().code == aurora::errc::empty);
  REQUIRE(zero_sub.try_recv());  // -0.0 == 0
  REQUIRE(zero_sub.try_recv().error().code == aurora::errc::empty);
  REQUIRE(all.try_recv());
  REQUIRE_FALSE(only(nan).matches(*all.try_recv()));
}

TEST_CASE("Options and subscriptions used wrongly", "[bad_input]") {
  REQUIRE_THROWS_MATCHES(aurora::Database(aurora::Options{.channel_capacity = 0}), aurora::error,
                         Catch::Predicate<aurora::error>(
                             [](const aurora::error& e) { return e.code() == aurora::errc::invalid_argument; }));
  // Impossible capacities are refused by the constructor, not by a later subscribe.
  for (const std::size_t capacity : {aurora::max_channel_capacity + 1, std::numeric_limits<std::size_t>::max()}) {
    REQUIRE_THROWS_MATCHES(aurora::Database(aurora::Options{.channel_capacity = capacity}), aurora::error,
                           Catch::Predicate<aurora::error>(
                               [](const aurora::error& e) { return e.code() == aurora::errc::invalid_argument; }));
  }
  {
    // The largest one is accepted, and costs memory only as it is used.
    aurora::Database big{aurora::Options{.channel_capacity = aurora::max_channel_capacity}};
    auto s = big.subscribe("c");
    REQUIRE(big.insert("c", "id", {{"a", 1}}) == "id");
    REQUIRE(s.try_recv());
  }

  aurora::Subscription empty;
  REQUIRE(empty.try_recv().error().code == aurora::errc::closed);
  empty.unsubscribe();
  aurora::Database db;
  aurora::Subscription sub = db.subscribe("c");
  aurora::Subscription moved = std::move(sub);
  REQUIRE(sub.try_recv().error().code == aurora::errc::closed);  // NOLINT(bugprone-use-after-move)
  REQUIRE_FALSE(static_cast<bool>(sub));                         // NOLINT(bugprone-use-after-move)
  moved.unsubscribe();
  moved.unsubscribe();
  REQUIRE(moved.try_recv().error().code == aurora::errc::closed);
  REQUIRE_THROWS_MATCHES(
      moved.try_recv().value(), aurora::error,
      Catch::Predicate<aurora::error>([](const aurora::error& e) { return e.code() == aurora::errc::closed; }));
  REQUIRE(db.subscriber_count("c") == 0);
}
