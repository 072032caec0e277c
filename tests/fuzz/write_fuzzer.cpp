// Fuzz target: arbitrary bytes as collection names, ids, documents and patches, through every
// write of the API. Invariants: no crash or sanitizer report; every rejection is an aurora::error
// with the errc the API documents for that call and those arguments; a rejected write changes
// and publishes nothing; a successful one publishes its event, which to_json can render.
#include "fuzz_input.hpp"

#include <aurora/aurora.hpp>
#include <aurora/detail/json_compare.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>

#ifndef AURORA_FUZZ_ENTRY
#define AURORA_FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

namespace {

using aurora::errc;
using aurora_fuzz::require;
using json = nlohmann::json;

// Written from the API's words, not from Aurora's code: may this be stored?
bool storable(const json& v, std::size_t depth) {
  if (v.is_discarded()) return false;
  if (v.is_number_float()) return std::isfinite(v.get<double>());
  if (!v.is_structured()) return true;
  if (depth > aurora::max_document_depth) return false;
  for (const auto& child : v) {
    if (!storable(child, depth + 1)) return false;
  }
  return true;
}

bool storable_object(const json& v) { return v.is_object() && storable(v, 1); }

struct harness {
  aurora::Database db{aurora::Options{.channel_capacity = 4}};
  aurora::Subscription feed = db.subscribe_global();
  std::map<std::string, std::set<std::string>> ids;  // what the model knows is stored
  std::set<std::string> created;

  bool exists(const std::string& c, const std::string& id) const {
    auto it = ids.find(c);
    return created.count(c) != 0 && it != ids.end() && it->second.count(id) != 0;
  }

  // Runs one write; `expected` is the errc the API documents, or nothing for success.
  template <class Write>
  std::optional<errc> run(Write&& write, std::optional<errc> expected, const std::string& c) {
    const std::size_t size_before = db.size(c);
    const std::size_t collections_before = db.collections().size();
    std::optional<errc> thrown;
    try {
      std::forward<Write>(write)();
    } catch (const aurora::error& e) {
      thrown = e.value();
      require(e.code() == e.value(), "aurora::error whose code() is not its errc");
    }
    require(thrown == expected, "a write succeeded or failed other than documented");
    if (thrown) {
      require(db.size(c) == size_before, "a rejected write changed the collection");
      require(db.collections().size() == collections_before, "a rejected write created a collection");
      require(feed.try_recv().error().code == errc::empty, "a rejected write published");
    }
    return thrown;
  }

  void expect_event(aurora::OperationType op, const std::string& c, const std::string& id) {
    aurora::RecvResult r = feed.try_recv();
    require(r.has_value(), "a successful write published nothing");
    require(r->operation == op && r->collection == c && r->document_id == id, "the event does not match the write");
    const json j = *r;  // to_json must not throw, even on strings that are not UTF-8
    (void)j.dump(-1, ' ', false, json::error_handler_t::replace);
    require(feed.try_recv().error().code == errc::empty, "a write published twice");
  }
};

}  // namespace

extern "C" int AURORA_FUZZ_ENTRY(const std::uint8_t* data, std::size_t size) {
  aurora_fuzz::input in(data, size);
  harness h;
  for (int step = 0; step < 32 && !in.empty(); ++step) {
    const std::uint8_t op = in.byte();
    // Names and ids: from a small set (so writes meet), or raw bytes.
    auto name = [&] {
      const std::uint8_t pick = in.byte();
      return pick < 200 ? std::string(1, static_cast<char>('a' + pick % 3)) : in.text();
    };
    const std::string c = name();
    const std::string id = name();
    switch (op % 7) {
      case 0: {  // insert
        json doc = in.value();
        const bool ok_doc = storable_object(doc);
        std::string got;
        const auto e = h.run([&] { got = h.db.insert(c, std::move(doc)); },
                             c.empty() ? std::optional(errc::invalid_argument)
                             : !ok_doc ? std::optional(errc::invalid_document)
                                       : std::nullopt,
                             c);
        if (!e) {
          require(got.size() == 36, "a generated id is not 36 characters");
          h.ids[c].insert(got);
          h.created.insert(c);
          h.expect_event(aurora::OperationType::Insert, c, got);
        }
        break;
      }
      case 1: {  // insert with an id
        json doc = in.value();
        const bool ok_doc = storable_object(doc);
        const auto e = h.run([&] { h.db.insert(c, id, std::move(doc)); },
                             c.empty() || id.empty() ? std::optional(errc::invalid_argument)
                             : !ok_doc               ? std::optional(errc::invalid_document)
                             : h.exists(c, id)       ? std::optional(errc::already_exists)
                                                     : std::nullopt,
                             c);
        if (!e) {
          h.ids[c].insert(id);
          h.created.insert(c);
          h.expect_event(aurora::OperationType::Insert, c, id);
        }
        break;
      }
      case 2: {  // insert_into: the fields of a value, when it is an object
        const json fields = in.value();
        if (!fields.is_object() || !storable(fields, 1)) break;
        std::string got;
        std::initializer_list<std::pair<std::string, aurora::Value>> none{};
        const auto e = h.run(
            [&] {
              if (fields.empty()) {
                got = h.db.insert_into(c, none);
              } else {
                const auto first = fields.begin();
                got = h.db.insert_into(c, {{first.key(), first.value()}, {"k", 1}});
              }
            },
            c.empty() ? std::optional(errc::invalid_argument) : std::nullopt, c);
        if (!e) {
          h.ids[c].insert(got);
          h.created.insert(c);
          h.expect_event(aurora::OperationType::Insert, c, got);
        }
        break;
      }
      case 3:
      case 4: {  // update (merge patch) or replace
        json doc = in.value();
        const bool ok_doc = storable_object(doc);
        const std::optional<json> copy = ok_doc ? std::optional<json>(doc) : std::nullopt;  // never copy a deep one
        const std::optional<json> before = h.db.get(c, id);
        const bool is_update = op % 7 == 3;
        const auto e = h.run(
            [&] {
              if (is_update) {
                h.db.update(c, id, doc);
              } else {
                h.db.replace(c, id, std::move(doc));
              }
            },
            !ok_doc            ? std::optional(errc::invalid_document)
            : !h.exists(c, id) ? std::optional(errc::not_found)
                               : std::nullopt,
            c);
        if (!e) {
          json after = *before;
          if (is_update) {
            after.merge_patch(*copy);
          } else {
            after = *copy;
          }
          require(h.db.get(c, id) == after, "the stored document is not the merged / replaced one");
          if (aurora::detail::json_same_value(after, *before)) {  // the database's own notion of unchanged
            require(h.feed.try_recv().error().code == errc::empty, "an unchanged document published");
          } else {
            h.expect_event(aurora::OperationType::Update, c, id);
          }
        }
        break;
      }
      case 5: {  // remove
        const auto e =
            h.run([&] { h.db.remove(c, id); }, h.exists(c, id) ? std::nullopt : std::optional(errc::not_found), c);
        if (!e) {
          h.ids[c].erase(id);
          h.expect_event(aurora::OperationType::Delete, c, id);
          require(!h.db.get(c, id), "a removed document is still there");
        }
        break;
      }
      default: {  // reads and subscriptions with odd names
        require(h.db.get(c, id).has_value() == h.exists(c, id), "get disagrees with the writes");
        try {
          aurora::Subscription s = h.db.subscribe(c);
          require(!c.empty(), "subscribe accepted an empty name");
        } catch (const aurora::error& e) {
          require(c.empty() && e.code() == errc::invalid_argument, "subscribe failed other than documented");
        }
        break;
      }
    }
  }
  for (const auto& [c, set] : h.ids) {
    require(h.db.size(c) == (h.created.count(c) != 0 ? set.size() : 0U), "size disagrees with the writes");
  }
  return 0;
}
