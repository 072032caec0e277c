// Errors of the Redis connection: the aurora::redis::connection_error enum and its category.
#pragma once

#include <boost/system/error_category.hpp>
#include <boost/system/error_code.hpp>

#include <cstddef>
#include <string>
#include <system_error>
#include <type_traits>

namespace aurora::redis {

/// What can go wrong talking to Redis besides the socket's own errors (which arrive as
/// `boost::asio::error` / `boost::system::errc` codes). Values of the `"aurora.redis"` category;
/// usable as `boost::system::error_code` and `std::error_code`. Aurora's RemoteSubscription
/// throws them inside `boost::system::system_error`, whose `what()` says more.
enum class connection_error : int {
  not_connected = 1,  ///< an operation on a connection that is not open (never connected, or closed)
  protocol_error,     ///< the server sent bytes that are not RESP, or a reply of an unexpected shape
  reply_too_large,    ///< a reply grew beyond the connection's `max_reply_bytes`
  server_error,       ///< the server answered a command with an error reply (`-ERR ...`)
};

namespace detail {

class connection_category_impl final : public boost::system::error_category {
 public:
  // A fixed id makes the category compare equal across shared libraries.
  constexpr connection_category_impl() noexcept : boost::system::error_category(0x5d1e'93a4'0c7b'2f86ULL) {}

  const char* name() const noexcept override { return "aurora.redis"; }

  std::string message(int ev) const override { return describe(ev); }

  char const* message(int ev, char* /*buffer*/, std::size_t /*len*/) const noexcept override { return describe(ev); }

 private:
  static const char* describe(int ev) noexcept {
    switch (static_cast<connection_error>(ev)) {
      case connection_error::not_connected: return "not connected to Redis";
      case connection_error::protocol_error: return "Redis protocol error";
      case connection_error::reply_too_large: return "Redis reply larger than the connection allows";
      case connection_error::server_error: return "Redis answered with an error";
    }
    return "unknown aurora.redis error";
  }
};

}  // namespace detail

/// The `"aurora.redis"` error category (one instance per program). Thread-safe.
inline const boost::system::error_category& connection_category() noexcept {
  static const detail::connection_category_impl instance;
  return instance;
}

/// Makes a `boost::system::error_code` (convertible to `std::error_code`) from `e`; found by ADL.
inline boost::system::error_code make_error_code(connection_error e) noexcept {
  return {static_cast<int>(e), connection_category()};
}

}  // namespace aurora::redis

template <>
struct boost::system::is_error_code_enum<aurora::redis::connection_error> : std::true_type {};

template <>
struct std::is_error_code_enum<aurora::redis::connection_error> : std::true_type {};
