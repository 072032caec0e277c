// Turns a fuzzer's bytes into the pieces the fuzz targets need: small numbers, strings and
// JSON values (from JSON text or CBOR, which can carry NaN, infinities and non-UTF-8 strings).
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

namespace aurora_fuzz {

class input {
 public:
  input(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}

  [[nodiscard]] bool empty() const { return pos_ >= size_; }

  std::uint8_t byte() { return empty() ? 0 : data_[pos_++]; }

  // A string of up to 255 bytes, length first.
  std::string text() {
    const std::size_t n = byte();
    return take(n);
  }

  // A JSON value: JSON text or CBOR (one byte picks), two length bytes first. Malformed input
  // gives a discarded value, which the API must reject like any other non-object.
  nlohmann::json value() {
    const std::uint8_t kind = byte();
    std::size_t n = byte();
    n = (n << 8U) | byte();
    const std::string bytes = take(n);
    try {
      if (kind % 2 == 0) return nlohmann::json::parse(bytes, nullptr, /*allow_exceptions=*/false);
      return nlohmann::json::from_cbor(bytes, /*strict=*/true, /*allow_exceptions=*/false);
    } catch (const nlohmann::json::exception&) {  // from_cbor throws 408 on huge sizes regardless
      return nlohmann::json(nlohmann::json::value_t::discarded);
    }
  }

 private:
  std::string take(std::size_t n) {
    if (n > size_ - pos_) n = size_ - pos_;
    std::string s(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return s;
  }

  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

// How deeply `v` nests (a scalar is 0, `[]` is 1), without recursion.
inline std::size_t depth_of(const nlohmann::json& v) {
  std::size_t deepest = 0;
  std::vector<std::pair<const nlohmann::json*, std::size_t>> stack{{&v, 0}};
  while (!stack.empty()) {
    const auto [cur, depth] = stack.back();
    stack.pop_back();
    if (!cur->is_structured()) continue;
    deepest = std::max(deepest, depth + 1);
    for (const auto& child : *cur) stack.emplace_back(&child, depth + 1);
  }
  return deepest;
}

// Stops the process: a broken invariant (libFuzzer and the replay both report it).
[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "fuzz invariant broken: %s\n", what);
  std::fflush(stderr);
  std::abort();
}

inline void require(bool ok, const char* what) {
  if (!ok) fail(what);
}

}  // namespace aurora_fuzz
