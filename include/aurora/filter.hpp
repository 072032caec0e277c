// Filters: which change events a subscription receives (operation and field equality).
#pragma once

#include <aurora/change_event.hpp>
#include <aurora/detail/field_path.hpp>
#include <aurora/detail/storable.hpp>
#include <aurora/value.hpp>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace aurora {

/// Matches when the document has `field` and it equals `value` under `nlohmann::json`
/// equality (`21 == 21.0`, `"21" != 21`; `null` matches only a stored null).
///
/// `field` is a top-level key, a dotted path into nested objects (`"address.city"`; dots always
/// split and walk objects only), or, when it starts with `/`, an RFC 6901 JSON Pointer
/// (`"/tags/0"`, `"/a.b"`). An empty field or a malformed pointer never matches, nor does a
/// `value` nested deeper than `max_document_depth`, which no document can hold.
struct FieldFilter {
  std::string field;  ///< where to look
  Value value;        ///< what must be there
};

/// Which events a subscription receives: all conditions must hold.
///
/// Field filters look at `document` for Insert and Update and at `old_document` (the removed
/// document) for Delete.
struct EventFilter {
  std::optional<OperationType> operation{};  ///< empty: any operation
  std::vector<FieldFilter> field_filters{};  ///< all must match

  /// True when `ev` passes every condition. Never throws except `std::bad_alloc`; thread-safe
  /// for concurrent calls on one filter. Subscriptions parse the fields once, not per event.
  [[nodiscard]] bool matches(const ChangeEvent& ev) const;
};

namespace detail {

// An EventFilter with its fields parsed once, as subscriptions keep it.
class compiled_filter {
 public:
  explicit compiled_filter(const EventFilter& filter) : operation_(filter.operation) {
    conditions_.reserve(filter.field_filters.size());
    for (const FieldFilter& f : filter.field_filters) {
      // A value nested deeper than any stored document never matches; it is not copied either,
      // as copying a hostile depth would overflow the stack.
      if (nests_too_deep(f.value)) {
        never_ = true;
      } else {
        conditions_.emplace_back(field_path(f.field), f.value);
      }
    }
  }

  [[nodiscard]] bool matches(const ChangeEvent& ev) const noexcept {
    if (never_ || (operation_ && *operation_ != ev.operation)) return false;
    if (conditions_.empty()) return true;
    const std::optional<Document>& doc = ev.operation == OperationType::Delete ? ev.old_document : ev.document;
    if (!doc) return false;
    for (const auto& [path, value] : conditions_) {
      const nlohmann::json* found = path.find(*doc);
      if (found == nullptr || !(*found == value)) return false;
    }
    return true;
  }

 private:
  std::optional<OperationType> operation_;
  std::vector<std::pair<field_path, Value>> conditions_;
  bool never_ = false;  // a condition no document can meet
};

}  // namespace detail

inline bool EventFilter::matches(const ChangeEvent& ev) const { return detail::compiled_filter(*this).matches(ev); }

}  // namespace aurora
