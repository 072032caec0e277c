// string_map: an unordered map keyed by std::string that is looked up by std::string_view;
// inline_key_map: the same keyed by inline_key, for the many short keys of document ids.
#pragma once

#include <cstddef>
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
struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
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
