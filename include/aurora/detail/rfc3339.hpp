// RFC 3339 formatting of system_clock time points (UTC, microseconds, truncated).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace aurora::detail {

// Writes `value` as exactly `width` decimal digits ending just before `end`.
inline void put_digits(char* end, std::uint64_t value, int width) noexcept {
  for (int i = 0; i < width; ++i) {
    *--end = static_cast<char>('0' + value % 10);
    value /= 10;
  }
}

inline std::string format_rfc3339(std::chrono::system_clock::time_point tp) {
  using namespace std::chrono;
  const auto us = floor<microseconds>(tp);
  const auto day = floor<days>(us);
  const year_month_day ymd{day};
  const hh_mm_ss<microseconds> tod{us - day};

  // Years outside 0000..9999 do not fit RFC 3339; they are clamped to its range.
  int year = static_cast<int>(ymd.year());
  if (year < 0) year = 0;
  if (year > 9999) year = 9999;

  std::string out(27, '\0');  // YYYY-MM-DDTHH:MM:SS.ffffffZ
  char* p = out.data();
  put_digits(p + 4, static_cast<std::uint64_t>(year), 4);
  p[4] = '-';
  put_digits(p + 7, static_cast<unsigned>(ymd.month()), 2);
  p[7] = '-';
  put_digits(p + 10, static_cast<unsigned>(ymd.day()), 2);
  p[10] = 'T';
  put_digits(p + 13, static_cast<std::uint64_t>(tod.hours().count()), 2);
  p[13] = ':';
  put_digits(p + 16, static_cast<std::uint64_t>(tod.minutes().count()), 2);
  p[16] = ':';
  put_digits(p + 19, static_cast<std::uint64_t>(tod.seconds().count()), 2);
  p[19] = '.';
  put_digits(p + 26, static_cast<std::uint64_t>(tod.subseconds().count()), 6);
  p[26] = 'Z';
  return out;
}

}  // namespace aurora::detail
