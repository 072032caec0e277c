// Fuzz target: bytes as one client message of the WebSocket feed protocol (aurora::net), handled
// as FeedServer handles it, without sockets. Invariants: no crash or sanitizer report; parsing
// never throws; an error has a known code and a message and serialises to JSON with the
// documented keys; a subscribe request is accepted by the Database or refused with aurora::error
// (history_lost, invalid_argument) only; every server message made from it (snapshot, event,
// lagged, error) is JSON of the documented shape.
#include "fuzz_input.hpp"

#include <aurora/aurora.hpp>
#include <aurora/net/protocol.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#ifndef AURORA_FUZZ_ENTRY
#define AURORA_FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

namespace {

using aurora_fuzz::require;
using json = nlohmann::json;
namespace net = aurora::net;

bool known_code(const std::string& code) {
  return code == net::error_code::invalid_json || code == net::error_code::invalid_message ||
         code == net::error_code::unknown_op || code == net::error_code::invalid_filter;
}

bool usable_id(const std::string& id) { return !id.empty() && id.size() <= net::max_subscription_id_bytes; }

// Parses a server message and checks its type and id.
json parsed(const std::string& text, const char* type, const std::string& id) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  require(j.is_object(), "a server message is not a JSON object");
  require(j["type"] == type, "a server message has the wrong type");
  require(j["id"] == id, "a server message has the wrong id");
  return j;
}

void check_receipts(aurora::Subscription& sub, const std::string& id) {
  for (int i = 0; i < 64; ++i) {
    const aurora::RecvResult r = sub.try_recv();
    if (r) {
      json m = parsed(net::event_message(id, r), "event", id);
      require(m["transition"] == "enter" || m["transition"] == "change" || m["transition"] == "leave",
              "an event message has an unknown transition");
      require(m["event"]["sequence"] == r->sequence, "an event message lost the sequence");
    } else if (r.error().code == aurora::errc::lagged) {
      json m = parsed(net::lagged_message(id, r.error().missed), "lagged", id);
      require(m["missed"] == r.error().missed, "a lagged message lost the count");
    } else {
      require(r.error().code == aurora::errc::empty, "a receive failed other than documented");
      return;
    }
  }
}

}  // namespace

extern "C" int AURORA_FUZZ_ENTRY(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  net::ClientMessage message;
  try {
    message = net::parse_client_message(text);
  } catch (...) {
    aurora_fuzz::fail("parse_client_message threw");
  }
  if (const auto* e = std::get_if<net::ProtocolError>(&message)) {
    require(known_code(e->code), "an unknown error code");
    require(!e->message.empty(), "an error without a message");
    require(!e->id || usable_id(*e->id), "an error echoes an unusable id");
    json j = json::parse(net::error_message(*e), nullptr, /*allow_exceptions=*/false);
    require(j.is_object() && j["type"] == "error" && j["code"] == e->code && j["message"].is_string(),
            "an error message has the wrong shape");
    require(e->id ? j["id"] == *e->id : j["id"].is_null(), "an error message has the wrong id");
    return 0;
  }
  if (const auto* u = std::get_if<net::UnsubscribeRequest>(&message)) {
    require(usable_id(u->id), "unsubscribe with an unusable id");
    return 0;
  }
  const net::SubscribeRequest& req = std::get<net::SubscribeRequest>(message);
  require(usable_id(req.id), "subscribe with an unusable id");
  require(!req.collection || !req.collection->empty(), "subscribe to an empty collection name");
  require(!req.snapshot || (req.collection && req.start == aurora::Start::now()), "a snapshot without its rules");

  // What FeedServer does with it, against a small database whose history is partly lost.
  aurora::Database db{aurora::Options{.channel_capacity = 4}};
  const std::string collection = req.collection.value_or("c");
  std::string first;
  for (int i = 0; i < 6; ++i) {
    json doc = {{"age", 20 + i}, {"tier", i % 2 == 0 ? "gold" : "silver"}, {"n", i}};
    const std::string id = db.insert(collection, std::move(doc));
    if (i == 0) first = id;
  }
  aurora::Subscription sub;
  try {
    if (req.snapshot) {
      aurora::Watch w = db.watch(*req.collection, req.filter);
      json s = parsed(net::snapshot_message(req.id, w.snapshot), "snapshot", req.id);
      require(s["sequence"] == w.snapshot.sequence, "a snapshot message lost the sequence");
      require(s["documents"].size() == w.snapshot.documents.size(), "a snapshot message lost documents");
      sub = std::move(w.subscription);
    } else if (req.collection) {
      sub = db.subscribe(*req.collection, req.filter, req.start);
    } else {
      sub = db.subscribe_global(req.filter, req.start);
    }
  } catch (const aurora::error& e) {
    require(e.value() == aurora::errc::history_lost || e.value() == aurora::errc::invalid_argument,
            "subscribe refused other than documented");
    json j = json::parse(net::error_message(req.id, net::errc_name(e.value()), e.what()));
    require(j["code"] == net::errc_name(e.value()), "an error message lost the code");
    return 0;
  }
  check_receipts(sub, req.id);
  db.update(collection, first, json{{"age", 99}, {"tier", "platinum"}});
  db.remove(collection, first);
  db.insert("other", json{{"age", 1}});
  check_receipts(sub, req.id);
  return 0;
}
