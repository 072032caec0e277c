// Options: construction-time settings of a Database, and Durability (for a durable one).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace aurora {

/// The largest `Options::channel_capacity` a Database accepts (16,777,216 slots).
inline constexpr std::size_t max_channel_capacity = std::size_t{1} << 24;

namespace detail {
// Room kept in a change-log row for its columns other than text (numbers, operation, header).
inline constexpr std::size_t change_log_row_overhead = 1'000;
}  // namespace detail

/// The largest `Options::max_change_bytes`: SQLite's limit on one row (1,000,000,000 bytes) less
/// 1,000 bytes for the change log row's other columns.
inline constexpr std::size_t max_change_bytes_limit = 1'000'000'000 - detail::change_log_row_overhead;

/// How a durable storage makes a commit permanent before the write that made it returns.
/// Used by a durable database (`aurora::DurableDatabase`); the in-memory Database ignores it.
enum class Durability {
  /// The commit is on disk (fsync of the write-ahead log, SQLite `synchronous=FULL`) before the
  /// write returns: it survives a process crash and a power loss or kernel crash.
  full,
  /// The commit is handed to the operating system (written to the write-ahead log, synced only at
  /// checkpoints, SQLite `synchronous=NORMAL`) before the write returns: it survives a process
  /// crash; a power loss or kernel crash may lose the last commits, never corrupt the file.
  /// Their sequences are then given again to the next commits: a consumer that saw the lost
  /// ones (a Redis bridge, a client that stored its position) holds events the database no
  /// longer has under those numbers. Use `full` where such consumers must stay exact.
  normal,
};

/// `"full"` or `"normal"`.
constexpr std::string_view to_string(Durability d) noexcept {
  switch (d) {
    case Durability::full: return "full";
    case Durability::normal: return "normal";
  }
  return "unknown";
}

/// Settings fixed when a Database is constructed.
struct Options {
  /// Slots per channel, exactly (no rounding up). A subscription that falls more than this many
  /// events behind gets `errc::lagged`. The database also retains its last `channel_capacity`
  /// events (for `Start::after` / `Start::oldest`). From 1 to `max_channel_capacity`
  /// (`errc::invalid_argument` otherwise); slot memory is allocated as it is used.
  std::size_t channel_capacity = 10'000;

  /// Durable database only: when a write returns, its commit is on disk (`full`, fsync) or
  /// handed to the operating system (`normal`). Ignored by the in-memory Database.
  Durability durability = Durability::full;

  /// Durable database only: how many change-log events are kept on disk for `Start::after`
  /// across restarts (0: no log; resuming then reaches back only as far as the in-memory
  /// history). A commit is trimmed whole, so the log may hold a few more: the oldest logged
  /// event always begins a commit. Ignored by the in-memory Database.
  std::uint64_t history = 1'000'000;

  /// Durable database only: the most bytes one change may store as text: its document's JSON
  /// text (as `dump()` writes it), its collection name and id, and, when the change log keeps
  /// history, the before-image's JSON text (an update or replace stores both in one log row).
  /// A write with a larger change is refused with `errc::invalid_document` and changes nothing.
  /// A remove is held only to what SQLite stores in one row, so that a file reopened with a
  /// lower limit can still remove what it holds.
  /// From 1 to `max_change_bytes_limit` (`errc::invalid_argument` otherwise), and never more
  /// than the SQLite library allows in one row. Ignored by the in-memory Database.
  std::size_t max_change_bytes = max_change_bytes_limit;
};

}  // namespace aurora
