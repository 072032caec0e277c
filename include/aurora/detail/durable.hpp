// durable: what BasicDatabase needs from a storage engine, without depending on one. The default
// storage keeps nothing (the in-memory Database); a durable one (aurora::sqlite::DurableStorage)
// makes every commit durable before it is published.
#pragma once

#include <aurora/change_event.hpp>
#include <aurora/value.hpp>

#include <cstddef>
#include <cstdint>
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

// True when every string of `doc` (object keys included) is valid UTF-8, as a durable storage
// that keeps documents as JSON text needs. Iterative: a deep document cannot overflow the stack.
inline bool all_utf8(const nlohmann::json& doc) {
  std::vector<const nlohmann::json*> stack{&doc};
  while (!stack.empty()) {
    const nlohmann::json* value = stack.back();
    stack.pop_back();
    if (value->is_string()) {
      if (!valid_utf8(*value->get_ptr<const std::string*>())) return false;
    } else if (value->is_object()) {
      for (auto it = value->begin(); it != value->end(); ++it) {
        if (!valid_utf8(it.key())) return false;
        stack.push_back(&it.value());
      }
    } else if (value->is_array()) {
      for (const nlohmann::json& child : *value) stack.push_back(&child);
    }
  }
  return true;
}

}  // namespace aurora::detail
