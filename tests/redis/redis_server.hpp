// redis_server: a private redis-server for one test or benchmark, in a fresh temporary directory
// (Unix socket only). Free of Catch2, so that tests/bench/redis_bridge_bench.cpp runs the same
// server; the tests' skip-or-fail rule is start_redis_or_skip() in test_support.hpp.
#pragma once

#include <aurora/redis/endpoint.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

extern char** environ;

namespace aurora_test {

// True when the environment says CI=true: there, tests that cannot run fail instead of skipping.
inline bool under_ci() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string_view(ci) == "true";
}

// The full path of `name` on PATH, if it is there and executable.
inline std::optional<std::string> find_on_path(std::string_view name) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return std::nullopt;
  std::string_view rest = path;
  while (!rest.empty()) {
    const std::size_t colon = rest.find(':');
    const std::string_view dir = rest.substr(0, colon);
    rest = colon == std::string_view::npos ? std::string_view() : rest.substr(colon + 1);
    const std::string candidate = std::string(dir.empty() ? "." : dir) + "/" + std::string(name);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

// A redis-server process of its own, as the field notes give it: no TCP port, a Unix socket
// (mode 700) and an append-only file, by default fsynced on every write (`appendfsync` "always",
// so its data survives kill -9; a benchmark may ask for "everysec"), both in a fresh temporary
// directory. start() waits, bounded, until the server answers PING on its
// socket; it waits for the server's log lines (a pipe), not for a fixed time, and tries a PING
// after each. The destructor kills it and removes the directory; should the test process die
// without running it (a signal, a ctest timeout), the kernel kills the server too
// (PR_SET_PDEATHSIG). Not thread-safe; start and restart it from one thread.
class redis_server {
 public:
  // How long start() may wait for the server to answer.
  static constexpr std::chrono::seconds start_limit{20};

  explicit redis_server(std::string executable, std::string appendfsync = "always")
      : executable_(std::move(executable)), appendfsync_(std::move(appendfsync)) {
    char pattern[] = "/tmp/aurora-redis-XXXXXX";  // short: a socket path holds 107 bytes
    if (::mkdtemp(pattern) == nullptr) {
      throw std::system_error(errno, std::generic_category(), "redis_server: mkdtemp");
    }
    dir_ = pattern;
    socket_path_ = dir_ + "/redis.sock";
    try {
      start();
    } catch (...) {
      remove_dir();
      throw;
    }
  }

  redis_server(const redis_server&) = delete;
  redis_server& operator=(const redis_server&) = delete;

  ~redis_server() {
    kill9();
    remove_dir();
  }

  [[nodiscard]] const std::string& dir() const noexcept { return dir_; }
  [[nodiscard]] const std::string& socket_path() const noexcept { return socket_path_; }
  [[nodiscard]] aurora::redis::Endpoint endpoint() const { return aurora::redis::Endpoint::local(socket_path_); }
  [[nodiscard]] bool running() const noexcept { return pid_ > 0; }

  // SIGKILL, then reaps the process. Its socket file and append-only file stay. No-op when stopped.
  void kill9() noexcept {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }

  // Starts the server again on the same socket and directory (after kill9); it reloads its data.
  void restart() {
    kill9();
    start();
  }

 private:
  void start() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "redis_server: pipe2");
    std::vector<std::string> args{
        executable_, "--port", "0", "--unixsocket", socket_path_, "--unixsocketperm", "700",       "--dir",
        dir_,        "--save", "",  "--appendonly", "yes",        "--appendfsync",    appendfsync_};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) {
      const int error = errno;
      ::close(fds[0]);
      ::close(fds[1]);
      throw std::system_error(error, std::generic_category(), "redis_server: fork");
    }
    if (pid == 0) {
      // The child: only async-signal-safe calls until exec. It dies with the test process (this
      // thread), so a test killed by a signal or a ctest timeout leaves no server behind.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      const int null = ::open("/dev/null", O_RDONLY);
      if (null < 0 || ::dup2(null, 0) < 0 || ::dup2(fds[1], 1) < 0 || ::dup2(fds[1], 2) < 0) ::_exit(127);
      if (null > 2) ::close(null);
      ::execve(executable_.c_str(), argv.data(), environ);
      ::_exit(127);
    }
    ::close(fds[1]);
    pid_ = pid;
    std::string log;
    const bool ready = wait_ready(fds[0], log);
    // The server ignores SIGPIPE, so its later log lines are simply dropped.
    ::close(fds[0]);
    if (!ready) {
      kill9();
      throw std::runtime_error("redis_server: " + executable_ + " did not answer PING on " + socket_path_ + " within " +
                               std::to_string(start_limit.count()) + " s; its output:\n" + log);
    }
  }

  // Reads the server's output until a PING on the socket is answered (tried after every chunk of
  // output, the last of which is its "ready to accept connections"), the output ends (it exited)
  // or the time is up.
  bool wait_ready(int fd, std::string& log) {
    const auto deadline = std::chrono::steady_clock::now() + start_limit;
    char chunk[4096];
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd, POLLIN, 0};
      const int polled = ::poll(&p, 1, static_cast<int>(left.count()));
      if (polled < 0 && errno == EINTR) continue;
      if (polled <= 0) return false;
      const ssize_t n = ::read(fd, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;  // it exited
      log.append(chunk, static_cast<std::size_t>(n));
      if (ping()) return true;
    }
  }

  // True when the server answers PING with PONG on its socket now.
  bool ping() const {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, socket_path_.c_str(), socket_path_.size() + 1);
    bool ok = false;
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
      const std::string_view request = "*1\r\n$4\r\nPING\r\n";
      if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size())) {
        std::string answer;
        char buf[64];
        while (answer.size() < 7) {
          pollfd p{fd, POLLIN, 0};
          if (::poll(&p, 1, 5000) <= 0) break;
          const ssize_t n = ::read(fd, buf, sizeof buf);
          if (n <= 0) break;
          answer.append(buf, static_cast<std::size_t>(n));
        }
        ok = answer == "+PONG\r\n";
      }
    }
    ::close(fd);
    return ok;
  }

  void remove_dir() noexcept {
    std::error_code ignored;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
  }

  std::string executable_;
  std::string appendfsync_;
  std::string dir_;
  std::string socket_path_;
  pid_t pid_ = -1;
};

}  // namespace aurora_test
