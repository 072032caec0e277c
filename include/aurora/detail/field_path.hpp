// Field paths of filters: top-level keys, dotted paths and RFC 6901 JSON Pointers, parsed once.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace aurora::detail {

// A key to look up in a JSON object (a std::map with the transparent std::less<>) that compares
// with the stored keys inline, byte by byte as unsigned char like std::string does: keys are
// short, and this is faster than a call to memcmp per comparison.
struct key_ref {
  const char* data;
  std::size_t size;

  static int compare(const char* a, std::size_t an, const char* b, std::size_t bn) noexcept {
    const std::size_t n = an < bn ? an : bn;
    for (std::size_t i = 0; i < n; ++i) {
      if (a[i] != b[i]) return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[i]) ? -1 : 1;
    }
    return an < bn ? -1 : an > bn ? 1 : 0;
  }

  friend bool operator<(const std::string& a, const key_ref& b) noexcept {
    return compare(a.data(), a.size(), b.data, b.size) < 0;
  }
  friend bool operator<(const key_ref& a, const std::string& b) noexcept {
    return compare(a.data, a.size, b.data(), b.size()) < 0;
  }
};

// A parsed filter field. `"a.b"` walks objects only; `"/a/0"` is a JSON Pointer that walks
// objects and arrays. An empty field or a malformed pointer is kept as invalid and finds nothing.
class field_path {
 public:
  explicit field_path(std::string_view field) {
    if (field.empty()) return;
    if (field.front() == '/') {
      pointer_ = true;
      valid_ = parse_pointer(field.substr(1));
    } else {
      split_dotted(field);
      valid_ = true;
    }
  }

  [[nodiscard]] bool valid() const noexcept { return valid_; }

  // The value at this path in `doc`, or nullptr when it is not there. Never throws.
  [[nodiscard]] const nlohmann::json* find(const nlohmann::json& doc) const noexcept {
    if (!valid_) return nullptr;
    const nlohmann::json* cur = &doc;
    for (const std::string& token : tokens_) {
      if (const auto* object = cur->get_ptr<const nlohmann::json::object_t*>()) {
        auto it = object->find(key_ref{token.data(), token.size()});
        if (it == object->end()) return nullptr;
        cur = &it->second;
      } else if (const auto* array = cur->get_ptr<const nlohmann::json::array_t*>(); pointer_ && array != nullptr) {
        std::size_t index = 0;
        if (!parse_index(token, index) || index >= array->size()) return nullptr;
        cur = &(*array)[index];
      } else {
        return nullptr;
      }
    }
    return cur;
  }

 private:
  void split_dotted(std::string_view field) {
    for (;;) {
      const auto dot = field.find('.');
      tokens_.emplace_back(field.substr(0, dot));
      if (dot == std::string_view::npos) return;
      field.remove_prefix(dot + 1);
    }
  }

  // RFC 6901: tokens separated by '/', with "~0" for '~' and "~1" for '/'; any other '~' is
  // malformed.
  bool parse_pointer(std::string_view rest) {
    std::string token;
    for (std::size_t i = 0; i <= rest.size(); ++i) {
      if (i == rest.size() || rest[i] == '/') {
        tokens_.push_back(std::move(token));
        token.clear();
        continue;
      }
      if (rest[i] != '~') {
        token.push_back(rest[i]);
        continue;
      }
      if (i + 1 == rest.size()) return false;
      const char next = rest[++i];
      if (next == '0') {
        token.push_back('~');
      } else if (next == '1') {
        token.push_back('/');
      } else {
        return false;
      }
    }
    return true;
  }

  // An array index per RFC 6901: "0" or digits without a leading zero ("-" never exists).
  static bool parse_index(const std::string& token, std::size_t& out) noexcept {
    if (token.empty() || (token.size() > 1 && token.front() == '0')) return false;
    std::size_t value = 0;
    for (const char c : token) {
      if (c < '0' || c > '9') return false;
      const auto digit = static_cast<std::size_t>(c - '0');
      if (value > (static_cast<std::size_t>(-1) - digit) / 10) return false;
      value = value * 10 + digit;
    }
    out = value;
    return true;
  }

  std::vector<std::string> tokens_;
  bool pointer_ = false;
  bool valid_ = false;
};

}  // namespace aurora::detail
