// string_map: an unordered map keyed by std::string that is looked up by std::string_view;
// inline_key_map: the same keyed by inline_key, for the many short keys of document ids.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

namespace aurora::detail {

// Deliberately not noexcept: libstdc++ then stores each key's hash in its node (as it does for
// std::hash<std::string>), so growing the table does not hash every key again and a lookup
// compares only the keys whose hash matches. (It cannot throw.)
//
// The hash reads 8 bytes at a time, inline (std::hash calls out to a byte-oriented loop that cost
// about twice as much on a 36-byte id): each word is folded in with a multiply and a shift, the
// last one overlapping the one before when the length is not a multiple of 8, and the result is
// mixed once more so that the low bits, which pick the bucket, depend on every byte.
struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const {
    constexpr std::uint64_t k = 0x9E37'79B9'7F4A'7C15;
    const char* p = s.data();
    std::size_t n = s.size();
    std::uint64_t h = n * k;
    auto fold = [&h](std::uint64_t w) {
      h = (h ^ w) * 0xBF58'476D'1CE4'E5B9;
      h ^= h >> 31;
    };
    if (n >= 8) {
      for (; n > 8; p += 8, n -= 8) fold(load(p, 8));
      fold(load(p + n - 8, 8));
    } else if (n >= 4) {
      fold(load(p, 4) | load(p + n - 4, 4) << 32);
    } else if (n > 0) {
      fold(std::uint64_t{static_cast<unsigned char>(p[0])} | std::uint64_t{static_cast<unsigned char>(p[n / 2])} << 8 |
           std::uint64_t{static_cast<unsigned char>(p[n - 1])} << 16);
    }
    h = (h ^ (h >> 32)) * k;
    return static_cast<std::size_t>(h ^ (h >> 29));
  }

 private:
  static std::uint64_t load(const char* p, std::size_t bytes) noexcept {
    if (bytes == 8) {
      std::uint64_t w = 0;
      std::memcpy(&w, p, 8);
      return w;
    }
    std::uint32_t w = 0;
    std::memcpy(&w, p, 4);
    return w;
  }
};

template <class V>
using string_map = std::unordered_map<std::string, V, string_hash, std::equal_to<>>;

// A string key that keeps up to `inline_capacity` bytes in itself (a UUID is 36), so that a
// map node holds its key without a second allocation; a longer one goes to the heap. It
// converts to std::string_view, which is how maps hash it and compare it.
class inline_key {
 public:
  static constexpr std::size_t inline_capacity = 40;

  inline_key(std::string_view s) : size_(s.size()) {
    char* p = inline_;
    if (size_ > inline_capacity) {
      heap_ = std::make_unique_for_overwrite<char[]>(size_);
      p = heap_.get();
    }
    if (size_ != 0) std::memcpy(p, s.data(), size_);
  }
  inline_key(const std::string& s) : inline_key(std::string_view(s)) {}
  inline_key(const inline_key& other) : inline_key(std::string_view(other)) {}
  inline_key& operator=(const inline_key&) = delete;
  ~inline_key() = default;

  operator std::string_view() const noexcept { return {heap_ ? heap_.get() : inline_, size_}; }

  friend bool operator==(const inline_key& a, const inline_key& b) noexcept {
    return std::string_view(a) == std::string_view(b);
  }
  friend bool operator==(const inline_key& a, std::string_view b) noexcept { return std::string_view(a) == b; }

 private:
  std::size_t size_;
  std::unique_ptr<char[]> heap_;
  char inline_[inline_capacity];
};

template <class V>
using inline_key_map = std::unordered_map<inline_key, V, string_hash, std::equal_to<>>;

}  // namespace aurora::detail
