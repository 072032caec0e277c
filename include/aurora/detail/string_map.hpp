// string_map: an unordered map keyed by std::string that is looked up by std::string_view;
// inline_key_map: a flat hash map keyed by inline_key, for the many short keys of document ids.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <iterator>
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
// looked up by std::string_view. Its entries are numbered 0 .. size() - 1, in insertion order
// until an erase moves the last entry into the hole, and an open-addressed table of 8-byte
// buckets (the low 32 bits of the key's hash and the entry's index; linear probing, deletion by
// backward shift, so no tombstones) finds them.
//
// Why not std::unordered_map: it allocates a node per entry, and with hundreds of thousands of
// entries every insert missed the cache on the bucket's chain, and every growth walked all
// the nodes again. Here an insert of a new key reads one run of buckets and appends an entry,
// and growth rebuilds only the buckets, from the hashes they hold.
//
// The entries sit in segments that double in size (8, 8, 16, 32, ... entries), so that an entry
// never moves as the map grows: a std::vector's growth copied every entry while holding both
// copies (about 220 MB for a million documents), with the commit lock held. So a reference to
// an entry survives inserts and moves of the map; an erase moves the last entry into the hole.
// An iterator is an index into its map: erases and moves of the map invalidate it.
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

  // Entry `index` of `map`; a random walk is not needed, so it is a forward iterator.
  template <bool Const>
  class basic_iterator {
    using map_type = std::conditional_t<Const, const inline_key_map, inline_key_map>;

   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = inline_key_map::value_type;
    using difference_type = std::ptrdiff_t;
    using reference = std::conditional_t<Const, const value_type&, value_type&>;
    using pointer = std::conditional_t<Const, const value_type*, value_type*>;

    basic_iterator() = default;
    basic_iterator(map_type* map, std::size_t index) noexcept : map_(map), index_(index) {}
    operator basic_iterator<true>() const noexcept { return {map_, index_}; }

    reference operator*() const noexcept { return map_->entry(index_); }
    pointer operator->() const noexcept { return &map_->entry(index_); }
    basic_iterator& operator++() noexcept {
      ++index_;
      return *this;
    }
    basic_iterator operator++(int) noexcept {
      basic_iterator before = *this;
      ++index_;
      return before;
    }
    friend bool operator==(const basic_iterator& a, const basic_iterator& b) noexcept { return a.index_ == b.index_; }

   private:
    friend class inline_key_map;
    map_type* map_ = nullptr;
    std::size_t index_ = 0;
  };
  using iterator = basic_iterator<false>;
  using const_iterator = basic_iterator<true>;

  // Entries are numbered in 32 bits, and the table needs twice as many buckets as entries.
  static constexpr std::size_t max_size() noexcept { return std::size_t{1} << 30; }

  inline_key_map() = default;
  inline_key_map(inline_key_map&& other) noexcept { swap(other); }
  inline_key_map& operator=(inline_key_map&& other) noexcept {
    inline_key_map taken(std::move(other));
    swap(taken);  // this map's entries go with `taken`
    return *this;
  }
  inline_key_map(const inline_key_map&) = delete;
  inline_key_map& operator=(const inline_key_map&) = delete;
  ~inline_key_map() { release(); }

  void swap(inline_key_map& other) noexcept {
    std::swap(segments_, other.segments_);
    std::swap(size_, other.size_);
    buckets_.swap(other.buckets_);
  }

  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  [[nodiscard]] iterator begin() noexcept { return {this, 0}; }
  [[nodiscard]] iterator end() noexcept { return {this, size_}; }
  [[nodiscard]] const_iterator begin() const noexcept { return {this, 0}; }
  [[nodiscard]] const_iterator end() const noexcept { return {this, size_}; }

  [[nodiscard]] iterator find(std::string_view key) noexcept { return {this, position(key)}; }
  [[nodiscard]] const_iterator find(std::string_view key) const noexcept { return {this, position(key)}; }

  // The entry of `key`, made with a value-initialised V if there was none (then true).
  std::pair<iterator, bool> try_emplace(std::string_view key) {
    const std::size_t hash = string_hash{}(key);
    std::size_t at = find_bucket(key, hash);
    if (holds(at)) return {iterator(this, buckets_[at].index - 1), false};
    if (size_ >= max_size()) throw std::length_error("aurora: too many documents in one collection");
    if (at == npos || 4 * (size_ + 1) > 3 * buckets_.size()) {
      grow();
      at = find_bucket(key, hash);
    }
    append(key);
    buckets_[at] = bucket{static_cast<std::uint32_t>(hash), static_cast<std::uint32_t>(size_)};
    return {iterator(this, size_ - 1), true};
  }

  void insert_or_assign(std::string_view key, V value) { try_emplace(key).first->second = std::move(value); }

  void erase(const_iterator pos) noexcept { erase_at(bucket_of(pos.index_), pos.index_); }

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

  // Segment 0 holds entries [0, 8) and segment k > 0 holds [8 * 2^(k-1), 8 * 2^k): 28 segments
  // number max_size() entries.
  static constexpr unsigned first_bits = 3;
  static constexpr std::size_t segment_count = 28;

  static constexpr std::size_t segment_of(std::size_t index) noexcept {
    return static_cast<std::size_t>(std::bit_width(index >> first_bits));
  }
  // The first index of segment k (0 for k = 0), which is also its length for k > 0.
  static constexpr std::size_t segment_start(std::size_t k) noexcept {
    return (std::size_t{1} << (first_bits + k) >> 1) & ~((std::size_t{1} << first_bits) - 1);
  }
  static constexpr std::size_t segment_length(std::size_t k) noexcept {
    return k == 0 ? std::size_t{1} << first_bits : segment_start(k);
  }
  // The segments follow one another without gap or overlap, and the last ends at max_size().
  static constexpr bool segments_tile() noexcept {
    for (std::size_t k = 0; k < segment_count; ++k) {
      const std::size_t first = segment_start(k);
      const std::size_t last = first + segment_length(k) - 1;
      if (segment_of(first) != k || segment_of(last) != k) return false;
      if (k + 1 < segment_count ? segment_start(k + 1) != last + 1 : last + 1 != max_size()) return false;
    }
    return true;
  }

  value_type& entry(std::size_t index) noexcept {
    const std::size_t k = segment_of(index);
    return segments_[k][index - segment_start(k)];
  }
  [[nodiscard]] const value_type& entry(std::size_t index) const noexcept {
    const std::size_t k = segment_of(index);
    return segments_[k][index - segment_start(k)];
  }

  // Makes entry size_ from `key` and a value-initialised V, allocating its segment if needed.
  void append(std::string_view key) {
    static_assert(segments_tile(), "every index below max_size() has one place in one segment");
    const std::size_t k = segment_of(size_);
    if (segments_[k] == nullptr) segments_[k] = std::allocator<value_type>{}.allocate(segment_length(k));
    std::construct_at(&segments_[k][size_ - segment_start(k)], value_type{inline_key(key), V{}});
    ++size_;
  }

  void release() noexcept {
    for (std::size_t i = 0; i < size_; ++i) std::destroy_at(&entry(i));
    for (std::size_t k = 0; k < segment_count && segments_[k] != nullptr; ++k) {
      std::allocator<value_type>{}.deallocate(segments_[k], segment_length(k));
    }
  }

  // Erases the entry at `index`, whose bucket is `hole`.
  void erase_at(std::size_t hole, std::size_t index) noexcept {
    // Move each later bucket of the run back into the hole unless that would put it before its
    // home bucket; the run then has no gap for a lookup to stop at.
    const std::size_t mask = buckets_.size() - 1;
    for (std::size_t next = (hole + 1) & mask; buckets_[next].index != 0; next = (next + 1) & mask) {
      const std::size_t home = buckets_[next].hash & mask;
      if (((next - home) & mask) >= ((next - hole) & mask)) {
        buckets_[hole] = buckets_[next];
        hole = next;
      }
    }
    buckets_[hole] = bucket{};
    const std::size_t last = size_ - 1;
    if (index != last) {
      buckets_[bucket_of(last)].index = static_cast<std::uint32_t>(index + 1);
      entry(index) = std::move(entry(last));
    }
    std::destroy_at(&entry(last));
    --size_;
  }

  // True when bucket `at` (from find_bucket) holds the key looked for.
  [[nodiscard]] bool holds(std::size_t at) const noexcept { return at != npos && buckets_[at].index != 0; }

  // The index of `key`'s entry, or size().
  [[nodiscard]] std::size_t position(std::string_view key) const noexcept {
    const std::size_t at = find_bucket(key, string_hash{}(key));
    return holds(at) ? buckets_[at].index - 1 : size_;
  }

  // The bucket holding `key`, or the empty bucket that ends its run; npos when there is no
  // table yet.
  [[nodiscard]] std::size_t find_bucket(std::string_view key, std::size_t hash) const noexcept {
    if (buckets_.empty()) return npos;
    const auto h = static_cast<std::uint32_t>(hash);
    const std::size_t mask = buckets_.size() - 1;
    for (std::size_t i = h & mask;; i = (i + 1) & mask) {
      const bucket b = buckets_[i];
      if (b.index == 0 || (b.hash == h && std::string_view(entry(b.index - 1).first) == key)) return i;
    }
  }

  // The bucket of the entry at `index`.
  [[nodiscard]] std::size_t bucket_of(std::size_t index) const noexcept {
    const auto h = static_cast<std::uint32_t>(string_hash{}(std::string_view(entry(index).first)));
    const std::size_t mask = buckets_.size() - 1;
    std::size_t i = h & mask;
    while (buckets_[i].index != index + 1) i = (i + 1) & mask;
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
  }

  std::array<value_type*, segment_count> segments_{};  // allocated in order, as they fill
  std::size_t size_ = 0;
  std::vector<bucket> buckets_;  // a power of two, at most three quarters full; empty before the first insert
};

}  // namespace aurora::detail
