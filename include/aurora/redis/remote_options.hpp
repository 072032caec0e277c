// RemoteOptions: where a RemoteSubscription reads (Redis endpoint, stream prefix) and how it retries.
#pragma once

#include <aurora/redis/endpoint.hpp>

#include <chrono>
#include <cstddef>
#include <string>

namespace aurora::redis {

/// Settings of a `RemoteSubscription`. An aggregate:
/// `RemoteOptions{.endpoint = Endpoint{"unix:/run/redis/redis.sock"}, .prefix = "aurora:"}`.
struct RemoteOptions {
  /// Where Redis listens (default `tcp://127.0.0.1:6379`).
  Endpoint endpoint{};

  /// The prefix of the stream keys: a collection's stream is `prefix + collection`, the global
  /// one `prefix + "*"`. Must match the bridge's.
  std::string prefix = "aurora:";

  /// The most entries one XREAD fetches (`COUNT`); at least 1.
  std::size_t batch = 256;

  /// How long one XREAD waits on the server (`BLOCK`) before it is sent again; 0 waits without
  /// limit. Shorter values find a silently dead TCP peer sooner.
  std::chrono::milliseconds block{5000};

  /// How long one connection attempt may take per address.
  std::chrono::milliseconds connect_timeout{5000};

  /// The wait before the first reconnection attempt; doubled after each failed one, up to
  /// `max_reconnect_delay`. At least 1 ms.
  std::chrono::milliseconds reconnect_delay{20};

  /// The longest wait between reconnection attempts; at least `reconnect_delay`.
  std::chrono::milliseconds max_reconnect_delay{2000};

  /// Consecutive failed attempts (to connect, or to read once connected) after which `recv`
  /// gives up and throws; 0 never gives up. The next `recv` starts counting again.
  std::size_t max_reconnect_attempts = 10;

  /// The most bytes one reply may take; at least 1024. A larger reply to an XREAD is dropped
  /// (the connection is closed) and the next XREAD asks for half as many entries (growing back
  /// after full batches that fit); only a single entry larger than this is a failed attempt.
  std::size_t max_reply_bytes = std::size_t{64} * 1024 * 1024;
};

}  // namespace aurora::redis
