// bench_common.hpp: what Aurora's JSON-line benchmarks share: the machine probe, CPU accounting,
// percentiles, number parsing and the one-line JSON writer.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace aurora::bench {

/// A monotonic clock reading (CLOCK_MONOTONIC) in nanoseconds.
inline std::uint64_t now_ns() noexcept {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

/// Seconds between two steady_clock readings.
inline double seconds_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

/// A counter alone on its own pair of cache lines (no false sharing with its neighbours).
struct alignas(128) PaddedCounter {
  std::atomic<std::uint64_t> value{0};
};

/// A spin-wait hint to the CPU (`pause` on x86), as Rust's `std::hint::spin_loop`.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

/// One-way cache-line hand-off between two threads, in ns: `batches` batches of 200 round trips
/// over one 128-byte-aligned atomic, the median batch, halved. The peers' method: about 60-70 ns
/// when both vCPUs run together, far more when the host descheduled one of them.
inline double probe_c2c_oneway_ns(std::size_t batches) {
  constexpr std::uint64_t round_trips = 200;
  const std::uint64_t total = round_trips * batches;
  PaddedCounter line;
  std::thread echo([&line, total] {
    for (std::uint64_t expect = 1; expect < 2 * total; expect += 2) {
      while (line.value.load(std::memory_order_acquire) != expect) cpu_relax();
      line.value.store(expect + 1, std::memory_order_release);
    }
  });
  std::vector<double> per_batch;
  per_batch.reserve(batches);
  std::uint64_t v = 0;
  for (std::size_t b = 0; b < batches; ++b) {
    const auto start = std::chrono::steady_clock::now();
    for (std::uint64_t k = 0; k < round_trips; ++k, v += 2) {
      line.value.store(v + 1, std::memory_order_release);
      while (line.value.load(std::memory_order_acquire) != v + 2) cpu_relax();
    }
    const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
    per_batch.push_back(ns / static_cast<double>(round_trips) / 2.0);
  }
  echo.join();
  std::sort(per_batch.begin(), per_batch.end());
  return per_batch[per_batch.size() / 2];
}

/// The first line of /proc/stat as numbers: user nice system idle iowait irq softirq steal ...
inline std::vector<std::uint64_t> proc_stat_cpu_line() {
  std::ifstream in("/proc/stat");
  std::string label;
  in >> label;
  std::vector<std::uint64_t> fields;
  std::uint64_t x = 0;
  while (fields.size() < 10 && in >> x) fields.push_back(x);
  fields.resize(10, 0);
  return fields;
}

/// CPU time in USER_HZ ticks (10 ms): busy time of the whole machine
/// (user+nice+system+irq+softirq+steal) and utime+stime of this process.
struct CpuTicks {
  std::uint64_t machine_busy = 0;
  std::uint64_t own = 0;
};

inline CpuTicks cpu_ticks() {
  CpuTicks t;
  const auto v = proc_stat_cpu_line();
  t.machine_busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
  std::ifstream in("/proc/self/stat");
  const std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto paren = stat.rfind(')');
  if (paren != std::string::npos) {
    // After "comm)": state is field 3, utime field 14 and stime field 15 (1-based).
    std::istringstream rest(stat.substr(paren + 1));
    std::string field;
    std::uint64_t utime = 0;
    std::uint64_t stime = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
      if (i == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
      if (i == 15) stime = std::strtoull(field.c_str(), nullptr, 10);
    }
    t.own = utime + stime;
  }
  return t;
}

/// Cumulative steal time of this VM (field 8 of /proc/stat's cpu line), in ticks.
inline std::uint64_t steal_ticks() { return proc_stat_cpu_line()[7]; }

/// Peak resident set size of this process (VmHWM), in KiB.
inline std::uint64_t vm_hwm_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::strtoull(line.c_str() + 6, nullptr, 10);
  }
  return 0;
}

/// Nearest-rank percentile of sorted samples (0 when empty).
inline std::uint64_t percentile(const std::vector<std::uint64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  const auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

/// A decimal unsigned number; `_` separators are allowed ("1_000_000"). Empty on anything else.
inline std::optional<std::uint64_t> parse_u64(std::string_view s) {
  std::uint64_t v = 0;
  bool any = false;
  for (const char c : s) {
    if (c == '_') continue;
    if (c < '0' || c > '9') return std::nullopt;
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (v > (UINT64_MAX - digit) / 10) return std::nullopt;
    v = v * 10 + digit;
    any = true;
  }
  if (!any) return std::nullopt;
  return v;
}

/// One JSON object on one line, fields in insertion order; numbers unquoted.
class JsonLine {
 public:
  JsonLine& str(std::string_view key, std::string_view value) {
    std::string quoted = "\"";
    for (const char c : value) {
      if (c == '"' || c == '\\') quoted.push_back('\\');
      quoted.push_back(c);
    }
    quoted.push_back('"');
    return raw(key, quoted);
  }
  JsonLine& u(std::string_view key, std::uint64_t value) { return raw(key, std::to_string(value)); }
  JsonLine& i(std::string_view key, std::int64_t value) { return raw(key, std::to_string(value)); }
  JsonLine& f(std::string_view key, double value) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6f", std::isfinite(value) ? value : 0.0);
    return raw(key, buf);
  }
  JsonLine& b(std::string_view key, bool value) { return raw(key, value ? "true" : "false"); }

  [[nodiscard]] std::string text() const { return "{" + body_ + "}"; }

 private:
  JsonLine& raw(std::string_view key, std::string_view value) {
    if (!body_.empty()) body_.push_back(',');
    body_.push_back('"');
    body_.append(key);
    body_.append("\":");
    body_.append(value);
    return *this;
  }

  std::string body_;
};

/// The accounting every run line ends with: the c2c probe taken before the workload, then steal
/// time, the CPU share of other processes, this process's CPU use and the window's length.
class RunAccounting {
 public:
  /// Probes the machine (warm-up of 20 batches, then 200) and starts the accounting window.
  /// AURORA_BENCH_NO_PROBE=1 skips the probe (it reports 0): for valgrind, where the spinning
  /// threads of the probe would dominate the profile.
  void start() {
    const char* no_probe = std::getenv("AURORA_BENCH_NO_PROBE");
    if (no_probe == nullptr || std::string_view(no_probe) != "1") {
      (void)probe_c2c_oneway_ns(20);
      probe_ns_ = probe_c2c_oneway_ns(200);
    }
    steal0_ = steal_ticks();
    ticks0_ = cpu_ticks();
    wall0_ = std::chrono::steady_clock::now();
  }

  /// Ends the window and appends probe_c2c_oneway_ns, steal_ticks, foreign_cpu_frac,
  /// own_cpu_util and run_wall_s.
  void finish(JsonLine& j) const {
    const double wall_ticks = seconds_between(wall0_, std::chrono::steady_clock::now()) * 100.0;
    const CpuTicks t1 = cpu_ticks();
    const double ncpu = std::max(1.0, static_cast<double>(std::thread::hardware_concurrency()));
    const double own = static_cast<double>(t1.own - std::min(t1.own, ticks0_.own));
    const double busy = static_cast<double>(t1.machine_busy - std::min(t1.machine_busy, ticks0_.machine_busy));
    const double foreign = std::max(0.0, busy - own);
    const std::uint64_t steal1 = steal_ticks();
    j.f("probe_c2c_oneway_ns", probe_ns_);
    j.u("steal_ticks", steal1 - std::min(steal1, steal0_));
    j.f("foreign_cpu_frac", wall_ticks > 0 ? foreign / (wall_ticks * ncpu) : 0.0);
    j.f("own_cpu_util", wall_ticks > 0 ? own / wall_ticks : 0.0);
    j.f("run_wall_s", wall_ticks / 100.0);
  }

 private:
  double probe_ns_ = 0;
  std::uint64_t steal0_ = 0;
  CpuTicks ticks0_;
  std::chrono::steady_clock::time_point wall0_;
};

/// The compiler this binary was built with, e.g. "g++-12.2" or "clang++-14.0".
inline std::string compiler_tag() {
#if defined(__clang__)
  return "clang++-" + std::to_string(__clang_major__) + "." + std::to_string(__clang_minor__);
#elif defined(__GNUC__)
  return "g++-" + std::to_string(__GNUC__) + "." + std::to_string(__GNUC_MINOR__);
#else
  return "c++";
#endif
}

}  // namespace aurora::bench
