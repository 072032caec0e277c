// Durability: how much of a durable database's recent commits survive a crash or a power loss.
#pragma once

#include <string_view>

namespace aurora {

/// How a durable storage makes a commit permanent before the write that made it returns.
enum class Durability {
  /// The commit is on disk (fsync of the write-ahead log, SQLite `synchronous=FULL`) before the
  /// write returns: it survives a process crash and a power loss or kernel crash.
  full,
  /// The commit is handed to the operating system (written to the write-ahead log, synced only at
  /// checkpoints, SQLite `synchronous=NORMAL`) before the write returns: it survives a process
  /// crash; a power loss or kernel crash may lose the last commits, never corrupt the file.
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

}  // namespace aurora
