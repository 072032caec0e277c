// Options: construction-time settings of a Database.
#pragma once

#include <cstddef>

namespace aurora {

/// Settings fixed when a Database is constructed.
struct Options {
  /// Slots per channel, exactly (no rounding up). A subscription that falls more than this many
  /// events behind gets `errc::lagged`. Must be at least 1 (`errc::invalid_argument` otherwise).
  std::size_t channel_capacity = 10'000;
};

}  // namespace aurora
