// ChangeEvent: the one immutable record every successful write publishes.
#pragma once

#include <aurora/detail/rfc3339.hpp>
#include <aurora/value.hpp>

#include <chrono>
#include <cstdint>
#include <string>

namespace aurora {

/// One committed change. Subscribers share a single immutable instance
/// (`std::shared_ptr<const ChangeEvent>`), so reading it from many threads is safe. Its
/// documents are the database's own immutable versions, not copies: read them as
/// `*ev.document`, `ev.document->at("x")`, test them with `if (ev.document)`.
struct ChangeEvent {
  std::string collection;                           ///< the collection written
  std::string document_id;                          ///< the id of the document written
  OperationType operation = OperationType::Insert;  ///< what the write did
  DocumentPtr document;                             ///< the document after the change; empty for Delete
  DocumentPtr old_document;                         ///< the document before it; empty for Insert
  std::chrono::system_clock::time_point timestamp;  ///< commit time (UTC); never decreases in sequence order
  std::uint64_t sequence = 0;                       ///< database-wide commit number: 1, 2, 3, ... no gaps
  std::uint64_t commit = 0;  ///< the sequence of the last event of its commit (== sequence for single writes)
};

/// Formats `tp` as RFC 3339 UTC with microseconds, truncated: `"2026-11-26T18:30:05.123456Z"`.
/// Years outside 0000-9999 are clamped to that range. Throws only `std::bad_alloc`.
inline std::string to_rfc3339(std::chrono::system_clock::time_point tp) { return detail::format_rfc3339(tp); }

/// Writes `ev` as a JSON object with the keys `collection`, `document_id`, `operation`,
/// `document`, `old_document` (`null` when absent), `timestamp` (RFC 3339), `sequence` and
/// `commit`.
/// Found by nlohmann's ADL, so `nlohmann::json j = ev;` works. Throws only `std::bad_alloc`.
inline void to_json(nlohmann::json& j, const ChangeEvent& ev) {
  j = nlohmann::json{
      {"collection", ev.collection},
      {"document_id", ev.document_id},
      {"operation", to_string(ev.operation)},
      {"document", ev.document ? *ev.document : nlohmann::json(nullptr)},
      {"old_document", ev.old_document ? *ev.old_document : nlohmann::json(nullptr)},
      {"timestamp", to_rfc3339(ev.timestamp)},
      {"sequence", ev.sequence},
      {"commit", ev.commit},
  };
}

}  // namespace aurora
