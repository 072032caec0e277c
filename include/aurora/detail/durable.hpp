// durable: what BasicDatabase needs from a storage engine, without depending on one. The default
// storage keeps nothing (the in-memory Database); a durable one (aurora::sqlite::DurableStorage)
// makes every commit durable before it is published.
#pragma once

#include <aurora/change_event.hpp>
#include <aurora/value.hpp>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace aurora::detail {

// The storage of the in-memory Database: nothing is stored, nothing is loaded. BasicDatabase
// compiles its durable paths out (`if constexpr (Storage::durable)`), so the in-memory write
// path has no extra lock, allocation or branch.
struct memory_storage {
  static constexpr bool durable = false;
};

// One commit on its way to a durable storage: its stamped events (in sequence order) and the
// names of the collections it created (to drop again if the commit fails and they are empty).
struct commit_batch {
  std::vector<std::shared_ptr<const ChangeEvent>> events;
  std::vector<std::string> created;
};

// True when `s` is valid UTF-8 (shortest forms, no surrogates, at most U+10FFFF).
inline bool valid_utf8(std::string_view s) noexcept {
  std::size_t i = 0;
  const std::size_t n = s.size();
  while (i < n) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80U) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    unsigned char lo = 0x80U;
    unsigned char hi = 0xBFU;
    if (c >= 0xC2U && c <= 0xDFU) {
      len = 2;
    } else if (c >= 0xE0U && c <= 0xEFU) {
      len = 3;
      if (c == 0xE0U) lo = 0xA0U;
      if (c == 0xEDU) hi = 0x9FU;
    } else if (c >= 0xF0U && c <= 0xF4U) {
      len = 4;
      if (c == 0xF0U) lo = 0x90U;
      if (c == 0xF4U) hi = 0x8FU;
    } else {
      return false;
    }
    if (n - i < len) return false;
    const auto c1 = static_cast<unsigned char>(s[i + 1]);
    if (c1 < lo || c1 > hi) return false;
    for (std::size_t k = 2; k < len; ++k) {
      const auto ck = static_cast<unsigned char>(s[i + k]);
      if (ck < 0x80U || ck > 0xBFU) return false;
    }
    i += len;
  }
  return true;
}

// What one walk of a document tells a storage that keeps documents as JSON text: whether every
// string in it (object keys included) is valid UTF-8, and an upper bound on the length of
// `dump()` (each string byte counted as its longest escape, `\u001f`, each number as its
// longest text).
struct json_text_scan {
  bool utf8 = true;
  std::size_t bound = 0;
};

// a + b, or the largest size_t when that overflows (as it could on a 32-bit target).
constexpr std::size_t add_saturated(std::size_t a, std::size_t b) noexcept {
  return b > std::numeric_limits<std::size_t>::max() - a ? std::numeric_limits<std::size_t>::max() : a + b;
}

// Scans `doc` (see json_text_scan); iterative, so a deep document cannot overflow the stack.
// Stops at the first string that is not UTF-8. Without `check_utf8` (a document stored already,
// so known valid) only the bound is made: one step per value, none per byte.
inline json_text_scan scan_json_text(const nlohmann::json& doc, bool check_utf8 = true) {
  constexpr std::size_t longest_escape = 6;
  constexpr std::size_t longest_number = 32;  // "-1.2345678901234567e-308" is 24
  auto quoted_bound = [](const std::string& s) {
    constexpr std::size_t most = (std::numeric_limits<std::size_t>::max() - 2) / longest_escape;
    return s.size() > most ? std::numeric_limits<std::size_t>::max() : 2 + longest_escape * s.size();
  };
  json_text_scan scan;
  std::vector<const nlohmann::json*> stack{&doc};
  while (!stack.empty()) {
    const nlohmann::json* value = stack.back();
    stack.pop_back();
    switch (value->type()) {
      case nlohmann::json::value_t::string: {
        const std::string& s = *value->get_ptr<const std::string*>();
        if (check_utf8 && !valid_utf8(s)) return {false, scan.bound};
        scan.bound = add_saturated(scan.bound, quoted_bound(s));
        break;
      }
      case nlohmann::json::value_t::object:
        scan.bound = add_saturated(scan.bound, 2);
        for (auto it = value->begin(); it != value->end(); ++it) {
          if (check_utf8 && !valid_utf8(it.key())) return {false, scan.bound};
          // with the colon and the comma
          scan.bound = add_saturated(scan.bound, add_saturated(quoted_bound(it.key()), 2));
          stack.push_back(&it.value());
        }
        break;
      case nlohmann::json::value_t::array:
        scan.bound = add_saturated(scan.bound, 2 + value->size());  // with the commas
        for (const nlohmann::json& child : *value) stack.push_back(&child);
        break;
      case nlohmann::json::value_t::binary:  // written as {"bytes":[...],"subtype":...}
        scan.bound = add_saturated(scan.bound, add_saturated(64, 4 * value->get_binary().size()));
        break;
      default: scan.bound = add_saturated(scan.bound, longest_number); break;  // also null, true and false
    }
  }
  return scan;
}

}  // namespace aurora::detail
