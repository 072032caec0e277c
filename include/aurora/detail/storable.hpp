// storable: what a document may hold (bounded nesting, finite numbers), checked without recursion.
#pragma once

#include <aurora/value.hpp>

#include <cmath>
#include <cstddef>
#include <utility>
#include <vector>

namespace aurora::detail {

// Why `doc` cannot be stored, or nullptr: it nests deeper than max_document_depth, or holds a
// NaN or infinite number (JSON has none, and NaN != NaN would make an unchanged document look
// changed) or a discarded value (the result of a failed non-throwing parse, never equal to
// anything). Iterative, so a hostile depth cannot overflow the stack here.
inline const char* unstorable(const nlohmann::json& doc) {
  struct item {
    const nlohmann::json* value;
    std::size_t depth;
  };
  std::vector<item> stack{{&doc, 1}};
  while (!stack.empty()) {
    const item top = stack.back();
    stack.pop_back();
    if (top.value->is_discarded()) return "holds a discarded value";
    if (top.value->is_number_float() && !std::isfinite(*top.value->get_ptr<const double*>())) {
      return "holds a NaN or infinite number";
    }
    if (!top.value->is_structured()) continue;
    if (top.depth > max_document_depth) return "nests deeper than aurora::max_document_depth";
    for (const nlohmann::json& child : *top.value) stack.push_back({&child, top.depth + 1});
  }
  return nullptr;
}

// True when `value` nests objects and arrays deeper than max_document_depth (counted as for a
// document: a structured `value` is level 1), so that no stored document can hold it.
inline bool nests_too_deep(const nlohmann::json& value) {
  std::vector<std::pair<const nlohmann::json*, std::size_t>> stack{{&value, 1}};
  while (!stack.empty()) {
    const auto [cur, depth] = stack.back();
    stack.pop_back();
    if (!cur->is_structured()) continue;
    if (depth > max_document_depth) return true;
    for (const nlohmann::json& child : *cur) stack.emplace_back(&child, depth + 1);
  }
  return false;
}

}  // namespace aurora::detail
