// Fuzz target: arbitrary bytes as a query spec (Query::parse) or a filter (EventFilter::from_json),
// then matched against a few arbitrary documents. Invariants: no crash or sanitizer report; a
// rejected spec throws aurora::error(invalid_argument) naming a path and nothing else; an
// accepted one writes JSON (to_json) that parses back to a query that writes the same JSON and
// matches the same documents; matching agrees with the reference evaluator of
// tests/query_reference.hpp; compiled_filter::deliver agrees with API.md's transition table.
//
// Input: [mode: even = query, odd = filter][spec value][document value]... (fuzz_input.hpp).
#include "../query_reference.hpp"
#include "fuzz_input.hpp"

#include <aurora/filter.hpp>
#include <aurora/query.hpp>

#include <cstddef>
#include <cstdint>
#include <limits>
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

void require_invalid_argument(const aurora::error& e, const char* context) {
  require(e.code() == aurora::errc::invalid_argument, "a spec was rejected other than with invalid_argument");
  require(std::string(e.what()).rfind(std::string(context) + ": at $", 0) == 0, "the error names no path");
}

// Documents to match: the input's (up to three, not deeper than any stored document) and a few
// fixed ones.
std::vector<json> documents(aurora_fuzz::input& in) {
  std::vector<json> docs = {
      json::object(),
      {{"a", 1}, {"b", "x"}, {"c", true}, {"n", {{"x", 1.5}}}, {"arr", {1, "a"}}},
      {{"a", std::numeric_limits<std::uint64_t>::max()}, {"b", nullptr}, {"c", {1, 2}}, {"age", 21}},
  };
  for (int i = 0; i < 3 && !in.empty(); ++i) {
    json doc = in.value();
    if (aurora_fuzz::depth_of(doc) <= aurora::max_document_depth) docs.push_back(std::move(doc));
  }
  return docs;
}

void fuzz_query(const json& spec, const std::vector<json>& docs) {
  std::optional<aurora::Query> q;
  try {
    q = aurora::Query::parse(spec);
  } catch (const aurora::error& e) {
    require_invalid_argument(e, "query");
    return;
  }
  const json written = *q;
  const aurora::Query again = aurora::Query::parse(written);  // throws (and fails) if not readable
  require(json(again) == written, "to_json does not round-trip through parse");
  for (const json& doc : docs) {
    const bool got = q->matches(doc);
    require(again.matches(doc) == got, "the re-parsed query matches differently");
    require(query_reference::matches(spec, doc) == got, "the query disagrees with the reference");
    require(query_reference::matches(written, doc) == got, "to_json wrote a query that means something else");
  }
}

// The reference view: field filters (nlohmann equality, as FieldFilter documents) and `where`.
bool reference_in_view(const aurora::EventFilter& f, const json* where, const aurora::DocumentPtr& doc) {
  if (f.field_filters.empty() && where == nullptr) return true;
  if (!doc) return false;
  for (const aurora::FieldFilter& ff : f.field_filters) {
    const json* found = query_reference::find(*doc, ff.field);
    if (found == nullptr || !(*found == ff.value)) return false;
  }
  return where == nullptr || query_reference::matches(*where, *doc);
}

bool reference_changed(const aurora::EventFilter& f, const aurora::ChangeEvent& ev) {
  if (f.changed.empty()) return true;
  for (const std::string& path : f.changed) {
    const json* before = ev.old_document ? query_reference::find(*ev.old_document, path) : nullptr;
    const json* after = ev.document ? query_reference::find(*ev.document, path) : nullptr;
    if ((before == nullptr) != (after == nullptr)) return true;
    if (before != nullptr && !query_reference::equal(*before, *after)) return true;
  }
  return false;
}

// API.md "Transitions", written out as a table.
std::optional<aurora::Transition> reference_deliver(const aurora::EventFilter& f, const json* where,
                                                    const aurora::ChangeEvent& ev) {
  using aurora::OperationType;
  using aurora::Transition;
  if (f.operation && *f.operation != ev.operation) return std::nullopt;
  if (ev.operation == OperationType::Insert) {
    return reference_in_view(f, where, ev.document) ? std::optional(Transition::enter) : std::nullopt;
  }
  if (ev.operation == OperationType::Delete) {
    return reference_in_view(f, where, ev.old_document) ? std::optional(Transition::leave) : std::nullopt;
  }
  const bool before = reference_in_view(f, where, ev.old_document);
  const bool after = reference_in_view(f, where, ev.document);
  const bool changed = reference_changed(f, ev);
  if (!f.transitions) {
    if (!after || !changed) return std::nullopt;
    return before ? Transition::change : Transition::enter;
  }
  if (before && after) return changed ? std::optional(Transition::change) : std::nullopt;
  if (after) return Transition::enter;
  if (before) return Transition::leave;
  return std::nullopt;
}

void fuzz_filter(const json& spec, const std::vector<json>& docs) {
  aurora::EventFilter f;
  try {
    f = aurora::EventFilter::from_json(spec);
  } catch (const aurora::error& e) {
    require_invalid_argument(e, "filter");
    return;
  }
  const json written = f;
  require(json(aurora::EventFilter::from_json(written)) == written, "EventFilter to_json does not round-trip");
  const json* where = f.where ? &spec.at("where") : nullptr;
  const aurora::detail::compiled_filter compiled(f);
  std::vector<aurora::DocumentPtr> images;
  for (const json& doc : docs) images.push_back(std::make_shared<const json>(doc));
  images.emplace_back();  // an absent document, as a hand-built event may have
  for (const auto op : {aurora::OperationType::Insert, aurora::OperationType::Update, aurora::OperationType::Delete}) {
    for (const auto& before : images) {
      for (const auto& after : images) {
        aurora::ChangeEvent ev;
        ev.operation = op;
        ev.old_document = before;
        ev.document = after;
        const std::optional<aurora::Transition> got = compiled.deliver(ev);
        require(got == reference_deliver(f, where, ev), "deliver disagrees with the transition table");
        require(compiled.matches(ev) == got.has_value(), "matches is not deliver().has_value()");
      }
    }
  }
  for (const aurora::DocumentPtr& doc : images) {
    if (doc)
      require(compiled.in_view(*doc) == reference_in_view(f, where, doc), "in_view disagrees with the reference");
  }
}

}  // namespace

extern "C" int AURORA_FUZZ_ENTRY(const std::uint8_t* data, std::size_t size) {
  aurora_fuzz::input in(data, size);
  const bool as_filter = in.byte() % 2 == 1;
  const json spec = in.value();
  const std::vector<json> docs = documents(in);
  if (as_filter) {
    fuzz_filter(spec, docs);
  } else {
    fuzz_query(spec, docs);
  }
  return 0;
}
