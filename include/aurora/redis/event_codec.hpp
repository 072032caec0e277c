// The stream format of the Redis bridge: stream keys, entry IDs, and ChangeEvent <-> entry fields.
#pragma once

#include <aurora/change_event.hpp>
#include <aurora/errc.hpp>
#include <aurora/redis/detail/parse.hpp>
#include <aurora/value.hpp>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace aurora::redis {

/// One entry of a Redis stream as XREAD returns it: its ID and its field/value pairs, in order.
struct StreamEntry {
  std::string id;                                           ///< e.g. `"0-42"`
  std::vector<std::pair<std::string, std::string>> fields;  ///< field, value
};

/// What `decode_entry` rebuilds from an entry: the event and the `prev` it carried.
struct DecodedEntry {
  ChangeEvent event;       ///< the event (its `timestamp` has microsecond precision)
  std::uint64_t prev = 0;  ///< the sequence of the previous entry of the same stream (0: none)
};

/// The stream of one collection: `prefix + collection` (`"aurora:orders"`). Throws only
/// `std::bad_alloc`.
inline std::string collection_stream_key(std::string_view prefix, std::string_view collection) {
  return std::string(prefix) + std::string(collection);
}

/// The global stream, which holds every event: `prefix + "*"` (`"aurora:*"`). A collection named
/// `"*"` would share its key, so the bridge must not be used with one. Throws only `std::bad_alloc`.
inline std::string global_stream_key(std::string_view prefix) { return std::string(prefix) + "*"; }

/// The stream ID of the event with `sequence`: `"0-<sequence>"`. IDs of one stream must grow,
/// so Redis itself rejects an entry written twice. Throws only `std::bad_alloc`.
inline std::string stream_id(std::uint64_t sequence) { return "0-" + std::to_string(sequence); }

/// The sequence in an Aurora stream ID `"0-<sequence>"` (sequence >= 1), or nothing for any
/// other text. Never throws.
inline std::optional<std::uint64_t> sequence_of(std::string_view id) noexcept {
  const auto parsed = detail::parse_stream_id(id);
  if (!parsed || parsed->first != 0 || parsed->second == 0) return std::nullopt;
  return parsed->second;
}

namespace detail {

[[noreturn]] inline void bad_entry(std::string_view id, const std::string& why) {
  throw aurora::error(errc::invalid_document,
                      "aurora::redis: stream entry \"" + std::string(id) + "\" is not an Aurora event: " + why);
}

// `doc` as compact JSON text. Throws aurora::error(invalid_document) for a string that is not UTF-8.
inline std::string dump_document(const Document& doc, std::string_view what, std::uint64_t sequence) {
  try {
    return doc.dump();
  } catch (const nlohmann::json::exception& e) {
    throw aurora::error(errc::invalid_document, "aurora::redis: event " + std::to_string(sequence) + ": its " +
                                                    std::string(what) + " cannot be written as JSON: " + e.what());
  }
}

}  // namespace detail

/// The stream entry of `ev`: ID `"0-<sequence>"` and, in this order, the fields
/// - `seq`: the sequence, in decimal;
/// - `collection`, `id` (the document id), `op` (`"Insert"`, `"Update"` or `"Delete"`);
/// - `ts`: the timestamp in RFC 3339 with microseconds (`to_rfc3339`, so sub-microsecond digits
///   are dropped and years outside 0000-9999 clamped);
/// - `doc`: the document after the change as JSON text (not for Delete);
/// - `old`: the document before it as JSON text (not for Insert);
/// - `prev`: `prev` in decimal, the sequence of the previous entry of the stream this entry goes
///   to (0 for its first), so a reader can tell when entries went missing on a stream whose IDs
///   have gaps by design (a collection's);
/// - `commit`: `ev.commit` in decimal, the sequence of the last event of the event's commit, so
///   a reader can tell where a transaction ends (left out when `ev.commit` is 0, as in an event
///   not made by a Database).
///
/// Throws `aurora::error` with `errc::invalid_argument` when `ev.sequence` is 0 or `prev >=
/// ev.sequence`, or `ev.commit` is neither 0 nor at least `ev.sequence`, or `ev.collection` or
/// `ev.document_id` is empty; with `errc::invalid_document` when the documents do not fit the
/// operation (Insert: `document` only; Update: both; Delete: `old_document` only) or hold a
/// string that is not UTF-8. Thread-safe (a pure function).
inline StreamEntry encode_entry(const ChangeEvent& ev, std::uint64_t prev) {
  const std::string where = "aurora::redis: event " + std::to_string(ev.sequence) + ": ";
  if (ev.sequence == 0) throw aurora::error(errc::invalid_argument, where + "sequence 0 has no stream ID");
  if (prev >= ev.sequence) {
    throw aurora::error(errc::invalid_argument,
                        where + "prev (" + std::to_string(prev) + ") must be below the sequence");
  }
  if (ev.commit != 0 && ev.commit < ev.sequence) {
    throw aurora::error(errc::invalid_argument,
                        where + "commit (" + std::to_string(ev.commit) + ") must not be below the sequence");
  }
  if (ev.collection.empty()) throw aurora::error(errc::invalid_argument, where + "the collection is empty");
  if (ev.document_id.empty()) throw aurora::error(errc::invalid_argument, where + "the document id is empty");
  const bool wants_doc = ev.operation != OperationType::Delete;
  const bool wants_old = ev.operation != OperationType::Insert;
  if ((ev.document != nullptr) != wants_doc || (ev.old_document != nullptr) != wants_old) {
    throw aurora::error(errc::invalid_document, where + "operation " + std::string(to_string(ev.operation)) +
                                                    " must carry " +
                                                    (wants_doc && wants_old ? "a document and an old document"
                                                     : wants_doc            ? "a document and no old document"
                                                                            : "an old document and no document"));
  }
  StreamEntry entry;
  entry.id = stream_id(ev.sequence);
  entry.fields.reserve(9);
  entry.fields.emplace_back("seq", std::to_string(ev.sequence));
  entry.fields.emplace_back("collection", ev.collection);
  entry.fields.emplace_back("id", ev.document_id);
  entry.fields.emplace_back("op", std::string(to_string(ev.operation)));
  entry.fields.emplace_back("ts", to_rfc3339(ev.timestamp));
  if (ev.document) entry.fields.emplace_back("doc", detail::dump_document(*ev.document, "document", ev.sequence));
  if (ev.old_document) {
    entry.fields.emplace_back("old", detail::dump_document(*ev.old_document, "old document", ev.sequence));
  }
  entry.fields.emplace_back("prev", std::to_string(prev));
  if (ev.commit != 0) entry.fields.emplace_back("commit", std::to_string(ev.commit));
  return entry;
}

/// Rebuilds the event of an entry written by `encode_entry` (or by anyone following its format).
///
/// Checks everything: the ID is `"0-<n>"` with n >= 1 and `seq` equals n; `collection`, `id`,
/// `op`, `ts` and `prev` are present, each field at most once; `op` is `Insert`, `Update` or
/// `Delete`; `ts` is RFC 3339 (`Z`/`z` or a numeric offset) or integer microseconds since the
/// epoch, within what `system_clock` holds; `prev` is a decimal number below n; `doc` and `old`
/// are present exactly as the operation wants (see `encode_entry`) and are JSON objects with
/// finite numbers nested at most `max_document_depth` deep; `commit`, when present, is a decimal
/// number not below n (when absent, as in entries written before it existed, the event's
/// `commit` is its sequence). Fields it does not know are ignored (room for later additions).
///
/// Throws `aurora::error` with `errc::invalid_document` and a message naming the entry ID, the
/// field and what is wrong with it; never crashes or recurses on hostile input. Thread-safe.
inline DecodedEntry decode_entry(const StreamEntry& entry) {
  const std::string_view id = entry.id;
  const auto sequence = sequence_of(id);
  if (!sequence) detail::bad_entry(id, "its ID is not of the form 0-<sequence> with a sequence of 1 or more");

  const std::string_view names[] = {"seq", "collection", "id", "op", "ts", "doc", "old", "prev", "commit"};
  enum field_index : std::size_t { f_seq, f_collection, f_id, f_op, f_ts, f_doc, f_old, f_prev, f_commit, f_count };
  const std::string* found[f_count] = {};
  for (const auto& [name, value] : entry.fields) {
    for (std::size_t i = 0; i < f_count; ++i) {
      if (name != names[i]) continue;
      if (found[i] != nullptr) detail::bad_entry(id, "field \"" + name + "\" appears more than once");
      found[i] = &value;
    }
  }
  for (const std::size_t required : {f_seq, f_collection, f_id, f_op, f_ts, f_prev}) {
    if (found[required] == nullptr) {
      detail::bad_entry(id, "field \"" + std::string(names[required]) + "\" is missing");
    }
  }

  DecodedEntry out;
  ChangeEvent& ev = out.event;
  ev.sequence = *sequence;
  const auto seq_field = detail::parse_u64(*found[f_seq]);
  if (!seq_field) detail::bad_entry(id, "field \"seq\" is \"" + *found[f_seq] + "\", not a decimal number");
  if (*seq_field != *sequence) {
    detail::bad_entry(id, "field \"seq\" is " + *found[f_seq] + " but the ID says " + std::to_string(*sequence));
  }
  const auto prev = detail::parse_u64(*found[f_prev]);
  if (!prev) detail::bad_entry(id, "field \"prev\" is \"" + *found[f_prev] + "\", not a decimal number");
  if (*prev >= *sequence) {
    detail::bad_entry(id,
                      "field \"prev\" is " + *found[f_prev] + ", not below the sequence " + std::to_string(*sequence));
  }
  out.prev = *prev;

  ev.commit = *sequence;
  if (found[f_commit] != nullptr) {
    const auto commit = detail::parse_u64(*found[f_commit]);
    if (!commit) detail::bad_entry(id, "field \"commit\" is \"" + *found[f_commit] + "\", not a decimal number");
    if (*commit < *sequence) {
      detail::bad_entry(
          id, "field \"commit\" is " + *found[f_commit] + ", below the sequence " + std::to_string(*sequence));
    }
    ev.commit = *commit;
  }

  ev.collection = *found[f_collection];
  if (ev.collection.empty()) detail::bad_entry(id, "field \"collection\" is empty");
  ev.document_id = *found[f_id];
  if (ev.document_id.empty()) detail::bad_entry(id, "field \"id\" is empty");

  const std::string& op = *found[f_op];
  if (op == "Insert") {
    ev.operation = OperationType::Insert;
  } else if (op == "Update") {
    ev.operation = OperationType::Update;
  } else if (op == "Delete") {
    ev.operation = OperationType::Delete;
  } else {
    detail::bad_entry(id, "field \"op\" is \"" + op + "\", not Insert, Update or Delete");
  }

  const auto ts = detail::parse_timestamp(*found[f_ts]);
  if (!ts) {
    detail::bad_entry(id, "field \"ts\" is \"" + *found[f_ts] +
                              "\", not an RFC 3339 date-time or integer microseconds that system_clock can hold");
  }
  ev.timestamp = *ts;

  const bool wants_doc = ev.operation != OperationType::Delete;
  const bool wants_old = ev.operation != OperationType::Insert;
  const std::pair<std::size_t, DocumentPtr*> documents[] = {{f_doc, &ev.document}, {f_old, &ev.old_document}};
  for (const auto& [index, target] : documents) {
    const bool wanted = index == f_doc ? wants_doc : wants_old;
    const std::string name(names[index]);
    if (found[index] == nullptr) {
      if (wanted) detail::bad_entry(id, "op " + op + " needs field \"" + name + "\", which is missing");
      continue;
    }
    if (!wanted) detail::bad_entry(id, "op " + op + " has no field \"" + name + "\", but this entry has one");
    Document doc;
    if (const std::string why = detail::parse_document(*found[index], doc); !why.empty()) {
      detail::bad_entry(id, "field \"" + name + "\" " + why);
    }
    *target = std::make_shared<const Document>(std::move(doc));
  }
  return out;
}

}  // namespace aurora::redis
