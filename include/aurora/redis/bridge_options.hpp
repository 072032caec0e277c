// BridgeOptions, BridgeError and BridgeStats: how a Bridge writes to Redis, what it reports, what it did.
#pragma once

#include <aurora/redis/endpoint.hpp>

#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace aurora::redis {

/// Something a `Bridge` reports through `BridgeOptions::on_error` instead of failing silently.
///
/// `code` says what happened:
/// - `aurora::errc::history_lost`: on (re)starting, the Database no longer retained the events
///   after the last one Redis holds, so `missed` events (`after + 1` to `resumed_at - 1`) never
///   reach Redis; the bridge goes on with the oldest event retained (`resumed_at`);
/// - `aurora::errc::lagged`: the bridge's own subscription fell more than the channel capacity
///   behind (Redis was slower than the writers) and the Database no longer retains those events
///   (a `DurableDatabase` whose change log still holds them is read from there instead, and
///   nothing is reported): `missed` events after `after` were skipped; the bridge goes on with
///   `resumed_at`;
/// - `aurora::errc::invalid_document`: an event that cannot be written as a stream entry (a
///   document string that is not UTF-8) is skipped: `missed` is 1, `after + 1` its sequence;
/// - `aurora::errc::invalid_argument` with `fatal`: the global stream holds events beyond the
///   Database's last sequence (another database's, or a reused prefix); the bridge stops;
/// - socket errors (`boost::asio::error::...`), `connection_error::server_error` (Redis refused a
///   command, e.g. WRONGTYPE or OOM) or `connection_error::protocol_error`: one failed attempt to
///   reach or write Redis; the bridge reconnects after a backoff (`attempt` counts the
///   consecutive failures, and starts over once a session has written a batch or caught up) and
///   resumes from the last ID Redis holds, so nothing is lost;
/// - `aurora::errc::storage_error` from the Database (a `DurableDatabase` could not read its
///   change log, when subscribing or while resuming from it): a failed attempt too, retried the
///   same way.
struct BridgeError {
  boost::system::error_code code;  ///< what happened (see above)
  std::string message;             ///< a readable account naming the endpoint, stream and numbers
  std::uint64_t after = 0;         ///< gaps: the last sequence written (or taken) before the gap
  std::uint64_t missed = 0;        ///< gaps: how many events will never reach Redis
  std::uint64_t resumed_at = 0;    ///< gaps: the first sequence after the gap
  std::size_t attempt = 0;         ///< connection errors: consecutive failed attempts so far
  bool fatal = false;              ///< true when the bridge stopped because of it
};

/// Settings of a `Bridge`. An aggregate: `BridgeOptions{.endpoint = redis, .prefix = "aurora:",
/// .maxlen = 1'000'000, .on_error = [](const BridgeError& e) { log(e.message); }}`.
struct BridgeOptions {
  /// Where Redis listens (default `tcp://127.0.0.1:6379`).
  Endpoint endpoint{};

  /// The prefix of the stream keys: a collection's stream is `prefix + collection`, the global
  /// one `prefix + "*"`. Readers (`RemoteOptions::prefix`) must use the same.
  std::string prefix = "aurora:";

  /// When set, every XADD trims its stream to about this many entries (`MAXLEN ~ n`, at least
  /// 1): Redis then holds the last `maxlen` events of each stream (a little more, as `~` trims
  /// whole nodes). Readers that fall further behind see `lagged` / `history_lost`.
  std::optional<std::size_t> maxlen{};

  /// Called for every `BridgeError`, on the bridge's executor, from the bridge's coroutine (so
  /// it must not block; it may call `Bridge::stop`). What it throws is caught and dropped.
  std::function<void(const BridgeError&)> on_error{};

  /// The most events one MULTI/EXEC carries (at least 1). A transaction is never split, so a
  /// batch that ends inside one grows to its end.
  std::size_t batch = 1024;

  /// How long one connection attempt may take per address.
  std::chrono::milliseconds connect_timeout{5000};

  /// The wait before reconnecting after a failure; doubled after each consecutive failure, up to
  /// `max_reconnect_delay`. At least 1 ms.
  std::chrono::milliseconds reconnect_delay{20};

  /// The longest wait between reconnection attempts; at least `reconnect_delay`. The bridge
  /// never gives up: it retries until `stop()`.
  std::chrono::milliseconds max_reconnect_delay{2000};

  /// The most bytes one reply may take; at least 1024.
  std::size_t max_reply_bytes = std::size_t{64} * 1024 * 1024;
};

/// What a `Bridge` has done so far (`Bridge::stats()`), a snapshot of counters.
struct BridgeStats {
  std::uint64_t last_written = 0;  ///< the sequence of the last event Redis acknowledged (or held at start)
  std::uint64_t events = 0;        ///< events this bridge wrote to both streams
  std::uint64_t batches = 0;       ///< MULTI/EXEC transactions that succeeded
  std::uint64_t duplicates =
      0;  ///< XADDs skipped as their stream held the ID already (refused by Redis, or seen at its top)
  std::uint64_t connections = 0;  ///< sessions started (connected and resumed); above 1 after reconnects
  std::uint64_t failures = 0;     ///< failed attempts to reach or write Redis
  std::uint64_t lost = 0;         ///< events reported lost (history_lost, lagged, invalid_document)
};

}  // namespace aurora::redis
