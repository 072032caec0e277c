// string_map: an unordered map keyed by std::string that is looked up by std::string_view.
#pragma once

#include <cstddef>
#include <functional>
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

}  // namespace aurora::detail
