// Tests for aurora/redis/event_codec.hpp: stream keys and IDs, ChangeEvent <-> entry round trips,
// and a table and a seeded mutation run of malformed entries.
#include <aurora/redis/event_codec.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

using aurora::ChangeEvent;
using aurora::Document;
using aurora::errc;
using aurora::OperationType;
using aurora::redis::decode_entry;
using aurora::redis::DecodedEntry;
using aurora::redis::encode_entry;
using aurora::redis::StreamEntry;

namespace {

using namespace std::chrono_literals;

ChangeEvent event(OperationType op, std::uint64_t sequence = 42) {
  ChangeEvent ev;
  ev.collection = "orders";
  ev.document_id = "0190a5c4-7e2b-7c3d-9f00-000000000001";
  ev.operation = op;
  if (op != OperationType::Delete)
    ev.document = std::make_shared<const aurora::Document>(Document{{"sku", "A1"}, {"qty", 2}, {"tags", {"x", "ü"}}});
  if (op != OperationType::Insert)
    ev.old_document =
        std::make_shared<const aurora::Document>(Document{{"sku", "A1"}, {"qty", 1}, {"nested", {{"a", nullptr}}}});
  ev.timestamp = std::chrono::system_clock::time_point(1'790'000'000'123'456us);
  ev.sequence = sequence;
  return ev;
}

std::optional<std::string> field(const StreamEntry& e, const std::string& name) {
  for (const auto& [n, v] : e.fields) {
    if (n == name) return v;
  }
  return std::nullopt;
}

void set_field(StreamEntry& e, const std::string& name, const std::string& value) {
  for (auto& [n, v] : e.fields) {
    if (n == name) {
      v = value;
      return;
    }
  }
  e.fields.emplace_back(name, value);
}

void remove_field(StreamEntry& e, const std::string& name) {
  std::erase_if(e.fields, [&](const auto& f) { return f.first == name; });
}

// The message decoding `e` fails with (its code must be invalid_document).
std::string decode_error(const StreamEntry& e) {
  try {
    (void)decode_entry(e);
  } catch (const aurora::error& err) {
    CHECK(err.code() == errc::invalid_document);
    return err.what();
  }
  return "(decoded without error)";
}

std::string nested(int depth) {
  std::string s;
  for (int i = 1; i < depth; ++i) s += "{\"a\":";
  s += "{}";
  for (int i = 1; i < depth; ++i) s += "}";
  return s;
}

}  // namespace

TEST_CASE("codec: stream keys, IDs and sequences", "[redis][codec]") {
  CHECK(aurora::redis::collection_stream_key("aurora:", "orders") == "aurora:orders");
  CHECK(aurora::redis::global_stream_key("aurora:") == "aurora:*");
  CHECK(aurora::redis::global_stream_key("") == "*");
  CHECK(aurora::redis::stream_id(1) == "0-1");
  CHECK(aurora::redis::stream_id(std::numeric_limits<std::uint64_t>::max()) == "0-18446744073709551615");
  CHECK(aurora::redis::sequence_of("0-7") == 7u);
  CHECK(aurora::redis::sequence_of("0-18446744073709551615") == std::numeric_limits<std::uint64_t>::max());
  for (const char* bad :
       {"0-0", "1-7", "0-", "-7", "7", "0-7x", "0--7", "0-18446744073709551616", "", "0-+7", " 0-7"}) {
    INFO(bad);
    CHECK_FALSE(aurora::redis::sequence_of(bad).has_value());
  }
}

TEST_CASE("codec: every operation round-trips, in the documented fields", "[redis][codec]") {
  for (OperationType op : {OperationType::Insert, OperationType::Update, OperationType::Delete}) {
    INFO(aurora::to_string(op));
    const ChangeEvent ev = event(op);
    const StreamEntry entry = encode_entry(ev, 17);
    CHECK(entry.id == "0-42");
    std::vector<std::string> names;
    for (const auto& f : entry.fields) names.push_back(f.first);
    std::vector<std::string> expected{"seq", "collection", "id", "op", "ts"};
    if (op != OperationType::Delete) expected.emplace_back("doc");
    if (op != OperationType::Insert) expected.emplace_back("old");
    expected.emplace_back("prev");
    CHECK(names == expected);
    CHECK(field(entry, "seq") == "42");
    CHECK(field(entry, "op") == std::string(aurora::to_string(op)));
    CHECK(field(entry, "ts") == "2026-09-21T14:13:20.123456Z");
    CHECK(field(entry, "prev") == "17");

    const DecodedEntry back = decode_entry(entry);
    CHECK(back.prev == 17);
    CHECK(back.event.collection == ev.collection);
    CHECK(back.event.document_id == ev.document_id);
    CHECK(back.event.operation == ev.operation);
    CHECK(aurora::detail::same_document(back.event.document, ev.document));
    CHECK(aurora::detail::same_document(back.event.old_document, ev.old_document));
    CHECK(back.event.timestamp == ev.timestamp);
    CHECK(back.event.sequence == ev.sequence);
  }
}

TEST_CASE("codec: timestamps keep microseconds, and other forms of ts are read", "[redis][codec]") {
  ChangeEvent ev = event(OperationType::Insert);
  ev.timestamp += 789ns;  // below a microsecond: dropped
  const DecodedEntry back = decode_entry(encode_entry(ev, 0));
  CHECK(back.event.timestamp == event(OperationType::Insert).timestamp);

  StreamEntry entry = encode_entry(event(OperationType::Insert), 0);
  const auto ts_of = [&](const std::string& text) {
    set_field(entry, "ts", text);
    return decode_entry(entry).event.timestamp.time_since_epoch();
  };
  CHECK(ts_of("1790000000123456") == 1'790'000'000'123'456us);
  CHECK(ts_of("-1") == -1us);
  CHECK(ts_of("0") == 0us);
  CHECK(ts_of("2026-09-21T14:13:20Z") == 1'790'000'000s);
  CHECK(ts_of("2026-09-21t14:13:20.5z") == 1'790'000'000'500'000us);
  CHECK(ts_of("2026-09-21T14:13:20.123456789Z") == 1'790'000'000'123'456us);
  CHECK(ts_of("2026-09-21T16:13:20+02:00") == 1'790'000'000s);
  CHECK(ts_of("2026-09-21T12:43:20-01:30") == 1'790'000'000s);
  CHECK(ts_of("1970-01-01T00:00:00Z") == 0us);
  CHECK(ts_of("2024-02-29T00:00:00Z") == 1'709'164'800s);
}

TEST_CASE("codec: unknown fields are ignored, field order does not matter", "[redis][codec]") {
  StreamEntry entry = encode_entry(event(OperationType::Update), 3);
  entry.fields.emplace_back("commit", "42");
  entry.fields.emplace_back("future", "anything");
  std::reverse(entry.fields.begin(), entry.fields.end());
  const DecodedEntry back = decode_entry(entry);
  CHECK(back.event.sequence == 42);
  CHECK(back.prev == 3);
  CHECK(aurora::detail::same_document(back.event.old_document, event(OperationType::Update).old_document));
}

TEST_CASE("codec: commit is written when set, read back, and taken as the sequence when absent", "[redis][codec]") {
  ChangeEvent ev = event(OperationType::Insert);  // sequence 42
  CHECK_FALSE(field(encode_entry(ev, 0), "commit").has_value());
  CHECK(decode_entry(encode_entry(ev, 0)).event.commit == 42);  // absent: a single write

  ev.commit = 44;  // the first event of a transaction of three
  StreamEntry entry = encode_entry(ev, 0);
  CHECK(entry.fields.back() == std::pair<std::string, std::string>("commit", "44"));
  CHECK(decode_entry(entry).event.commit == 44);

  set_field(entry, "commit", "41");
  CHECK_THAT(decode_error(entry), Catch::Contains("field \"commit\" is 41, below the sequence 42"));
  set_field(entry, "commit", "x");
  CHECK_THAT(decode_error(entry), Catch::Contains("field \"commit\" is \"x\", not a decimal number"));

  ev.commit = 41;
  CHECK_THROWS_MATCHES(encode_entry(ev, 0), aurora::error, Catch::Predicate<aurora::error>([](const aurora::error& e) {
                         return e.code() == errc::invalid_argument;
                       }));
}

TEST_CASE("codec: documents up to max_document_depth decode, deeper ones do not", "[redis][codec]") {
  StreamEntry entry = encode_entry(event(OperationType::Insert), 0);
  set_field(entry, "doc", nested(static_cast<int>(aurora::max_document_depth)));
  CHECK(decode_entry(entry).event.document->is_object());
  set_field(entry, "doc", nested(static_cast<int>(aurora::max_document_depth) + 1));
  CHECK_THAT(decode_error(entry), Catch::Contains("nests deeper than 256 levels"));
  set_field(entry, "doc", nested(100'000));  // no recursion anywhere: no stack overflow
  CHECK_THAT(decode_error(entry), Catch::Contains("nests deeper"));
}

TEST_CASE("codec: encoding refuses events that no entry can carry", "[redis][codec]") {
  const auto fails = [](const ChangeEvent& ev, std::uint64_t prev, errc code, const std::string& why) {
    try {
      (void)encode_entry(ev, prev);
      FAIL("encoded without error");
    } catch (const aurora::error& e) {
      CHECK(e.code() == code);
      CHECK_THAT(e.what(), Catch::Contains(why));
    }
  };
  fails(event(OperationType::Insert, 0), 0, errc::invalid_argument, "sequence 0");
  fails(event(OperationType::Insert, 5), 5, errc::invalid_argument, "prev (5) must be below the sequence");
  ChangeEvent ev = event(OperationType::Insert);
  ev.collection.clear();
  fails(ev, 0, errc::invalid_argument, "the collection is empty");
  ev = event(OperationType::Insert);
  ev.document_id.clear();
  fails(ev, 0, errc::invalid_argument, "the document id is empty");
  ev = event(OperationType::Insert);
  ev.old_document = std::make_shared<const aurora::Document>(Document::object());
  fails(ev, 0, errc::invalid_document, "operation Insert must carry a document and no old document");
  ev = event(OperationType::Update);
  ev.old_document.reset();
  fails(ev, 0, errc::invalid_document, "a document and an old document");
  ev = event(OperationType::Delete);
  ev.document = std::make_shared<const aurora::Document>(Document::object());
  fails(ev, 0, errc::invalid_document, "an old document and no document");
  ev = event(OperationType::Insert);
  {
    Document bad = *ev.document;
    bad["bad"] = std::string("\xff\xfe");
    ev.document = std::make_shared<const Document>(std::move(bad));
  }
  fails(ev, 0, errc::invalid_document, "its document cannot be written as JSON");
}

TEST_CASE("codec: malformed entries are invalid_document, naming the entry, field and problem", "[redis][codec]") {
  struct bad_case {
    const char* name;
    std::function<void(StreamEntry&)> mutate;
    const char* why;
  };
  const auto set = [](const char* name, std::string value) {
    return [name, value](StreamEntry& e) { set_field(e, name, value); };
  };
  const auto drop = [](const char* name) { return [name](StreamEntry& e) { remove_field(e, name); }; };
  const auto id = [](std::string value) { return [value](StreamEntry& e) { e.id = value; }; };
  const bad_case cases[] = {
      {"ID with milliseconds", id("1-42"), "its ID is not of the form 0-<sequence>"},
      {"ID 0-0", id("0-0"), "its ID is not of the form"},
      {"ID garbage", id("latest"), "its ID is not of the form"},
      {"ID empty", id(""), "its ID is not of the form"},
      {"seq missing", drop("seq"), "field \"seq\" is missing"},
      {"collection missing", drop("collection"), "field \"collection\" is missing"},
      {"id missing", drop("id"), "field \"id\" is missing"},
      {"op missing", drop("op"), "field \"op\" is missing"},
      {"ts missing", drop("ts"), "field \"ts\" is missing"},
      {"prev missing", drop("prev"), "field \"prev\" is missing"},
      {"seq not a number", set("seq", "forty-two"), "field \"seq\" is \"forty-two\", not a decimal number"},
      {"seq negative", set("seq", "-42"), "not a decimal number"},
      {"seq with space", set("seq", " 42"), "not a decimal number"},
      {"seq overflows", set("seq", "184467440737095516160"), "not a decimal number"},
      {"seq differs from ID", set("seq", "41"), "field \"seq\" is 41 but the ID says 42"},
      {"prev not a number", set("prev", "x"), "field \"prev\" is \"x\", not a decimal number"},
      {"prev equal to seq", set("prev", "42"), "field \"prev\" is 42, not below the sequence 42"},
      {"prev above seq", set("prev", "99"), "not below the sequence"},
      {"collection empty", set("collection", ""), "field \"collection\" is empty"},
      {"id empty", set("id", ""), "field \"id\" is empty"},
      {"op unknown", set("op", "Upsert"), "field \"op\" is \"Upsert\", not Insert, Update or Delete"},
      {"op lower case", set("op", "update"), "not Insert, Update or Delete"},
      {"ts garbage", set("ts", "yesterday"), "field \"ts\" is \"yesterday\", not an RFC 3339"},
      {"ts empty", set("ts", ""), "field \"ts\""},
      {"ts month 13", set("ts", "2026-13-01T00:00:00Z"), "field \"ts\""},
      {"ts February 30", set("ts", "2026-02-30T00:00:00Z"), "field \"ts\""},
      {"ts hour 24", set("ts", "2026-01-01T24:00:00Z"), "field \"ts\""},
      {"ts second 60", set("ts", "2026-01-01T00:00:60Z"), "field \"ts\""},
      {"ts without zone", set("ts", "2026-01-01T00:00:00"), "field \"ts\""},
      {"ts empty fraction", set("ts", "2026-01-01T00:00:00.Z"), "field \"ts\""},
      {"ts bad offset", set("ts", "2026-01-01T00:00:00+2:00"), "field \"ts\""},
      {"ts trailing text", set("ts", "2026-01-01T00:00:00Zx"), "field \"ts\""},
      {"ts space for T", set("ts", "2026-01-01 00:00:00Z"), "field \"ts\""},
      {"ts beyond system_clock", set("ts", "9999-12-31T23:59:59Z"), "that system_clock can hold"},
      {"ts micros beyond system_clock", set("ts", "99999999999999999"), "that system_clock can hold"},
      {"ts micros overflow", set("ts", "999999999999999999999"), "field \"ts\""},
      {"ts lone minus", set("ts", "-"), "field \"ts\""},
      {"doc not JSON", set("doc", "{\"a\":"), "field \"doc\" is not valid JSON"},
      {"doc an array", set("doc", "[1,2]"), "field \"doc\" is JSON but not an object (it is array)"},
      {"doc null", set("doc", "null"), "not an object (it is null)"},
      {"doc empty", set("doc", ""), "field \"doc\" is not valid JSON"},
      {"doc number out of range", set("doc", "{\"a\":1e999}"), "field \"doc\""},
      {"doc invalid UTF-8", set("doc", "{\"a\":\"\xff\"}"), "field \"doc\" is not valid JSON"},
      {"doc trailing text", set("doc", "{} {}"), "field \"doc\" is not valid JSON"},
      {"old not an object", set("old", "\"x\""), "field \"old\" is JSON but not an object"},
      {"Update without doc", drop("doc"), "op Update needs field \"doc\", which is missing"},
      {"Update without old", drop("old"), "op Update needs field \"old\", which is missing"},
      {"Insert with old", [](StreamEntry& e) { set_field(e, "op", "Insert"); }, "op Insert has no field \"old\""},
      {"Delete with doc", [](StreamEntry& e) { set_field(e, "op", "Delete"); }, "op Delete has no field \"doc\""},
      {"duplicate field", [](StreamEntry& e) { e.fields.emplace_back("op", "Update"); },
       "field \"op\" appears more than once"},
      {"no fields", [](StreamEntry& e) { e.fields.clear(); }, "field \"seq\" is missing"},
  };
  for (const bad_case& c : cases) {
    INFO(c.name);
    StreamEntry entry = encode_entry(event(OperationType::Update), 7);
    c.mutate(entry);
    const std::string what = decode_error(entry);
    CHECK_THAT(what, Catch::StartsWith("aurora::redis: stream entry \"" + entry.id + "\" is not an Aurora event: "));
    CHECK_THAT(what, Catch::Contains(c.why));
  }
}

TEST_CASE("codec: seeded mutations of valid entries decode or fail cleanly", "[redis][codec]") {
  std::mt19937_64 rng(20261130);  // fixed: the run is the same every time
  const auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
  const std::vector<std::string> names{"seq", "collection", "id", "op", "ts", "doc", "old", "prev", "commit", ""};
  const std::vector<std::string> values{"",
                                        "0",
                                        "1",
                                        "42",
                                        "-1",
                                        "18446744073709551615",
                                        "18446744073709551616",
                                        "Insert",
                                        "Update",
                                        "Delete",
                                        "{}",
                                        "[]",
                                        "{\"a\":",
                                        "null",
                                        "\xff",
                                        std::string(1, '\0'),
                                        "2026-01-01T00:00:00Z",
                                        "{\"a\":[1,{\"b\":2}]}"};
  std::size_t decoded = 0;
  std::size_t refused = 0;
  for (int round = 0; round < 20'000; ++round) {
    const OperationType op = std::array{OperationType::Insert, OperationType::Update, OperationType::Delete}[pick(3)];
    const std::uint64_t sequence = 1 + pick(100);
    StreamEntry entry = encode_entry(event(op, sequence), pick(sequence));
    const std::size_t mutations = 1 + pick(3);
    for (std::size_t m = 0; m < mutations; ++m) {
      switch (pick(6)) {
        case 0:
          if (!entry.fields.empty()) {
            entry.fields.erase(entry.fields.begin() + static_cast<std::ptrdiff_t>(pick(entry.fields.size())));
          }
          break;
        case 1: entry.fields.emplace_back(names[pick(names.size())], values[pick(values.size())]); break;
        case 2:
          if (!entry.fields.empty()) entry.fields[pick(entry.fields.size())].second = values[pick(values.size())];
          break;
        case 3:
          if (!entry.fields.empty()) {
            std::string& v = entry.fields[pick(entry.fields.size())].second;
            if (!v.empty()) v.resize(pick(v.size()));  // truncated
          }
          break;
        case 4: entry.id = std::array<const char*, 5>{"0-1", "0-100", "1-1", "x", "0-42"}[pick(5)]; break;
        default:
          if (!entry.fields.empty()) {
            std::string& v = entry.fields[pick(entry.fields.size())].second;
            if (!v.empty()) v[pick(v.size())] = static_cast<char>(rng());  // one byte flipped
          }
          break;
      }
      if (entry.fields.empty()) break;
    }
    try {
      const DecodedEntry back = decode_entry(entry);
      ++decoded;
      // What decodes is consistent: it encodes again, to an entry that decodes the same.
      const DecodedEntry again = decode_entry(encode_entry(back.event, back.prev));
      REQUIRE(again.event.sequence == back.event.sequence);
      REQUIRE(aurora::detail::same_document(again.event.document, back.event.document));
      REQUIRE(aurora::detail::same_document(again.event.old_document, back.event.old_document));
    } catch (const aurora::error& e) {
      REQUIRE(e.code() == errc::invalid_document);
      ++refused;
    }
  }
  CHECK(decoded > 0);
  CHECK(refused > 0);
}
