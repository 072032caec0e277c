// connection: one Redis connection over Asio (TCP or Unix socket), speaking RESP through hiredis.
#pragma once

#include <aurora/redis/detail/resp.hpp>
#include <aurora/redis/endpoint.hpp>
#include <aurora/redis/error.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <exception>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace aurora::redis::detail {

// Limits of one connection.
struct connection_options {
  // The most bytes one reply may take on the wire; a larger one fails the receive with
  // connection_error::reply_too_large and closes the connection.
  std::size_t max_reply_bytes = std::size_t{64} * 1024 * 1024;
  // How long connect() may take per address before it gives up with error::timed_out.
  std::chrono::milliseconds connect_timeout{5000};
};

// One connection to a Redis server. Commands are encoded with hiredis's redisFormatCommandArgv and
// replies decoded with its redisReader (resp.hpp); Asio does the I/O, on the executor given, and
// no thread is started (a TCP host name is resolved synchronously: give an address to avoid that).
//
// Errors: operations throw boost::system::system_error whose what() names the endpoint and what
// failed. Socket errors keep their Asio / system codes (connection_refused, eof when the server
// closed the connection, ...); connection_error::not_connected, protocol_error and
// reply_too_large come from this class. An error reply from the server is not an exception: it is
// a reply of kind `error`. Every error but a cancelled receive() closes the connection; connect()
// opens it again (the caller decides when).
//
// Cancellation (per-operation, as with `co_await (op || timer.async_wait(use_awaitable))`):
// - receive() leaves the connection usable: a read either completes or takes no byte, and what
//   was read stays in the reader, so a later receive() returns the reply;
// - connect(), send() and pipeline() close the connection (a half-written command or unread
//   replies would desynchronise it) and throw operation_aborted.
// close() cancels every pending operation (they throw operation_aborted).
//
// Thread safety: none; use one connection from one coroutine or strand at a time, with at most
// one send and one receive outstanding. The connection must outlive its pending operations. Not
// movable: the reader refers to it.
class connection {
 public:
  using executor_type = boost::asio::any_io_executor;

  connection(const executor_type& ex, Endpoint endpoint, connection_options options = {})
      : endpoint_(std::move(endpoint)), options_(options), socket_(ex), timer_(ex), reader_(options_.max_reply_bytes) {}

  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  [[nodiscard]] executor_type get_executor() noexcept { return socket_.get_executor(); }

  [[nodiscard]] const Endpoint& endpoint() const noexcept { return endpoint_; }

  // True between a successful connect() and the next error or close().
  [[nodiscard]] bool is_open() const noexcept { return socket_.is_open(); }

  // Replies sent for and not yet received.
  [[nodiscard]] std::size_t pending_replies() const noexcept { return pending_; }

  // Connects to the endpoint, closing any previous connection first. For TCP, tries each address
  // of the host in turn, each for at most connect_timeout. Throws system_error (the last
  // address's error, or timed_out).
  boost::asio::awaitable<void> connect() {
    close();
    reader_.reset();
    std::vector<boost::asio::generic::stream_protocol::endpoint> addresses = resolve();
    boost::system::error_code last;
    for (const auto& address : addresses) {
      timer_.expires_after(options_.connect_timeout);
      auto [order, connect_ec, timer_ec] =
          co_await boost::asio::experimental::make_parallel_group(socket_.async_connect(address, boost::asio::deferred),
                                                                  timer_.async_wait(boost::asio::deferred))
              .async_wait(boost::asio::experimental::wait_for_one(), boost::asio::use_awaitable);
      (void)timer_ec;
      const boost::asio::cancellation_state cancel = co_await boost::asio::this_coro::cancellation_state;
      if (cancel.cancelled() != boost::asio::cancellation_type::none) {
        close();
        throw boost::system::system_error(boost::asio::error::operation_aborted, context("connect cancelled"));
      }
      if (order[0] == 0 && !connect_ec) {
        if (endpoint_.kind() == Endpoint::Kind::tcp) {
          boost::system::error_code ignored;
          socket_.set_option(boost::asio::ip::tcp::no_delay(true), ignored);
        }
        co_return;
      }
      last = order[0] == 0 ? connect_ec : boost::system::error_code(boost::asio::error::timed_out);
      close();
    }
    throw boost::system::system_error(last, context("cannot connect"));
  }

  // Sends `commands` in one write and reads their replies, in order. On any exception (including
  // cancellation) the connection is closed. Precondition: no reply is pending.
  boost::asio::awaitable<std::vector<reply>> pipeline(std::span<const command> commands) {
    // Encoded now, so `commands` need not outlive this call.
    return pipeline_bytes(encode(commands), commands.size());
  }

  // Sends `commands` in one write; their replies are read with receive(). Closes the connection
  // on any exception, including cancellation.
  boost::asio::awaitable<void> send(std::span<const command> commands) {
    return write_bytes(encode(commands), commands.size());
  }

  // Reads the next reply (of the oldest command sent). Cancellation leaves the connection usable
  // (see the class comment); any other error closes it.
  boost::asio::awaitable<reply> receive() {
    for (;;) {
      std::optional<reply> r;
      try {
        r = reader_.next();
      } catch (const boost::system::system_error& e) {
        close();
        throw boost::system::system_error(e.code(), context(reader_.last_error()));
      }
      if (r) {
        if (pending_ > 0) --pending_;
        co_return std::move(*r);
      }
      if (!is_open()) {
        throw boost::system::system_error(connection_error::not_connected, context("receive"));
      }
      boost::system::error_code ec;
      const std::size_t n = co_await socket_.async_read_some(
          boost::asio::buffer(buffer_), boost::asio::redirect_error(boost::asio::use_awaitable, ec));
      if (ec == boost::asio::error::operation_aborted) {
        throw boost::system::system_error(ec, context("receive cancelled"));
      }
      if (ec) {
        close();
        const bool closed_by_peer = ec == boost::asio::error::eof || ec == boost::asio::error::connection_reset;
        throw boost::system::system_error(ec, context(closed_by_peer ? "the server closed the connection" : "read"));
      }
      try {
        reader_.feed(buffer_.data(), n);
      } catch (const boost::system::system_error& e) {
        close();
        throw boost::system::system_error(e.code(), context(reader_.last_error()));
      }
    }
  }

  // Closes the socket: pending operations complete with operation_aborted; replies not yet
  // received are dropped. Idempotent.
  void close() noexcept {
    boost::system::error_code ignored;
    socket_.close(ignored);
    try {
      timer_.cancel();
    } catch (...) {  // cancelling a timer throws only if its reactor's lock fails
    }
    pending_ = 0;
  }

 private:
  [[nodiscard]] std::string context(const std::string& what) const {
    return "aurora::redis " + endpoint_.to_string() + ": " + what;
  }

  static std::string encode(std::span<const command> commands) {
    std::string bytes;
    for (const command& cmd : commands) append_command(bytes, cmd);
    return bytes;
  }

  // The addresses to try, in order.
  std::vector<boost::asio::generic::stream_protocol::endpoint> resolve() {
    std::vector<boost::asio::generic::stream_protocol::endpoint> out;
    if (endpoint_.kind() == Endpoint::Kind::local) {
      out.emplace_back(boost::asio::local::stream_protocol::endpoint(endpoint_.path()));
      return out;
    }
    boost::system::error_code ec;
    const boost::asio::ip::address address = boost::asio::ip::make_address(endpoint_.host(), ec);
    if (!ec) {
      out.emplace_back(boost::asio::ip::tcp::endpoint(address, endpoint_.port()));
      return out;
    }
    // Synchronous: Asio's asynchronous resolver would start a thread.
    boost::asio::ip::tcp::resolver resolver(socket_.get_executor());
    const auto results = resolver.resolve(endpoint_.host(), std::to_string(endpoint_.port()), ec);
    if (ec) throw boost::system::system_error(ec, context("cannot resolve " + endpoint_.host()));
    for (const auto& entry : results) out.emplace_back(entry.endpoint());
    return out;
  }

  boost::asio::awaitable<void> write_bytes(std::string bytes, std::size_t count) {
    if (!is_open()) throw boost::system::system_error(connection_error::not_connected, context("send"));
    pending_ += count;
    boost::system::error_code ec;
    co_await boost::asio::async_write(socket_, boost::asio::buffer(bytes),
                                      boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    if (ec) {
      close();
      throw boost::system::system_error(
          ec,
          context(ec == boost::asio::error::operation_aborted ? "send cancelled (the connection is closed)" : "send"));
    }
  }

  boost::asio::awaitable<std::vector<reply>> pipeline_bytes(std::string bytes, std::size_t count) {
    std::exception_ptr failure;
    std::vector<reply> replies;
    try {
      co_await write_bytes(std::move(bytes), count);
      replies.reserve(count);
      for (std::size_t i = 0; i < count; ++i) replies.push_back(co_await receive());
    } catch (...) {
      failure = std::current_exception();
    }
    if (failure) {
      // Replies left unread would be taken for those of later commands.
      close();
      std::rethrow_exception(failure);
    }
    co_return replies;
  }

  Endpoint endpoint_;
  connection_options options_;
  boost::asio::generic::stream_protocol::socket socket_;
  boost::asio::steady_timer timer_;  // connect_timeout
  reply_reader reader_;
  std::size_t pending_ = 0;
  std::array<char, std::size_t{16} * 1024> buffer_{};
};

}  // namespace aurora::redis::detail
