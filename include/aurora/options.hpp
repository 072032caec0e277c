// Options: construction-time settings of a Database.
#pragma once

#include <cstddef>

namespace aurora {

/// The largest `Options::channel_capacity` a Database accepts (16,777,216 slots).
inline constexpr std::size_t max_channel_capacity = std::size_t{1} << 24;

/// Settings fixed when a Database is constructed.
struct Options {
  /// Slots per channel, exactly (no rounding up). A subscription that falls more than this many
  /// events behind gets `errc::lagged`. The database also retains its last `channel_capacity`
  /// events (for `Start::after` / `Start::oldest`). From 1 to `max_channel_capacity`
  /// (`errc::invalid_argument` otherwise); slot memory is allocated as it is used.
  std::size_t channel_capacity = 10'000;
};

}  // namespace aurora
