// bridge_runner: the state and the coroutine behind Bridge (global feed -> MULTI/XADD/EXEC batches).
#pragma once

#include <aurora/change_event.hpp>
#include <aurora/detail/error_context.hpp>
#include <aurora/errc.hpp>
#include <aurora/recv_result.hpp>
#include <aurora/redis/bridge_options.hpp>
#include <aurora/redis/detail/connection.hpp>
#include <aurora/redis/detail/resp.hpp>
#include <aurora/redis/error.hpp>
#include <aurora/redis/event_codec.hpp>
#include <aurora/start.hpp>
#include <aurora/subscription.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace aurora::redis::detail {

// What a bridge follows: a Database's global feed, behind an interface because the Database is a
// template (BasicDatabase<Clock, Storage>).
class feed_source {
 public:
  feed_source() = default;
  feed_source(const feed_source&) = delete;
  feed_source& operator=(const feed_source&) = delete;
  virtual ~feed_source() = default;

  // db.subscribe_global(no filter, start); throws as that does.
  virtual Subscription subscribe(Start start) = 0;
};

template <class Database>
class database_feed final : public feed_source {
 public:
  explicit database_feed(Database& db) noexcept : db_(db) {}
  Subscription subscribe(Start start) override { return db_.subscribe_global(std::nullopt, start); }

 private:
  Database& db_;
};

// True for Redis's answer to an XADD whose ID is not above the stream's top: the entry (or a later
// one) is there already, which is what makes a resumed bridge write nothing twice.
inline bool is_duplicate_id(const reply& r) {
  return r.is_error() && r.text.find("equal or smaller") != std::string::npos;
}

// The bridge (see Bridge). One coroutine, run(), does everything on the executor given:
//
//   session: connect; L = sequence of the global stream's last ID (XREVRANGE key + - COUNT 1);
//            subscribe to the global feed with Start::after(L) (history_lost: report, oldest());
//            loop: wait for one event, take what else is ready (up to `batch`, never splitting a
//            transaction), write it as MULTI, XADD collection, XADD global, ..., EXEC.
//   failure: close, report, back off (doubling, bounded), start a new session: it resumes from
//            what Redis holds, so a batch lost with the connection is written again, and one
//            that landed is not (MULTI/EXEC: a batch lands whole or not at all, also across a
//            kill -9 of an AOF server, which drops an unfinished MULTI block when it reloads).
//
// stop() may come from any thread: it drops the Database (under feed_mutex_, so the Database is
// never touched after stop() returns) and, on the executor, ends the subscription and closes the
// connection and timers, which completes whatever the coroutine waits for.
class bridge_runner : public std::enable_shared_from_this<bridge_runner> {
 public:
  bridge_runner(boost::asio::any_io_executor ex, std::unique_ptr<feed_source> feed, const BridgeOptions& options)
      : options_(checked(options)),
        global_key_(global_stream_key(options_.prefix)),
        feed_(std::move(feed)),
        conn_(ex, options_.endpoint,
              connection_options{.max_reply_bytes = options_.max_reply_bytes,
                                 .connect_timeout = options_.connect_timeout}),
        backoff_timer_(ex),
        progress_(ex, boost::asio::steady_timer::time_point::max()),
        executor_(std::move(ex)) {}

  bridge_runner(const bridge_runner&) = delete;
  bridge_runner& operator=(const bridge_runner&) = delete;

  [[nodiscard]] const boost::asio::any_io_executor& executor() const noexcept { return executor_; }
  [[nodiscard]] const std::string& global_key() const noexcept { return global_key_; }

  // Marks the one run of this bridge; throws invalid_argument for a second one.
  void claim() {
    if (started_.exchange(true)) {
      throw aurora::error(errc::invalid_argument,
                          "aurora::redis::Bridge: already started (start() or run() once per Bridge; make a new "
                          "one to restart)");
    }
  }

  [[nodiscard]] bool running() const noexcept { return started_.load() && !finished_.load(); }

  // The bridge (see Bridge::run). `self` by value keeps the state alive as long as the run.
  static boost::asio::awaitable<void> run(std::shared_ptr<bridge_runner> self) {
    std::exception_ptr failure;
    try {
      co_await self->loop();
    } catch (...) {
      failure = std::current_exception();
    }
    self->finish();
    if (failure) std::rethrow_exception(failure);
  }

  // Waits until Redis holds every event up to `sequence`; false when the bridge ended first.
  static boost::asio::awaitable<bool> wait_written(std::shared_ptr<bridge_runner> self, std::uint64_t sequence) {
    for (;;) {
      if (self->written_.load() >= sequence) co_return true;
      if (self->stopping_.load() || self->finished_.load()) co_return false;
      // progress_ never expires; cancel() wakes every waiter (after a batch, at the end).
      boost::system::error_code ec;
      co_await self->progress_.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
      const boost::asio::cancellation_state cancel = co_await boost::asio::this_coro::cancellation_state;
      if (cancel.cancelled() != boost::asio::cancellation_type::none) {
        throw boost::system::system_error(boost::asio::error::operation_aborted,
                                          "aurora::redis::Bridge::wait_written cancelled");
      }
    }
  }

  // Stops for good (see Bridge::stop). Thread-safe, idempotent, never throws.
  void stop() noexcept {
    drop_feed();
    if (stopping_.exchange(true)) return;
    try {
      boost::asio::dispatch(executor_, [self = shared_from_this()] { self->shut(); });
    } catch (...) {
      // Out of memory: the coroutine notices stopping_ when what it waits for completes.
    }
  }

  [[nodiscard]] BridgeStats stats() const noexcept {
    BridgeStats s;
    s.last_written = written_.load();
    s.events = events_.load();
    s.batches = batches_.load();
    s.duplicates = duplicates_.load();
    s.connections = connections_.load();
    s.failures = failures_total_.load();
    s.lost = lost_.load();
    return s;
  }

 private:
  static const BridgeOptions& checked(const BridgeOptions& o) {
    auto fail = [](const std::string& why) {
      throw aurora::error(errc::invalid_argument, "aurora::redis::BridgeOptions: " + why);
    };
    if (o.maxlen && *o.maxlen == 0) fail("maxlen must be at least 1");
    if (o.batch == 0) fail("batch must be at least 1");
    if (o.connect_timeout.count() <= 0) fail("connect_timeout must be positive");
    if (o.reconnect_delay.count() < 1) fail("reconnect_delay must be at least 1 ms");
    if (o.max_reconnect_delay < o.reconnect_delay) fail("max_reconnect_delay must be at least reconnect_delay");
    if (o.max_reply_bytes < 1024) fail("max_reply_bytes must be at least 1024");
    return o;
  }

  std::string context(const std::string& what) const {
    return "aurora::redis::Bridge " + options_.endpoint.to_string() + " \"" + global_key_ + "\": " + what;
  }

  // Forgets the Database: it is not touched afterwards.
  void drop_feed() noexcept {
    try {
      const std::lock_guard lock(feed_mutex_);
      feed_.reset();
    } catch (...) {
      // std::mutex::lock failed (a system error that cannot happen here): the feed stays until
      // the run ends; stopping_ keeps the coroutine from using it meanwhile.
    }
  }

  // Ends what the coroutine may wait for; on the executor.
  void shut() noexcept {
    sub_.unsubscribe();
    conn_.close();
    try {
      backoff_timer_.cancel();
      progress_.cancel();
    } catch (...) {
      // A timer's cancel() throws only when the reactor fails; nothing waits on it then.
    }
  }

  void finish() noexcept {
    finished_.store(true);
    drop_feed();
    shut();
  }

  void report(const BridgeError& e) noexcept {
    if (e.missed > 0) lost_.fetch_add(e.missed);
    if (!options_.on_error) return;
    try {
      options_.on_error(e);
    } catch (...) {
      // Documented: dropped.
    }
  }

  // reconnect_delay * 2^(failures - 1), at most max_reconnect_delay.
  std::chrono::milliseconds backoff() const noexcept {
    std::chrono::milliseconds delay = options_.reconnect_delay;
    for (std::size_t i = 1; i < failures_ && delay < options_.max_reconnect_delay; ++i) delay *= 2;
    return delay < options_.max_reconnect_delay ? delay : options_.max_reconnect_delay;
  }

  boost::asio::awaitable<void> loop() {
    for (;;) {
      if (stopping_.load()) co_return;
      if (failures_ > 0) {
        backoff_timer_.expires_after(backoff());
        boost::system::error_code ec;
        co_await backoff_timer_.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
        if (stopping_.load()) co_return;
        const boost::asio::cancellation_state cancel = co_await boost::asio::this_coro::cancellation_state;
        if (cancel.cancelled() != boost::asio::cancellation_type::none) {
          throw boost::system::system_error(boost::asio::error::operation_aborted, context("run cancelled"));
        }
      }
      if (co_await session()) co_return;
    }
  }

  // One connection's worth of bridging. Returns true when the run is over (stopped, or the feed
  // closed with everything written), false after a failure (reported; the caller backs off).
  // Throws operation_aborted when cancelled, aurora::error for a fatal mismatch.
  boost::asio::awaitable<bool> session() {
    std::exception_ptr failure;
    boost::system::error_code code;
    std::string what;
    try {
      co_await conn_.connect();
      const std::uint64_t last = co_await last_sequence_of_global();
      if (stopping_.load()) co_return true;
      if (!resume_after(last)) co_return true;
      connections_.fetch_add(1);
      for (;;) {
        RecvResult first = sub_.try_recv();
        if (!first && first.error().code == errc::empty) {
          failures_ = 0;  // caught up: Redis holds everything the database has, so this session works
          first = co_await sub_.recv();
        }
        if (stopping_.load()) co_return true;
        batch_.clear();
        bool closed = false;
        absorb(std::move(first), closed);
        while (!closed && (batch_.size() < options_.batch ||
                           (!batch_.empty() && batch_.back()->commit > batch_.back()->sequence))) {
          RecvResult r = sub_.try_recv();
          if (!r && r.error().code == errc::empty) break;
          absorb(std::move(r), closed);
        }
        if (!batch_.empty()) co_await write_batch();
        if (closed) co_return true;  // the Database is gone, and all it published is written
      }
    } catch (const boost::system::system_error& e) {
      failure = std::current_exception();
      code = e.code();
      what = e.what();
    }
    if (stopping_.load()) co_return true;
    const boost::asio::cancellation_state cancel = co_await boost::asio::this_coro::cancellation_state;
    if (cancel.cancelled() != boost::asio::cancellation_type::none) std::rethrow_exception(failure);
    conn_.close();
    ++failures_;
    failures_total_.fetch_add(1);
    BridgeError e;
    e.code = code;
    e.attempt = failures_;
    e.message = what + " (attempt " + std::to_string(failures_) + "; reconnecting in " +
                std::to_string(backoff().count()) + " ms, then resuming after the last ID Redis holds)";
    report(e);
    co_return false;
  }

  // The sequence of the global stream's last entry (0 when it is empty or missing).
  boost::asio::awaitable<std::uint64_t> last_sequence_of_global() {
    const std::vector<std::string> keys{global_key_};
    const std::vector<std::optional<std::uint64_t>> last = co_await last_sequences(keys);
    if (!last[0]) {
      throw boost::system::system_error(
          connection_error::protocol_error,
          context("the last entry of the global stream has an ID that is not 0-<sequence>: "
                  "the stream was not written by an Aurora bridge"));
    }
    co_return *last[0];
  }

  // The sequences of the last entries of `keys` (0 for an empty or missing stream; nothing for
  // an ID that is not an Aurora one), in one round trip.
  boost::asio::awaitable<std::vector<std::optional<std::uint64_t>>> last_sequences(
      const std::vector<std::string>& keys) {
    std::vector<command> commands;
    commands.reserve(keys.size());
    for (const std::string& key : keys) commands.push_back(command{"XREVRANGE", key, "+", "-", "COUNT", "1"});
    const std::vector<reply> replies = co_await conn_.pipeline(commands);
    std::vector<std::optional<std::uint64_t>> out;
    out.reserve(keys.size());
    for (std::size_t i = 0; i < keys.size(); ++i) {
      const reply& r = replies[i];
      if (r.is_error()) {
        throw boost::system::system_error(connection_error::server_error,
                                          context("XREVRANGE " + keys[i] + " + - COUNT 1 failed: " + r.text));
      }
      if (r.kind != reply_kind::array) {
        throw boost::system::system_error(connection_error::protocol_error,
                                          context("XREVRANGE " + keys[i] + ": unexpected reply " + describe(r)));
      }
      if (r.elements.empty()) {
        out.emplace_back(0);
        continue;
      }
      const reply& entry = r.elements[0];
      if (entry.kind != reply_kind::array || entry.elements.empty() || entry.elements[0].kind != reply_kind::string) {
        throw boost::system::system_error(connection_error::protocol_error,
                                          context("XREVRANGE " + keys[i] + ": unexpected entry " + describe(entry)));
      }
      out.push_back(sequence_of(entry.elements[0].text));
    }
    co_return out;
  }

  // Subscribes to the feed after `last`. False when stopped. Reports history_lost (when the
  // first event arrives, which gives the numbers) and subscribes from the oldest event then.
  bool resume_after(std::uint64_t last) {
    bool mismatch = false;
    {
      // Not held while reporting: the handler may call stop(), which takes it.
      const std::lock_guard lock(feed_mutex_);
      if (!feed_ || stopping_.load()) return false;
      pending_gap_.reset();
      try {
        sub_ = feed_->subscribe(Start::after(last));
      } catch (const aurora::error& e) {
        if (e.code() == errc::history_lost) {
          subscribe_oldest();
          pending_gap_ = last;
          pending_gap_lag_ = false;
        } else if (e.code() == errc::invalid_argument) {
          mismatch = true;
        } else {
          throw attempt_failed(e);
        }
      }
    }
    if (mismatch) {
      const std::string message =
          context("the global stream's last ID is 0-" + std::to_string(last) +
                  ", beyond the database's last sequence: Redis holds another database's events under this prefix "
                  "(use another prefix, or delete the streams); the bridge stops");
      BridgeError e;
      e.code = errc::invalid_argument;
      e.message = message;
      e.after = last;
      e.fatal = true;
      report(e);
      throw aurora::error(errc::invalid_argument, message);
    }
    taken_ = last;
    // Gaps met after the last batch Redis took lie in events this session reads again: they are
    // noted again if they recur. (Above `last` they would make a `prev` above an event's sequence.)
    gap_floor_ = std::min(written_gap_floor_, last);
    prev_.clear();
    prev_[global_key_] = last;
    written_.store(last > written_.load() ? last : written_.load());
    return true;
  }

  // A database error while subscribing (storage_error: a DurableDatabase could not read its
  // change log): a failed attempt like a lost connection, reported and retried after a backoff.
  boost::system::system_error attempt_failed(const aurora::error& e) const {
    return {e.code(), context("subscribing to the database failed: " + aurora::detail::error_context(e))};
  }

  // Subscribes from the oldest event the Database retains. Call with feed_mutex_ held.
  void subscribe_oldest() {
    try {
      sub_ = feed_->subscribe(Start::oldest());
    } catch (const aurora::error& e) {
      throw attempt_failed(e);
    }
  }

  // After a lag: resubscribes after `after`, the last event taken. When the Database still
  // retains what followed it (a DurableDatabase's change log) nothing is lost; otherwise the
  // subscription starts at the oldest event retained, and the gap is reported (as lagged) when
  // its first event arrives. False (nothing changed) when stopped.
  bool resubscribe_after(std::uint64_t after) {
    const std::lock_guard lock(feed_mutex_);
    if (!feed_ || stopping_.load()) return false;
    try {
      sub_ = feed_->subscribe(Start::after(after));
      return true;
    } catch (const aurora::error& e) {
      if (e.code() != errc::history_lost) throw attempt_failed(e);
    }
    subscribe_oldest();
    pending_gap_ = after;
    pending_gap_lag_ = true;
    return true;
  }

  // Adds one receive's outcome to the batch (an event), or reports it (lagged), or notes the end.
  void absorb(RecvResult r, bool& closed) {
    if (!r) {
      if (r.error().code == errc::closed) {
        closed = true;
      } else if (r.error().code == errc::storage_error) {
        // A durable subscription resumed from the change log could not read it (and is closed):
        // a failed attempt, retried after a backoff from the last event Redis holds.
        throw boost::system::system_error(make_error_code(errc::storage_error),
                                          context("the database's change log could not be read"));
      } else if (r.error().code == errc::lagged) {
        // Resubscribed from the oldest event and lagged again before its first event: the report
        // at that event covers the whole gap.
        if (pending_gap_) return;
        // Read what was skipped from the Database's history if it still has it; else from its
        // oldest event, reporting the gap at the first one. Stopped: take nothing after the gap.
        if (!resubscribe_after(taken_)) closed = true;
      }
      return;
    }
    std::shared_ptr<const ChangeEvent> ev = std::move(r).event();
    if (ev->sequence <= taken_) return;  // cannot happen: the feed resumed after Redis's last
    if (pending_gap_) {
      const std::uint64_t after = *pending_gap_;
      pending_gap_.reset();
      if (ev->sequence > after + 1) {
        BridgeError e;
        e.code = pending_gap_lag_ ? errc::lagged : errc::history_lost;
        e.after = after;
        e.missed = ev->sequence - after - 1;
        e.resumed_at = ev->sequence;
        const std::string range = std::to_string(after + 1) + " to " + std::to_string(ev->sequence - 1) + " (" +
                                  std::to_string(e.missed) + " events)";
        e.message = context((pending_gap_lag_
                                 ? "the bridge's subscription lagged and the database no longer retains " + range +
                                       ": they never reach Redis"
                                 : "Redis holds the events up to " + std::to_string(after) +
                                       ", but the database no longer retains " + range + ": they never reach Redis") +
                            "; going on with " + std::to_string(ev->sequence));
        gap_floor_ = ev->sequence - 1;
        report(e);
      }
    }
    taken_ = ev->sequence;
    batch_.push_back(std::move(ev));
  }

  void append_xadd(std::vector<command>& commands, const std::string& key, const StreamEntry& entry) const {
    command cmd;
    cmd.reserve(6 + 2 * entry.fields.size());
    cmd.emplace_back("XADD");
    cmd.push_back(key);
    if (options_.maxlen) {
      cmd.emplace_back("MAXLEN");
      cmd.emplace_back("~");
      cmd.push_back(std::to_string(*options_.maxlen));
    }
    cmd.push_back(entry.id);
    for (const auto& [field, value] : entry.fields) {
      cmd.push_back(field);
      cmd.push_back(value);
    }
    commands.push_back(std::move(cmd));
  }

  // Writes batch_ as one MULTI/EXEC. Throws system_error when the connection fails or Redis
  // refuses the transaction (EXECABORT): the next session writes the batch again, as Redis then
  // holds none of it. A refused XADD inside it is a duplicate (skipped, counted) or reported.
  boost::asio::awaitable<void> write_batch() {
    // Learn the last entry of collection streams not written in this session yet.
    std::vector<std::string> unknown;
    for (const auto& ev : batch_) {
      std::string key = collection_stream_key(options_.prefix, ev->collection);
      if (!prev_.contains(key) && std::find(unknown.begin(), unknown.end(), key) == unknown.end()) {
        unknown.push_back(std::move(key));
      }
    }
    if (!unknown.empty()) {
      const std::vector<std::optional<std::uint64_t>> last = co_await last_sequences(unknown);
      for (std::size_t i = 0; i < unknown.size(); ++i) {
        if (!last[i]) {
          BridgeError e;
          e.code = connection_error::server_error;
          e.message = context("stream \"" + unknown[i] +
                              "\" ends with an entry whose ID is not 0-<sequence>: it was not written by an Aurora "
                              "bridge, and Redis will refuse the bridge's entries there as below its top");
          report(e);
        }
        prev_[unknown[i]] = last[i].value_or(0);
      }
    }

    // What each XADD of the transaction writes, in order: the sequence and the stream key.
    std::vector<std::pair<std::uint64_t, std::string>> targets;
    std::uint64_t events = 0;         // events in the transaction
    std::uint64_t already_there = 0;  // XADDs left out: their stream holds the ID already
    std::vector<command> commands;
    targets.reserve(2 * batch_.size());
    commands.reserve(2 * batch_.size() + 2);
    commands.push_back(command{"MULTI"});
    for (const auto& ev : batch_) {
      std::string key = collection_stream_key(options_.prefix, ev->collection);
      std::uint64_t& prev_collection = prev_[key];
      std::uint64_t& prev_global = prev_[global_key_];
      // A collection stream whose top is at or above this event holds it already (written by
      // another bridge, or by a writer that does not batch): Redis would refuse the XADD.
      const bool collection_has_it = prev_collection >= ev->sequence;
      // Encoded once: the two entries differ only in `prev`.
      StreamEntry entry;
      try {
        // After a gap, a collection's next entry names the gap's end as its `prev`, so that its
        // readers see the gap too (as `lagged`, an upper bound of what they lost).
        entry = encode_entry(*ev, collection_has_it ? prev_global : std::max(prev_collection, gap_floor_));
      } catch (const aurora::error& error) {
        BridgeError e;
        e.code = error.value() == errc::invalid_document ? errc::invalid_document : errc::invalid_argument;
        e.after = ev->sequence - 1;
        e.missed = 1;
        e.resumed_at = ev->sequence + 1;
        e.message = context("event " + std::to_string(ev->sequence) + " is skipped: " + error.what());
        gap_floor_ = ev->sequence;
        // A later session reads it again if Redis refused this batch: reported (and counted) once.
        if (ev->sequence > reported_skip_) {
          reported_skip_ = ev->sequence;
          report(e);
        }
        continue;
      }
      if (collection_has_it) {
        ++already_there;
      } else {
        append_xadd(commands, key, entry);
        targets.emplace_back(ev->sequence, std::move(key));
        prev_collection = ev->sequence;
      }
      for (auto& [field, value] : entry.fields) {
        if (field == "prev") value = std::to_string(prev_global);
      }
      append_xadd(commands, global_key_, entry);
      targets.emplace_back(ev->sequence, global_key_);
      prev_global = ev->sequence;
      ++events;
    }
    commands.push_back(command{"EXEC"});
    const std::uint64_t first = batch_.front()->sequence;
    const std::uint64_t last = batch_.back()->sequence;
    if (commands.size() > 2) {
      const std::vector<reply> replies = co_await conn_.pipeline(commands);
      const reply& exec = replies.back();
      if (exec.is_error() || exec.kind == reply_kind::nil) {
        std::string why = exec.is_error() ? exec.text : "nil (the transaction was aborted)";
        for (std::size_t i = 0; i + 1 < replies.size(); ++i) {
          if (replies[i].is_error()) {
            why += " (command " + std::to_string(i) + ": " + replies[i].text + ")";
            break;
          }
        }
        throw boost::system::system_error(connection_error::server_error,
                                          context("Redis refused the batch of events " + std::to_string(first) +
                                                  " to " + std::to_string(last) + ": " + why));
      }
      if (exec.kind != reply_kind::array || exec.elements.size() != targets.size()) {
        throw boost::system::system_error(
            connection_error::protocol_error,
            context("EXEC: unexpected reply " + describe(exec) + " for " + std::to_string(targets.size()) + " XADDs"));
      }
      for (std::size_t i = 0; i < targets.size(); ++i) {
        const reply& r = exec.elements[i];
        if (!r.is_error()) continue;
        if (is_duplicate_id(r)) {
          duplicates_.fetch_add(1);
          continue;
        }
        BridgeError e;
        e.code = connection_error::server_error;
        e.after = targets[i].first - 1;
        e.resumed_at = targets[i].first + 1;
        e.message = context("XADD " + targets[i].second + " " + stream_id(targets[i].first) + " failed: " + r.text);
        report(e);
      }
      events_.fetch_add(events);
      batches_.fetch_add(1);
    }
    duplicates_.fetch_add(already_there);
    failures_ = 0;
    written_gap_floor_ = gap_floor_;
    written_.store(last);
    progress_.cancel();
  }

  const BridgeOptions options_;
  const std::string global_key_;

  std::mutex feed_mutex_;
  std::unique_ptr<feed_source> feed_;  // null once stopped: the Database is not touched again

  connection conn_;
  boost::asio::steady_timer backoff_timer_;
  boost::asio::steady_timer progress_;  // never expires; cancel() wakes wait_written
  boost::asio::any_io_executor executor_;
  Subscription sub_;

  std::atomic<bool> started_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> finished_{false};

  // Used by the coroutine only.
  std::vector<std::shared_ptr<const ChangeEvent>> batch_;
  std::map<std::string, std::uint64_t> prev_;  // stream key -> sequence of its last entry (this session)
  std::uint64_t taken_ = 0;                    // the last sequence taken from the feed (or resumed after)
  std::optional<std::uint64_t> pending_gap_;   // resubscribed from oldest(): the events after this were not retained
  bool pending_gap_lag_ = false;               // that gap came from a lag (else from history_lost at resume)
  std::uint64_t gap_floor_ = 0;                // the end of the last gap: the least `prev` of collection entries
  std::uint64_t written_gap_floor_ = 0;        // gap_floor_ when Redis took the last batch
  std::size_t failures_ = 0;                   // consecutive failures
  std::uint64_t reported_skip_ = 0;            // the last event reported as impossible to encode

  std::atomic<std::uint64_t> written_{0};
  std::atomic<std::uint64_t> events_{0};
  std::atomic<std::uint64_t> batches_{0};
  std::atomic<std::uint64_t> duplicates_{0};
  std::atomic<std::uint64_t> connections_{0};
  std::atomic<std::uint64_t> failures_total_{0};
  std::atomic<std::uint64_t> lost_{0};
};

}  // namespace aurora::redis::detail
