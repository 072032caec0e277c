// db_bench: the whole change-feed path as users run it: `db.insert` of ~100-byte documents from
// W writer threads, delivered to N subscriptions (a quarter of them filtered to a quarter of the
// events) that `co_await sub.recv()` on an io_context run by 2 threads. One JSON line per
// configuration: inserts/s, deliveries/s, insert-to-receive latency percentiles and VmHWM.
//
//   db_bench                                   # the matrix: --writers 1,4 x --subs 1,16,64
//   db_bench --writers 4 --subs 64 --events 200000
//   db_bench --writers 1 --subs 0                  # the write path alone, nobody subscribed
//
// With several configurations the program runs each in a fresh copy of itself (/proc/self/exe),
// so that every line's VmHWM is that configuration's own peak.
//
// Flow control as in hub_bench's fanout: every --check-every inserts a writer waits (yields)
// while the inserts run more than --window events ahead of the slowest subscription, so that
// nobody lags; --window 0 gives a firehose and reports lag instead. The latency is measured
// from just before `db.insert` to the receiving coroutine (the document carries the time), so
// under flow control it includes the queueing of up to --window events: it is the latency of a
// saturated feed, not of an idle one (see hub_bench --workload latency for that).
#include "bench_common.hpp"

#include <aurora/aurora.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

extern char** environ;

namespace {

namespace asio = boost::asio;
using aurora::bench::JsonLine;
using aurora::bench::PaddedCounter;

// ------------------------------------------------------------------------------------ arguments

struct Args {
  std::vector<std::uint64_t> writers{1, 4};
  std::vector<std::uint64_t> subs{1, 16, 64};
  std::uint64_t events = 200'000;  // inserts per configuration, all writers together
  std::uint64_t threads = 2;       // io_context threads running the subscriptions
  std::uint64_t capacity = 10'000;
  std::optional<std::uint64_t> window;
  std::uint64_t check_every = 256;
  std::uint64_t filtered_every = 4;  // subscription i is filtered when i % K == K - 1 (0: none)
  std::uint64_t payload_bytes = 100;
  std::uint64_t run_id = 0;
};

[[noreturn]] void usage() {
  std::fputs(
      "usage: db_bench [--writers 1,4] [--subs 1,16,64] [--events 200000] [--threads 2] [--capacity 10000]\n"
      "                [--window capacity/2] [--check-every 256] [--filtered-every 4] [--payload-bytes 100]\n"
      "                [--run-id R]\n",
      stderr);
  std::exit(2);
}

std::uint64_t parse_number(std::string_view s) {
  const auto n = aurora::bench::parse_u64(s);
  if (!n) usage();
  return *n;
}

std::vector<std::uint64_t> parse_list(std::string_view s) {
  std::vector<std::uint64_t> out;
  while (!s.empty()) {
    const auto comma = s.find(',');
    out.push_back(parse_number(s.substr(0, comma)));
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
  }
  if (out.empty()) usage();
  return out;
}

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; i += 2) {
    const std::string_view key = argv[i];
    if (i + 1 >= argc) usage();
    const std::string_view value = argv[i + 1];
    if (key == "--writers")
      a.writers = parse_list(value);
    else if (key == "--subs")
      a.subs = parse_list(value);
    else if (key == "--events")
      a.events = parse_number(value);
    else if (key == "--threads")
      a.threads = parse_number(value);
    else if (key == "--capacity")
      a.capacity = parse_number(value);
    else if (key == "--window")
      a.window = parse_number(value);
    else if (key == "--check-every")
      a.check_every = std::max<std::uint64_t>(1, parse_number(value));
    else if (key == "--filtered-every")
      a.filtered_every = parse_number(value);
    else if (key == "--payload-bytes")
      a.payload_bytes = parse_number(value);
    else if (key == "--run-id")
      a.run_id = parse_number(value);
    else
      usage();
  }
  if (!a.window) a.window = a.capacity / 2;
  if (a.capacity == 0 || a.threads == 0 || a.events == 0) usage();
  for (const std::uint64_t w : a.writers) {
    if (w == 0) usage();
  }
  return a;
}

// Runs every configuration in a fresh copy of this program; returns the worst exit status.
int run_matrix(const Args& a) {
  int status = 0;
  for (const std::uint64_t w : a.writers) {
    for (const std::uint64_t n : a.subs) {
      std::vector<std::string> args = {"db_bench",
                                       "--writers",
                                       std::to_string(w),
                                       "--subs",
                                       std::to_string(n),
                                       "--events",
                                       std::to_string(a.events),
                                       "--threads",
                                       std::to_string(a.threads),
                                       "--capacity",
                                       std::to_string(a.capacity),
                                       "--window",
                                       std::to_string(*a.window),
                                       "--check-every",
                                       std::to_string(a.check_every),
                                       "--filtered-every",
                                       std::to_string(a.filtered_every),
                                       "--payload-bytes",
                                       std::to_string(a.payload_bytes),
                                       "--run-id",
                                       std::to_string(a.run_id)};
      std::vector<char*> argv;
      for (auto& s : args) argv.push_back(s.data());
      argv.push_back(nullptr);
      std::fflush(stdout);
      pid_t pid = 0;
      if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(), environ) != 0) {
        std::perror("db_bench: posix_spawn");
        return 1;
      }
      int child = 0;
      if (waitpid(pid, &child, 0) < 0 || !WIFEXITED(child) || WEXITSTATUS(child) != 0) status = 1;
    }
  }
  return status;
}

// ------------------------------------------------------------------------------------ latency

// Log-linear histogram of nanoseconds: exact below 64, then 32 buckets per power of two
// (a bucket is at most 1/32 = 3 % wide). Fixed size: recording never allocates.
class Histogram {
 public:
  void record(std::uint64_t ns) noexcept {
    ++counts_[index(ns)];
    ++total_;
    max_ = std::max(max_, ns);
  }

  void merge(const Histogram& other) noexcept {
    for (std::size_t i = 0; i < buckets; ++i) counts_[i] += other.counts_[i];
    total_ += other.total_;
    max_ = std::max(max_, other.max_);
  }

  // Nearest rank; reports the upper edge of the bucket holding that rank.
  [[nodiscard]] std::uint64_t percentile(double p) const noexcept {
    if (total_ == 0) return 0;
    auto rank = static_cast<std::uint64_t>(std::ceil(p / 100.0 * static_cast<double>(total_)));
    rank = std::clamp<std::uint64_t>(rank, 1, total_);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < buckets; ++i) {
      seen += counts_[i];
      if (seen >= rank) return std::min(upper_edge(i), max_);
    }
    return max_;
  }

  [[nodiscard]] std::uint64_t max() const noexcept { return max_; }

 private:
  static constexpr std::size_t linear = 64;
  static constexpr std::size_t per_octave = 32;
  static constexpr std::size_t buckets = linear + (64 - 6) * per_octave;

  static std::size_t index(std::uint64_t v) noexcept {
    if (v < linear) return static_cast<std::size_t>(v);
    const auto e = static_cast<std::size_t>(std::bit_width(v)) - 1;  // 6..63
    const auto sub = static_cast<std::size_t>((v >> (e - 5)) & (per_octave - 1));
    return linear + (e - 6) * per_octave + sub;
  }

  static std::uint64_t upper_edge(std::size_t i) noexcept {
    if (i < linear) return i;
    const std::size_t e = (i - linear) / per_octave + 6;
    const std::size_t sub = (i - linear) % per_octave;
    const std::uint64_t base = std::uint64_t{1} << e;
    const std::uint64_t step = std::uint64_t{1} << (e - 5);
    return base + (sub + 1) * step - 1;
  }

  std::array<std::uint64_t, buckets> counts_{};
  std::uint64_t total_ = 0;
  std::uint64_t max_ = 0;
};

// ------------------------------------------------------------------------------------ the run

constexpr std::string_view collection = "users";

struct SubResult {
  std::uint64_t got = 0;
  std::uint64_t lagged_total = 0;
  std::uint64_t lag_errors = 0;
  std::uint64_t order_errors = 0;
  Histogram latency;
};

struct Shared {
  std::uint64_t subs = 0;
  std::unique_ptr<PaddedCounter[]> progress;  // the sequence each subscription has reached
  std::atomic<std::uint64_t> ready{0};
  std::atomic<std::uint64_t> inserted{0};

  std::mutex mutex;  // guards what follows
  SubResult total;
  std::uint64_t min_got = UINT64_MAX;
  std::uint64_t finished = 0;
  std::chrono::steady_clock::time_point t_end;
};

std::uint64_t field_u64(const aurora::Document& doc, const char* key) {
  const auto it = doc.find(key);
  return it != doc.end() && it->is_number_unsigned() ? it->get<std::uint64_t>() : 0;
}

// Receives until the end marker (a document with "end": true, which every filter passes).
asio::awaitable<void> subscriber(aurora::Subscription sub, Shared& sh, std::size_t idx) {
  sh.ready.fetch_add(1, std::memory_order_release);
  auto r = std::make_unique<SubResult>();
  std::uint64_t last_sequence = 0;
  for (;;) {
    const aurora::RecvResult res = co_await sub.recv();
    if (res) {
      const aurora::ChangeEvent& ev = *res;
      const aurora::Document& doc = *ev.document;
      if (doc.contains("end")) {
        sh.progress[idx].value.store(UINT64_MAX / 2, std::memory_order_relaxed);
        break;
      }
      r->latency.record(aurora::bench::now_ns() - field_u64(doc, "t"));
      if (ev.sequence <= last_sequence) ++r->order_errors;
      last_sequence = ev.sequence;
      if ((++r->got & 15) == 0) sh.progress[idx].value.store(last_sequence, std::memory_order_relaxed);
    } else if (res.error().code == aurora::errc::lagged) {
      r->lagged_total += res.error().missed;
      ++r->lag_errors;
    } else {
      break;  // closed
    }
  }
  const std::lock_guard lock(sh.mutex);
  sh.total.got += r->got;
  sh.total.lagged_total += r->lagged_total;
  sh.total.lag_errors += r->lag_errors;
  sh.total.order_errors += r->order_errors;
  sh.total.latency.merge(r->latency);
  sh.min_got = std::min(sh.min_got, r->got);
  if (++sh.finished == sh.subs) sh.t_end = std::chrono::steady_clock::now();
}

// A user's document; "t" is set just before the insert.
aurora::Document make_document(std::uint64_t shard, const std::string& note) {
  return {{"name", "Ada Lovelace"}, {"age", 36}, {"shard", shard}, {"t", std::uint64_t{0}}, {"note", note}};
}

// The size of a document as JSON text, with a realistic 13-digit "t".
std::size_t document_bytes(const std::string& note) {
  aurora::Document doc = make_document(0, note);
  doc["t"] = std::uint64_t{1'000'000'000'000};
  return doc.dump().size();
}

// The note that makes a serialized document about `payload_bytes` long.
std::string make_note(std::uint64_t payload_bytes) {
  const std::size_t base = document_bytes("");
  return std::string(payload_bytes > base ? static_cast<std::size_t>(payload_bytes) - base : 0, 'x');
}

// Inserts `count` documents; shard = i % 4, so a filter on one shard passes a quarter of them.
// Each is a copy of one template with its fields set, as a program filling in a record would do
// (building each from an initializer list would cost more than the insert itself).
void writer(aurora::Database& db, Shared& sh, const Args& a, std::uint64_t count, const std::string& note) {
  const std::uint64_t window = *a.window;
  const aurora::Document templ = make_document(0, note);
  for (std::uint64_t i = 0; i < count; ++i) {
    if (window > 0 && i % a.check_every == 0) {
      for (;;) {
        std::uint64_t min_progress = UINT64_MAX;
        for (std::uint64_t k = 0; k < sh.subs; ++k) {
          min_progress = std::min(min_progress, sh.progress[k].value.load(std::memory_order_relaxed));
        }
        const std::uint64_t head = sh.inserted.load(std::memory_order_relaxed);
        if (head <= min_progress || head - min_progress <= window) break;
        std::this_thread::yield();
      }
    }
    aurora::Document doc = templ;
    doc["shard"] = i % 4;
    doc["t"] = aurora::bench::now_ns();
    db.insert(collection, std::move(doc));
    sh.inserted.fetch_add(1, std::memory_order_relaxed);
  }
}

int run_one(const Args& a) {
  const std::uint64_t w = a.writers.front();
  const std::uint64_t n = a.subs.front();  // 0: the write path alone
  aurora::bench::RunAccounting accounting;
  accounting.start();

  auto db =
      std::make_unique<aurora::Database>(aurora::Options{.channel_capacity = static_cast<std::size_t>(a.capacity)});
  asio::io_context ioc(static_cast<int>(a.threads));
  Shared sh;
  sh.subs = n;
  sh.progress = std::make_unique<PaddedCounter[]>(static_cast<std::size_t>(std::max<std::uint64_t>(1, n)));
  std::uint64_t filtered = 0;
  for (std::size_t i = 0; i < n; ++i) {
    std::optional<aurora::EventFilter> filter;
    if (a.filtered_every > 0 && i % a.filtered_every == a.filtered_every - 1) {
      filter = aurora::EventFilter{{}, {{"shard", 0}}};
      ++filtered;
    }
    asio::co_spawn(ioc, subscriber(db->subscribe(collection, std::move(filter)), sh, i), asio::detached);
  }
  std::vector<std::thread> io_threads;
  for (std::uint64_t i = 0; i < a.threads; ++i) io_threads.emplace_back([&ioc] { ioc.run(); });
  while (sh.ready.load(std::memory_order_acquire) < n) std::this_thread::yield();

  const std::string note = make_note(a.payload_bytes);
  std::uint64_t expected_filtered = 0;  // how many documents pass the shard filter
  std::vector<std::uint64_t> counts;
  for (std::uint64_t k = 0; k < w; ++k) {
    counts.push_back(a.events / w + (k < a.events % w ? 1 : 0));
    expected_filtered += (counts.back() + 3) / 4;
  }
  const auto t0 = std::chrono::steady_clock::now();
  {
    std::vector<std::thread> writers;
    for (std::uint64_t k = 0; k < w; ++k) {
      writers.emplace_back([&db, &sh, &a, &note, c = counts[k]] { writer(*db, sh, a, c, note); });
    }
    for (auto& t : writers) t.join();
  }
  const auto t_inserted = std::chrono::steady_clock::now();
  db->insert(collection, aurora::Document{{"end", true}, {"shard", 0}});
  for (auto& t : io_threads) t.join();
  const std::uint64_t hwm = aurora::bench::vm_hwm_kib();
  if (n == 0) sh.t_end = t_inserted;

  const double insert_s = aurora::bench::seconds_between(t0, t_inserted);
  const double wall = aurora::bench::seconds_between(t0, sh.t_end);
  const std::uint64_t expected = (n - filtered) * a.events + filtered * expected_filtered;
  const SubResult& tot = sh.total;
  JsonLine j;
  j.str("impl", "aurora-db");
  j.str("impl_version", "aurora-0.1.0(" + aurora::bench::compiler_tag() + ")");
  j.str("workload", "db_insert");
  j.u("run_id", a.run_id);
  j.u("writers", w);
  j.u("subs", n);
  j.u("filtered_subs", filtered);
  j.u("threads", a.threads);
  j.u("capacity", a.capacity);
  j.u("window", *a.window);
  j.u("payload_bytes", a.payload_bytes);
  j.u("doc_bytes", document_bytes(note));
  j.u("events", a.events);
  j.f("insert_s", insert_s);
  j.f("wall_s", wall);
  j.f("inserts_per_s", static_cast<double>(a.events) / insert_s);
  j.f("events_per_s", static_cast<double>(a.events) / wall);
  j.f("deliveries_per_s", static_cast<double>(tot.got) / wall);
  j.f("ns_per_delivery", wall * 1e9 / static_cast<double>(std::max<std::uint64_t>(1, tot.got)));
  j.u("deliveries", tot.got);
  j.u("expected_deliveries", expected);
  j.u("min_received_per_sub", n == 0 ? 0 : sh.min_got);
  j.u("lagged_total", tot.lagged_total);
  j.u("lag_errors", tot.lag_errors);
  j.u("order_errors", tot.order_errors);
  j.b("no_lag", tot.lagged_total == 0 && tot.got == expected);
  j.u("lat_p50_ns", tot.latency.percentile(50));
  j.u("lat_p90_ns", tot.latency.percentile(90));
  j.u("lat_p99_ns", tot.latency.percentile(99));
  j.u("lat_p999_ns", tot.latency.percentile(99.9));
  j.u("lat_max_ns", tot.latency.max());
  j.u("vm_hwm_kib", hwm);
  j.u("documents", db->size(collection));
  accounting.finish(j);
  std::puts(j.text().c_str());
  std::fflush(stdout);
  return tot.order_errors == 0 && (*a.window == 0 || tot.got == expected) ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse_args(argc, argv);
  if (a.writers.size() == 1 && a.subs.size() == 1) return run_one(a);
  return run_matrix(a);
}
