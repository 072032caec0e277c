// uuid_v7_generator: monotonic UUIDv7 strings for generated document ids.
#pragma once

#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>

namespace aurora::detail {

// RFC 9562 UUIDv7 with a monotonic counter (method 1, "fixed bit-length dedicated counter"):
//   48-bit Unix milliseconds | version 7 | 12-bit rand_a | variant 10 | 62-bit rand_b.
// rand_a:rand_b form one 74-bit counter. A new millisecond reseeds it at random with its top
// bit clear (room to count up); within a millisecond, or when the clock steps back, it adds
// one, carrying into the timestamp if it ever overflows. So the ids of one generator sort, as
// strings, in the order they were made. One caller at a time: a Database calls it under its
// commit lock (an uncontended mutex here cost a tenth of an id).
class uuid_v7_generator {
 public:
  uuid_v7_generator() : rng_(seed()) {}

  std::string next(std::chrono::system_clock::time_point now) {
    const auto ms_since_epoch = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
    const auto now_ms = static_cast<std::uint64_t>(ms_since_epoch < 0 ? 0 : ms_since_epoch) & mask(48);
    if (now_ms > ms_) {
      ms_ = now_ms;
      a_ = rng_() & mask(11);
      b_ = rng_() & mask(62);
    } else if (++b_ > mask(62)) {
      b_ = 0;
      if (++a_ > mask(12)) {
        a_ = 0;
        ++ms_;
      }
    }
    const std::uint64_t hi = (ms_ << 16) | (std::uint64_t{0x7} << 12) | a_;
    const std::uint64_t lo = (std::uint64_t{0x2} << 62) | b_;
    return format(hi, lo);
  }

 private:
  static constexpr std::uint64_t mask(int bits) noexcept { return (std::uint64_t{1} << bits) - 1; }

  static std::uint64_t seed() {
    std::random_device rd;
    return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  }

  // The 16 hex digits of `v`, most significant first, eight at a time without a loop: each
  // nibble is spread into a byte of its own (nibble k in byte k), the bytes are put in memory
  // order, and each 0..15 becomes '0'..'9' or 'a'..'f' ('a' is 39 after '0' + 10).
  static void hex16(std::uint64_t v, char* out) noexcept {
    for (std::size_t half = 0; half < 2; ++half) {
      std::uint64_t x = (v >> (32 * (1 - half))) & 0xFFFF'FFFF;
      x = (x | (x << 16)) & 0x0000'FFFF'0000'FFFF;
      x = (x | (x << 8)) & 0x00FF'00FF'00FF'00FF;
      x = (x | (x << 4)) & 0x0F0F'0F0F'0F0F'0F0F;
      const std::uint64_t letters = ((x + 0x0606'0606'0606'0606) >> 4) & 0x0101'0101'0101'0101;  // 1 where >= 10
      x += 0x3030'3030'3030'3030 + letters * 39;
      if constexpr (std::endian::native == std::endian::little) x = byteswap(x);
      std::memcpy(out + 8 * half, &x, 8);
    }
  }

  static constexpr std::uint64_t byteswap(std::uint64_t x) noexcept {
    x = ((x & 0x00FF'00FF'00FF'00FF) << 8) | ((x >> 8) & 0x00FF'00FF'00FF'00FF);
    x = ((x & 0x0000'FFFF'0000'FFFF) << 16) | ((x >> 16) & 0x0000'FFFF'0000'FFFF);
    return (x << 32) | (x >> 32);
  }

  // 8-4-4-4-12 hex digits.
  static std::string format(std::uint64_t hi, std::uint64_t lo) {
    char digits[32];
    hex16(hi, digits);
    hex16(lo, digits + 16);
    std::string out(36, '-');
    char* p = out.data();
    std::memcpy(p, digits, 8);
    std::memcpy(p + 9, digits + 8, 4);
    std::memcpy(p + 14, digits + 12, 4);
    std::memcpy(p + 19, digits + 16, 4);
    std::memcpy(p + 24, digits + 20, 12);
    return out;
  }

  std::mt19937_64 rng_;
  std::uint64_t ms_ = 0;
  std::uint64_t a_ = 0;
  std::uint64_t b_ = 0;
};

}  // namespace aurora::detail
