// Bridge: appends a Database's change feed to Redis Streams, resuming exactly after what Redis holds.
#pragma once

#include <aurora/database.hpp>
#include <aurora/redis/bridge_options.hpp>
#include <aurora/redis/detail/bridge_runner.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>

#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <utility>

namespace aurora::redis {

/// Follows a Database's global feed and appends every event to Redis Streams: to its collection's
/// stream (`prefix + collection`) and to the global stream (`prefix + "*"`), with the entry ID
/// `0-<sequence>` and the fields of `encode_entry` (`prev` per stream, `commit`).
///
/// ```
/// aurora::redis::Bridge bridge{io.get_executor(), db, {.endpoint = redis, .prefix = "aurora:",
///                              .maxlen = 1'000'000, .on_error = log_it}};
/// bridge.start();   // returns at once; the bridge runs on io
/// ...
/// bridge.stop();
/// ```
///
/// How it writes: it waits for an event, takes every other event already published (up to
/// `BridgeOptions::batch`, never splitting a transaction) and sends them as one pipelined
/// `MULTI`, `XADD <collection stream> ...`, `XADD <global stream> ...`, ..., `EXEC`, then waits
/// for the reply before the next batch. A batch lands in Redis whole or not at all, so the global
/// stream never holds an event its collection's stream lacks, and a transaction of the Database
/// appears in Redis at once.
///
/// Where it starts: on start and after every reconnection it reads the global stream's last ID
/// (`XREVRANGE key + - COUNT 1`, 0 when there is none) and subscribes with `Start::after(last)`:
/// what Redis holds is not written again, and what it lacks is. Should an entry be there anyway
/// (a batch written by another bridge), Redis refuses the XADD as not above the stream's top; the
/// bridge counts it (`BridgeStats::duplicates`) and goes on. So delivery to Redis is
/// at-least-once across failures and exactly-once by ID.
///
/// Gaps are reported, never silent: when the Database no longer retains the events after Redis's
/// last (`errc::history_lost` at subscribe), or the bridge's subscription lags (`errc::lagged`,
/// Redis slower than the writers for more than `Options::channel_capacity` events) and the
/// Database no longer retains what it skipped, it calls `on_error` with the numbers, and goes on
/// with what is retained. (A lagging bridge over a `DurableDatabase` resubscribes after its last
/// event and reads what it skipped from the change log: no gap while the log holds it.) Readers see the same gap as
/// `lagged`: on the global stream by its IDs, exactly; on a collection's stream because the
/// collection's next entry names the gap's end as its `prev` (an upper bound of what that
/// collection lost; a later bridge does not know of an earlier one's gaps). See `BridgeError`.
///
/// Failures: a lost connection or a refused batch is reported, then the bridge reconnects after
/// `reconnect_delay`, doubled per consecutive failure up to `max_reconnect_delay`, and resumes
/// as above; it never gives up. If the global stream holds events beyond the Database's last
/// sequence (another database's), it reports that as fatal and stops.
///
/// Runs on the executor given and starts no threads (a TCP host name is resolved synchronously:
/// give an address to avoid that). The Database may be written from any thread.
///
/// Thread safety: `stop()` and `stats()` may be called from any thread. `start()`, `run()` and
/// `wait_written()` are called from the executor's thread (a single-threaded io_context, or a
/// strand). Destroy the Database only after `stop()` (or the end of the run): after `stop()`
/// returns, the bridge never touches the Database again.
class Bridge {
 public:
  /// A bridge from `db` to `options.endpoint`, not yet started. Does no I/O. Throws
  /// `aurora::error(errc::invalid_argument)` for options out of range (see `BridgeOptions`).
  ///
  /// `db` is any `BasicDatabase`: the in-memory `aurora::Database` or, with
  /// `<aurora/sqlite.hpp>` included by the caller, `aurora::DurableDatabase`. Over a durable
  /// database the bridge resumes from its change log after an application restart: a new
  /// bridge on the reopened file writes what Redis lacks, as long as the log still holds it
  /// (`Options::history`; else `history_lost` is reported).
  template <EventClock Clock, class Storage>
  Bridge(boost::asio::any_io_executor executor, BasicDatabase<Clock, Storage>& db, const BridgeOptions& options)
      : state_(std::make_shared<detail::bridge_runner>(
            std::move(executor), std::make_unique<detail::database_feed<BasicDatabase<Clock, Storage>>>(db), options)) {
  }

  Bridge(const Bridge&) = delete;
  Bridge& operator=(const Bridge&) = delete;

  /// Takes over `other`'s bridge; `other` is left empty (only destruction and `stats()` are
  /// allowed on it).
  Bridge(Bridge&& other) noexcept = default;

  /// Stops the bridge (see `stop()`).
  ~Bridge() {
    if (state_) state_->stop();
  }

  Bridge& operator=(Bridge&&) = delete;

  /// Starts the bridge on its executor and returns at once. Errors of the run go to
  /// `on_error`. Throws `aurora::error(errc::invalid_argument)` when this bridge was started (or
  /// run) before: a Bridge runs once; make a new one to restart.
  void start() {
    state_->claim();
    boost::asio::co_spawn(state_->executor(), detail::bridge_runner::run(state_), [](const std::exception_ptr&) {
      // Fatal errors were reported to on_error already.
    });
  }

  /// The bridge as an awaitable, for running it inside a coroutine of the caller:
  /// `co_await bridge.run();` (instead of `start()`).
  ///
  /// Completion: returns after `stop()`, or when the Database's feed closed and everything it
  /// published is written. Errors: throws `aurora::error(errc::invalid_argument)` when Redis holds
  /// another database's events (also reported to `on_error`), or when this bridge was started
  /// before. Connection problems are not errors here: they are reported and retried.
  /// Cancellation: per-operation, any type; the run then ends and throws
  /// `boost::system::system_error` with `asio::error::operation_aborted`. A batch in flight
  /// then either landed or not; a new bridge resumes from what Redis holds. Await it from a
  /// coroutine on the bridge's executor.
  boost::asio::awaitable<void> run() {
    state_->claim();
    return detail::bridge_runner::run(state_);
  }

  /// Waits until Redis holds every event up to `sequence` (or the bridge has reported it lost):
  /// `co_await bridge.wait_written(db.last_sequence());`. Returns true then, false when the
  /// bridge stopped or ended first. Cancellation: per-operation, any type; throws
  /// `boost::system::system_error` with `asio::error::operation_aborted`. Await it from a
  /// coroutine on the bridge's executor.
  boost::asio::awaitable<bool> wait_written(std::uint64_t sequence) {
    return detail::bridge_runner::wait_written(state_, sequence);
  }

  /// Stops for good: the run ends soon after (on its executor), a batch in flight is abandoned
  /// (it either landed or not; a new bridge resumes from what Redis holds), and events not yet
  /// written stay in the Database's retention for the next bridge. The Database is not touched
  /// after this returns. Thread-safe, idempotent, never throws.
  void stop() noexcept {
    if (state_) state_->stop();
  }

  /// True between `start()` (or `run()`) and the end of the run.
  [[nodiscard]] bool running() const noexcept { return state_ && state_->running(); }

  /// Counters of what the bridge did (see `BridgeStats`). Thread-safe.
  [[nodiscard]] BridgeStats stats() const noexcept { return state_ ? state_->stats() : BridgeStats{}; }

  /// The global stream's key, `prefix + "*"`.
  [[nodiscard]] std::string global_stream() const { return state_ ? state_->global_key() : std::string(); }

 private:
  std::shared_ptr<detail::bridge_runner> state_;
};

}  // namespace aurora::redis
