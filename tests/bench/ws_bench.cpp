// ws_bench: the change feed over WebSocket, one server to many clients on loopback. One program,
// three roles, so that the same client measures Aurora's FeedServer and the Node.js `ws` peer
// (tests/bench/ws-peer/server.js, same command line):
//
//   ws_bench --role server [--port 0] --clients 64 --events N [--rate R] [--strands 0|1]
//       An Aurora Database and FeedServer on one thread (FeedServerOptions::single_threaded;
//       `--strands 1`: a strand per connection, as a server on a multi-threaded context).
//       Prints "listening PORT", waits until `clients` subscriptions to "orders" exist, then
//       inserts N orders (as fast as it can, or R per second), each stamped with "t_ns"
//       (CLOCK_MONOTONIC) just before the insert; exits when its standard input ends (the
//       client run is over: ws_compare.sh closes it then) or after --timeout, printing
//       "cpu SECONDS" (user + system CPU time of the process: what the server spent, whatever
//       the client's share of the machine was).
//   ws_bench --role client --url ws://127.0.0.1:PORT/feed --clients 64 --events N [--label L]
//       `clients` WebSockets on one thread, each sends {"op":"subscribe",...} and reads until it
//       has N events (or was told it missed some with `lagged`). Prints one JSON line: deliveries,
//       deliveries per second (first to last delivery over all clients), missed events, and
//       insert-to-client latency percentiles (now - t_ns, both CLOCK_MONOTONIC).
//   ws_bench --role both ...: server and client in one process (two threads); the smoke test.
//       The client side closes a pipe when it is done, which ends the server as standard input
//       does.
//
// Exit status: 0 when every client got every event and nothing was missed, 1 otherwise, 2 on a
// bad command line.
#include "bench_common.hpp"

#include <aurora/aurora.hpp>
#include <aurora/net/feed_server.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/websocket/stream.hpp>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <iostream>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include <sys/resource.h>
#include <unistd.h>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = boost::beast::websocket;
using tcp = asio::ip::tcp;
using aurora::bench::now_ns;

struct bench_options {
  std::string role;
  std::string url;
  std::string label = "aurora";
  std::uint16_t port = 0;
  std::uint64_t clients = 64;
  std::uint64_t events = 10'000;
  std::uint64_t rate = 0;  // events per second; 0: as fast as possible
  std::uint64_t timeout_s = 120;
  bool strands = false;  // server: a strand per connection (FeedServerOptions::single_threaded off)
};

// -- Server ------------------------------------------------------------------------------------

// The Database as the FeedServer sees it (FeedServer takes any type with these members): each
// subscription a client makes is forwarded, then reported, so that the writer waits on that
// event instead of polling the count.
struct reporting_db {
  aurora::Database& db;
  std::function<void()> subscribed;

  template <class... Args>
  aurora::Subscription subscribe(Args&&... args) {
    aurora::Subscription sub = db.subscribe(std::forward<Args>(args)...);
    subscribed();
    return sub;
  }
  template <class... Args>
  aurora::Subscription subscribe_global(Args&&... args) {
    aurora::Subscription sub = db.subscribe_global(std::forward<Args>(args)...);
    subscribed();
    return sub;
  }
  template <class... Args>
  aurora::Watch watch(Args&&... args) {
    aurora::Watch w = db.watch(std::forward<Args>(args)...);
    subscribed();
    return w;
  }
};

// Inserts the orders once `clients` subscriptions exist (`all_subscribed` is cancelled then, by
// the server's thread, which is also this one), then waits until the client side is done
// (`clients_done` is cancelled when `done` reads the end of its input) and stops the server.
asio::awaitable<void> writer(aurora::Database& db, aurora::net::FeedServer& server, asio::steady_timer& all_subscribed,
                             asio::steady_timer& clients_done, const bool& done, const bench_options& o) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(o.timeout_s);
  if (db.subscriber_count("orders") < o.clients) {
    all_subscribed.expires_at(deadline);
    co_await all_subscribed.async_wait(asio::as_tuple(asio::use_awaitable));  // cancelled or timed out
    if (db.subscriber_count("orders") < o.clients) {
      server.stop();
      co_return;
    }
  }
  const auto start = std::chrono::steady_clock::now();
  for (std::uint64_t i = 0; i < o.events; ++i) {
    if (o.rate > 0) {
      timer.expires_at(start + std::chrono::nanoseconds(i * 1'000'000'000 / o.rate));
      co_await timer.async_wait(asio::use_awaitable);
    } else if (i % 64 == 0) {
      co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);  // let the sessions write
    }
    aurora::Document order = {{"customer", "ada"}, {"amount", i % 500}, {"status", "new"}, {"t_ns", now_ns()}};
    db.insert("orders", std::move(order));
  }
  if (!done) {
    clients_done.expires_at(deadline);
    co_await clients_done.async_wait(asio::as_tuple(asio::use_awaitable));  // cancelled or timed out
  }
  server.stop();
}

// Reads `input` to its end (or an error), then sets `done` and cancels `clients_done`.
asio::awaitable<void> watch_input(asio::posix::stream_descriptor& input, asio::steady_timer& clients_done, bool& done) {
  char buffer[64];
  for (;;) {
    auto [ec, n] = co_await input.async_read_some(asio::buffer(buffer), asio::as_tuple(asio::use_awaitable));
    (void)n;
    if (ec) break;
  }
  done = true;
  clients_done.cancel();
}

// `done_fd`: the descriptor whose end means the client side is done (taken over).
int run_server(const bench_options& o, std::promise<std::uint16_t>* port_out, int done_fd) {
  aurora::Options db_options;
  db_options.channel_capacity = std::max<std::size_t>(10'000, o.events + 1);  // no lag inside the Database
  aurora::Database db(db_options);
  asio::io_context io(1);
  aurora::net::FeedServerOptions options;
  options.port = o.port;
  options.max_queued_messages = o.events + 16;  // the Node peer's queues are unbounded too
  options.max_queued_bytes = std::numeric_limits<std::size_t>::max() / 2;
  options.slow_client_timeout = std::chrono::hours(1);
  options.single_threaded = !o.strands;  // io runs on this thread only, as Node's event loop does
  asio::steady_timer all_subscribed(io);
  asio::steady_timer clients_done(io);
  asio::posix::stream_descriptor input(io, done_fd);
  bool done = false;
  reporting_db source{db, [&] {
                        if (db.subscriber_count("orders") >= o.clients) all_subscribed.cancel();
                      }};
  aurora::net::FeedServer server{io.get_executor(), source, options};
  server.start();
  if (port_out != nullptr) {
    port_out->set_value(server.port());
  } else {
    std::cout << "listening " << server.port() << std::endl;
  }
  const auto rethrow = [](const std::exception_ptr& e) {
    if (e) std::rethrow_exception(e);
  };
  asio::co_spawn(io, watch_input(input, clients_done, done), rethrow);
  asio::co_spawn(io, writer(db, server, all_subscribed, clients_done, done, o),
                 [&input, rethrow](std::exception_ptr e) {
                   boost::system::error_code ignored;
                   input.close(ignored);  // ends watch_input, if the writer stopped first (timed out)
                   rethrow(e);
                 });
  io.run();
  if (port_out == nullptr) {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    const auto seconds = [](const timeval& t) {
      return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
    };
    std::cout << "cpu " << seconds(usage.ru_utime) + seconds(usage.ru_stime) << std::endl;
  }
  return 0;
}

// -- Client ------------------------------------------------------------------------------------

struct client_totals {
  std::uint64_t deliveries = 0;
  std::uint64_t missed = 0;
  std::uint64_t errors = 0;
  std::uint64_t first_ns = std::numeric_limits<std::uint64_t>::max();
  std::uint64_t last_ns = 0;
  std::vector<std::uint64_t> latencies_ns;
};

// The number after `"key":` in `text`, if there is one.
std::optional<std::uint64_t> field(std::string_view text, std::string_view key) {
  const std::size_t at = text.find(key);
  if (at == std::string_view::npos) return std::nullopt;
  const char* begin = text.data() + at + key.size();
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(begin, text.data() + text.size(), v);
  if (ec != std::errc{} || end == begin) return std::nullopt;
  return v;
}

asio::awaitable<void> client(std::string host, std::string port, std::string target, const bench_options& o,
                             client_totals& totals, std::uint64_t& done) {
  auto ex = co_await asio::this_coro::executor;
  tcp::resolver resolver(ex);
  websocket::stream<beast::tcp_stream> ws(ex);
  const auto endpoints = co_await resolver.async_resolve(host, port, asio::use_awaitable);
  co_await beast::get_lowest_layer(ws).async_connect(endpoints, asio::use_awaitable);
  beast::get_lowest_layer(ws).socket().set_option(tcp::no_delay(true));
  beast::get_lowest_layer(ws).expires_never();
  co_await ws.async_handshake(host + ":" + port, target, asio::use_awaitable);
  const std::string subscribe = R"({"op":"subscribe","id":"s1","collection":"orders"})";
  co_await ws.async_write(asio::buffer(subscribe), asio::use_awaitable);
  beast::flat_buffer buffer;
  std::uint64_t seen = 0;
  while (seen < o.events) {
    buffer.consume(buffer.size());
    co_await ws.async_read(buffer, asio::use_awaitable);
    const std::uint64_t now = now_ns();
    const std::string_view text(static_cast<const char*>(buffer.data().data()), buffer.size());
    if (const auto t = field(text, "\"t_ns\":")) {
      ++seen;
      ++totals.deliveries;
      totals.latencies_ns.push_back(now - *t);
      totals.first_ns = std::min(totals.first_ns, now);
      totals.last_ns = now;
    } else if (const auto missed = field(text, "\"missed\":")) {
      seen += *missed;
      totals.missed += *missed;
    } else {
      ++totals.errors;
      std::cerr << "ws_bench: unexpected message: " << text << '\n';
      break;
    }
  }
  ++done;
  auto [ec] = co_await ws.async_close(websocket::close_code::normal, asio::as_tuple(asio::use_awaitable));
  (void)ec;  // the server may reset the connection after the close frame
}

int run_client(const bench_options& o, const std::string& url) {
  // ws://HOST:PORT/TARGET
  constexpr std::string_view scheme = "ws://";
  const std::string_view rest = std::string_view(url).substr(url.rfind(scheme, 0) == 0 ? scheme.size() : 0);
  const std::size_t colon = rest.find(':');
  const std::size_t slash = rest.find('/', colon);
  if (colon == std::string_view::npos) {
    std::cerr << "ws_bench: --url must be ws://HOST:PORT/PATH\n";
    return 2;
  }
  const std::string host(rest.substr(0, colon));
  const std::string port(rest.substr(colon + 1, slash - colon - 1));
  const std::string target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));

  asio::io_context io(1);
  client_totals totals;
  totals.latencies_ns.reserve(o.clients * o.events);
  std::uint64_t done = 0;
  std::uint64_t failed = 0;
  for (std::uint64_t c = 0; c < o.clients; ++c) {
    asio::co_spawn(io, client(host, port, target, o, totals, done), [&failed](const std::exception_ptr& e) {
      if (!e) return;
      ++failed;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& x) {
        std::cerr << "ws_bench: client failed: " << x.what() << '\n';
      }
    });
  }
  io.run_for(std::chrono::seconds(o.timeout_s));
  const bool timed_out = !io.stopped();

  std::sort(totals.latencies_ns.begin(), totals.latencies_ns.end());
  const double seconds =
      totals.last_ns > totals.first_ns ? static_cast<double>(totals.last_ns - totals.first_ns) / 1e9 : 0.0;
  const bool ok = !timed_out && failed == 0 && totals.errors == 0 && totals.missed == 0 && done == o.clients &&
                  totals.deliveries == o.clients * o.events;
  auto us = [&](double p) { return static_cast<double>(aurora::bench::percentile(totals.latencies_ns, p)) / 1e3; };
  aurora::bench::JsonLine line;
  line.str("bench", "ws_fanout")
      .str("server", o.label)
      .u("clients", o.clients)
      .u("events", o.events)
      .u("rate", o.rate)
      .u("deliveries", totals.deliveries)
      .u("missed", totals.missed)
      .f("seconds", seconds)
      .f("deliveries_per_s", seconds > 0 ? static_cast<double>(totals.deliveries) / seconds : 0.0)
      .f("latency_p50_us", us(50))
      .f("latency_p99_us", us(99))
      .f("latency_max_us", us(100))
      .b("ok", ok);
  std::cout << line.text() << std::endl;
  if (timed_out) std::cerr << "ws_bench: timed out after " << o.timeout_s << " s\n";
  return ok ? 0 : 1;
}

bool parse(int argc, char** argv, bench_options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (i + 1 >= argc) return false;
    const std::string_view value = argv[++i];
    const auto number = aurora::bench::parse_u64(value);
    if (arg == "--role") {
      o.role = value;
    } else if (arg == "--url") {
      o.url = value;
    } else if (arg == "--label") {
      o.label = value;
    } else if (arg == "--port" && number && *number <= 65535) {
      o.port = static_cast<std::uint16_t>(*number);
    } else if (arg == "--clients" && number && *number > 0) {
      o.clients = *number;
    } else if (arg == "--events" && number && *number > 0) {
      o.events = *number;
    } else if (arg == "--rate" && number) {
      o.rate = *number;
    } else if (arg == "--timeout" && number && *number > 0) {
      o.timeout_s = *number;
    } else if (arg == "--strands" && (value == "0" || value == "1")) {
      o.strands = value == "1";
    } else {
      return false;
    }
  }
  return o.role == "server" || o.role == "both" || (o.role == "client" && !o.url.empty());
}

int run(int argc, char** argv) {
  bench_options o;
  if (!parse(argc, argv, o)) {
    std::cerr << "usage: ws_bench --role server|client|both [--url ws://HOST:PORT/feed] [--port N] [--clients 64]\n"
                 "                [--events N] [--rate PER_S] [--label NAME] [--timeout S] [--strands 0|1]\n";
    return 2;
  }
  if (o.role == "server") return run_server(o, nullptr, ::dup(STDIN_FILENO));
  if (o.role == "client") return run_client(o, o.url);
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) throw std::system_error(errno, std::generic_category(), "ws_bench: pipe");
  std::promise<std::uint16_t> port;
  auto port_ready = port.get_future();
  std::thread server([&] {
    try {
      run_server(o, &port, pipe_fds[0]);
    } catch (...) {
      try {
        port.set_exception(std::current_exception());  // before the port was known: the client gets it
      } catch (const std::future_error&) {             // after: the client's counts tell
      }
    }
  });
  // However the client side ends: close the pipe (the server stops), then wait for the server.
  struct finish {
    int fd;
    std::thread& server;
    ~finish() {
      ::close(fd);
      server.join();
    }
  } finish_server{pipe_fds[1], server};
  return run_client(o, "ws://127.0.0.1:" + std::to_string(port_ready.get()) + "/feed");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "ws_bench: " << e.what() << '\n';
  } catch (...) {
    std::cerr << "ws_bench: unknown exception\n";
  }
  return 1;
}
