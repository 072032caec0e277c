// A minimal user of the installed aurora::net component: parses a feed client message and formats
// an error reply (the protocol part; FeedServer itself is compiled by the header check).
#include <aurora/net/protocol.hpp>

#include <cstdio>
#include <variant>

int main() {
  const auto m = aurora::net::parse_client_message(R"({"op":"subscribe","id":"s1","collection":"orders"})");
  if (!std::holds_alternative<aurora::net::SubscribeRequest>(m)) return 1;
  const auto e = aurora::net::parse_client_message("nope");
  if (!std::holds_alternative<aurora::net::ProtocolError>(e)) return 1;
  std::puts(aurora::net::error_message(std::get<aurora::net::ProtocolError>(e)).c_str());
  return 0;
}
