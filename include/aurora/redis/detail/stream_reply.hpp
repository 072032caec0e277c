// Reading stream replies: the entries of an XREAD reply, the last ID of an XINFO STREAM reply.
#pragma once

#include <aurora/redis/detail/resp.hpp>
#include <aurora/redis/error.hpp>
#include <aurora/redis/event_codec.hpp>

#include <boost/system/system_error.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace aurora::redis::detail {

// The entries of `r`, the reply to `XREAD ... STREAMS <key> <id>` (nil when BLOCK timed out:
// none). Throws system_error with connection_error::server_error for an error reply and
// connection_error::protocol_error for any shape Redis does not send (entry IDs and field lists
// are read only from well-formed replies, so a reader never skips an entry it could not name).
inline std::vector<StreamEntry> stream_entries(const reply& r, std::string_view key) {
  auto shape = [&](const std::string& what) {
    return boost::system::system_error(connection_error::protocol_error,
                                       "XREAD on \"" + std::string(key) + "\": unexpected reply: " + what);
  };
  std::vector<StreamEntry> out;
  if (r.kind == reply_kind::nil) return out;
  if (r.is_error()) {
    throw boost::system::system_error(connection_error::server_error,
                                      "XREAD on \"" + std::string(key) + "\" failed: " + r.text);
  }
  if (r.kind != reply_kind::array) throw shape(describe(r) + " instead of an array of streams");
  for (const reply& stream : r.elements) {
    if (stream.kind != reply_kind::array || stream.elements.size() != 2 ||
        stream.elements[1].kind != reply_kind::array) {
      throw shape("a stream that is not [key, entries] (" + describe(stream) + ")");
    }
    for (const reply& e : stream.elements[1].elements) {
      if (e.kind != reply_kind::array || e.elements.size() != 2 || e.elements[0].kind != reply_kind::string ||
          e.elements[1].kind != reply_kind::array) {
        throw shape("an entry that is not [id, [field, value, ...]] (" + describe(e) + ")");
      }
      const std::vector<reply>& fields = e.elements[1].elements;
      if (fields.size() % 2 != 0) {
        throw shape("entry " + e.elements[0].text + " has an odd number (" + std::to_string(fields.size()) +
                    ") of field names and values");
      }
      StreamEntry entry;
      entry.id = e.elements[0].text;
      entry.fields.reserve(fields.size() / 2);
      for (std::size_t i = 0; i < fields.size(); i += 2) {
        if (fields[i].kind != reply_kind::string || fields[i + 1].kind != reply_kind::string) {
          throw shape("entry " + entry.id + " has a field name or value that is not a string (" +
                      describe(fields[i].kind != reply_kind::string ? fields[i] : fields[i + 1]) + ")");
        }
        entry.fields.emplace_back(fields[i].text, fields[i + 1].text);
      }
      out.push_back(std::move(entry));
    }
  }
  return out;
}

// The `last-generated-id` of `r`, the reply to `XINFO STREAM <key>` (a flat array of names and
// values in RESP 2). Throws system_error: server_error for an error reply, protocol_error when
// the field is missing.
inline std::string last_generated_id(const reply& r, std::string_view key) {
  if (r.is_error()) {
    throw boost::system::system_error(connection_error::server_error,
                                      "XINFO STREAM \"" + std::string(key) + "\" failed: " + r.text);
  }
  if (r.kind == reply_kind::array) {
    for (std::size_t i = 0; i + 1 < r.elements.size(); i += 2) {
      const reply& name = r.elements[i];
      const reply& value = r.elements[i + 1];
      if (name.text == "last-generated-id" && (value.kind == reply_kind::string || value.kind == reply_kind::status)) {
        return value.text;
      }
    }
  }
  throw boost::system::system_error(
      connection_error::protocol_error,
      "XINFO STREAM \"" + std::string(key) + "\": no last-generated-id in the reply (" + describe(r) + ")");
}

}  // namespace aurora::redis::detail
