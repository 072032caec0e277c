// Reference model: long random sequences of valid and invalid writes run against the Database
// and against a plain std::map model; after every step the stored state, the thrown errc and
// the published events (global, per collection, filtered) must agree.
//
// AURORA_SEED=<n> replays a run (the seed is printed); AURORA_MODEL_STEPS sets its length.
#include "support.hpp"

#include <aurora/aurora.hpp>
#include <aurora/detail/json_compare.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iterator>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace {

using json = nlohmann::json;

// RFC 7386, written independently of nlohmann::json::merge_patch.
json merged(json target, const json& patch) {
  if (!patch.is_object()) return patch;
  if (!target.is_object()) target = json::object();
  for (const auto& [key, value] : patch.items()) {
    if (value.is_null()) {
      target.erase(key);
    } else {
      json current = target.contains(key) ? target[key] : json();
      target[key] = merged(std::move(current), value);
    }
  }
  return target;
}

bool storable(const json& doc, std::size_t depth = 1) {
  if (doc.is_number_float()) {
    const double d = doc.get<double>();
    return d == d && d != std::numeric_limits<double>::infinity() && d != -std::numeric_limits<double>::infinity();
  }
  if (!doc.is_structured()) return true;
  if (depth > aurora::max_document_depth) return false;
  for (const auto& child : doc) {
    if (!storable(child, depth + 1)) return false;
  }
  return true;
}

json nested(std::size_t depth) {  // `depth` levels of objects: {"d":{"d":...{}}}
  json j = json::object();
  for (std::size_t i = 1; i < depth; ++i) j = json{{"d", std::move(j)}};
  return j;
}

struct expected_event {
  std::string collection;
  std::string id;
  aurora::OperationType operation;
  std::optional<json> document;
  std::optional<json> old_document;
};

class generator {
 public:
  explicit generator(std::uint64_t seed) : rng_(seed) {}

  std::size_t below(std::size_t n) { return static_cast<std::size_t>(rng_() % n); }
  bool chance(std::size_t percent) { return below(100) < percent; }

  json value(int depth) {
    switch (below(depth > 2 ? 6 : 9)) {
      case 0: return json(static_cast<std::int64_t>(below(4)));
      case 1: return json(static_cast<double>(below(4)));  // 1.0 == 1 under json equality
      case 2: return json(std::string(1, static_cast<char>('p' + below(3))));
      case 3: return json(below(2) == 0);
      case 4: return json(nullptr);
      case 5: return json(static_cast<std::uint64_t>(below(3)));
      case 6:
      case 7: return object(depth + 1);
      default: {
        json a = json::array();
        const std::size_t n = below(3);
        for (std::size_t i = 0; i < n; ++i) a.push_back(value(depth + 1));
        return a;
      }
    }
  }

  json object(int depth) {
    static const char* const keys[] = {"k0", "k1", "k2", "a.b", "x", "/"};
    json o = json::object();
    const std::size_t n = below(4);
    for (std::size_t i = 0; i < n; ++i) o[keys[below(6)]] = value(depth);
    return o;
  }

  // A document for insert / replace, or a patch: mostly valid objects, sometimes not.
  json document() {
    const std::size_t r = below(100);
    if (r < 6) {
      static const json non_objects[] = {json::array(), json(1), json("s"), json(nullptr), json(true), json(2.5)};
      return non_objects[below(6)];
    }
    if (r < 8) {
      json d = object(1);
      d["nan"] = below(2) == 0 ? std::numeric_limits<double>::quiet_NaN() : -std::numeric_limits<double>::infinity();
      return d;
    }
    if (r < 9) return nested(aurora::max_document_depth + below(3));  // at the limit or past it
    return object(1);
  }

 private:
  std::mt19937_64 rng_;
};

std::string describe(const std::optional<json>& j) {
  return j ? j->dump(-1, ' ', false, json::error_handler_t::replace) : "none";
}

std::string describe(const aurora::DocumentPtr& j) {
  return j ? j->dump(-1, ' ', false, json::error_handler_t::replace) : "none";
}

// True when the event's document is the model's: both absent, or equal.
bool same(const aurora::DocumentPtr& got, const std::optional<json>& want) {
  return got ? want && *got == *want : !want;
}

}  // namespace

TEST_CASE("The Database agrees with a std::map model over long random write sequences", "[model]") {
  const std::uint64_t seed = aurora_test::seed_for("model");
  const std::uint64_t steps = aurora_test::env_u64("AURORA_MODEL_STEPS", 20000);
  generator gen(seed);

  aurora::Database db{aurora::Options{.channel_capacity = 2}};          // drained every step: never lags
  const std::vector<std::string> names = {"a", "b", "c", "ghost", ""};  // "ghost" is never written to
  std::map<std::string, std::map<std::string, json>> model;
  std::set<std::string> created;

  aurora::Subscription global = db.subscribe_global();
  std::map<std::string, aurora::Subscription> per_collection;
  for (const auto& n : names) {
    if (!n.empty()) per_collection.emplace(n, db.subscribe(n));
  }
  aurora::EventFilter k0_is_1;
  k0_is_1.field_filters.push_back({"k0", 1});
  aurora::Subscription filtered = db.subscribe_global(k0_is_1);
  aurora::EventFilter updates_only;
  updates_only.operation = aurora::OperationType::Update;
  aurora::Subscription updates = db.subscribe_global(updates_only);

  std::uint64_t sequence = 0;
  std::string last_generated;
  std::chrono::system_clock::time_point last_timestamp{};
  std::map<std::string, std::uint64_t> outcomes;
  std::string step_text;

  auto fail = [&](const std::string& what) {
    FAIL("seed " << seed << " (AURORA_SEED=" << seed << "), " << step_text << ": " << what);
  };

  for (std::uint64_t step = 0; step < steps; ++step) {
    const std::string& collection = names[gen.below(names.size())];
    auto& docs = model[collection];
    // An id: present, new, empty, or odd.
    std::string id;
    const std::size_t r = gen.below(100);
    if (r < 55 && !docs.empty()) {
      auto it = docs.begin();
      std::advance(it, static_cast<std::ptrdiff_t>(gen.below(docs.size())));
      id = it->first;
    } else if (r < 60) {
      id = "";
    } else if (r < 65) {
      static const char* const odd[] = {"a/b", "~0", "x.y", "\xc3\xa9t\xc3\xa9", " "};
      id = odd[gen.below(5)];
    } else {
      id = "id" + std::to_string(gen.below(40));
    }
    std::size_t op = gen.below(7);
    if (docs.size() > 48 && gen.chance(50)) {  // keep collections small: the state is compared every step
      op = 6;
      id = docs.begin()->first;
    }
    json doc = gen.document();

    std::optional<aurora::errc> expected_error;
    std::optional<expected_event> expected;
    const bool exists = created.count(collection) != 0 && docs.count(id) != 0;
    std::optional<aurora::errc> thrown;
    std::string returned_id;
    std::ostringstream text;
    text << "step " << step << ": ";

    try {
      switch (op) {
        case 0:
        case 1: {  // insert with a new id
          text << "insert('" << collection << "', " << describe(doc) << ")";
          if (collection.empty()) {
            expected_error = aurora::errc::invalid_argument;
          } else if (!doc.is_object() || !storable(doc)) {
            expected_error = aurora::errc::invalid_document;
          }
          step_text = text.str();
          returned_id = db.insert(collection, doc);
          break;
        }
        case 2: {  // insert with the caller's id
          text << "insert('" << collection << "', '" << id << "', " << describe(doc) << ")";
          if (collection.empty() || id.empty()) {
            expected_error = aurora::errc::invalid_argument;
          } else if (!doc.is_object() || !storable(doc)) {
            expected_error = aurora::errc::invalid_document;
          } else if (exists) {
            expected_error = aurora::errc::already_exists;
          }
          step_text = text.str();
          returned_id = db.insert(collection, id, doc);
          break;
        }
        case 3: {  // insert_into
          json k = gen.value(2);
          text << "insert_into('" << collection << "', {k0: " << describe(k) << ", k1: 1, k0: 2})";
          if (collection.empty()) expected_error = aurora::errc::invalid_argument;
          doc = json{{"k0", 2}, {"k1", 1}};  // a later duplicate key wins
          step_text = text.str();
          returned_id = db.insert_into(collection, {{"k0", k}, {"k1", 1}, {"k0", 2}});
          break;
        }
        case 4: {  // update
          text << "update('" << collection << "', '" << id << "', " << describe(doc) << ")";
          if (!doc.is_object() || !storable(doc)) {
            expected_error = aurora::errc::invalid_document;
          } else if (!exists) {
            expected_error = aurora::errc::not_found;
          }
          step_text = text.str();
          db.update(collection, id, doc);
          break;
        }
        case 5: {  // replace
          text << "replace('" << collection << "', '" << id << "', " << describe(doc) << ")";
          if (!doc.is_object() || !storable(doc)) {
            expected_error = aurora::errc::invalid_document;
          } else if (!exists) {
            expected_error = aurora::errc::not_found;
          }
          step_text = text.str();
          db.replace(collection, id, doc);
          break;
        }
        default: {  // remove
          text << "remove('" << collection << "', '" << id << "')";
          if (!exists) expected_error = aurora::errc::not_found;
          step_text = text.str();
          db.remove(collection, id);
          break;
        }
      }
    } catch (const aurora::error& e) {
      thrown = e.value();
    } catch (const std::exception& e) {
      fail(std::string("threw something other than aurora::error: ") + e.what());
    }

    if (thrown != expected_error) {
      fail("expected " +
           (expected_error ? aurora::make_error_code(*expected_error).message() : std::string("success")) + ", got " +
           (thrown ? aurora::make_error_code(*thrown).message() : std::string("success")));
    }
    ++outcomes[expected_error ? aurora::make_error_code(*expected_error).message() : "ok " + std::to_string(op)];

    // Apply the write to the model.
    if (!expected_error) {
      switch (op) {
        case 0:
        case 1:
        case 3: {
          if (returned_id.size() != 36 || returned_id <= last_generated) {
            fail("generated id '" + returned_id + "' is not a new 36-character id after '" + last_generated + "'");
          }
          last_generated = returned_id;
          docs[returned_id] = doc;
          created.insert(collection);
          expected = expected_event{collection, returned_id, aurora::OperationType::Insert, doc, std::nullopt};
          break;
        }
        case 2:
          if (returned_id != id) fail("insert with id returned '" + returned_id + "'");
          docs[id] = doc;
          created.insert(collection);
          expected = expected_event{collection, id, aurora::OperationType::Insert, doc, std::nullopt};
          break;
        case 4: {
          json after = merged(docs[id], doc);
          if (!aurora::detail::json_same_value(after, docs[id])) {
            expected = expected_event{collection, id, aurora::OperationType::Update, after, docs[id]};
            docs[id] = std::move(after);
          }
          break;
        }
        case 5:
          if (!aurora::detail::json_same_value(doc, docs[id])) {
            expected = expected_event{collection, id, aurora::OperationType::Update, doc, docs[id]};
            docs[id] = doc;
          }
          break;
        default:
          expected = expected_event{collection, id, aurora::OperationType::Delete, std::nullopt, docs[id]};
          docs.erase(id);
          break;
      }
    }

    // The events: exactly the expected one (or none) on the global channel and its collection's.
    auto check_event = [&](aurora::Subscription& sub, bool should, const char* which) {
      aurora::RecvResult got = sub.try_recv();
      if (!should) {
        if (got.error().code != aurora::errc::empty) {
          fail(std::string(which) + ": expected no event, got " +
               (got ? "event " + std::to_string(got->sequence) : aurora::make_error_code(got.error().code).message()));
        }
        return;
      }
      if (!got) fail(std::string(which) + ": no event: " + aurora::make_error_code(got.error().code).message());
      const aurora::ChangeEvent& ev = *got;
      if (ev.collection != expected->collection || ev.document_id != expected->id ||
          ev.operation != expected->operation || !same(ev.document, expected->document) ||
          !same(ev.old_document, expected->old_document) || ev.sequence != sequence) {
        fail(std::string(which) + ": event (" + ev.collection + ", " + ev.document_id + ", " +
             std::string(aurora::to_string(ev.operation)) + ", " + describe(ev.document) + ", " +
             describe(ev.old_document) + ", " + std::to_string(ev.sequence) + ") != expected (" + expected->collection +
             ", " + expected->id + ", " + std::string(aurora::to_string(expected->operation)) + ", " +
             describe(expected->document) + ", " + describe(expected->old_document) + ", " + std::to_string(sequence) +
             ")");
      }
      if (ev.timestamp < last_timestamp) fail(std::string(which) + ": timestamp went backwards");
      if (sub.try_recv().error().code != aurora::errc::empty) fail(std::string(which) + ": a second event");
      if (&sub == &global) last_timestamp = ev.timestamp;
    };
    if (expected) {
      ++sequence;
      const json& seen =
          expected->operation == aurora::OperationType::Delete ? *expected->old_document : *expected->document;
      const bool k0 = seen.contains("k0") && seen["k0"] == json(1);
      check_event(global, true, "global");
      check_event(filtered, k0, "filtered k0 == 1");
      check_event(updates, expected->operation == aurora::OperationType::Update, "updates only");
    } else {
      check_event(global, false, "global");
      check_event(filtered, false, "filtered k0 == 1");
      check_event(updates, false, "updates only");
    }
    for (auto& [name, sub] : per_collection) check_event(sub, expected && expected->collection == name, name.c_str());

    // The stored state.
    std::vector<std::string> listed(created.begin(), created.end());
    if (db.collections() != listed) fail("collections() differs from the model");
    for (const auto& [name, stored] : model) {
      if (db.size(name) != (created.count(name) != 0 ? stored.size() : 0U)) {
        fail("size('" + name + "') == " + std::to_string(db.size(name)) + ", model " + std::to_string(stored.size()));
      }
      for (const auto& [doc_id, value] : stored) {
        const std::optional<json> got = db.get(name, doc_id);
        if (!got || *got != value)
          fail("get('" + name + "', '" + doc_id + "') == " + describe(got) + ", model " + value.dump());
      }
    }
    if (!id.empty() && docs.count(id) == 0 && db.get(collection, id))
      fail("get finds a document the model does not have");
  }

  std::printf("model: %llu steps (seed %llu), %llu events; outcomes:", static_cast<unsigned long long>(steps),
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(sequence));
  for (const auto& [what, n] : outcomes) std::printf(" [%s] %llu", what.c_str(), static_cast<unsigned long long>(n));
  std::printf("\n");
  REQUIRE(sequence > 0);
}
