// Remote consumer: one process writes orders and bridges its change feed to Redis Streams; another
// follows the orders through Redis, stops halfway and resumes where it left off.
//
// The two "processes" are two threads, each with its own io_context, sharing nothing but Redis
// (a real deployment runs them on two machines with the same code). The program starts its own
// redis-server in a temporary directory and stops it at the end; without redis-server on PATH it
// exits with 77 (skipped), or 1 under CI=true.
#include <aurora/aurora.hpp>
#include <aurora/redis/bridge.hpp>
#include <aurora/redis/remote_subscription.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace asio = boost::asio;

extern char** environ;

namespace {

constexpr int order_count = 1000;

// A private redis-server: Unix socket only, in a fresh temporary directory, append-only file.
class RedisServer {
 public:
  explicit RedisServer(const std::string& executable) {
    char pattern[] = "/tmp/aurora-example-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = pattern;
    socket_ = dir_ + "/redis.sock";
    std::vector<std::string> args{executable, "--port", "0",  "--unixsocket", socket_, "--unixsocketperm",
                                  "700",      "--dir",  dir_, "--save",       "",      "--appendonly",
                                  "yes"};
    std::vector<char*> argv;
    argv.reserve(args.size() + 1);
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int out[2];  // the server's log: its last line before it serves is "Ready to accept connections"
    if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      ::dup2(out[1], STDOUT_FILENO);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // dies with this program
      ::execve(executable.c_str(), argv.data(), environ);
      ::_exit(127);
    }
    ::close(out[1]);
    const bool ready = wait_ready(out[0]);
    ::close(out[0]);  // later log lines are dropped (the server ignores SIGPIPE)
    if (ready) return;
    stop();
    throw std::runtime_error("redis-server did not answer on " + socket_ + " within 10 s");
  }

  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  ~RedisServer() {
    stop();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  [[nodiscard]] aurora::redis::Endpoint endpoint() const { return aurora::redis::Endpoint::local(socket_); }

 private:
  void stop() noexcept {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  // Reads the server's output until PING is answered (tried after each chunk), the output ends
  // (it exited) or 10 s have passed.
  [[nodiscard]] bool wait_ready(int fd) const {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    char chunk[4096];
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      pollfd p{fd, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
      if (::read(fd, chunk, sizeof chunk) <= 0) return false;
      if (ping()) return true;
    }
  }

  [[nodiscard]] bool ping() const {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, socket_.c_str(), socket_.size() + 1);  // short: /tmp/aurora-...-XXXXXX/redis.sock
    bool ok = false;
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
      const std::string_view request = "PING\r\n";
      char answer[8] = {};
      ok = ::write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size()) &&
           ::read(fd, answer, 7) == 7 && std::string_view(answer, 7) == "+PONG\r\n";
    }
    ::close(fd);
    return ok;
  }

  std::string dir_;
  std::string socket_;
  pid_t pid_ = -1;
};

std::optional<std::string> find_redis_server() {
  const char* path = std::getenv("PATH");
  std::string_view rest = path != nullptr ? path : "";
  while (!rest.empty()) {
    const std::size_t colon = rest.find(':');
    const std::string candidate = std::string(rest.substr(0, colon)) + "/redis-server";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    rest = colon == std::string_view::npos ? std::string_view() : rest.substr(colon + 1);
  }
  return std::nullopt;
}

// The process that owns the data: takes orders (each a transaction: the order and the stock it
// takes) and bridges every event to Redis. Ends once Redis holds them all.
void producer(const aurora::redis::Endpoint& redis) {
  asio::io_context io;
  aurora::Database db;
  aurora::redis::Bridge bridge{
      io.get_executor(), db,
      aurora::redis::BridgeOptions{
          .endpoint = redis, .prefix = "shop:", .maxlen = 100'000, .on_error = [](const aurora::redis::BridgeError& e) {
            std::cerr << "producer: bridge: " << e.message << "\n";
          }}};
  bridge.start();
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        db.insert("stock", "A1", {{"qty", 1'000'000}});
        for (int i = 1; i <= order_count; ++i) {
          db.transaction([&](aurora::Transaction& tx) {
            tx.insert("orders", {{"sku", "A1"}, {"qty", i % 5 + 1}});
            const int left = (*tx.get("stock", "A1"))["qty"].get<int>() - (i % 5 + 1);
            tx.update("stock", "A1", {{"qty", left}});
          });
          if (i % 100 == 0) co_await asio::post(io, asio::use_awaitable);  // the bridge writes meanwhile
        }
        co_await bridge.wait_written(db.last_sequence());
        std::cout << "producer: Redis holds all " << db.last_sequence() << " events\n";
        bridge.stop();
      },
      asio::detached);
  io.run();
}

// What the consumer process keeps: a real one stores it with its own data.
struct Tally {
  int orders = 0;
  long long quantity = 0;
  std::uint64_t last_sequence = 0;
};

// The other process: follows new orders from Redis until it has handled `want` in total.
asio::awaitable<void> follow(aurora::redis::RemoteSubscription sub, Tally& tally, int want) {
  while (tally.orders < want) {
    const aurora::RecvResult r = co_await sub.recv();
    if (!r) {
      std::cerr << "consumer: " << (r.error().code == aurora::errc::lagged ? "lagged" : "closed") << "\n";
      co_return;
    }
    if (r->sequence <= tally.last_sequence) throw std::runtime_error("an order arrived twice or out of order");
    tally.orders += 1;
    tally.quantity += (*r->document)["qty"].get<int>();
    tally.last_sequence = r->sequence;
  }
}

}  // namespace

int main() {
  const std::optional<std::string> executable = find_redis_server();
  if (!executable) {
    const char* ci = std::getenv("CI");
    if (ci != nullptr && std::string_view(ci) == "true") {
      std::cerr << "remote_consumer: redis-server is not on PATH, and under CI=true this example must run\n";
      return 1;
    }
    std::cout << "remote_consumer: skipped: redis-server is not on PATH (apt-get install redis-server)\n";
    return 77;
  }
  try {
    RedisServer redis(*executable);
    bool producer_failed = false;
    std::thread producing([&] {
      try {
        producer(redis.endpoint());
      } catch (const std::exception& e) {
        std::cerr << "producer: " << e.what() << "\n";
        producer_failed = true;
      }
    });

    // The consumer process: new orders only, from the beginning of the stream.
    const aurora::redis::RemoteOptions remote{.endpoint = redis.endpoint(), .prefix = "shop:"};
    const aurora::EventFilter new_orders{.operation = aurora::OperationType::Insert};
    Tally tally;
    {
      // First run: half the orders, then it stops (as a process that is restarted would).
      asio::io_context io;
      asio::co_spawn(io,
                     follow(aurora::redis::RemoteSubscription{io.get_executor(), remote, "orders", new_orders,
                                                              aurora::Start::after(0)},
                            tally, order_count / 2),
                     [](const std::exception_ptr& e) {
                       if (e) std::rethrow_exception(e);
                     });
      io.run();
    }
    std::cout << "consumer: stopped after " << tally.orders << " orders, at sequence " << tally.last_sequence << "\n";
    {
      // Second run: resumes right after the last order it handled.
      asio::io_context io;
      asio::co_spawn(io,
                     follow(aurora::redis::RemoteSubscription{io.get_executor(), remote, "orders", new_orders,
                                                              aurora::Start::after(tally.last_sequence)},
                            tally, order_count),
                     [](const std::exception_ptr& e) {
                       if (e) std::rethrow_exception(e);
                     });
      io.run();
    }
    producing.join();

    long long expected_quantity = 0;
    for (int i = 1; i <= order_count; ++i) expected_quantity += i % 5 + 1;
    std::cout << "consumer: " << tally.orders << " orders, " << tally.quantity << " items in total\n";
    if (producer_failed || tally.orders != order_count || tally.quantity != expected_quantity) {
      std::cerr << "remote_consumer: expected " << order_count << " orders and " << expected_quantity << " items\n";
      return 1;
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "remote_consumer: " << e.what() << "\n";
    return 1;
  }
}
