// Snapshot: a consistent copy of one collection and the commit it reflects.
#pragma once

#include <aurora/value.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace aurora {

/// A copy of a collection's documents as of one commit, from `Database::snapshot`.
///
/// Resyncing after `errc::lagged`: take a snapshot, rebuild from `documents`, then keep reading
/// the subscription and skip events whose `sequence` is at most `sequence` (the snapshot already
/// reflects them). Nothing is missed and nothing is applied twice.
struct Snapshot {
  std::uint64_t sequence = 0;  ///< the last commit (database-wide) the documents reflect; 0 before any
  std::vector<std::pair<std::string, Document>> documents{};  ///< (id, document), sorted by id
};

}  // namespace aurora
