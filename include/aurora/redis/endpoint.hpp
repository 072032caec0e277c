// Endpoint: where a Redis server listens, parsed from "unix:/path/redis.sock" or "tcp://host:port".
#pragma once

#include <aurora/errc.hpp>

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

namespace aurora::redis {

/// The address of a Redis server: a Unix domain socket or a TCP host and port. A plain value.
///
/// Text forms (what the constructor parses and `to_string` writes):
/// - `"unix:/run/redis/redis.sock"`: a Unix domain socket; the path (relative paths are allowed)
///   must be non-empty, hold no NUL and be at most 107 bytes long (the limit of `sockaddr_un`);
/// - `"tcp://127.0.0.1:6379"`, `"tcp://localhost:6379"`, `"tcp://[::1]:6379"`: a host (an IPv6
///   address in brackets) and a decimal port from 1 to 65535.
///
/// Thread safety: distinct objects are independent; a const object may be shared.
class Endpoint {
 public:
  /// Which transport the endpoint uses.
  enum class Kind {
    tcp,    ///< TCP: `host()` and `port()`
    local,  ///< a Unix domain socket: `path()`
  };

  /// The longest Unix socket path (`sizeof(sockaddr_un::sun_path) - 1` on Linux).
  static constexpr std::size_t max_path_length = 107;

  /// Redis's default, `tcp://127.0.0.1:6379`.
  Endpoint() = default;

  /// Parses `text` (see the class comment). Throws `aurora::error` with `errc::invalid_argument`
  /// and a message naming the text and what is wrong with it.
  explicit Endpoint(std::string_view text) { *this = parse(text); }

  /// A TCP endpoint. Throws `aurora::error(errc::invalid_argument)` for an empty host, a host
  /// holding `[`, `]`, `/` or a NUL, or port 0.
  [[nodiscard]] static Endpoint tcp(std::string host, std::uint16_t port) {
    if (const std::string why = host_problem(host); !why.empty()) fail("tcp://" + host, why);
    if (port == 0) fail("tcp://" + host + ":0", "the port must be from 1 to 65535");
    Endpoint e;
    e.kind_ = Kind::tcp;
    e.host_ = std::move(host);
    e.port_ = port;
    return e;
  }

  /// A Unix domain socket endpoint. Throws `aurora::error(errc::invalid_argument)` for an empty
  /// path, one holding a NUL, or one longer than `max_path_length`.
  [[nodiscard]] static Endpoint local(std::string path) {
    if (const std::string why = path_problem(path); !why.empty()) fail("unix:" + path, why);
    Endpoint e;
    e.kind_ = Kind::local;
    e.host_.clear();
    e.port_ = 0;
    e.path_ = std::move(path);
    return e;
  }

  /// Parses `text` (see the class comment); throws as the constructor does.
  [[nodiscard]] static Endpoint parse(std::string_view text) {
    constexpr std::string_view unix_scheme = "unix:";
    constexpr std::string_view tcp_scheme = "tcp://";
    if (text.starts_with(unix_scheme)) {
      const std::string_view path = text.substr(unix_scheme.size());
      if (const std::string why = path_problem(path); !why.empty()) fail(text, why);
      return local(std::string(path));
    }
    if (!text.starts_with(tcp_scheme)) fail(text, "it must start with \"unix:\" or \"tcp://\"");
    const std::string_view rest = text.substr(tcp_scheme.size());
    std::string_view host;
    std::string_view port;
    if (rest.starts_with('[')) {
      const std::size_t close = rest.find(']');
      if (close == std::string_view::npos) fail(text, "the IPv6 address lacks its closing ']'");
      host = rest.substr(1, close - 1);
      const std::string_view after = rest.substr(close + 1);
      if (!after.starts_with(':')) fail(text, "a ':' and a port must follow the ']'");
      port = after.substr(1);
    } else {
      const std::size_t colon = rest.rfind(':');
      if (colon == std::string_view::npos) fail(text, "the port is missing (tcp://host:port)");
      host = rest.substr(0, colon);
      port = rest.substr(colon + 1);
      if (host.find(':') != std::string_view::npos) fail(text, "an IPv6 address must be in brackets: tcp://[::1]:6379");
    }
    if (const std::string why = host_problem(host); !why.empty()) fail(text, why);
    if (port.empty()) fail(text, "the port is empty");
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535) {
      fail(text, "the port \"" + std::string(port) + "\" is not a number from 1 to 65535");
    }
    return tcp(std::string(host), static_cast<std::uint16_t>(value));
  }

  /// Which transport this is.
  [[nodiscard]] Kind kind() const noexcept { return kind_; }

  /// The host of a TCP endpoint (an IPv6 address without brackets); empty for a Unix socket.
  [[nodiscard]] const std::string& host() const noexcept { return host_; }

  /// The port of a TCP endpoint; 0 for a Unix socket.
  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }

  /// The socket path of a Unix socket endpoint; empty for TCP.
  [[nodiscard]] const std::string& path() const noexcept { return path_; }

  /// The text form, which `parse` reads back to an equal endpoint.
  [[nodiscard]] std::string to_string() const {
    if (kind_ == Kind::local) return "unix:" + path_;
    const bool v6 = host_.find(':') != std::string::npos;
    return "tcp://" + (v6 ? "[" + host_ + "]" : host_) + ":" + std::to_string(port_);
  }

  /// Equal when kind, host, port and path are.
  friend bool operator==(const Endpoint&, const Endpoint&) = default;

 private:
  [[noreturn]] static void fail(std::string_view text, const std::string& why) {
    throw aurora::error(errc::invalid_argument, "aurora::redis::Endpoint \"" + printable(text) + "\": " + why);
  }

  // `text` with control bytes written as \xNN: a NUL would otherwise end the message early.
  static std::string printable(std::string_view text) {
    std::string out;
    for (const char c : text) {
      const auto byte = static_cast<unsigned char>(c);
      if (byte < 0x20 || byte == 0x7f) {
        constexpr char hex[] = "0123456789abcdef";
        out += "\\x";
        out += hex[byte >> 4];
        out += hex[byte & 0xf];
      } else {
        out += c;
      }
    }
    return out;
  }

  // What is wrong with `host`, or "" when nothing is.
  static std::string host_problem(std::string_view host) {
    if (host.empty()) return "the host is empty";
    if (host.find_first_of(std::string_view("[]/\0", 4)) != std::string_view::npos) {
      return "the host must not contain '[', ']', '/' or a NUL";
    }
    return {};
  }

  // What is wrong with the socket path `path`, or "" when nothing is.
  static std::string path_problem(std::string_view path) {
    if (path.empty()) return "the socket path is empty";
    if (path.find('\0') != std::string_view::npos) return "the socket path holds a NUL byte";
    if (path.size() > max_path_length) {
      return "the socket path is " + std::to_string(path.size()) + " bytes long, more than the " +
             std::to_string(max_path_length) + " a Unix socket address holds";
    }
    return {};
  }

  Kind kind_ = Kind::tcp;
  std::string host_ = "127.0.0.1";
  std::uint16_t port_ = 6379;
  std::string path_;
};

}  // namespace aurora::redis
