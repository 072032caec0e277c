// remote_subscriber: the state and the receive loop behind RemoteSubscription (XREAD BLOCK on a stream).
#pragma once

#include <aurora/change_event.hpp>
#include <aurora/detail/asio_compat.hpp>
#include <aurora/detail/error_context.hpp>
#include <aurora/errc.hpp>
#include <aurora/filter.hpp>
#include <aurora/recv_result.hpp>
#include <aurora/redis/detail/connection.hpp>
#include <aurora/redis/detail/resp.hpp>
#include <aurora/redis/detail/stream_reply.hpp>
#include <aurora/redis/error.hpp>
#include <aurora/redis/event_codec.hpp>
#include <aurora/redis/remote_options.hpp>
#include <aurora/start.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace aurora::redis::detail {

// True when the awaitable thread running the caller has suspended since it started: only then
// may a receive take an event at once (see aurora/detail/asio_compat.hpp, the one place that
// uses Asio's internal flag).
inline boost::asio::awaitable<bool> thread_has_suspended() {
  co_return static_cast<bool>(co_await aurora::detail::has_suspended());
}

class remote_subscriber : public std::enable_shared_from_this<remote_subscriber> {
 public:
  remote_subscriber(boost::asio::any_io_executor ex, const RemoteOptions& options, std::string_view collection,
                    std::optional<EventFilter> filter, Start start)
      : options_(checked(options)),
        global_(collection.empty()),
        key_(global_ ? global_stream_key(options_.prefix) : collection_stream_key(options_.prefix, collection)),
        filter_(std::move(filter)),
        start_(start),
        conn_(ex, options_.endpoint,
              connection_options{.max_reply_bytes = options_.max_reply_bytes,
                                 .connect_timeout = options_.connect_timeout}),
        timer_(ex),
        executor_(std::move(ex)) {}

  remote_subscriber(const remote_subscriber&) = delete;
  remote_subscriber& operator=(const remote_subscriber&) = delete;

  [[nodiscard]] const std::string& key() const noexcept { return key_; }

  // The receive loop (see RemoteSubscription::recv). Takes `self` by value so that the state lives
  // as long as the operation, whatever happens to the RemoteSubscription.
  static boost::asio::awaitable<RecvResult> recv(std::shared_ptr<remote_subscriber> self) {
    const busy_guard guard(*self, "recv");
    for (;;) {
      if (self->closed_.load()) co_return RecvResult(RecvError{errc::closed});
      if (!self->buffer_.empty()) {
        co_await self->make_safe_to_deliver();
        if (self->closed_.load()) co_return RecvResult(RecvError{errc::closed});
        // Nothing suspends from here to the co_return, so what is taken is delivered.
        if (std::optional<RecvResult> r = self->take()) co_return std::move(*r);
        continue;
      }
      co_await self->fetch();
    }
  }

  // Connects and fixes the start position, unless that is done (see RemoteSubscription::connect).
  static boost::asio::awaitable<void> connect(std::shared_ptr<remote_subscriber> self) {
    const busy_guard guard(*self, "connect");
    if (!self->closed_.load() && (!self->conn_.is_open() || !self->resolved_)) co_await self->reconnect();
  }

  // An event or error already fetched, or errc::empty / errc::closed. Never waits.
  RecvResult try_recv() {
    if (closed_.load()) return RecvResult(RecvError{errc::closed});
    if (busy_) {
      // A recv of this subscription is suspended: leave the buffer to it.
      return RecvResult(RecvError{errc::empty});
    }
    if (std::optional<RecvResult> r = take()) return std::move(*r);
    return RecvResult(RecvError{errc::empty});
  }

  // Closes for good; thread-safe. The socket and timer are closed on the executor, which
  // completes a pending receive (it then yields errc::closed).
  void close() noexcept {
    if (closed_.exchange(true)) return;
    try {
      boost::asio::dispatch(executor_, [self = shared_from_this()] {
        self->conn_.close();
        self->timer_.cancel();
      });
    } catch (...) {
      // Out of memory: a pending receive then completes when its XREAD BLOCK times out.
    }
  }

 private:
  // One fetched item: an event, a gap (lagged / history_lost), or a malformed entry.
  struct item {
    std::shared_ptr<const ChangeEvent> event;
    RecvError gap{};
    std::exception_ptr malformed;
  };

  // Enforces one receive at a time.
  class busy_guard {
   public:
    busy_guard(remote_subscriber& s, const char* what) : s_(s) {
      if (s_.busy_) {
        throw aurora::error(errc::invalid_argument, "aurora::redis::RemoteSubscription::" + std::string(what) +
                                                        ": another recv or connect of this subscription is pending");
      }
      s_.busy_ = true;
    }
    busy_guard(const busy_guard&) = delete;
    busy_guard& operator=(const busy_guard&) = delete;
    ~busy_guard() { s_.busy_ = false; }

   private:
    remote_subscriber& s_;
  };

  static const RemoteOptions& checked(const RemoteOptions& o) {
    auto fail = [](const std::string& why) {
      throw aurora::error(errc::invalid_argument, "aurora::redis::RemoteOptions: " + why);
    };
    if (o.batch == 0) fail("batch must be at least 1");
    if (o.block.count() < 0) fail("block must not be negative");
    if (o.connect_timeout.count() <= 0) fail("connect_timeout must be positive");
    if (o.reconnect_delay.count() < 1) fail("reconnect_delay must be at least 1 ms");
    if (o.max_reconnect_delay < o.reconnect_delay) fail("max_reconnect_delay must be at least reconnect_delay");
    if (o.max_reply_bytes < 1024) fail("max_reply_bytes must be at least 1024");
    return o;
  }

  std::string context(const std::string& what) const {
    return "aurora::redis " + options_.endpoint.to_string() + " \"" + key_ + "\": " + what;
  }

  // Takes the next item to deliver: events that fail the filter are dropped on the way.
  std::optional<RecvResult> take() {
    while (!buffer_.empty()) {
      item it = std::move(buffer_.front());
      buffer_.pop_front();
      if (it.malformed) std::rethrow_exception(it.malformed);
      if (!it.event) return RecvResult(it.gap);
      if (filter_ && !filter_->matches(*it.event)) continue;
      return RecvResult(std::move(it.event));
    }
    return std::nullopt;
  }

  // Makes sure that a cancellation cannot drop what the receive returns next: in a thread that
  // may be cancelled (a slot is connected), the receive first suspends once (see
  // thread_has_suspended), then gives up if it was cancelled meanwhile. Throws operation_aborted.
  boost::asio::awaitable<void> make_safe_to_deliver() {
    const boost::asio::cancellation_state cancel = co_await boost::asio::this_coro::cancellation_state;
    if (cancel.slot().is_connected() && !co_await thread_has_suspended()) {
      co_await boost::asio::post(co_await boost::asio::this_coro::executor, boost::asio::use_awaitable);
    }
    if (cancel.cancelled() != boost::asio::cancellation_type::none) {
      throw boost::system::system_error(boost::asio::error::operation_aborted, context("recv cancelled"));
    }
  }

  // Fetches the next batch into the buffer: (re)connects when needed, sends an XREAD unless one is
  // pending (a cancelled receive leaves it pending), and reads its reply. A lost connection is
  // noted for the next round, which reconnects. Throws operation_aborted when cancelled,
  // server_error / protocol_error for a bad reply, or what reconnect() throws.
  boost::asio::awaitable<void> fetch() {
    if (!conn_.is_open() || !resolved_) {
      co_await reconnect();
      if (closed_.load()) co_return;
    }
    std::exception_ptr failure;
    bool too_large = false;
    std::optional<reply> r;
    try {
      if (conn_.pending_replies() == 0) {
        const command xread{
            "XREAD", "COUNT", std::to_string(count_), "BLOCK", std::to_string(options_.block.count()), "STREAMS",
            key_,    cursor_};
        co_await conn_.send(std::span<const command>(&xread, 1));
      }
      r = co_await conn_.receive();
    } catch (const boost::system::system_error& e) {
      failure = std::current_exception();
      too_large = e.code() == connection_error::reply_too_large;
    }
    if (r && not_ready(*r)) {
      failure = std::make_exception_ptr(boost::system::system_error(
          boost::asio::error::try_again, context("XREAD on \"" + key_ + "\": Redis is not ready: " + r->text)));
      r.reset();
    }
    if (r) {
      failures_ = 0;
      const std::size_t fetched = absorb(*r);
      // A full batch that fit: grow back towards `batch`, by an eighth at a time.
      if (fetched == count_ && count_ < options_.batch) count_ = std::min(options_.batch, count_ + (count_ + 7) / 8);
      co_return;
    }
    if (closed_.load()) co_return;
    const boost::asio::cancellation_state cancel = co_await boost::asio::this_coro::cancellation_state;
    if (cancel.cancelled() != boost::asio::cancellation_type::none) std::rethrow_exception(failure);
    // The connection is lost (the connection closed itself): the next round reconnects.
    conn_.close();
    if (too_large && count_ > 1) {
      // Not a failure of Redis: ask for half as many entries at once (one entry larger than
      // max_reply_bytes is the failure).
      count_ /= 2;
      co_return;
    }
    note_failure(failure);
  }

  // True for an error reply saying that Redis cannot answer yet but will: loading its data after a
  // restart, running a script, a cluster or replica not ready. Retried like a lost connection.
  static bool not_ready(const reply& r) {
    if (!r.is_error()) return false;
    for (const std::string_view prefix : {"LOADING ", "BUSY ", "TRYAGAIN ", "MASTERDOWN ", "CLUSTERDOWN "}) {
      if (r.text.starts_with(prefix)) return true;
    }
    return false;
  }

  // Connects, with exponential backoff after failures, and fixes the start position on the first
  // success. Returns early once closed. Throws operation_aborted when cancelled, system_error
  // after max_reconnect_attempts consecutive failures, server_error when the key is not a stream.
  boost::asio::awaitable<void> reconnect() {
    for (;;) {
      if (closed_.load()) co_return;
      if (failures_ > 0) {
        if (options_.max_reconnect_attempts != 0 && failures_ >= options_.max_reconnect_attempts) {
          const std::size_t attempts = failures_;
          failures_ = 0;
          throw boost::system::system_error(
              last_failure_, context("gave up after " + std::to_string(attempts) +
                                     " failed attempts to reach Redis; the last one: " + last_failure_what_));
        }
        timer_.expires_after(backoff());
        boost::system::error_code ec;
        co_await timer_.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
        if (closed_.load()) co_return;
        if (ec) throw boost::system::system_error(ec, context("recv cancelled"));
      }
      std::exception_ptr failure;
      boost::system::error_code code;
      try {
        co_await conn_.connect();
        if (!resolved_) co_await resolve_start();
        co_return;
      } catch (const boost::system::system_error& e) {
        failure = std::current_exception();
        code = e.code();
      }
      if (closed_.load()) co_return;
      // Open only with the start fixed: a cancellation between the two steps must not leave a
      // connection that fetch() would read from with an unresolved start.
      conn_.close();
      const boost::asio::cancellation_state cancel = co_await boost::asio::this_coro::cancellation_state;
      if (cancel.cancelled() != boost::asio::cancellation_type::none || code == connection_error::server_error) {
        std::rethrow_exception(failure);
      }
      note_failure(failure);
    }
  }

  // Counts a failed attempt and keeps what it was, without the "aurora::redis <endpoint>: " the
  // connection puts first and the code's message it puts last (the final error adds both again).
  void note_failure(const std::exception_ptr& failure) {
    ++failures_;
    try {
      std::rethrow_exception(failure);
    } catch (const boost::system::system_error& e) {
      last_failure_ = e.code();
      std::string what = e.what();
      const std::string prefix = "aurora::redis " + options_.endpoint.to_string() + ": ";
      const std::string suffix = ": " + e.code().message();
      if (what.starts_with(prefix)) what.erase(0, prefix.size());
      if (what.ends_with(suffix)) what.erase(what.size() - suffix.size());
      last_failure_what_ = std::move(what);
    }
  }

  // reconnect_delay * 2^(failures - 1), at most max_reconnect_delay.
  std::chrono::milliseconds backoff() const noexcept {
    std::chrono::milliseconds delay = options_.reconnect_delay;
    for (std::size_t i = 1; i < failures_ && delay < options_.max_reconnect_delay; ++i) delay *= 2;
    return delay < options_.max_reconnect_delay ? delay : options_.max_reconnect_delay;
  }

  // Where reading starts, fixed once, on the first connection: after(s) reads IDs above 0-s,
  // oldest() from 0-0, now() after the stream's last-generated-id (what XREAD calls `$`), which
  // is asked for here rather than sent as `$` so that a reconnection cannot skip entries.
  boost::asio::awaitable<void> resolve_start() {
    switch (start_.kind()) {
      case Start::Kind::after:
        cursor_ = stream_id(start_.sequence());
        last_sequence_ = start_.sequence();
        break;
      case Start::Kind::oldest:
        cursor_ = "0-0";
        last_sequence_.reset();
        break;
      case Start::Kind::now: {
        const std::vector<command> commands{{"EXISTS", key_}, {"XINFO", "STREAM", key_}};
        const std::vector<reply> replies = co_await conn_.pipeline(commands);
        for (const reply& r : replies) {
          if (not_ready(r))
            throw boost::system::system_error(boost::asio::error::try_again, "Redis is not ready: " + r.text);
        }
        if (replies[0].kind == reply_kind::integer && replies[0].integer == 0) {
          cursor_ = "0-0";  // no stream yet: everything it will hold is new
          last_sequence_.reset();
        } else {
          try {
            cursor_ = last_generated_id(replies[1], key_);
          } catch (const boost::system::system_error& e) {
            throw boost::system::system_error(e.code(), context(aurora::detail::error_context(e)));
          }
          last_sequence_ = sequence_of(cursor_);
          if (cursor_ == "0-0") last_sequence_ = 0;
        }
        break;
      }
    }
    resolved_ = true;
  }

  // Adds the entries of an XREAD reply to the buffer, each preceded by a gap item when entries
  // went missing before it. The cursor advances past every entry, malformed ones included.
  // Returns how many entries the reply held.
  std::size_t absorb(const reply& r) {
    std::vector<StreamEntry> entries;
    try {
      entries = stream_entries(r, key_);
    } catch (const boost::system::system_error& e) {
      if (e.code() == connection_error::protocol_error) conn_.close();
      throw boost::system::system_error(e.code(), context(aurora::detail::error_context(e)));
    }
    for (StreamEntry& entry : entries) {
      cursor_ = entry.id;
      const bool first = !fetched_any_;
      fetched_any_ = true;
      DecodedEntry decoded;
      try {
        decoded = decode_entry(entry);
      } catch (const aurora::error&) {
        if (const auto seq = sequence_of(entry.id)) last_sequence_ = seq;
        buffer_.push_back(item{nullptr, RecvError{}, std::current_exception()});
        continue;
      }
      const std::uint64_t sequence = decoded.event.sequence;
      if (last_sequence_) {
        // The global stream's IDs are every sequence, so a jump is a loss; a collection's stream
        // has gaps by design, and each entry names its predecessor instead.
        std::uint64_t missed = 0;
        if (global_) {
          if (sequence > *last_sequence_ + 1) missed = sequence - *last_sequence_ - 1;
        } else if (decoded.prev > *last_sequence_) {
          missed = decoded.prev - *last_sequence_;
        }
        if (missed > 0) {
          const bool at_start = first && start_.kind() == Start::Kind::after;
          buffer_.push_back(
              item{nullptr, at_start ? RecvError{errc::history_lost, 0} : RecvError{errc::lagged, missed}, nullptr});
        }
      }
      last_sequence_ = sequence;
      buffer_.push_back(item{std::make_shared<const ChangeEvent>(std::move(decoded.event)), RecvError{}, nullptr});
    }
    return entries.size();
  }

  RemoteOptions options_;
  bool global_;
  std::string key_;
  std::optional<EventFilter> filter_;
  Start start_;
  connection conn_;
  boost::asio::steady_timer timer_;  // reconnection backoff
  boost::asio::any_io_executor executor_;

  std::atomic<bool> closed_{false};
  bool busy_ = false;                           // a recv or connect is running
  bool resolved_ = false;                       // the start position is fixed
  bool fetched_any_ = false;                    // an entry was fetched since the start
  std::string cursor_ = "0-0";                  // the ID of the last entry fetched: XREAD reads after it
  std::optional<std::uint64_t> last_sequence_;  // the sequence before the next entry; unknown: no gap check
  std::deque<item> buffer_;                     // fetched, not yet delivered
  std::size_t failures_ = 0;                    // consecutive failed attempts to connect or read
  std::size_t count_ = options_.batch;          // XREAD COUNT: less after a reply too large
  boost::system::error_code last_failure_;      // and what the last one was
  std::string last_failure_what_;
};

}  // namespace aurora::redis::detail
