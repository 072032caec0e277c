// json_compare: exact equality and MongoDB-style ordering of JSON values, for queries and writes.
#pragma once

#include <aurora/value.hpp>

#include <cmath>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <string>

namespace aurora::detail {

// Orders two numbers. Integers compare exactly, a signed one with an unsigned one too (nlohmann's
// own operators cast the unsigned one to signed, so 2^64-1 "equals" -1 there); when either side
// is floating, both compare as doubles. Unordered when a side is NaN or not a number.
inline std::partial_ordering compare_numbers(const nlohmann::json& a, const nlohmann::json& b) noexcept {
  using value_t = nlohmann::json::value_t;
  const value_t ta = a.type();
  const value_t tb = b.type();
  if (!a.is_number() || !b.is_number()) return std::partial_ordering::unordered;
  if (ta == value_t::number_float || tb == value_t::number_float) {
    const auto as_double = [](const nlohmann::json& v, value_t t) noexcept -> double {
      if (t == value_t::number_float) return *v.get_ptr<const double*>();
      if (t == value_t::number_integer) return static_cast<double>(*v.get_ptr<const std::int64_t*>());
      return static_cast<double>(*v.get_ptr<const std::uint64_t*>());
    };
    return as_double(a, ta) <=> as_double(b, tb);
  }
  if (ta == tb) {
    if (ta == value_t::number_integer) return *a.get_ptr<const std::int64_t*>() <=> *b.get_ptr<const std::int64_t*>();
    return *a.get_ptr<const std::uint64_t*>() <=> *b.get_ptr<const std::uint64_t*>();
  }
  if (ta == value_t::number_integer) {  // signed a, unsigned b
    const std::int64_t x = *a.get_ptr<const std::int64_t*>();
    if (x < 0) return std::partial_ordering::less;
    return static_cast<std::uint64_t>(x) <=> *b.get_ptr<const std::uint64_t*>();
  }
  const std::int64_t y = *b.get_ptr<const std::int64_t*>();  // unsigned a, signed b
  if (y < 0) return std::partial_ordering::greater;
  return *a.get_ptr<const std::uint64_t*>() <=> static_cast<std::uint64_t>(y);
}

// Orders two values for $gt, $gte, $lt and $lte: numbers with numbers (compare_numbers), strings
// with strings by their UTF-8 bytes, booleans with booleans (false < true); anything else,
// including NaN, is unordered, so every comparison is false.
inline std::partial_ordering compare_values(const nlohmann::json& a, const nlohmann::json& b) noexcept {
  if (a.is_number()) return compare_numbers(a, b);
  if (a.is_string() && b.is_string()) {
    // std::char_traits<char> compares as unsigned char: byte order, which is code point order.
    return *a.get_ptr<const std::string*>() <=> *b.get_ptr<const std::string*>();
  }
  if (a.is_boolean() && b.is_boolean()) return *a.get_ptr<const bool*>() <=> *b.get_ptr<const bool*>();
  return std::partial_ordering::unordered;
}

// Whether integer `i` and the double `d` are the same number, exactly (nlohmann's == and
// compare_numbers compare them as doubles, so 2^53 + 1 "equals" 2^53 there).
inline bool integer_is_double(const nlohmann::json& i, double d) noexcept {
  if (!std::isfinite(d) || std::trunc(d) != d) return false;
  if (d < 0) {
    if (d < -9223372036854775808.0 || !i.is_number_integer()) return false;
    return *i.get_ptr<const std::int64_t*>() == static_cast<std::int64_t>(d);
  }
  if (d >= 18446744073709551616.0) return false;
  const auto u = static_cast<std::uint64_t>(d);  // d is integral and in [0, 2^64): exact
  if (i.is_number_unsigned()) return *i.get_ptr<const std::uint64_t*>() == u;
  const std::int64_t x = *i.get_ptr<const std::int64_t*>();
  return x >= 0 && static_cast<std::uint64_t>(x) == u;
}

// How json_equal_as compares numbers: as queries do (compare_numbers: integers exactly, with a
// floating side as doubles), or exactly (an integer and a double are equal only when they are
// the same number, so 21 == 21.0 but 2^53 + 1 != 2^53 as a double).
enum class number_equality { as_queries, exact };

template <number_equality Numbers>
bool json_equal_as(const nlohmann::json& a, const nlohmann::json& b, std::size_t levels) noexcept {
  using value_t = nlohmann::json::value_t;
  if (a.is_number() || b.is_number()) {
    if constexpr (Numbers == number_equality::exact) {
      if (a.is_number_float() != b.is_number_float() && a.is_number() && b.is_number()) {
        return a.is_number_float() ? integer_is_double(b, *a.get_ptr<const double*>())
                                   : integer_is_double(a, *b.get_ptr<const double*>());
      }
    }
    return std::is_eq(compare_numbers(a, b));
  }
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case value_t::null: return true;
    case value_t::boolean: return *a.get_ptr<const bool*>() == *b.get_ptr<const bool*>();
    case value_t::string: return *a.get_ptr<const std::string*>() == *b.get_ptr<const std::string*>();
    case value_t::array: {
      const auto& x = *a.get_ptr<const nlohmann::json::array_t*>();
      const auto& y = *b.get_ptr<const nlohmann::json::array_t*>();
      if (levels == 0 || x.size() != y.size()) return false;
      for (std::size_t i = 0; i < x.size(); ++i) {
        if (!json_equal_as<Numbers>(x[i], y[i], levels - 1)) return false;
      }
      return true;
    }
    case value_t::object: {
      // Both maps are sorted by the same comparator: walk them side by side.
      const auto& x = *a.get_ptr<const nlohmann::json::object_t*>();
      const auto& y = *b.get_ptr<const nlohmann::json::object_t*>();
      if (levels == 0 || x.size() != y.size()) return false;
      for (auto i = x.begin(), j = y.begin(); i != x.end(); ++i, ++j) {
        if (i->first != j->first || !json_equal_as<Numbers>(i->second, j->second, levels - 1)) return false;
      }
      return true;
    }
    case value_t::binary: return a == b;
    default: return false;  // discarded
  }
}

// JSON equality as nlohmann::json's operator== (so 21 == 21.0, NaN equals nothing, a discarded
// value equals nothing), except that integers compare exactly (compare_numbers). Recurses into
// arrays and objects at most `levels` deep; deeper values (never stored: max_document_depth)
// compare unequal, so a hostile depth cannot overflow the stack. Never throws or allocates.
inline bool json_equal(const nlohmann::json& a, const nlohmann::json& b,
                       std::size_t levels = max_document_depth) noexcept {
  return json_equal_as<number_equality::as_queries>(a, b, levels);
}

// json_equal with every number compared exactly: what tells an update or replace that changes
// nothing (21 to 21.0 changes nothing; -1 to 2^64-1, or 2^53 + 1 to the double 2^53, does).
inline bool json_same_value(const nlohmann::json& a, const nlohmann::json& b,
                            std::size_t levels = max_document_depth) noexcept {
  return json_equal_as<number_equality::exact>(a, b, levels);
}

}  // namespace aurora::detail
