// Values and documents: the JSON types Aurora stores, and the kind of change an event reports.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <memory>
#include <string_view>

namespace aurora {

/// A field value: string, number, bool, null, array or object.
using Value = nlohmann::json;

/// A stored document: always a JSON object. Its id is kept beside it, not inside it.
using Document = nlohmann::json;

/// One immutable stored document, shared by the database and every event that carries it (a
/// write copies no document into its event). Empty for "no document". Never modified after it
/// is made, so any number of threads may read it; make one with
/// `std::make_shared<const Document>(doc)`.
using DocumentPtr = std::shared_ptr<const Document>;

/// How deeply a document or patch may nest objects and arrays; the document itself is level 1,
/// so `{"a": {"b": [1]}}` is 3 deep. Writes of deeper ones throw `errc::invalid_document`:
/// copying, comparing and merging JSON recurse once per level, and without a bound a deep
/// enough document overflows the stack (near 7,000 levels on an 8 MiB stack under ASan).
inline constexpr std::size_t max_document_depth = 256;

namespace detail {

// True when both are empty or both hold equal documents (DocumentPtr's own == compares pointers).
inline bool same_document(const DocumentPtr& a, const DocumentPtr& b) {
  if (a == nullptr || b == nullptr) return a == b;
  return a == b || *a == *b;
}

}  // namespace detail

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
