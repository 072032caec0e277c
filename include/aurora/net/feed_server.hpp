// FeedServer: serves a Database's change feed over WebSocket (at /feed), and static files over HTTP.
#pragma once

#include <aurora/change_event.hpp>
#include <aurora/detail/uuid.hpp>
#include <aurora/errc.hpp>
#include <aurora/net/protocol.hpp>
#include <aurora/recv_result.hpp>
#include <aurora/subscription.hpp>
#include <aurora/watch.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/buffers_cat.hpp>
#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/role.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/file_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <boost/beast/websocket/teardown.hpp>
#include <boost/system/error_code.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

namespace aurora::net {

/// How a `FeedServer` listens and what it allows. Every member has a safe default.
struct FeedServerOptions {
  /// The IP address to listen on: loopback only unless told otherwise ("0.0.0.0" or "::" for all).
  std::string address = "127.0.0.1";
  /// The TCP port; 0 picks a free one (see `FeedServer::port`).
  std::uint16_t port = 0;
  /// When not empty, WebSocket clients must present it, as `Authorization: Bearer <token>` or as
  /// `?token=<token>` (percent-encoded) on /feed; otherwise they get HTTP 401 and no feed. Static
  /// files are served without it.
  std::string token{};
  /// The browser origins (`Origin` header, e.g. "http://localhost:8080") allowed to open the feed;
  /// others get HTTP 403. Empty: same origin only (the `Origin` must be http(s)://<Host>), with a
  /// Host that is an IP address or `localhost`, so that a page under a name re-pointed at this
  /// address (DNS rebinding) is refused; list origins with other host names. A request without
  /// `Origin` (not a browser) is allowed either way.
  std::vector<std::string> allowed_origins{};
  /// When not empty, the directory whose files `GET /...` serves (`/` is `index.html`). Paths with
  /// `..`, dot-files, backslashes or NUL are refused, and so is anything resolving outside it.
  std::string static_dir{};
  /// The largest client message (WebSocket message) accepted; a larger one closes the
  /// connection with code 1009 (message too big).
  std::size_t max_message_bytes = std::size_t{64} * 1024;
  /// Subscriptions one connection may hold at once; more get a `too_many_subscriptions` error.
  std::size_t max_subscriptions = 64;
  /// Server messages one connection may have waiting to be sent. When full, a subscription's
  /// further events are dropped and counted, and the client gets `lagged` with the count once
  /// it reads again (see `slow_client_timeout`).
  std::size_t max_queued_messages = 1024;
  /// Bytes of server messages one connection may have waiting (a snapshot is always queued). While
  /// either limit is reached, the connection's next client message is not read; a client that
  /// stays so for `slow_client_timeout` is disconnected.
  std::size_t max_queued_bytes = std::size_t{16} * 1024 * 1024;
  /// How long a connection may stay behind (dropping events) before it is disconnected.
  std::chrono::milliseconds slow_client_timeout{10'000};
  /// A WebSocket that receives nothing (not even a pong to the server's ping) for this long is
  /// closed.
  std::chrono::milliseconds idle_timeout{60'000};
  /// Connections served at once; further ones are closed as soon as they are accepted.
  std::size_t max_connections = 1024;
  /// True promises that only one thread runs the executor's context (e.g. `io_context io{1}`
  /// and one `io.run()`): each connection then runs on the executor itself instead of a strand
  /// of its own, which saves a strand hand-off and a shared executor copy on every completion,
  /// and lets the Database wake all connections' receives with one hand-off per publish. With
  /// several threads running the context it is a data race: leave it false (the default).
  bool single_threaded = false;
};

namespace detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace websocket = boost::beast::websocket;
using tcp = boost::asio::ip::tcp;
using http_request = http::request<http::string_body>;

// The Database as the server uses it, type-erased so that FeedServer is one type for every
// BasicDatabase. Both calls throw aurora::error as the Database does. `database` names it to
// clients: `db.id()` when it has one (a durable database: the same after a restart), else a UUID
// made for this server, so that no client state outlives the in-memory database it came from.
struct feed_source {
  std::function<Subscription(const SubscribeRequest&)> subscribe;
  std::function<Watch(const SubscribeRequest&)> watch;
  std::string database;
};

template <class Db>
std::string database_id(const Db& db) {
  if constexpr (requires { db.id(); }) {
    return std::string(db.id());
  } else {
    return aurora::detail::uuid_v7_generator{}.next(std::chrono::system_clock::now());
  }
}

template <class Db>
feed_source make_feed_source(Db& db) {
  return feed_source{
      [&db](const SubscribeRequest& r) {
        return r.collection ? db.subscribe(*r.collection, r.filter, r.start) : db.subscribe_global(r.filter, r.start);
      },
      [&db](const SubscribeRequest& r) { return db.watch(*r.collection, r.filter); },
      database_id(db),
  };
}

inline std::string_view sv(beast::string_view s) noexcept { return {s.data(), s.size()}; }

inline char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

inline bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return lower(x) == lower(y); });
}

// Compares a secret in time independent of where the first difference is.
inline bool same_secret(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  unsigned diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned>(static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i]));
  }
  return diff == 0;
}

inline int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// RFC 3986 percent-decoding; empty on a malformed escape.
inline std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    const int hi = hex_value(s[i + 1]);
    const int lo = hex_value(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

// The value of `key` in the query string of `target` ("/feed?a=1&token=x"), decoded.
inline std::optional<std::string> query_param(std::string_view target, std::string_view key) {
  const std::size_t q = target.find('?');
  if (q == std::string_view::npos) return std::nullopt;
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    const std::size_t amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    const std::size_t eq = pair.find('=');
    if (eq != std::string_view::npos && pair.substr(0, eq) == key) return percent_decode(pair.substr(eq + 1));
  }
  return std::nullopt;
}

// The path of a request target, without its query.
inline std::string_view target_path(std::string_view target) noexcept { return target.substr(0, target.find('?')); }

// The file a GET path names, relative to the static directory, or empty when the path is not
// acceptable: it must start with '/', decode cleanly, and have no NUL, no backslash and no
// segment that is empty-named-with-dots ("." / "..") or starts with '.'. A path ending in '/'
// names its index.html.
inline std::optional<std::string> static_relative_path(std::string_view path) {
  if (path.empty() || path.front() != '/') return std::nullopt;
  const std::optional<std::string> decoded = percent_decode(path);
  if (!decoded) return std::nullopt;
  if (decoded->find('\0') != std::string::npos || decoded->find('\\') != std::string::npos) return std::nullopt;
  std::string rel;
  std::string_view rest = std::string_view(*decoded).substr(1);
  while (!rest.empty()) {
    const std::size_t slash = rest.find('/');
    const std::string_view segment = rest.substr(0, slash);
    rest = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);
    if (segment.empty()) continue;
    if (segment.front() == '.') return std::nullopt;  // "..", "." and dot-files
    if (!rel.empty()) rel.push_back('/');
    rel.append(segment);
  }
  if (rel.empty() || decoded->back() == '/') {
    if (!rel.empty()) rel.push_back('/');
    rel.append("index.html");
  }
  return rel;
}

// The Content-Type for a file name, by its extension.
inline std::string_view content_type(std::string_view name) noexcept {
  const std::size_t dot = name.rfind('.');
  const std::string_view ext = dot == std::string_view::npos ? std::string_view{} : name.substr(dot + 1);
  if (iequals(ext, "html") || iequals(ext, "htm")) return "text/html; charset=utf-8";
  if (iequals(ext, "js") || iequals(ext, "mjs")) return "text/javascript; charset=utf-8";
  if (iequals(ext, "css")) return "text/css; charset=utf-8";
  if (iequals(ext, "json")) return "application/json";
  if (iequals(ext, "png")) return "image/png";
  if (iequals(ext, "svg")) return "image/svg+xml";
  if (iequals(ext, "txt")) return "text/plain; charset=utf-8";
  return "application/octet-stream";
}

// True when `path` is `root` or lies below it (both canonical).
inline bool is_within(const std::filesystem::path& root, const std::filesystem::path& path) {
  auto [r, p] = std::mismatch(root.begin(), root.end(), path.begin(), path.end());
  (void)p;
  return r == root.end();
}

// The layer between a connection's WebSocket and its TCP stream that lets several messages go out
// in one system call. Reads pass through. After `hold_next_write()` the next write is copied into
// a buffer and completes at once, without touching the socket; the next write that is not held
// sends the buffer and itself in one gather write. The session's writer holds each message but
// the last one queued, so a backlog of N messages costs about one write per 64 KiB instead of N,
// and a lone message goes out at once. All writes, Beast's own control frames included, come
// through here one at a time (Beast serialises them), so the byte order on the wire is kept; a
// held control frame goes out with the write that follows it, which the writer always issues.
template <class NextLayer>
class gather_stream {
 public:
  using executor_type = typename NextLayer::executor_type;

  static constexpr std::size_t max_held_bytes = std::size_t{64} * 1024;

  template <class... Args>
  explicit gather_stream(Args&&... args) : next_(std::forward<Args>(args)...) {}

  executor_type get_executor() noexcept { return next_.get_executor(); }
  NextLayer& next_layer() noexcept { return next_; }
  [[nodiscard]] const NextLayer& next_layer() const noexcept { return next_; }

  // The next write is held (unless the buffer is full): a write that is not held follows it.
  void hold_next_write() noexcept { hold_ = true; }

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return next_.async_read_some(buffers, std::forward<Token>(token));
  }

  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    using signature = void(boost::system::error_code, std::size_t);
    const bool hold = hold_ && held_.size() < max_held_bytes;
    hold_ = false;
    if (hold) {
      const std::size_t n = asio::buffer_size(buffers);
      for (const asio::const_buffer b : beast::buffers_range_ref(buffers)) {
        const char* data = static_cast<const char*>(b.data());
        held_.insert(held_.end(), data, data + b.size());
      }
      return asio::async_initiate<Token, signature>(
          [](auto handler, const executor_type& ex, std::size_t written) {
            asio::post(ex, asio::append(std::move(handler), boost::system::error_code{}, written));
          },
          token, get_executor(), n);
    }
    return asio::async_initiate<Token, signature>(
        [this](auto handler, const ConstBuffers& b) {
          if (held_.empty()) {
            next_.async_write_some(b, std::move(handler));
          } else {
            flush_op<ConstBuffers, decltype(handler)>{this, b, std::move(handler)}.start();
          }
        },
        token, buffers);
  }

  // WebSocket teardown (found by Beast through ADL): the next layer's.
  friend void teardown(beast::role_type role, gather_stream& s, boost::system::error_code& ec) {
    using websocket::teardown;
    teardown(role, s.next_, ec);
  }

  template <class Handler>
  friend void async_teardown(beast::role_type role, gather_stream& s, Handler&& handler) {
    using websocket::async_teardown;
    async_teardown(role, s.next_, std::forward<Handler>(handler));
  }

 private:
  // Writes the held bytes and then `buffers` (gathered), until at least one byte of `buffers` is
  // written or an error occurs, and reports only the bytes of `buffers` (a composed write such as
  // asio::async_write takes a write of 0 bytes for the end).
  template <class ConstBuffers, class Handler>
  struct flush_op {
    gather_stream* self;
    ConstBuffers buffers;
    Handler handler;

    void start() {
      const std::array<asio::const_buffer, 1> held{asio::buffer(self->held_)};
      const auto both = beast::buffers_cat(held, buffers);
      auto ex = asio::get_associated_executor(handler, self->get_executor());
      self->next_.async_write_some(both, asio::bind_executor(ex, std::move(*this)));
    }

    void operator()(boost::system::error_code ec, std::size_t n) {
      const std::size_t from_held = std::min(n, self->held_.size());
      self->held_.erase(self->held_.begin(), self->held_.begin() + static_cast<std::ptrdiff_t>(from_held));
      if (!ec && n == from_held && asio::buffer_size(buffers) > 0) {
        start();  // only held bytes went out so far
        return;
      }
      std::move(handler)(ec, n - from_held);
    }
  };

  NextLayer next_;
  std::vector<char> held_;
  bool hold_ = false;
};

class feed_session;

// What the server and its connections share; outlives the FeedServer while connections run.
struct server_state {
  server_state(asio::any_io_executor ex, feed_source src, FeedServerOptions opts)
      : executor(std::move(ex)),
        source(std::move(src)),
        options(std::move(opts)),
        acceptor(asio::make_strand(executor)) {}

  asio::any_io_executor executor;
  feed_source source;
  const FeedServerOptions options;
  std::filesystem::path static_root;  // canonical; empty: no static files
  tcp::acceptor acceptor;             // used on its strand once start() returned
  std::atomic<std::uint16_t> port{0};
  tcp::endpoint endpoint;  // set by start(), under the mutex

  // The JSON text of the events being delivered, shared by the connections that deliver the same
  // event: `to_json` runs once per event, not once per subscriber. Slot `sequence % size` holds
  // the text of the last event with that slot, keyed by the shared event itself, which the slot
  // keeps alive, so its address cannot name another event while cached. Connections read in
  // bursts of up to 64 events at different points of the feed: the slots cover 1,024 sequences.
  // An event whose subscription projected it (filter `fields`) is another object, so another key.
  std::shared_ptr<const std::string> event_text(const std::shared_ptr<const ChangeEvent>& event) {
    auto& slot = texts[event->sequence % texts.size()];
    {
      const std::lock_guard lock(texts_mutex);
      if (slot.first == event) return slot.second;
    }
    auto text = std::make_shared<const std::string>(event_json(*event));
    const std::lock_guard lock(texts_mutex);
    slot = {event, text};
    return text;
  }

  std::mutex texts_mutex;  // guards texts
  std::array<std::pair<std::shared_ptr<const ChangeEvent>, std::shared_ptr<const std::string>>, 1024> texts{};

  std::mutex mutex;  // guards what follows
  bool started = false;
  bool stopped = false;
  std::map<const feed_session*, std::weak_ptr<feed_session>> sessions;

  // Registers a new connection; false once stopped (the connection is then dropped).
  bool add(const std::shared_ptr<feed_session>& s) {
    const std::lock_guard lock(mutex);
    if (stopped) return false;
    sessions.emplace(s.get(), s);
    return true;
  }

  void remove(const feed_session* s) {
    const std::lock_guard lock(mutex);
    sessions.erase(s);
  }

  std::size_t connection_count() {
    const std::lock_guard lock(mutex);
    return sessions.size();
  }
};

// One subscription of a connection. `dropping`: the outgoing queue was full (or the Database
// reported lag), so events are counted in `missed` instead of sent, until the `lagged` notice
// queued for it has been written; then the count restarts. So the client sees its events, then
// `lagged` with exactly how many it missed there, then the events after.
struct sub_entry {
  std::string id;
  std::array<std::shared_ptr<const std::string>, 3> tails;  // event_message_tail, by Transition
  Subscription sub;
  bool active = true;
  bool dropping = false;
  std::uint64_t missed = 0;
};

// A server message waiting to be written: `text`; or, with `lagged` set, the lagged notice of
// that subscription, formatted when written so that it counts every event dropped until then; or,
// with `event` set, an event message written as three gathered parts (head, the event's text
// shared with the other subscribers, this subscription's tail), so nothing is copied per client.
struct outgoing {
  std::string text;
  std::shared_ptr<sub_entry> lagged;
  std::shared_ptr<const std::string> event;
  std::shared_ptr<const std::string> tail;

  static outgoing message(std::string text) { return {std::move(text), nullptr, nullptr, nullptr}; }
  static outgoing lagged_notice(std::shared_ptr<sub_entry> entry) { return {{}, std::move(entry), nullptr, nullptr}; }
  static outgoing event_parts(std::shared_ptr<const std::string> event, std::shared_ptr<const std::string> tail) {
    return {{}, nullptr, std::move(event), std::move(tail)};
  }

  [[nodiscard]] std::size_t size() const noexcept {
    return event ? event_message_head.size() + event->size() + tail->size() : text.size();
  }
};

// One client connection: HTTP requests (static files), and possibly the upgrade to the feed.
// Everything runs on the connection's strand (the executor itself when single_threaded): the
// main coroutine (HTTP, then reading client messages), one writer and one pump per
// subscription. No locks.
class feed_session : public std::enable_shared_from_this<feed_session> {
 public:
  feed_session(std::shared_ptr<server_state> server, tcp::socket socket)
      : server_(std::move(server)),
        opts_(server_->options),
        ws_(std::move(socket)),
        wake_(ws_.get_executor()),
        room_(ws_.get_executor()),
        slow_timer_(ws_.get_executor()),
        stop_timer_(ws_.get_executor()) {}

  asio::any_io_executor executor() { return ws_.get_executor(); }

  // The connection's life: serves it, then releases everything. Never throws.
  static asio::awaitable<void> run(std::shared_ptr<feed_session> self) {
    try {
      co_await self->serve();
    } catch (const std::exception&) {  // a failure ends this connection only
    }
    self->finish();
  }

  // Ends the connection (from any thread): a close frame (1001, going away) if possible, else the
  // TCP connection is closed; in any case within 2 seconds.
  void stop() {
    asio::post(ws_.get_executor(), [self = shared_from_this()] { self->stop_here(); });
  }

 private:
  // -- HTTP ------------------------------------------------------------------------------------

  asio::awaitable<void> serve() {
    beast::flat_buffer buffer;
    beast::tcp_stream& stream = beast::get_lowest_layer(ws_);
    for (;;) {
      if (closing_) co_return;
      http::request_parser<http::string_body> parser;
      parser.header_limit(std::uint32_t{16} * 1024);
      parser.body_limit(std::uint64_t{16} * 1024);
      stream.expires_after(std::chrono::seconds(30));
      auto [ec, n] = co_await http::async_read(stream, buffer, parser, asio::as_tuple(asio::use_awaitable));
      (void)n;
      if (ec) co_return;
      const http_request req = parser.release();
      if (websocket::is_upgrade(req)) {
        co_await serve_feed(req);
        co_return;
      }
      if (!co_await serve_file(req)) co_return;
    }
  }

  // Writes a short plain-text response; true when the connection may go on.
  asio::awaitable<bool> respond(const http_request& req, http::status status, std::string body, bool keep_alive,
                                std::string_view extra_name = {}, std::string_view extra_value = {}) {
    http::response<http::string_body> res{status, req.version()};
    res.set(http::field::server, "aurora");
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    if (!extra_name.empty()) res.set(extra_name, extra_value);
    res.keep_alive(keep_alive && req.keep_alive());
    res.body() = std::move(body);
    res.prepare_payload();
    const bool keep = res.keep_alive();
    beast::get_lowest_layer(ws_).expires_after(std::chrono::seconds(30));
    auto [ec, n] = co_await http::async_write(beast::get_lowest_layer(ws_), res, asio::as_tuple(asio::use_awaitable));
    (void)n;
    co_return !ec && keep;
  }

  asio::awaitable<bool> serve_file(const http_request& req) {
    if (req.method() != http::verb::get) {
      co_return co_await respond(req, http::status::method_not_allowed, "only GET is served here\n", true, "Allow",
                                 "GET");
    }
    const std::string_view path = target_path(sv(req.target()));
    if (server_->static_root.empty()) {
      co_return co_await respond(req, http::status::not_found, "not found (the feed is at /feed)\n", true);
    }
    const std::optional<std::string> rel = static_relative_path(path);
    std::error_code fs_ec;
    std::filesystem::path file;
    if (rel) file = std::filesystem::canonical(server_->static_root / *rel, fs_ec);
    if (!rel || fs_ec || !is_within(server_->static_root, file) || !std::filesystem::is_regular_file(file, fs_ec)) {
      co_return co_await respond(req, http::status::not_found, "not found\n", true);
    }
    http::response<http::file_body> res{http::status::ok, req.version()};
    beast::error_code ec;
    res.body().open(file.c_str(), beast::file_mode::scan, ec);
    if (ec) co_return co_await respond(req, http::status::not_found, "not found\n", true);
    res.set(http::field::server, "aurora");
    res.set(http::field::content_type, content_type(file.filename().string()));
    res.set(http::field::cache_control, "no-cache");
    res.set("X-Content-Type-Options", "nosniff");
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    const bool keep = res.keep_alive();
    beast::get_lowest_layer(ws_).expires_after(std::chrono::seconds(30));
    auto [wec, n] = co_await http::async_write(beast::get_lowest_layer(ws_), res, asio::as_tuple(asio::use_awaitable));
    (void)n;
    co_return !wec && keep;
  }

  bool token_ok(const http_request& req) const {
    if (opts_.token.empty()) return true;
    if (auto it = req.find(http::field::authorization); it != req.end()) {
      const std::string_view value = sv(it->value());
      constexpr std::string_view scheme = "Bearer ";
      if (value.size() > scheme.size() && iequals(value.substr(0, scheme.size()), scheme) &&
          same_secret(value.substr(scheme.size()), opts_.token)) {
        return true;
      }
    }
    const std::optional<std::string> param = query_param(sv(req.target()), "token");
    return param && same_secret(*param, opts_.token);
  }

  bool origin_ok(const http_request& req) const {
    const auto it = req.find(http::field::origin);
    if (it == req.end()) return true;  // not from a browser page
    const std::string_view origin = sv(it->value());
    if (!opts_.allowed_origins.empty()) {
      return std::any_of(opts_.allowed_origins.begin(), opts_.allowed_origins.end(),
                         [&](const std::string& allowed) { return iequals(origin, allowed); });
    }
    const auto host = req.find(http::field::host);
    if (host == req.end()) return false;
    const std::string_view h = sv(host->value());
    // A page whose own host name was re-pointed at this address (DNS rebinding) sends its name as
    // both Host and Origin: without a list, only an IP address or localhost is this server.
    if (!address_or_localhost(h)) return false;
    return iequals(origin, "http://" + std::string(h)) || iequals(origin, "https://" + std::string(h));
  }

  // True when the Host header `h` ("name:port", "1.2.3.4:port", "[::1]:port") names an IP address
  // or localhost.
  static bool address_or_localhost(std::string_view h) {
    std::string_view name = h;
    if (h.starts_with('[')) {
      const std::size_t end = h.find(']');
      if (end == std::string_view::npos) return false;
      boost::system::error_code ec;
      (void)asio::ip::make_address_v6(std::string(h.substr(1, end - 1)), ec);
      return !ec;
    }
    if (const std::size_t colon = h.rfind(':'); colon != std::string_view::npos) name = h.substr(0, colon);
    if (iequals(name, "localhost")) return true;
    boost::system::error_code ec;
    (void)asio::ip::make_address_v4(std::string(name), ec);
    return !ec;
  }

  // -- WebSocket -------------------------------------------------------------------------------

  asio::awaitable<void> serve_feed(const http_request& req) {
    if (target_path(sv(req.target())) != "/feed") {
      co_await respond(req, http::status::not_found, "no WebSocket here: the feed is at /feed\n", false);
      co_return;
    }
    if (!token_ok(req)) {
      co_await respond(req, http::status::unauthorized, "missing or wrong token\n", false, "WWW-Authenticate",
                       "Bearer");
      co_return;
    }
    if (!origin_ok(req)) {
      co_await respond(req, http::status::forbidden, "this Origin may not open the feed\n", false);
      co_return;
    }
    beast::get_lowest_layer(ws_).expires_never();  // the WebSocket's own timeouts take over
    websocket::stream_base::timeout timeouts{};
    timeouts.handshake_timeout = std::chrono::seconds(10);
    timeouts.idle_timeout = opts_.idle_timeout;
    timeouts.keep_alive_pings = true;
    ws_.set_option(timeouts);
    ws_.read_message_max(opts_.max_message_bytes);
    ws_.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(http::field::server, "aurora"); }));
    auto [ec] = co_await ws_.async_accept(req, asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;
    ws_open_ = true;
    ws_.text(true);
    asio::co_spawn(ws_.get_executor(), write_loop(shared_from_this()), asio::detached);
    beast::flat_buffer in;
    for (;;) {
      // While the queue is full, the client's next message waits unread: a client that sends
      // requests without reading what they make (snapshots, errors) stays within the limits, and
      // is disconnected if it stays so for slow_client_timeout.
      while (queue_full() && !closing_ && !finished_) {
        room_.expires_at(asio::steady_timer::time_point::max());
        reader_waiting_ = true;
        arm_slow_timer();
        auto [woken] = co_await room_.async_wait(asio::as_tuple(asio::use_awaitable));
        reader_waiting_ = false;
        (void)woken;  // cancelled: there is room, or the connection ends
      }
      in.consume(in.size());
      auto [rec, n] = co_await ws_.async_read(in, asio::as_tuple(asio::use_awaitable));
      (void)n;
      if (rec || finished_) co_return;  // closed by the client, too big (1009), timed out, or stopped
      if (closing_) continue;
      if (!ws_.got_text()) {
        push_reply(error_message({}, error_code::invalid_message, "binary messages are not accepted: send JSON text"));
        continue;
      }
      handle(beast::buffers_to_string(in.data()));
    }
  }

  void handle(const std::string& text) {
    ClientMessage m = parse_client_message(text);
    if (const auto* e = std::get_if<ProtocolError>(&m)) {
      push_reply(error_message(*e));
      return;
    }
    if (const auto* u = std::get_if<UnsubscribeRequest>(&m)) {
      const auto it = subs_.find(u->id);
      if (it == subs_.end()) {
        push_reply(error_message(u->id, error_code::unknown_subscription,
                                 "unsubscribe: no subscription " + detail::quote(u->id) + " on this connection"));
        return;
      }
      it->second->active = false;
      it->second->sub.unsubscribe();  // its pump receives `closed` and ends
      subs_.erase(it);
      return;
    }
    auto& req = std::get<SubscribeRequest>(m);
    if (subs_.count(req.id) != 0) {
      push_reply(error_message(req.id, error_code::duplicate_subscription,
                               "subscribe: this connection already has a subscription " + detail::quote(req.id)));
      return;
    }
    if (subs_.size() >= opts_.max_subscriptions) {
      push_reply(error_message(
          req.id, error_code::too_many_subscriptions,
          "subscribe: this connection already has " + std::to_string(subs_.size()) + " subscriptions, the limit"));
      return;
    }
    if (req.database && *req.database != server_->source.database) {
      push_reply(error_message(req.id, error_code::database_mismatch,
                               "subscribe: this server's database is " + detail::quote(server_->source.database) +
                                   ", not " + detail::quote(*req.database) + "; start over with a snapshot"));
      return;
    }
    auto entry = std::make_shared<sub_entry>();
    entry->id = req.id;
    for (const Transition t : {Transition::enter, Transition::change, Transition::leave}) {
      entry->tails.at(static_cast<std::size_t>(t)) = std::make_shared<const std::string>(event_message_tail(req.id, t));
    }
    try {
      if (req.snapshot) {
        Watch w = server_->source.watch(req);
        std::string text_out = snapshot_message(req.id, w.snapshot, server_->source.database);
        push(outgoing::message(std::move(text_out)));  // always queued: read only with room left
        entry->sub = std::move(w.subscription);
      } else {
        entry->sub = server_->source.subscribe(req);
      }
    } catch (const aurora::error& e) {
      push_reply(error_message(req.id, errc_name(e.value()), e.what()));
      return;
    }
    subs_.emplace(req.id, entry);
    asio::co_spawn(ws_.get_executor(), pump(shared_from_this(), entry), asio::detached);
  }

  // Moves one subscription's events to the outgoing queue until it is closed. After each receive
  // it takes up to `max_drain` more events that are ready without suspending (one coroutine
  // resumption per burst instead of one per event), then receives again, which lets the writer
  // on this strand run when the receive's time budget is spent.
  static asio::awaitable<void> pump(std::shared_ptr<feed_session> self, std::shared_ptr<sub_entry> entry) {
    constexpr int max_drain = 64;
    try {
      for (;;) {
        RecvResult r = co_await entry->sub.recv();
        for (int taken = 0;; ++taken) {
          if (!entry->active || self->finished_) co_return;
          if (r) {
            self->offer(entry, r);
          } else if (r.error().code == errc::lagged) {
            self->note_missed(entry, r.error().missed, false);
          } else if (r.error().code == errc::empty) {
            break;
          } else {
            if (r.error().code == errc::storage_error) {  // a durable resume could not read the change log
              self->push_reply(error_message(entry->id, errc_name(errc::storage_error),
                                             "the subscription ended: reading the change log failed"));
              entry->active = false;
              self->subs_.erase(entry->id);  // the id may be subscribed again
            }
            co_return;  // closed: unsubscribed, connection ended, or the Database is gone
          }
          if (taken == max_drain) break;
          r = entry->sub.try_recv();
        }
      }
    } catch (const std::exception&) {
      self->abort();  // cannot happen (no cancellation, one receive at a time); end cleanly anyway
    }
  }

  // -- The bounded outgoing queue ----------------------------------------------------------------

  bool has_room(std::size_t bytes) const noexcept {
    return queue_.empty() ||
           (queue_.size() < opts_.max_queued_messages && queued_bytes_ + bytes <= opts_.max_queued_bytes);
  }

  // No room for one more byte (the limits are at least 1, so an empty queue is never full).
  bool queue_full() const noexcept { return !has_room(1); }

  void push(outgoing item) {
    queued_bytes_ += item.size();
    queue_.push_back(std::move(item));
    if (writer_waiting_) wake_.cancel();
  }

  // A reply to the client's own message. A client that sends requests without reading the
  // replies is cut off once twice the queue limit is waiting.
  void push_reply(std::string text) {
    if (queue_.size() >= 2 * opts_.max_queued_messages + opts_.max_subscriptions) {
      abort();
      return;
    }
    push(outgoing::message(std::move(text)));
  }

  void offer(const std::shared_ptr<sub_entry>& entry, const RecvResult& r) {
    if (!entry->dropping) {
      const auto& tail = entry->tails.at(static_cast<std::size_t>(r.transition()));
      outgoing item = outgoing::event_parts(server_->event_text(r.event()), tail);
      if (has_room(item.size())) {
        push(std::move(item));
        return;
      }
    }
    note_missed(entry, 1, true);
  }

  // Counts `n` missed events for `entry`; queues its lagged notice if none is waiting. The
  // notices are outside the queue limits: at most one per subscription waits at a time.
  void note_missed(const std::shared_ptr<sub_entry>& entry, std::uint64_t n, bool queue_full) {
    entry->missed += n;
    if (!entry->dropping) {
      entry->dropping = true;
      push(outgoing::lagged_notice(entry));
    }
    if (queue_full) arm_slow_timer();
  }

  bool behind() const noexcept {
    return std::any_of(subs_.begin(), subs_.end(), [](const auto& s) { return s.second->dropping; });
  }

  void arm_slow_timer() {
    if (slow_armed_) return;
    slow_armed_ = true;
    const std::uint64_t generation = ++slow_generation_;
    slow_timer_.expires_after(opts_.slow_client_timeout);
    slow_timer_.async_wait([self = shared_from_this(), generation](boost::system::error_code ec) {
      if (ec || generation != self->slow_generation_) return;
      self->slow_armed_ = false;
      if (self->behind() || self->reader_waiting_) self->abort();  // it did not catch up in time
    });
  }

  void disarm_slow_timer() {
    if (!slow_armed_) return;
    slow_armed_ = false;
    ++slow_generation_;
    slow_timer_.cancel();
  }

  static asio::awaitable<void> write_loop(std::shared_ptr<feed_session> self) {
    try {
      co_await self->write_all();
    } catch (const std::exception&) {
      self->abort();
    }
  }

  asio::awaitable<void> write_all() {
    for (;;) {
      while (queue_.empty() && !closing_ && !finished_) {
        wake_.expires_at(asio::steady_timer::time_point::max());
        writer_waiting_ = true;
        auto [ec] = co_await wake_.async_wait(asio::as_tuple(asio::use_awaitable));
        writer_waiting_ = false;
        (void)ec;  // cancelled: something to do
      }
      if (finished_) co_return;
      if (closing_) {
        auto [ec] = co_await ws_.async_close(websocket::close_code::going_away, asio::as_tuple(asio::use_awaitable));
        (void)ec;
        co_return;
      }
      outgoing item = std::move(queue_.front());
      queue_.pop_front();
      queued_bytes_ -= item.size();
      if (reader_waiting_ && !queue_full()) {
        reader_waiting_ = false;
        room_.cancel();
      }
      if (item.lagged) {
        if (!item.lagged->active) continue;
        item.text = lagged_message(item.lagged->id, item.lagged->missed);
        item.lagged->missed = 0;
        item.lagged->dropping = false;
      }
      // One system call for several messages: hold this one back when a plain message follows (one
      // that is always written; a lagged notice may be skipped), or the close frame comes next.
      if (!queue_.empty() && !queue_.front().lagged) ws_.next_layer().hold_next_write();
      boost::system::error_code ec;
      if (item.event) {
        const std::array<asio::const_buffer, 3> parts{asio::buffer(event_message_head), asio::buffer(*item.event),
                                                      asio::buffer(*item.tail)};
        std::tie(ec, std::ignore) = co_await ws_.async_write(parts, asio::as_tuple(asio::use_awaitable));
      } else {
        std::tie(ec, std::ignore) =
            co_await ws_.async_write(asio::buffer(item.text), asio::as_tuple(asio::use_awaitable));
      }
      if (ec) {
        abort();
        co_return;
      }
      if (slow_armed_ && !behind() && !reader_waiting_) disarm_slow_timer();
    }
  }

  // -- Ending ----------------------------------------------------------------------------------

  void stop_here() {
    if (finished_) return;
    if (!ws_open_) {
      closing_ = true;
      beast::get_lowest_layer(ws_).close();  // cancels the HTTP read or write
      return;
    }
    if (closing_) return;
    closing_ = true;
    wake_.cancel();
    room_.cancel();
    stop_timer_.expires_after(std::chrono::seconds(2));
    stop_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) self->abort();
    });
  }

  // Drops the connection at once (no close frame): every pending operation completes.
  void abort() {
    closing_ = true;
    beast::get_lowest_layer(ws_).close();
    wake_.cancel();
    room_.cancel();
  }

  void finish() {
    if (finished_) return;
    finished_ = true;
    closing_ = true;
    for (auto& [id, entry] : subs_) {
      entry->active = false;
      entry->sub.unsubscribe();
    }
    subs_.clear();
    queue_.clear();
    queued_bytes_ = 0;
    wake_.cancel();
    room_.cancel();
    slow_timer_.cancel();
    stop_timer_.cancel();
    beast::get_lowest_layer(ws_).close();
    server_->remove(this);
  }

  std::shared_ptr<server_state> server_;
  const FeedServerOptions& opts_;
  websocket::stream<gather_stream<beast::tcp_stream>> ws_;
  asio::steady_timer wake_;        // the writer waits on it; cancel() wakes it
  asio::steady_timer room_;        // the reader waits on it while the queue is full
  asio::steady_timer slow_timer_;  // disconnects a client that stays behind
  asio::steady_timer stop_timer_;  // stop(): the close handshake's deadline
  std::map<std::string, std::shared_ptr<sub_entry>, std::less<>> subs_;
  std::deque<outgoing> queue_;
  std::size_t queued_bytes_ = 0;
  std::uint64_t slow_generation_ = 0;
  bool slow_armed_ = false;
  bool writer_waiting_ = false;  // the writer waits on wake_ (push wakes it only then)
  bool reader_waiting_ = false;  // the reader waits on room_ (the writer wakes it when there is room)
  bool ws_open_ = false;
  bool closing_ = false;
  bool finished_ = false;
};

inline asio::awaitable<void> accept_loop(std::shared_ptr<server_state> state) {
  for (;;) {
    // Each connection on its own strand, unless one thread runs everything anyway.
    tcp::socket socket(state->options.single_threaded ? state->executor
                                                      : asio::any_io_executor(asio::make_strand(state->executor)));
    auto [ec] = co_await state->acceptor.async_accept(socket, asio::as_tuple(asio::use_awaitable));
    if (!state->acceptor.is_open()) co_return;
    if (ec) {
      if (ec == asio::error::operation_aborted) co_return;
      if (ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space || ec == asio::error::no_memory ||
          ec == boost::system::errc::too_many_files_open_in_system) {
        // The connection stays queued, so accepting again at once fails again at once: wait.
        asio::steady_timer pause(state->executor, std::chrono::milliseconds(100));
        (void)co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
      }
      continue;  // e.g. a connection reset before it was accepted
    }
    if (state->connection_count() >= state->options.max_connections) {
      boost::system::error_code ignored;
      socket.close(ignored);
      continue;
    }
    boost::system::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);  // events are small and latency matters: no Nagle
    auto session = std::make_shared<feed_session>(state, std::move(socket));
    if (!state->add(session)) co_return;
    asio::co_spawn(session->executor(), feed_session::run(session), asio::detached);
  }
}

}  // namespace detail

/// Serves a Database's change feed to browsers and other processes: a WebSocket at `/feed`
/// speaking the JSON protocol of `aurora/net/protocol.hpp`, and optionally the static files of a
/// directory (a dashboard page) over HTTP GET.
///
/// ```
/// aurora::net::FeedServer server{io.get_executor(), db, {.port = 0, .token = "s3cret"}};
/// server.start();
/// std::uint16_t port = server.port();
/// ```
/// Each connection is served by coroutines on a strand of the given executor (on the executor
/// itself with `FeedServerOptions::single_threaded`); the server starts no threads. Client messages:
/// `{"op":"subscribe","id":..,"collection":..|null,"filter":{..},
/// "start":"now"|"oldest"|{"after":N},"snapshot":true,"database":..}` and
/// `{"op":"unsubscribe","id":..}`. Server messages: `snapshot` (naming the database, see
/// `database_id`), `event`, `lagged` and `error` (see `FeedServerOptions` for the limits, the
/// token and the Origin check). A malformed message gets an `error` message and the connection
/// stays usable; a text frame that is not UTF-8 is closed by the WebSocket layer with code 1007,
/// as RFC 6455 requires, and so never reaches the JSON parser.
///
/// Lifetime: the Database must outlive every connection, i.e. until `stop()` was called and the
/// executor has run the connections to their end (or its context was destroyed).
///
/// Thread safety: `start`, `port`, `local_endpoint`, `connection_count`, `database_id` and `stop` may be called
/// from any thread; `start` once.
class FeedServer {
 public:
  /// The executor type connections run on.
  using executor_type = boost::asio::any_io_executor;

  /// A server for `db` (any `BasicDatabase`, in memory or durable) whose connections run on
  /// `executor`. Does not listen yet (see `start`). Throws `std::bad_alloc`, and for a database
  /// without `id()` what `std::random_device` throws when the system has no entropy source.
  template <class Db>
  FeedServer(executor_type executor, Db& db, FeedServerOptions options = {})
      : state_(std::make_shared<detail::server_state>(std::move(executor), detail::make_feed_source(db),
                                                      std::move(options))) {}

  FeedServer(const FeedServer&) = delete;
  FeedServer& operator=(const FeedServer&) = delete;

  /// Stops the server (see `stop`).
  ~FeedServer() { stop(); }

  /// Listens on `options.address`:`options.port` and starts accepting connections.
  ///
  /// Errors: `aurora::error(errc::invalid_argument)` when the address is not an IP address,
  /// `static_dir` is not a directory, `max_message_bytes`, `max_queued_messages` or
  /// `max_queued_bytes` is 0, or the server was started before;
  /// `boost::system::system_error` when the socket cannot listen (e.g. the port is taken).
  void start() {
    detail::server_state& s = *state_;
    const std::lock_guard lock(s.mutex);
    if (s.started || s.stopped) throw aurora::error(errc::invalid_argument, "FeedServer::start: called twice");
    boost::system::error_code ec;
    const auto address = boost::asio::ip::make_address(s.options.address, ec);
    if (ec) {
      throw aurora::error(errc::invalid_argument,
                          "FeedServer: options.address " + detail::quote(s.options.address) + " is not an IP address");
    }
    for (const auto& [name, limit] : {std::pair{"max_message_bytes", s.options.max_message_bytes},
                                      std::pair{"max_queued_messages", s.options.max_queued_messages},
                                      std::pair{"max_queued_bytes", s.options.max_queued_bytes}}) {
      // 0 would mean no limit to Beast (max_message_bytes) and no room ever (the queue).
      if (limit == 0) throw aurora::error(errc::invalid_argument, std::string("FeedServer: options.") + name + " is 0");
    }
    if (!s.options.static_dir.empty()) {
      std::error_code fs_ec;
      s.static_root = std::filesystem::canonical(s.options.static_dir, fs_ec);
      if (fs_ec || !std::filesystem::is_directory(s.static_root, fs_ec)) {
        throw aurora::error(errc::invalid_argument, "FeedServer: options.static_dir " +
                                                        detail::quote(s.options.static_dir) + " is not a directory");
      }
    }
    const boost::asio::ip::tcp::endpoint endpoint{address, s.options.port};
    s.acceptor.open(endpoint.protocol());
    s.acceptor.set_option(boost::asio::socket_base::reuse_address(true));
    s.acceptor.bind(endpoint);
    s.acceptor.listen(boost::asio::socket_base::max_listen_connections);
    s.endpoint = s.acceptor.local_endpoint();
    s.port = s.endpoint.port();
    s.started = true;
    boost::asio::co_spawn(s.acceptor.get_executor(), detail::accept_loop(state_), boost::asio::detached);
  }

  /// The port it listens on (the one picked when `options.port` was 0); 0 before `start`.
  [[nodiscard]] std::uint16_t port() const noexcept { return state_->port.load(); }

  /// The address and port it listens on (a default endpoint before `start`).
  [[nodiscard]] boost::asio::ip::tcp::endpoint local_endpoint() const {
    const std::lock_guard lock(state_->mutex);
    return state_->endpoint;
  }

  /// The id snapshot messages give as `"database"`, and that a subscribe's `"database"` must
  /// equal: `db.id()` for a database that has one (`DurableDatabase`: the same after reopening
  /// the file), else a UUID made by this server (an in-memory database dies with its process).
  [[nodiscard]] const std::string& database_id() const noexcept { return state_->source.database; }

  /// How many connections are open (HTTP or WebSocket).
  [[nodiscard]] std::size_t connection_count() const { return state_->connection_count(); }

  /// Stops accepting and ends every connection: WebSockets get a close frame (1001, going
  /// away), or are dropped if that cannot be sent within 2 seconds. Returns at once; the
  /// connections end as the executor runs. Idempotent; the server cannot be started again.
  void stop() noexcept {
    try {
      std::vector<std::shared_ptr<detail::feed_session>> live;
      {
        const std::lock_guard lock(state_->mutex);
        state_->stopped = true;
        for (auto& [key, weak] : state_->sessions) {
          if (auto s = weak.lock()) live.push_back(std::move(s));
        }
      }
      boost::asio::post(state_->acceptor.get_executor(), [state = state_] {
        boost::system::error_code ignored;
        state->acceptor.close(ignored);
      });
      for (auto& s : live) s->stop();
    } catch (...) {  // only bad_alloc; nothing sensible to do in a destructor
    }
  }

 private:
  std::shared_ptr<detail::server_state> state_;
};

}  // namespace aurora::net
