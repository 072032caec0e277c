// A minimal user of the installed aurora::redis component: endpoint, stream codec, RESP, bridge; no server.
#include <aurora/database.hpp>
#include <aurora/redis/bridge.hpp>
#include <aurora/redis/detail/resp.hpp>
#include <aurora/redis/endpoint.hpp>
#include <aurora/redis/event_codec.hpp>
#include <aurora/redis/remote_subscription.hpp>

#include <boost/asio/io_context.hpp>

#include <cstdio>
#include <memory>
#include <string>

int main() {
  const aurora::redis::Endpoint endpoint{"unix:/run/redis/redis.sock"};
  aurora::ChangeEvent ev;
  ev.collection = "users";
  ev.document_id = "u1";
  ev.document = std::make_shared<const aurora::Document>(aurora::Document{{"name", "Ada"}});
  ev.sequence = 7;
  const aurora::redis::DecodedEntry back = aurora::redis::decode_entry(aurora::redis::encode_entry(ev, 3));

  // hiredis encodes a command, and decodes a reply.
  std::string bytes;
  aurora::redis::detail::append_command(bytes, {"PING"});
  aurora::redis::detail::reply_reader reader(1024);
  const std::string pong = "+PONG\r\n";
  reader.feed(pong.data(), pong.size());
  const auto reply = reader.next();

  boost::asio::io_context io;
  aurora::redis::RemoteSubscription sub{io.get_executor(), {.endpoint = endpoint}, "users"};
  aurora::Database db;
  const aurora::redis::Bridge bridge{io.get_executor(), db, {.endpoint = endpoint, .prefix = "app:"}};

  const bool ok = endpoint.path() == "/run/redis/redis.sock" && *back.event.document == *ev.document &&
                  back.prev == 3 && bytes == "*1\r\n$4\r\nPING\r\n" && reply && reply->text == "PONG" &&
                  sub.stream_key() == "aurora:users" && bridge.global_stream() == "app:*" && !bridge.running();
  std::puts(ok ? "redis_consumer: endpoint, codec, RESP and bridge work" : "redis_consumer: FAILED");
  return ok ? 0 : 1;
}
