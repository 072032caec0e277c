// Filters: which change events a subscription receives (operation, fields, query, changes).
#pragma once

#include <aurora/change_event.hpp>
#include <aurora/detail/field_path.hpp>
#include <aurora/detail/json_compare.hpp>
#include <aurora/detail/query_parser.hpp>
#include <aurora/detail/storable.hpp>
#include <aurora/query.hpp>
#include <aurora/transition.hpp>
#include <aurora/value.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace aurora {

/// Matches when the document has `field` and it equals `value` under JSON equality, as `$eq`
/// (`21 == 21.0`, `"21" != 21`, integers compared exactly; `null` matches only a stored null).
///
/// `field` is a top-level key, a dotted path into nested objects (`"address.city"`; dots always
/// split and walk objects only), or, when it starts with `/`, an RFC 6901 JSON Pointer
/// (`"/tags/0"`, `"/a.b"`). An empty field or a malformed pointer never matches, nor does a
/// `value` nested deeper than `max_document_depth`, which no document can hold.
struct FieldFilter {
  std::string field;  ///< where to look
  Value value;        ///< what must be there
};

/// Which events a subscription receives, and how each moved its document relative to the
/// filter's view: all conditions must hold.
///
/// The *view* is the set of documents that satisfy the document conditions (`field_filters` and
/// `where`); with neither, every document is in it. Field filters and `where` look at `document`
/// for Insert and Update and at `old_document` (the removed document) for Delete. Without
/// `transitions`, an Update is matched against its new document; with it, an Update passes when
/// its old or its new document is in the view, so leaving the view is delivered too
/// (`detail::compiled_filter::deliver` gives the `Transition`).
///
/// JSON form (`from_json` / `to_json`), every key optional:
/// `{"operation": "Update", "where": {...}, "fields": {"path": value}, "changed": ["a.b"],
/// "transitions": true}` (`"operation": null` means any).
///
/// A value type; const members may be called concurrently.
struct EventFilter {
  std::optional<OperationType> operation{};  ///< empty: any operation
  std::vector<FieldFilter> field_filters{};  ///< all must match
  std::optional<Query> where{};              ///< a predicate the document must satisfy
  /// An Update passes only if one of these paths (as for `FieldFilter`) differs between
  /// `old_document` and `document` under JSON equality, as `$eq` (present vs missing counts; an
  /// empty or malformed path never differs). Insert and Delete pass. With `transitions`, it
  /// filters only `change` transitions.
  /// Empty: no condition.
  std::vector<std::string> changed{};
  bool transitions = false;  ///< also deliver Updates that take a document out of the view

  /// True when `ev` passes every condition. Never throws except `std::bad_alloc`; thread-safe
  /// for concurrent calls on one filter. Subscriptions compile the filter once, not per event.
  [[nodiscard]] bool matches(const ChangeEvent& ev) const;

  /// Reads a filter from its JSON form (above), strictly.
  ///
  /// Throws `aurora::error(errc::invalid_argument)` naming the offending place
  /// (`filter: at $.where.age.$gt: ...`) when `j` is not an object, has an unknown key, or a
  /// key of the wrong type: `operation` not `"Insert"`, `"Update"`, `"Delete"` or null; `where`
  /// not a valid query (see `Query::parse`); `fields` not an object, or with an empty or
  /// malformed path, or a value nested deeper than `max_document_depth` or holding NaN, an
  /// infinity or a discarded value; `changed` not an array of valid paths; `transitions` not a
  /// bool. Also throws `std::bad_alloc`.
  [[nodiscard]] static EventFilter from_json(const nlohmann::json& j);

  /// Writes `f` in the JSON form above, every key present (`where` only when set); `from_json`
  /// reads it back, unless `f` holds what it rejects (an empty or malformed path, a NaN value).
  /// Field filters with the same field appear once (the last one). Throws
  /// `aurora::error(errc::invalid_argument)` for a field filter value nested deeper than
  /// `max_document_depth` (no JSON form can hold it), else only `std::bad_alloc`.
  friend void to_json(nlohmann::json& j, const EventFilter& f);
};

namespace detail {

// An EventFilter with its paths and query compiled once, as subscriptions keep it. Const members
// never allocate and may be called concurrently.
class compiled_filter {
 public:
  explicit compiled_filter(const EventFilter& filter)
      : operation_(filter.operation), where_(filter.where), transitions_(filter.transitions) {
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
    changed_.reserve(filter.changed.size());
    for (const std::string& path : filter.changed) changed_.emplace_back(path);
  }

  // How `ev` moves its document relative to the view, or nullopt when the subscription skips
  // it. Insert = enter and Delete = leave when the document is in the view. An Update is, by
  // its old and new document's membership: out -> in = enter, in -> in = change, in -> out =
  // leave (only with `transitions`), out -> out = skipped. Without `transitions` every Update
  // must have its new document in the view and pass `changed`; with it, `changed` filters only
  // `change`.
  [[nodiscard]] std::optional<Transition> deliver(const ChangeEvent& ev) const noexcept {
    if (never_ || (operation_ && *operation_ != ev.operation)) return std::nullopt;
    switch (ev.operation) {
      case OperationType::Insert:
        if (!in_view_or_absent(ev.document)) return std::nullopt;
        return Transition::enter;
      case OperationType::Delete:
        if (!in_view_or_absent(ev.old_document)) return std::nullopt;
        return Transition::leave;
      case OperationType::Update: break;
    }
    const bool after = in_view_or_absent(ev.document);
    if (!transitions_) {
      if (!after || !changed(ev)) return std::nullopt;
      return in_view_or_absent(ev.old_document) ? Transition::change : Transition::enter;
    }
    const bool before = in_view_or_absent(ev.old_document);
    if (before && after) {
      if (!changed(ev)) return std::nullopt;
      return Transition::change;
    }
    if (after) return Transition::enter;
    if (before) return Transition::leave;
    return std::nullopt;
  }

  // True when `ev` is delivered: `deliver(ev).has_value()`.
  [[nodiscard]] bool matches(const ChangeEvent& ev) const noexcept { return deliver(ev).has_value(); }

  // True when `doc` is in the view: it passes the field filters and `where`.
  [[nodiscard]] bool in_view(const Document& doc) const noexcept {
    if (never_) return false;
    for (const auto& [path, value] : conditions_) {
      const nlohmann::json* found = path.find(doc);
      if (found == nullptr || !detail::json_equal(*found, value)) return false;
    }
    return !where_ || where_->matches(doc);
  }

 private:
  // An absent document (an event built by hand) is in the view only when the view holds everything.
  [[nodiscard]] bool in_view_or_absent(const DocumentPtr& doc) const noexcept {
    if (doc) return in_view(*doc);
    return !never_ && conditions_.empty() && !where_;
  }

  // True when `changed` is empty or one of its paths differs between the two documents.
  [[nodiscard]] bool changed(const ChangeEvent& ev) const noexcept {
    if (changed_.empty()) return true;
    for (const field_path& path : changed_) {
      const nlohmann::json* before = ev.old_document ? path.find(*ev.old_document) : nullptr;
      const nlohmann::json* after = ev.document ? path.find(*ev.document) : nullptr;
      if (before == nullptr || after == nullptr) {
        if (before != after) return true;
      } else if (!json_equal(*before, *after)) {
        return true;
      }
    }
    return false;
  }

  std::optional<OperationType> operation_;
  std::vector<std::pair<field_path, Value>> conditions_;
  std::optional<Query> where_;
  std::vector<field_path> changed_;
  bool transitions_ = false;
  bool never_ = false;  // a condition no document can meet
};

}  // namespace detail

inline bool EventFilter::matches(const ChangeEvent& ev) const { return detail::compiled_filter(*this).matches(ev); }

inline EventFilter EventFilter::from_json(const nlohmann::json& j) {
  constexpr std::string_view context = "filter";
  if (!j.is_object()) detail::spec_error(context, "$", "a filter must be a JSON object");
  EventFilter f;
  for (const auto& [key, value] : *j.get_ptr<const nlohmann::json::object_t*>()) {
    std::string path = "$";
    detail::append_path_key(path, key);
    if (key == "operation") {
      if (value.is_null()) continue;
      bool known = false;
      for (const OperationType op : {OperationType::Insert, OperationType::Update, OperationType::Delete}) {
        if (value.is_string() && *value.get_ptr<const std::string*>() == to_string(op)) {
          f.operation = op;
          known = true;
        }
      }
      if (!known) detail::spec_error(context, path, R"(must be "Insert", "Update", "Delete" or null)");
    } else if (key == "where") {
      f.where = detail::query_access::parse(value, context, path);
    } else if (key == "fields") {
      if (!value.is_object()) detail::spec_error(context, path, "must be an object of paths and values");
      for (const auto& [field, expected] : *value.get_ptr<const nlohmann::json::object_t*>()) {
        std::string at = path;
        detail::append_path_key(at, field);
        if (const char* why = detail::path_problem(field, detail::field_path(field))) {
          detail::spec_error(context, at, why);
        }
        if (const char* why = detail::bad_operand(expected, 0)) detail::spec_error(context, at, why);
        f.field_filters.push_back(FieldFilter{field, expected});
      }
    } else if (key == "changed") {
      if (!value.is_array()) detail::spec_error(context, path, "must be an array of paths");
      for (std::size_t i = 0; i < value.size(); ++i) {
        const std::string at = path + '[' + std::to_string(i) + ']';
        if (!value[i].is_string()) detail::spec_error(context, at, "must be a path (a string)");
        const std::string& field = *value[i].get_ptr<const std::string*>();
        if (const char* why = detail::path_problem(field, detail::field_path(field))) {
          detail::spec_error(context, at, why);
        }
        f.changed.push_back(field);
      }
    } else if (key == "transitions") {
      if (!value.is_boolean()) detail::spec_error(context, path, "must be true or false");
      f.transitions = value.get<bool>();
    } else {
      detail::spec_error(context, path, "unknown key (known: operation, where, fields, changed, transitions)");
    }
  }
  return f;
}

inline void to_json(nlohmann::json& j, const EventFilter& f) {
  nlohmann::json out = nlohmann::json::object();
  out["operation"] = f.operation ? nlohmann::json(to_string(*f.operation)) : nlohmann::json(nullptr);
  if (f.where) out["where"] = *f.where;
  nlohmann::json& fields = out["fields"] = nlohmann::json::object();
  for (const FieldFilter& ff : f.field_filters) {
    if (detail::nests_too_deep(ff.value)) {
      std::string at = "$.fields";
      detail::append_path_key(at, ff.field);
      detail::spec_error("filter", at, "nests deeper than aurora::max_document_depth (256)");
    }
    fields[ff.field] = ff.value;
  }
  out["changed"] = f.changed;
  out["transitions"] = f.transitions;
  j = std::move(out);
}

}  // namespace aurora
