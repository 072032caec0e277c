// The change-feed wire protocol of aurora::net, without I/O: client messages parsed into
// requests, and the server's messages (snapshot, event, lagged, error) formatted as JSON text.
#pragma once

#include <aurora/change_event.hpp>
#include <aurora/errc.hpp>
#include <aurora/filter.hpp>
#include <aurora/recv_result.hpp>
#include <aurora/snapshot.hpp>
#include <aurora/start.hpp>
#include <aurora/transition.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace aurora::net {

/// The longest subscription id a client may choose, in bytes.
inline constexpr std::size_t max_subscription_id_bytes = 256;

/// How deeply a client message may nest objects and arrays; deeper messages are rejected before
/// they are parsed.
inline constexpr std::size_t max_message_depth = 128;

/// A client's `{"op":"subscribe", ...}`: which channel, filter and start position to follow.
struct SubscribeRequest {
  std::string id{};                         ///< the client's name for the subscription (non-empty)
  std::optional<std::string> collection{};  ///< the collection; empty: the global channel
  std::optional<EventFilter> filter{};      ///< the parsed `"filter"` (`EventFilter::from_json`)
  Start start = Start::now();               ///< `"start"`: `"now"`, `"oldest"` or `{"after": N}`
  bool snapshot = false;                    ///< `"snapshot": true`: a snapshot message first (`db.watch`)
  /// `"database"`: the id of the database the client's state came from (the `"database"` of its
  /// snapshot message); when given and not the server's, the subscription is refused with
  /// `database_mismatch`, so that a client never resumes with a sequence of another database.
  std::optional<std::string> database{};
};

/// A client's `{"op":"unsubscribe","id":...}`.
struct UnsubscribeRequest {
  std::string id{};  ///< the subscription to end
};

/// A client message that cannot be acted on, and what to tell the client: becomes an `error`
/// message (see `error_message`); the connection stays usable.
struct ProtocolError {
  std::optional<std::string> id{};  ///< the message's `"id"` when it had a usable one, else empty (`null`)
  std::string code{};               ///< `invalid_json`, `invalid_message`, `unknown_op` or `invalid_filter`
  std::string message{};            ///< what is wrong, for people
};

/// What one client message asks for.
using ClientMessage = std::variant<SubscribeRequest, UnsubscribeRequest, ProtocolError>;

/// The error codes the server sends in `error` messages, besides the ones above and the names of
/// `aurora::errc` values (`history_lost`, `invalid_argument`) for what the Database refused.
namespace error_code {
/// Not JSON text. (A FeedServer closes a text frame that is not UTF-8 with code 1007 first.)
inline constexpr std::string_view invalid_json = "invalid_json";
inline constexpr std::string_view invalid_message = "invalid_message";                ///< JSON, but not a valid message
inline constexpr std::string_view unknown_op = "unknown_op";                          ///< `"op"` is not known
inline constexpr std::string_view invalid_filter = "invalid_filter";                  ///< `"filter"` was refused
inline constexpr std::string_view unknown_subscription = "unknown_subscription";      ///< no such id here
inline constexpr std::string_view duplicate_subscription = "duplicate_subscription";  ///< the id is taken
inline constexpr std::string_view too_many_subscriptions = "too_many_subscriptions";  ///< the limit is reached
inline constexpr std::string_view database_mismatch = "database_mismatch";  ///< `"database"` is not the server's
}  // namespace error_code

namespace detail {

// `s` in double quotes, cut at 64 bytes (on a UTF-8 boundary) so that a huge input does not make
// a huge message.
inline std::string quote(std::string_view s) {
  constexpr std::size_t limit = 64;
  std::size_t cut = s.size() < limit ? s.size() : limit;
  while (cut < s.size() && cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0U) == 0x80U) --cut;
  std::string out = "\"";
  out.append(s.substr(0, cut));
  if (cut < s.size()) out.append("...");
  out.push_back('"');
  return out;
}

// True when the JSON text `text` nests arrays and objects deeper than `limit` (brackets inside
// strings do not count). Linear, no recursion: runs before the (recursive) parts see the value.
inline bool nests_deeper_than(std::string_view text, std::size_t limit) noexcept {
  std::size_t depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return true;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return false;
}

// Serialises a server message. Strings that are not valid UTF-8 (a document may hold them) are
// written with U+FFFD in their place rather than failing.
inline std::string dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

inline nlohmann::json id_json(const std::optional<std::string>& id) {
  return id ? nlohmann::json(*id) : nlohmann::json(nullptr);
}

inline ProtocolError bad(std::optional<std::string> id, std::string_view code, std::string message) {
  return ProtocolError{std::move(id), std::string(code), std::move(message)};
}

inline bool usable_id(const nlohmann::json& v) {
  return v.is_string() && !v.get_ref<const std::string&>().empty() &&
         v.get_ref<const std::string&>().size() <= max_subscription_id_bytes;
}

inline const char* const id_rule = "\"id\" must be a non-empty string of at most 256 bytes";

inline ClientMessage parse_subscribe(const nlohmann::json& j, std::optional<std::string> id) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    if (key != "op" && key != "id" && key != "collection" && key != "filter" && key != "start" && key != "snapshot" &&
        key != "database") {
      return bad(
          id, error_code::invalid_message,
          "subscribe: unknown key " + quote(key) + " (known: op, id, collection, filter, start, snapshot, database)");
    }
  }
  if (!id) return bad(id, error_code::invalid_message, std::string("subscribe: ") + id_rule);
  SubscribeRequest req;
  req.id = *id;
  if (auto c = j.find("collection"); c != j.end() && !c->is_null()) {
    if (!c->is_string() || c->get_ref<const std::string&>().empty()) {
      return bad(id, error_code::invalid_message,
                 "subscribe: \"collection\" must be a non-empty string, or null (or absent) for every collection");
    }
    req.collection = c->get<std::string>();
  }
  if (auto f = j.find("filter"); f != j.end() && !f->is_null()) {
    try {
      req.filter = EventFilter::from_json(*f);
    } catch (const aurora::error& e) {
      return bad(id, error_code::invalid_filter, std::string("subscribe: ") + e.what());
    }
  }
  if (auto s = j.find("start"); s != j.end()) {
    const char* const rule = R"(subscribe: "start" must be "now", "oldest" or {"after": N} with N a sequence >= 0)";
    if (s->is_string() && s->get_ref<const std::string&>() == "now") {
      req.start = Start::now();
    } else if (s->is_string() && s->get_ref<const std::string&>() == "oldest") {
      req.start = Start::oldest();
    } else if (s->is_object() && s->size() == 1 && s->contains("after")) {
      const nlohmann::json& n = s->at("after");
      if (n.is_number_unsigned()) {
        req.start = Start::after(n.get<std::uint64_t>());
      } else {
        return bad(id, error_code::invalid_message, rule);  // negative, fractional or not a number
      }
    } else {
      return bad(id, error_code::invalid_message, rule);
    }
  }
  if (auto s = j.find("snapshot"); s != j.end()) {
    if (!s->is_boolean()) return bad(id, error_code::invalid_message, "subscribe: \"snapshot\" must be true or false");
    req.snapshot = s->get<bool>();
  }
  if (auto d = j.find("database"); d != j.end()) {
    if (!d->is_string() || d->get_ref<const std::string&>().empty()) {
      return bad(id, error_code::invalid_message, "subscribe: \"database\" must be a non-empty string");
    }
    req.database = d->get<std::string>();
  }
  if (req.snapshot && !req.collection) {
    return bad(id, error_code::invalid_message, R"(subscribe: "snapshot" needs a "collection")");
  }
  if (req.snapshot && req.start != Start::now()) {
    return bad(id, error_code::invalid_message,
               R"(subscribe: with "snapshot" the events start right after the snapshot; leave "start" out)");
  }
  return req;
}

// An event message is `event_message_head`, the event's JSON text, then the tail of its
// subscription and transition: a server can send the three as one gathered frame and share the
// middle between subscribers.
inline constexpr std::string_view event_message_head = R"({"event":)";

inline std::string event_message_tail(std::string_view id, Transition transition) {
  std::string out(R"(,"id":)");
  out.append(dump(std::string(id)));
  out.append(R"(,"transition":")").append(to_string(transition)).append(R"(","type":"event"})");
  return out;
}

}  // namespace detail

/// Parses one client message (the text of one WebSocket text frame).
///
/// Never throws except `std::bad_alloc`: anything malformed becomes a `ProtocolError` whose
/// message names the problem (invalid JSON, nesting over `max_message_depth`, not an object, a
/// missing or unknown `"op"`, an unknown key, a bad `"id"`, `"collection"`, `"start"`,
/// `"snapshot"` or `"database"`, or a filter `EventFilter::from_json` refuses, with the path it names).
/// Thread safety: a pure function.
[[nodiscard]] inline ClientMessage parse_client_message(std::string_view text) {
  using detail::bad;
  if (detail::nests_deeper_than(text, max_message_depth)) {
    return bad({}, error_code::invalid_message,
               "the message nests deeper than " + std::to_string(max_message_depth) + " levels");
  }
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return bad({}, error_code::invalid_json, "the message is not valid JSON text (RFC 8259, UTF-8)");
  }
  if (!j.is_object()) return bad({}, error_code::invalid_message, "a message must be a JSON object");
  std::optional<std::string> id;
  if (auto i = j.find("id"); i != j.end() && detail::usable_id(*i)) id = i->get<std::string>();
  auto op = j.find("op");
  if (op == j.end()) return bad(id, error_code::invalid_message, R"(the message has no "op")");
  if (!op->is_string()) return bad(id, error_code::invalid_message, R"("op" must be a string)");
  const auto& name = op->get_ref<const std::string&>();
  if (name == "subscribe") return detail::parse_subscribe(j, std::move(id));
  if (name == "unsubscribe") {
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& key = it.key();
      if (key != "op" && key != "id") {
        return bad(id, error_code::invalid_message,
                   "unsubscribe: unknown key " + detail::quote(key) + " (known: op, id)");
      }
    }
    if (!id) return bad(id, error_code::invalid_message, std::string("unsubscribe: ") + detail::id_rule);
    return UnsubscribeRequest{std::move(*id)};
  }
  return bad(id, error_code::unknown_op,
             "unknown op " + detail::quote(name) + R"( (known: "subscribe", "unsubscribe"))");
}

/// The name of `e` as the `"code"` of an error message: `"history_lost"`, `"invalid_argument"`,
/// ... (the enumerator's name). Thread safety: a pure function.
[[nodiscard]] constexpr std::string_view errc_name(errc e) noexcept {
  switch (e) {
    case errc::lagged: return "lagged";
    case errc::closed: return "closed";
    case errc::empty: return "empty";
    case errc::not_found: return "not_found";
    case errc::already_exists: return "already_exists";
    case errc::invalid_document: return "invalid_document";
    case errc::invalid_argument: return "invalid_argument";
    case errc::history_lost: return "history_lost";
    case errc::storage_error: return "storage_error";
  }
  return "unknown";
}

/// `{"type":"snapshot","id":..,"sequence":S,"database":..,"documents":[{"id":..,"document":..},...]}`;
/// `"database"` (the id of the database the snapshot was taken from) only when `database` is not
/// empty. Throws only `std::bad_alloc`. Thread safety: a pure function.
[[nodiscard]] inline std::string snapshot_message(std::string_view id, const Snapshot& snapshot,
                                                  std::string_view database = {}) {
  nlohmann::json docs = nlohmann::json::array();
  for (const auto& [doc_id, doc] : snapshot.documents) docs.push_back({{"id", doc_id}, {"document", doc}});
  nlohmann::json j = {
      {"type", "snapshot"}, {"id", std::string(id)}, {"sequence", snapshot.sequence}, {"documents", std::move(docs)}};
  if (!database.empty()) j["database"] = std::string(database);
  return detail::dump(j);
}

/// The `"event"` member of an event message: `to_json(ev)` as JSON text. One text serves every
/// subscriber that receives the same event (see `event_message`). Throws only `std::bad_alloc`.
/// Thread safety: a pure function.
[[nodiscard]] inline std::string event_json(const ChangeEvent& ev) { return detail::dump(ev); }

/// `event_message` with the event already serialised by `event_json`: the same text, byte for
/// byte (keys in nlohmann's sorted order), without serialising the event again.
/// Throws only `std::bad_alloc`. Thread safety: a pure function.
[[nodiscard]] inline std::string event_message(std::string_view id, Transition transition,
                                               std::string_view event_json_text) {
  const std::string tail = detail::event_message_tail(id, transition);
  std::string out;
  out.reserve(detail::event_message_head.size() + event_json_text.size() + tail.size());
  out.append(detail::event_message_head).append(event_json_text).append(tail);
  return out;
}

/// `{"type":"event","id":..,"transition":"enter"|"change"|"leave","event":{to_json(ChangeEvent)}}`.
/// Precondition: `r.has_value()`. Throws only `std::bad_alloc`. Thread safety: a pure function.
[[nodiscard]] inline std::string event_message(std::string_view id, const RecvResult& r) {
  return event_message(id, r.transition(), event_json(*r));
}

/// `{"type":"lagged","id":..,"missed":N}`: `missed` events of the subscription were dropped
/// before the events that follow. Throws only `std::bad_alloc`. Thread safety: a pure function.
[[nodiscard]] inline std::string lagged_message(std::string_view id, std::uint64_t missed) {
  return detail::dump({{"type", "lagged"}, {"id", std::string(id)}, {"missed", missed}});
}

/// `{"type":"error","id":..|null,"code":..,"message":..}`. Throws only `std::bad_alloc`.
/// Thread safety: a pure function.
[[nodiscard]] inline std::string error_message(const std::optional<std::string>& id, std::string_view code,
                                               std::string_view message) {
  return detail::dump(
      {{"type", "error"}, {"id", detail::id_json(id)}, {"code", std::string(code)}, {"message", std::string(message)}});
}

/// `error_message` for a `ProtocolError`.
[[nodiscard]] inline std::string error_message(const ProtocolError& e) {
  return error_message(e.id, e.code, e.message);
}

}  // namespace aurora::net
