// Strict parsers for stream entry fields: decimal numbers, stream IDs, timestamps, JSON documents.
#pragma once

#include <aurora/value.hpp>

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace aurora::redis::detail {

// `text` as an unsigned decimal number: digits only, no sign or space, no overflow.
inline std::optional<std::uint64_t> parse_u64(std::string_view text) noexcept {
  if (text.empty()) return std::nullopt;
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// A stream ID "<milliseconds>-<sequence>" as its two numbers.
inline std::optional<std::pair<std::uint64_t, std::uint64_t>> parse_stream_id(std::string_view id) noexcept {
  const std::size_t dash = id.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  const auto ms = parse_u64(id.substr(0, dash));
  const auto seq = parse_u64(id.substr(dash + 1));
  if (!ms || !seq) return std::nullopt;
  return std::pair{*ms, *seq};
}

// Microseconds since the epoch as a system_clock time point, if system_clock can hold it (its
// duration may be finer, and so hold a smaller range).
inline std::optional<std::chrono::system_clock::time_point> from_micros(std::int64_t us) noexcept {
  using clock_duration = std::chrono::system_clock::duration;
  constexpr auto max_us = std::chrono::duration_cast<std::chrono::microseconds>(clock_duration::max()).count();
  constexpr auto min_us = std::chrono::duration_cast<std::chrono::microseconds>(clock_duration::min()).count();
  if (us > max_us || us < min_us) return std::nullopt;
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<clock_duration>(std::chrono::microseconds(us)));
}

// Reads `n` digits at `text[at...]` as a number, or -1.
inline int read_digits(std::string_view text, std::size_t at, std::size_t n) noexcept {
  if (at + n > text.size()) return -1;
  int value = 0;
  for (std::size_t i = at; i < at + n; ++i) {
    if (text[i] < '0' || text[i] > '9') return -1;
    value = value * 10 + (text[i] - '0');
  }
  return value;
}

// An RFC 3339 date-time, "2026-11-26T18:30:05.123456Z" (fraction optional, of any length but
// kept to microseconds, truncated; 'T'/'t', 'Z'/'z' or a "+hh:mm"/"-hh:mm" offset), or the number
// of microseconds since the epoch as a decimal integer (with an optional '-'). Nothing else.
inline std::optional<std::chrono::system_clock::time_point> parse_timestamp(std::string_view text) noexcept {
  if (text.empty()) return std::nullopt;
  if (text.find_first_not_of("-0123456789") == std::string_view::npos) {
    std::int64_t us = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), us);
    if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
    return from_micros(us);
  }
  // YYYY-MM-DDTHH:MM:SS
  const int year = read_digits(text, 0, 4);
  const int month = read_digits(text, 5, 2);
  const int day = read_digits(text, 8, 2);
  const int hour = read_digits(text, 11, 2);
  const int minute = read_digits(text, 14, 2);
  const int second = read_digits(text, 17, 2);
  if (text.size() < 20 || year < 0 || month < 0 || day < 0 || hour < 0 || minute < 0 || second < 0) {
    return std::nullopt;
  }
  if (text[4] != '-' || text[7] != '-' || (text[10] != 'T' && text[10] != 't') || text[13] != ':' || text[16] != ':') {
    return std::nullopt;
  }
  const std::chrono::year_month_day ymd{std::chrono::year(year), std::chrono::month(static_cast<unsigned>(month)),
                                        std::chrono::day(static_cast<unsigned>(day))};
  if (!ymd.ok() || hour > 23 || minute > 59 || second > 59) return std::nullopt;
  std::size_t at = 19;
  std::int64_t micros = 0;
  if (text[at] == '.') {
    ++at;
    const std::size_t first = at;
    std::int64_t scale = 100'000;
    while (at < text.size() && text[at] >= '0' && text[at] <= '9') {
      micros += (text[at] - '0') * scale;
      scale /= 10;
      ++at;
    }
    if (at == first) return std::nullopt;
  }
  std::int64_t offset_minutes = 0;
  if (at < text.size() && (text[at] == 'Z' || text[at] == 'z')) {
    ++at;
  } else if (at < text.size() && (text[at] == '+' || text[at] == '-')) {
    const int oh = read_digits(text, at + 1, 2);
    const int om = read_digits(text, at + 4, 2);
    if (oh < 0 || om < 0 || oh > 23 || om > 59 || text[at + 3] != ':') return std::nullopt;
    offset_minutes = (text[at] == '+' ? 1 : -1) * (std::int64_t{oh} * 60 + om);
    at += 6;
  } else {
    return std::nullopt;
  }
  if (at != text.size()) return std::nullopt;
  const std::int64_t days = std::chrono::sys_days(ymd).time_since_epoch().count();
  const std::int64_t seconds =
      days * 86'400 + std::int64_t{hour} * 3'600 + std::int64_t{minute} * 60 + second - offset_minutes * 60;
  return from_micros(seconds * 1'000'000 + micros);
}

// Why the JSON text `text` is not a document Aurora can hold, or "" when it is one; the document
// goes to `out`. A document is a JSON object nested at most max_document_depth deep (the object
// itself is level 1), with finite numbers only. Neither parsing (nlohmann's parser keeps its own
// stack) nor this check recurses, so a hostile depth cannot overflow the stack.
inline std::string parse_document(std::string_view text, nlohmann::json& out) {
  out = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (out.is_discarded()) return "is not valid JSON";
  if (!out.is_object()) return std::string("is JSON but not an object (it is ") + out.type_name() + ")";
  std::vector<std::pair<const nlohmann::json*, std::size_t>> stack{{&out, 1}};
  while (!stack.empty()) {
    const auto [value, depth] = stack.back();
    stack.pop_back();
    if (value->is_number_float() && !std::isfinite(value->get<double>())) return "holds a number out of range";
    if (value->is_structured()) {
      if (depth > max_document_depth) {
        return "nests deeper than " + std::to_string(max_document_depth) + " levels (aurora::max_document_depth)";
      }
      for (const nlohmann::json& child : *value) stack.emplace_back(&child, depth + 1);
    }
  }
  return {};
}

}  // namespace aurora::redis::detail
