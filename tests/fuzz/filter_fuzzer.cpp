// Fuzz target: arbitrary filters (field paths, malformed JSON Pointers included, and values)
// against arbitrary events. Invariants: no crash or sanitizer report; matching never throws; a
// subscription receives exactly the events its filter matches; and the result agrees with a
// reference written from the API's words (dotted paths walk objects; "/..." is RFC 6901, here
// checked with nlohmann::json_pointer).
#include "fuzz_input.hpp"

#include <aurora/aurora.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#ifndef AURORA_FUZZ_ENTRY
#define AURORA_FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

namespace {

using aurora_fuzz::require;
using json = nlohmann::json;

// The value at `field` in `doc` per the API, or nullptr.
const json* reference_find(const json& doc, const std::string& field) {
  if (field.empty()) return nullptr;
  if (field.front() == '/') {
    try {
      const json::json_pointer ptr(field);
      // nlohmann reads "-" and leading zeros as errors or past-the-end; both are "not there".
      if (!doc.contains(ptr)) return nullptr;
      return &doc.at(ptr);
    } catch (const json::exception&) {
      return nullptr;  // malformed pointer, or an index that does not exist
    }
  }
  const json* cur = &doc;
  std::size_t start = 0;
  for (;;) {
    const std::size_t dot = field.find('.', start);
    const std::string key = field.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!cur->is_object()) return nullptr;
    auto it = cur->find(key);
    if (it == cur->end()) return nullptr;
    cur = &*it;
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

bool reference_matches(const aurora::EventFilter& f, const aurora::ChangeEvent& ev) {
  if (f.operation && *f.operation != ev.operation) return false;
  if (f.field_filters.empty()) return true;
  const auto& doc = ev.operation == aurora::OperationType::Delete ? ev.old_document : ev.document;
  if (!doc) return false;
  for (const auto& ff : f.field_filters) {
    const json* found = reference_find(*doc, ff.field);
    // Not `!=`: nlohmann 3.11 makes both == and != false when a side is NaN or discarded.
    if (found == nullptr || !(*found == ff.value)) return false;
  }
  return true;
}

}  // namespace

extern "C" int AURORA_FUZZ_ENTRY(const std::uint8_t* data, std::size_t size) {
  aurora_fuzz::input in(data, size);
  aurora::EventFilter filter;
  const std::uint8_t flags = in.byte();
  if (flags % 4 != 3) filter.operation = static_cast<aurora::OperationType>(flags % 4);
  const std::size_t conditions = in.byte() % 4;
  for (std::size_t i = 0; i < conditions; ++i) {
    std::string field = in.text();
    filter.field_filters.push_back({std::move(field), in.value()});
  }
  json doc = in.value();
  if (!doc.is_object()) {
    json wrapped = json::object();
    wrapped["v"] = std::move(doc);
    doc = std::move(wrapped);
  }
  // A document too deep to store is only offered to insert (moved in: copying it here could
  // overflow the stack before Aurora sees it).
  if (aurora_fuzz::depth_of(doc) > aurora::max_document_depth) {
    aurora::Database db;
    try {
      db.insert("c", "id", std::move(doc));
    } catch (const aurora::error& e) {
      require(e.code() == aurora::errc::invalid_document, "a deep insert failed other than documented");
      return 0;
    }
    aurora_fuzz::fail("a document deeper than max_document_depth was stored");
  }

  // Directly, against an event of each kind.
  for (auto op : {aurora::OperationType::Insert, aurora::OperationType::Update, aurora::OperationType::Delete}) {
    aurora::ChangeEvent ev;
    ev.operation = op;
    if (op == aurora::OperationType::Delete) {
      ev.old_document = std::make_shared<const aurora::Document>(doc);
    } else {
      ev.document = std::make_shared<const aurora::Document>(doc);
    }
    bool got = false;
    try {
      got = filter.matches(ev);
    } catch (...) {
      aurora_fuzz::fail("EventFilter::matches threw");
    }
    // Values nested deeper than any stored document never match, whatever the reference says.
    bool holdable = true;
    for (const auto& ff : filter.field_filters) holdable = holdable && !aurora::detail::nests_too_deep(ff.value);
    require(got == (holdable && reference_matches(filter, ev)), "filter disagrees with the reference");
  }

  // Through a Database: the subscription gets the write's event exactly when the filter matches.
  aurora::Database db;
  aurora::Subscription sub = db.subscribe("c", filter);
  aurora::Subscription all = db.subscribe("c");
  try {
    db.insert("c", "id", std::move(doc));
  } catch (const aurora::error& e) {
    require(e.code() == aurora::errc::invalid_document, "insert failed other than documented");
    return 0;
  }
  aurora::RecvResult ev = all.try_recv();
  require(ev.has_value(), "the insert published nothing");
  aurora::RecvResult got = sub.try_recv();
  require(got.has_value() == filter.matches(*ev), "the subscription and EventFilter::matches disagree");
  require(got.has_value() || got.error().code == aurora::errc::empty, "a filtered receive failed");
  db.remove("c", "id");
  ev = all.try_recv();
  got = sub.try_recv();
  require(ev.has_value() && got.has_value() == filter.matches(*ev), "the filter on a Delete disagrees");
  return 0;
}
