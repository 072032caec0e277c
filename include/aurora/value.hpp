// Values and documents: the JSON types Aurora stores, and the kind of change an event reports.
#pragma once

#include <nlohmann/json.hpp>

#include <string_view>

namespace aurora {

/// A field value: string, number, bool, null, array or object.
using Value = nlohmann::json;

/// A stored document: always a JSON object. Its id is kept beside it, not inside it.
using Document = nlohmann::json;

/// What a change did to a document. `replace` reports `Update`.
enum class OperationType { Insert, Update, Delete };

/// `"Insert"`, `"Update"` or `"Delete"`.
constexpr std::string_view to_string(OperationType op) noexcept {
  switch (op) {
    case OperationType::Insert: return "Insert";
    case OperationType::Update: return "Update";
    case OperationType::Delete: return "Delete";
  }
  return "Unknown";
}

}  // namespace aurora
