// Helpers shared by the stress and reliability tests: sizes from the environment, a watchdog,
// seeds, and running an io_context on several threads.
#pragma once

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#ifndef AURORA_STRESS_DEFAULT_EVENTS
#define AURORA_STRESS_DEFAULT_EVENTS 100000
#endif

namespace aurora_test {

/// The unsigned integer in environment variable `name`, or `fallback` when unset or malformed.
inline std::uint64_t env_u64(const char* name, std::uint64_t fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  char* end = nullptr;
  const unsigned long long value = std::strtoull(text, &end, 10);
  if (end == nullptr || *end != '\0') {
    std::fprintf(stderr, "ignoring %s=%s (not a number)\n", name, text);
    return fallback;
  }
  return value;
}

/// How many events the big stress test publishes: AURORA_STRESS_EVENTS, or the configured default.
inline std::uint64_t stress_events() {
  return env_u64("AURORA_STRESS_EVENTS", static_cast<std::uint64_t>(AURORA_STRESS_DEFAULT_EVENTS));
}

/// A seed from AURORA_SEED, or a fresh random one; printed so a failure can be replayed.
inline std::uint64_t seed_for(const char* what) {
  std::uint64_t seed = env_u64("AURORA_SEED", 0);
  if (seed == 0) {
    std::random_device rd;
    seed = (static_cast<std::uint64_t>(rd()) << 32U) ^ rd();
  }
  std::printf("%s: seed %llu (replay with AURORA_SEED=%llu)\n", what, static_cast<unsigned long long>(seed),
              static_cast<unsigned long long>(seed));
  return seed;
}

/// Fails the process (exit code 3, after printing `what` and `report()`) if it is still armed
/// after AURORA_STRESS_TIMEOUT seconds (default `limit`). A hang becomes a failure, never a
/// stuck CI job. Disarmed by its destructor.
class watchdog {
 public:
  watchdog(std::string what, std::chrono::seconds limit, std::function<std::string()> report = {})
      : what_(std::move(what)), report_(std::move(report)) {
    const auto seconds = env_u64("AURORA_STRESS_TIMEOUT", static_cast<std::uint64_t>(limit.count()));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    thread_ = std::thread([this, deadline] {
      std::unique_lock lock(mutex_);
      if (cv_.wait_until(lock, deadline, [this] { return done_; })) return;
      std::fprintf(stderr, "WATCHDOG: '%s' still running after its time limit: failing\n", what_.c_str());
      if (report_) std::fprintf(stderr, "%s\n", report_().c_str());
      std::fflush(nullptr);
      std::_Exit(3);
    });
  }

  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;

  ~watchdog() {
    {
      const std::lock_guard lock(mutex_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  std::string what_;
  std::function<std::string()> report_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

/// Runs `io` on `n` threads; join() waits for every run() to return.
class io_threads {
 public:
  io_threads(boost::asio::io_context& io, int n) {
    for (int i = 0; i < n; ++i) threads_.emplace_back([&io] { io.run(); });
  }
  io_threads(const io_threads&) = delete;
  io_threads& operator=(const io_threads&) = delete;
  ~io_threads() { join(); }
  void join() {
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

 private:
  std::vector<std::thread> threads_;
};

/// A count that threads raise and others wait on (a latch that tells how far it got).
class counter {
 public:
  void add(std::uint64_t n = 1) {
    {
      const std::lock_guard lock(mutex_);
      value_ += n;
    }
    cv_.notify_all();
  }
  void wait_for_at_least(std::uint64_t n) {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return value_ >= n; });
  }
  std::uint64_t value() {
    const std::lock_guard lock(mutex_);
    return value_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::uint64_t value_ = 0;
};

}  // namespace aurora_test
