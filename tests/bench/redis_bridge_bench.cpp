// redis_bridge_bench: events/s through the Redis bridge (Database -> XADD x2 per event in
// MULTI/EXEC batches), end to end to a RemoteSubscription in another thread, and redis-benchmark's
// XADD rate on the same server as the ceiling. One JSON line per workload.
//
//   redis_bridge_bench [--events 200000] [--batch 1024] [--appendfsync always|everysec|no]
//                      [--redis-benchmark on|off]
//
// It starts its own redis-server (Unix socket, append-only file with the fsync policy given) in
// a temporary directory. Exit status: 0, 1 when a count is wrong or something failed, 2 for a bad
// flag, 77 when redis-server is not on PATH (skipped; 1 under CI=true).
#include "../redis/redis_server.hpp"
#include "bench_common.hpp"

#include <aurora/database.hpp>
#include <aurora/options.hpp>
#include <aurora/redis/bridge.hpp>
#include <aurora/redis/remote_subscription.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <stdio.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using aurora::bench::JsonLine;
using clock_type = std::chrono::steady_clock;

namespace {

struct Args {
  std::uint64_t events = 200'000;
  std::uint64_t batch = 1024;
  std::string appendfsync = "always";
  bool redis_benchmark = true;
};

[[noreturn]] void usage() {
  std::fputs(
      "usage: redis_bridge_bench [--events 200000] [--batch 1024] [--appendfsync always|everysec|no]\n"
      "                          [--redis-benchmark on|off]\n",
      stderr);
  std::exit(2);
}

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; i += 2) {
    const std::string_view key = argv[i];
    if (i + 1 >= argc) usage();
    const std::string_view value = argv[i + 1];
    if (key == "--events" || key == "--batch") {
      const auto n = aurora::bench::parse_u64(value);
      if (!n || *n == 0) usage();
      (key == "--events" ? a.events : a.batch) = *n;
    } else if (key == "--appendfsync") {
      if (value != "always" && value != "everysec" && value != "no") usage();
      a.appendfsync = value;
    } else if (key == "--redis-benchmark") {
      if (value != "on" && value != "off") usage();
      a.redis_benchmark = value == "on";
    } else {
      usage();
    }
  }
  return a;
}

JsonLine line(const Args& a, std::string_view workload) {
  JsonLine j;
  j.str("bench", "redis_bridge_bench").str("workload", workload).str("compiler", aurora::bench::compiler_tag());
  j.str("appendfsync", a.appendfsync).u("events", a.events).u("batch", a.batch);
  return j;
}

// An order-like document, about the size of a small real one.
aurora::Document order(std::uint64_t i) {
  return aurora::Document{
      {"sku", "A" + std::to_string(i % 97)}, {"qty", i % 5 + 1}, {"customer", "c-" + std::to_string(i % 1000)}};
}

aurora::redis::BridgeOptions bridge_options(const aurora_test::redis_server& redis, const Args& a,
                                            const std::string& prefix, std::uint64_t& reports) {
  aurora::redis::BridgeOptions o;
  o.endpoint = redis.endpoint();
  o.prefix = prefix;
  o.batch = a.batch;
  o.on_error = [&reports](const aurora::redis::BridgeError& e) {
    ++reports;
    std::fprintf(stderr, "redis_bridge_bench: bridge: %s\n", e.message.c_str());
  };
  return o;
}

// The bridge alone: `events` events already in the Database, time until Redis holds them all.
bool bridge_drain(const aurora_test::redis_server& redis, const Args& a) {
  aurora::Options options;
  options.channel_capacity = static_cast<std::size_t>(a.events) + 16;
  aurora::Database db(options);
  for (std::uint64_t i = 0; i < a.events; ++i) db.insert(i % 2 == 0 ? "orders" : "stock", order(i));
  asio::io_context io;
  std::uint64_t reports = 0;
  aurora::redis::Bridge bridge{io.get_executor(), db, bridge_options(redis, a, "drain:", reports)};
  aurora::bench::RunAccounting accounting;
  accounting.start();
  const auto t0 = clock_type::now();
  bool all = false;
  bridge.start();
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        all = co_await bridge.wait_written(a.events);
        bridge.stop();
      },
      asio::detached);
  io.run();
  const double s = aurora::bench::seconds_between(t0, clock_type::now());
  const aurora::redis::BridgeStats st = bridge.stats();
  JsonLine j = line(a, "bridge_drain");
  j.f("seconds", s).f("events_per_s", static_cast<double>(a.events) / s).u("batches", st.batches);
  j.f("events_per_batch", st.batches ? static_cast<double>(st.events) / static_cast<double>(st.batches) : 0.0);
  j.b("counts_ok", all && st.events == a.events && st.duplicates == 0 && reports == 0);
  accounting.finish(j);
  std::puts(j.text().c_str());
  return all && st.events == a.events && reports == 0;
}

// End to end: a writer and the bridge on one thread (the producing process), a RemoteSubscription
// on the global stream on another (the consuming process); time from the first write until the
// consumer has every event.
bool end_to_end(const aurora_test::redis_server& redis, const Args& a) {
  aurora::Options options;
  options.channel_capacity = static_cast<std::size_t>(a.events) + 16;
  aurora::Database db(options);
  std::uint64_t reports = 0;
  aurora::bench::RunAccounting accounting;
  accounting.start();
  const auto t0 = clock_type::now();

  asio::io_context producer_io;
  aurora::redis::Bridge bridge{producer_io.get_executor(), db, bridge_options(redis, a, "e2e:", reports)};
  bridge.start();
  asio::co_spawn(
      producer_io,
      [&]() -> asio::awaitable<void> {
        for (std::uint64_t i = 0; i < a.events; ++i) {
          db.insert(i % 2 == 0 ? "orders" : "stock", order(i));
          if (i % 512 == 511) co_await asio::post(producer_io, asio::use_awaitable);
        }
        co_await bridge.wait_written(a.events);  // Redis holds everything: the consumer reads on from there
        bridge.stop();
      },
      asio::detached);
  std::thread producer([&] { producer_io.run(); });

  asio::io_context consumer_io;
  std::uint64_t received = 0;
  bool in_order = true;
  aurora::redis::RemoteOptions remote;
  remote.endpoint = redis.endpoint();
  remote.prefix = "e2e:";
  remote.batch = 1024;
  std::exception_ptr failure;
  asio::co_spawn(
      consumer_io,
      [&]() -> asio::awaitable<void> {
        aurora::redis::RemoteSubscription sub{consumer_io.get_executor(), remote, "", std::nullopt,
                                              aurora::Start::after(0)};
        while (received < a.events) {
          const aurora::RecvResult r = co_await sub.recv();
          if (!r) break;
          ++received;
          if (r->sequence != received) in_order = false;
        }
      },
      [&](std::exception_ptr e) { failure = e; });
  consumer_io.run();
  const double s = aurora::bench::seconds_between(t0, clock_type::now());
  producer.join();
  if (failure) std::rethrow_exception(failure);
  JsonLine j = line(a, "end_to_end");
  j.f("seconds", s).f("events_per_s", static_cast<double>(a.events) / s).u("received", received);
  j.b("counts_ok", received == a.events && in_order && reports == 0);
  accounting.finish(j);
  std::puts(j.text().c_str());
  return received == a.events && in_order && reports == 0;
}

// redis-benchmark's XADD rate on the same server, the ceiling: one client, pipelined as deep as
// one bridge batch (2 XADDs per event), entries of the bridge's shape. The bridge makes two XADDs
// per event, so the ceiling in events/s is half the XADD rate.
void redis_benchmark(const aurora_test::redis_server& redis, const Args& a) {
  const std::optional<std::string> exe = aurora_test::find_on_path("redis-benchmark");
  JsonLine j = line(a, "redis_benchmark_xadd");
  if (!exe) {
    j.b("available", false);
    std::puts(j.text().c_str());
    return;
  }
  const std::string doc = R"({"customer":"c-42","qty":3,"sku":"A42"})";
  const std::string depth = std::to_string(2 * a.batch);
  const std::string args = " -n " + std::to_string(2 * a.events) + " -c 1 -P " + depth +
                           " -q XADD bench:xadd '*' seq 42 collection orders id "
                           "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b op Insert ts 2026-11-30T01:55:00.123456Z doc '" +
                           doc + "' prev 41 commit 42";
  const std::string command = *exe + " -s " + redis.socket_path() + args + " 2>&1";
  std::FILE* pipe = ::popen(command.c_str(), "r");
  std::string output;
  if (pipe != nullptr) {
    char buf[512];
    while (std::fgets(buf, sizeof buf, pipe) != nullptr) output += buf;
    ::pclose(pipe);
  }
  // The last "<n> requests per second" of the output (it rewrites a progress line with \r).
  double rate = 0;
  const std::size_t at = output.rfind(" requests per second");
  if (at != std::string::npos) {
    std::size_t begin = output.find_last_of(" :\r\n", at - 1);
    begin = begin == std::string::npos ? 0 : begin + 1;
    rate = std::strtod(output.substr(begin, at - begin).c_str(), nullptr);
  }
  j.b("available", true).str("command", "redis-benchmark -s SOCKET" + args);
  j.f("xadd_per_s", rate).f("ceiling_events_per_s", rate / 2.0);
  std::puts(j.text().c_str());
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse_args(argc, argv);
  const std::optional<std::string> exe = aurora_test::find_on_path("redis-server");
  if (!exe) {
    if (aurora_test::under_ci()) {
      std::fputs("redis_bridge_bench: redis-server is not on PATH, and under CI=true it must run\n", stderr);
      return 1;
    }
    std::puts("redis_bridge_bench: skipped: redis-server is not on PATH (apt-get install redis-server)");
    return 77;
  }
  try {
    aurora_test::redis_server redis(*exe, a.appendfsync);
    bool ok = bridge_drain(redis, a);
    ok = end_to_end(redis, a) && ok;
    if (a.redis_benchmark) redis_benchmark(redis, a);
    return ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "redis_bridge_bench: %s\n", e.what());
    return 1;
  }
}
