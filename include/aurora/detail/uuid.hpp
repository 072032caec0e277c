// uuid_v7_generator: monotonic UUIDv7 strings for generated document ids.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <random>
#include <string>

namespace aurora::detail {

// RFC 9562 UUIDv7 with a monotonic counter (method 1, "fixed bit-length dedicated counter"):
//   48-bit Unix milliseconds | version 7 | 12-bit rand_a | variant 10 | 62-bit rand_b.
// rand_a:rand_b form one 74-bit counter. A new millisecond reseeds it at random with its top
// bit clear (room to count up); within a millisecond, or when the clock steps back, it adds
// one, carrying into the timestamp if it ever overflows. So the ids of one generator sort, as
// strings, in the order they were made. Thread-safe.
class uuid_v7_generator {
 public:
  uuid_v7_generator() : rng_(seed()) {}

  std::string next(std::chrono::system_clock::time_point now) {
    const auto ms_since_epoch = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
    const auto now_ms = static_cast<std::uint64_t>(ms_since_epoch < 0 ? 0 : ms_since_epoch) & mask(48);
    std::uint64_t ms = 0;
    std::uint64_t a = 0;
    std::uint64_t b = 0;
    {
      const std::lock_guard lock(mutex_);
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
      ms = ms_;
      a = a_;
      b = b_;
    }
    const std::uint64_t hi = (ms << 16) | (std::uint64_t{0x7} << 12) | a;
    const std::uint64_t lo = (std::uint64_t{0x2} << 62) | b;
    return format(hi, lo);
  }

 private:
  static constexpr std::uint64_t mask(int bits) noexcept { return (std::uint64_t{1} << bits) - 1; }

  static std::uint64_t seed() {
    std::random_device rd;
    return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  }

  static std::string format(std::uint64_t hi, std::uint64_t lo) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out(36, '-');
    std::size_t pos = 0;
    auto put = [&](std::uint64_t v, int nibbles) {
      for (int i = nibbles - 1; i >= 0; --i) {
        if (pos == 8 || pos == 13 || pos == 18 || pos == 23) ++pos;
        out[pos++] = digits[(v >> (4 * i)) & 0xf];
      }
    };
    put(hi, 16);
    put(lo, 16);
    return out;
  }

  std::mutex mutex_;
  std::mt19937_64 rng_;
  std::uint64_t ms_ = 0;
  std::uint64_t a_ = 0;
  std::uint64_t b_ = 0;
};

}  // namespace aurora::detail
