// Start: where a new subscription begins reading (now, after a sequence, or the oldest retained).
#pragma once

#include <cstdint>

namespace aurora {

/// Where a subscription starts: `Start::now()` (the default), `Start::after(sequence)` or
/// `Start::oldest()`. A plain value; `Database::subscribe` checks it (see there for the errors).
class Start {
 public:
  /// Which kind of start this is.
  enum class Kind { now, after, oldest };

  /// Events committed after `subscribe` returns.
  [[nodiscard]] static constexpr Start now() noexcept { return {Kind::now, 0}; }

  /// Every event with a sequence greater than `sequence`, then live ones.
  [[nodiscard]] static constexpr Start after(std::uint64_t sequence) noexcept { return {Kind::after, sequence}; }

  /// From the oldest event the database still retains, then live ones.
  [[nodiscard]] static constexpr Start oldest() noexcept { return {Kind::oldest, 0}; }

  /// Which kind of start this is.
  [[nodiscard]] constexpr Kind kind() const noexcept { return kind_; }

  /// The sequence of `after` (0 for the other kinds).
  [[nodiscard]] constexpr std::uint64_t sequence() const noexcept { return sequence_; }

  /// Equal when kind and sequence are.
  friend constexpr bool operator==(const Start&, const Start&) noexcept = default;

 private:
  constexpr Start(Kind kind, std::uint64_t sequence) noexcept : kind_(kind), sequence_(sequence) {}

  Kind kind_;
  std::uint64_t sequence_;
};

}  // namespace aurora
