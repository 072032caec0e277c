// storable: what a document may hold (bounded nesting, finite numbers), checked without recursion.
#pragma once

#include <aurora/value.hpp>

#include <cmath>
#include <cstddef>
#include <utility>
#include <vector>

namespace aurora::detail {

// Visits `root` and everything in it, depth first, without recursion (a hostile depth cannot
// overflow the stack here): `visit(value, depth)` (the root at depth 1) returns nullptr to go
// on, or a reason, which stops the walk and is returned.
template <class Visit>
const char* walk(const nlohmann::json& root, Visit visit) {
  std::vector<std::pair<const nlohmann::json*, std::size_t>> stack{{&root, 1}};
  while (!stack.empty()) {
    const auto [value, depth] = stack.back();
    stack.pop_back();
    if (const char* why = visit(*value, depth)) return why;
    if (value->is_structured()) {
      for (const nlohmann::json& child : *value) stack.emplace_back(&child, depth + 1);
    }
  }
  return nullptr;
}

// Why scalar `value` cannot be stored, or nullptr.
inline const char* unstorable_scalar(const nlohmann::json& value) noexcept {
  switch (value.type()) {
    case nlohmann::json::value_t::number_float:
      return std::isfinite(*value.get_ptr<const double*>()) ? nullptr : "holds a NaN or infinite number";
    case nlohmann::json::value_t::discarded: return "holds a discarded value";
    default: return nullptr;
  }
}

// unstorable's walk of structured `value` at `depth`. It recurses, but boundedly: a structured
// value deeper than max_document_depth stops the walk before its children, so there are at
// most max_document_depth + 1 frames, whatever the input. Scalars are checked in the loop, so a
// flat document makes no call at all. (It runs on every write: a recursion needs no heap stack,
// which the generic walk above allocates.)
inline const char* unstorable_at(const nlohmann::json& value, std::size_t depth) {
  if (depth > max_document_depth) return "nests deeper than aurora::max_document_depth";
  auto check = [depth](const nlohmann::json& child) {
    return child.is_structured() ? unstorable_at(child, depth + 1) : unstorable_scalar(child);
  };
  if (value.is_object()) {
    for (const auto& member : value.get_ref<const nlohmann::json::object_t&>()) {
      if (const char* why = check(member.second)) return why;
    }
  } else {
    for (const nlohmann::json& element : value.get_ref<const nlohmann::json::array_t&>()) {
      if (const char* why = check(element)) return why;
    }
  }
  return nullptr;
}

// Why `doc` cannot be stored, or nullptr: it nests deeper than max_document_depth, or holds a
// NaN or infinite number (JSON has none, and NaN != NaN would make an unchanged document look
// changed) or a discarded value (the result of a failed non-throwing parse, never equal to
// anything).
inline const char* unstorable(const nlohmann::json& doc) {
  return doc.is_structured() ? unstorable_at(doc, 1) : unstorable_scalar(doc);
}

// True when `value` nests objects and arrays deeper than max_document_depth (counted as for a
// document: a structured `value` is level 1), so that no stored document can hold it.
inline bool nests_too_deep(const nlohmann::json& value) {
  return walk(value, [](const nlohmann::json& v, std::size_t depth) -> const char* {
           return v.is_structured() && depth > max_document_depth ? "too deep" : nullptr;
         }) != nullptr;
}

}  // namespace aurora::detail
