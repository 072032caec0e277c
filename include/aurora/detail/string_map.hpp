// string_map: an unordered map keyed by std::string that is looked up by std::string_view;
// inline_key_map: a flat hash map keyed by inline_key, for the many short keys of document ids.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

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
// map entry holds its key without a second allocation; a longer one goes to the heap. It
// converts to std::string_view, which is how maps hash it and compare it. A moved-from key is
// empty.
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
  inline_key(inline_key&& other) noexcept : size_(other.size_), heap_(std::move(other.heap_)) {
    if (!heap_) std::memcpy(inline_, other.inline_, size_);
    other.size_ = 0;
  }
  inline_key& operator=(const inline_key&) = delete;
  inline_key& operator=(inline_key&& other) noexcept {
    if (this != &other) {
      size_ = other.size_;
      heap_ = std::move(other.heap_);
      if (!heap_) std::memcpy(inline_, other.inline_, size_);
      other.size_ = 0;
    }
    return *this;
  }
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

// A hash map from inline_key to V, for a collection's documents: many entries, short keys,
// looked up by std::string_view. Its entries sit side by side in one vector, in insertion order
// until an erase moves the last entry into the hole. An open-addressed table of 8-byte buckets
// (the low 32 bits of the key's hash and the entry's index; linear probing, deletion by
// backward shift, so no tombstones) finds them.
//
// Why not std::unordered_map: it allocates a node per entry, and with hundreds of thousands of
// entries every insert missed the cache on the bucket's chain, and every growth walked all
// the nodes again. Here an insert of a new key reads one run of buckets and appends to the
// vector, and growth rebuilds only the buckets, from the hashes they hold.
//
// Growing the vector moves the entries, as growing std::unordered_map rehashed every node (a
// std::deque, which never moves them, was slower; see the README). Iterators and references
// are invalidated by every insert and erase (as for std::vector).
// Errors: std::bad_alloc, and std::length_error past max_size(); a failed insert changes
// nothing. Thread safety: as a standard container.
template <class V>
class inline_key_map {
  static_assert(std::is_nothrow_move_constructible_v<V> && std::is_nothrow_move_assignable_v<V>,
                "erase() moves the last entry into the hole and must not fail");

 public:
  struct value_type {
    inline_key first;
    V second;
  };
  using iterator = typename std::vector<value_type>::iterator;
  using const_iterator = typename std::vector<value_type>::const_iterator;

  // Entries are numbered in 32 bits, and the table needs twice as many buckets as entries.
  static constexpr std::size_t max_size() noexcept { return std::size_t{1} << 30; }

  [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }
  [[nodiscard]] bool empty() const noexcept { return entries_.empty(); }
  [[nodiscard]] iterator begin() noexcept { return entries_.begin(); }
  [[nodiscard]] iterator end() noexcept { return entries_.end(); }
  [[nodiscard]] const_iterator begin() const noexcept { return entries_.begin(); }
  [[nodiscard]] const_iterator end() const noexcept { return entries_.end(); }

  [[nodiscard]] iterator find(std::string_view key) noexcept { return begin() + position(key); }
  [[nodiscard]] const_iterator find(std::string_view key) const noexcept { return begin() + position(key); }

  // The entry of `key`, made with a value-initialised V if there was none (then true).
  std::pair<iterator, bool> try_emplace(std::string_view key) {
    const std::size_t hash = string_hash{}(key);
    std::size_t at = find_bucket(key, hash);
    if (holds(at)) return {begin() + (buckets_[at].index - 1), false};
    if (entries_.size() >= max_size()) throw std::length_error("aurora: too many documents in one collection");
    if (at == npos || 4 * (entries_.size() + 1) > 3 * buckets_.size()) {
      grow();
      at = find_bucket(key, hash);
    }
    entries_.push_back(value_type{inline_key(key), V{}});
    buckets_[at] = bucket{static_cast<std::uint32_t>(hash), static_cast<std::uint32_t>(entries_.size())};
    return {end() - 1, true};
  }

  // `value` is taken before the insert, which may move the entries it could refer to.
  void insert_or_assign(std::string_view key, V value) { try_emplace(key).first->second = std::move(value); }

  void erase(const_iterator pos) noexcept {
    const auto index = static_cast<std::size_t>(pos - entries_.cbegin());
    erase_at(bucket_of(index), index);
  }

  std::size_t erase(std::string_view key) noexcept {
    const std::size_t at = find_bucket(key, string_hash{}(key));
    if (!holds(at)) return 0;
    erase_at(at, buckets_[at].index - 1);
    return 1;
  }

 private:
  struct bucket {
    std::uint32_t hash = 0;   // low 32 bits of the key's hash
    std::uint32_t index = 0;  // 1 + the entry's index; 0: empty
  };
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);

  // Erases the entry at `index`, whose bucket is `hole`.
  void erase_at(std::size_t hole, std::size_t index) noexcept {
    // Move each later bucket of the run back into the hole unless that would put it before its
    // home bucket; the run then has no gap for a lookup to stop at.
    for (std::size_t next = (hole + 1) & mask_; buckets_[next].index != 0; next = (next + 1) & mask_) {
      const std::size_t home = buckets_[next].hash & mask_;
      if (((next - home) & mask_) >= ((next - hole) & mask_)) {
        buckets_[hole] = buckets_[next];
        hole = next;
      }
    }
    buckets_[hole] = bucket{};
    const std::size_t last = entries_.size() - 1;
    if (index != last) {
      buckets_[bucket_of(last)].index = static_cast<std::uint32_t>(index + 1);
      entries_[index] = std::move(entries_[last]);
    }
    entries_.pop_back();
  }

  // True when bucket `at` (from find_bucket) holds the key looked for.
  [[nodiscard]] bool holds(std::size_t at) const noexcept { return at != npos && buckets_[at].index != 0; }

  // The index of `key`'s entry, or size().
  [[nodiscard]] std::ptrdiff_t position(std::string_view key) const noexcept {
    const std::size_t at = find_bucket(key, string_hash{}(key));
    return static_cast<std::ptrdiff_t>(holds(at) ? buckets_[at].index - 1 : entries_.size());
  }

  // The bucket holding `key`, or the empty bucket that ends its run; npos when there is no
  // table yet.
  [[nodiscard]] std::size_t find_bucket(std::string_view key, std::size_t hash) const noexcept {
    if (buckets_.empty()) return npos;
    const auto h = static_cast<std::uint32_t>(hash);
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      const bucket b = buckets_[i];
      if (b.index == 0 || (b.hash == h && std::string_view(entries_[b.index - 1].first) == key)) return i;
    }
  }

  // The bucket of the entry at `index`.
  [[nodiscard]] std::size_t bucket_of(std::size_t index) const noexcept {
    const auto h = static_cast<std::uint32_t>(string_hash{}(std::string_view(entries_[index].first)));
    std::size_t i = h & mask_;
    while (buckets_[i].index != index + 1) i = (i + 1) & mask_;
    return i;
  }

  // Doubles the table (16 buckets at first), placing every entry from the hash its bucket holds.
  void grow() {
    std::vector<bucket> table(buckets_.empty() ? 16 : 2 * buckets_.size());
    const std::size_t mask = table.size() - 1;
    for (const bucket& b : buckets_) {
      if (b.index == 0) continue;
      std::size_t i = b.hash & mask;
      while (table[i].index != 0) i = (i + 1) & mask;
      table[i] = b;
    }
    buckets_.swap(table);
    mask_ = mask;
  }

  std::vector<value_type> entries_;
  std::vector<bucket> buckets_;  // a power of two, at most three quarters full; empty before the first insert
  std::size_t mask_ = 0;
};

}  // namespace aurora::detail
