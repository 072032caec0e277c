// A reference evaluator for queries, written from API.md's words and independent of
// include/aurora/detail: it interprets a (valid) JSON spec directly against a document.
// Shared by tests/query_test.cpp and tests/fuzz/query_fuzzer.cpp.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace query_reference {

using json = nlohmann::json;

// The value at `path`: a JSON Pointer when it starts with '/', else dot-separated object keys.
inline const json* find(const json& doc, const std::string& path) {
  if (path.empty()) return nullptr;
  if (path.front() == '/') {
    try {
      const json::json_pointer ptr(path);
      if (!doc.contains(ptr)) return nullptr;
      return &doc.at(ptr);
    } catch (const json::exception&) {
      return nullptr;
    }
  }
  const json* cur = &doc;
  std::size_t start = 0;
  for (;;) {
    const std::size_t dot = path.find('.', start);
    const std::string key = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!cur->is_object() || !cur->contains(key)) return nullptr;
    cur = &(*cur)[key];
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

// An integer as a sign and a magnitude, so that any two compare exactly.
struct integer {
  bool negative;
  std::uint64_t magnitude;
};

inline integer as_integer(const json& v) {
  if (v.is_number_unsigned()) return {false, v.get<std::uint64_t>()};
  const std::int64_t i = v.get<std::int64_t>();
  if (i >= 0) return {false, static_cast<std::uint64_t>(i)};
  return {true, static_cast<std::uint64_t>(-(i + 1)) + 1};  // no overflow at INT64_MIN
}

// -1, 0 or 1; nullopt when the two do not compare (different types, NaN, not a scalar).
inline std::optional<int> compare(const json& a, const json& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_number_float() || b.is_number_float()) {
      const double x = a.get<double>();
      const double y = b.get<double>();
      if (x < y) return -1;
      if (x > y) return 1;
      if (x == y) return 0;  // NOLINT: exact on purpose
      return std::nullopt;   // NaN
    }
    const integer x = as_integer(a);
    const integer y = as_integer(b);
    if (x.negative != y.negative) return x.negative ? -1 : 1;
    if (x.magnitude == y.magnitude) return 0;
    const bool less = x.negative ? x.magnitude > y.magnitude : x.magnitude < y.magnitude;
    return less ? -1 : 1;
  }
  if (a.is_string() && b.is_string()) {
    const auto& x = a.get_ref<const std::string&>();
    const auto& y = b.get_ref<const std::string&>();
    for (std::size_t i = 0; i < x.size() && i < y.size(); ++i) {
      const auto cx = static_cast<unsigned char>(x[i]);
      const auto cy = static_cast<unsigned char>(y[i]);
      if (cx != cy) return cx < cy ? -1 : 1;
    }
    if (x.size() == y.size()) return 0;
    return x.size() < y.size() ? -1 : 1;
  }
  if (a.is_boolean() && b.is_boolean()) {
    const int x = a.get<bool>() ? 1 : 0;
    const int y = b.get<bool>() ? 1 : 0;
    return x < y ? -1 : x > y ? 1 : 0;
  }
  return std::nullopt;
}

inline bool equal(const json& a, const json& b) {
  if (a.is_number() && b.is_number()) return compare(a, b) == 0;
  if (a.type() != b.type()) return false;
  if (a.is_null()) return true;
  if (a.is_string() || a.is_boolean()) return compare(a, b) == 0;
  if (a.is_array()) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
      if (!equal(a[i], b[i])) return false;
    }
    return true;
  }
  if (a.is_object()) {
    if (a.size() != b.size()) return false;
    for (const auto& [key, value] : a.items()) {
      if (!b.contains(key) || !equal(value, b[key])) return false;
    }
    return true;
  }
  return a == b;  // binary
}

inline bool has_operator_key(const json& v) {
  if (!v.is_object()) return false;
  for (const auto& [key, value] : v.items()) {
    if (!key.empty() && key.front() == '$') return true;
  }
  return false;
}

// An operator object applied to the field's value (`v == nullptr`: missing).
inline bool test(const json& ops, const json* v) {
  for (const auto& [op, arg] : ops.items()) {
    bool ok = false;
    if (op == "$eq") ok = v != nullptr && equal(*v, arg);
    if (op == "$ne") ok = !(v != nullptr && equal(*v, arg));
    if (op == "$gt") ok = v != nullptr && compare(*v, arg) == 1;
    if (op == "$gte") ok = v != nullptr && (compare(*v, arg) == 1 || compare(*v, arg) == 0);
    if (op == "$lt") ok = v != nullptr && compare(*v, arg) == -1;
    if (op == "$lte") ok = v != nullptr && (compare(*v, arg) == -1 || compare(*v, arg) == 0);
    if (op == "$in" || op == "$nin") {
      bool found = false;
      for (const json& x : arg) found = found || (v != nullptr && equal(*v, x));
      ok = op == "$in" ? found : !found;
    }
    if (op == "$exists") ok = (v != nullptr) == arg.get<bool>();
    if (op == "$not") ok = !test(arg, v);
    if (!ok) return false;
  }
  return true;
}

// True when `doc` satisfies the valid query `q`.
inline bool matches(const json& q, const json& doc) {
  for (const auto& [key, value] : q.items()) {
    bool ok = true;
    if (key == "$and") {
      for (const json& sub : value) ok = ok && matches(sub, doc);
    } else if (key == "$or") {
      ok = false;
      for (const json& sub : value) ok = ok || matches(sub, doc);
    } else if (key == "$nor") {
      for (const json& sub : value) ok = ok && !matches(sub, doc);
    } else {
      const json* v = find(doc, key);
      ok = has_operator_key(value) ? test(value, v) : (v != nullptr && equal(*v, value));
    }
    if (!ok) return false;
  }
  return true;
}

}  // namespace query_reference
