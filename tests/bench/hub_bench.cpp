// hub_bench: Aurora's broadcast hub (detail::hub, the Database's own, with its subscriptions
// behind aurora::Subscription) on the workloads of the tokio::sync::broadcast peer, with the same
// command line and the same one-line JSON output, so that the peer's run_all.sh, summarize.py
// and report.py run both side by side (the peers' README, "Bench contract").
//
//   hub_bench --workload publish --subs 0 --events 2000000 --event-mode pool
//   hub_bench --workload fanout  --subs 16 --events 1000000 [--idle-subs 1] [--window 0]
//   hub_bench --workload latency --subs 16 --samples 20000 --publisher task|thread
//   hub_bench --workload lag     --events 100000
//
// The event is Aurora's own ChangeEvent carrying the peer's event shape: sequence = the 0-based
// publish index, operation = seq % 3, collection "users", document_id "doc-%08llu", document =
// the payload as a JSON string (one allocation for the string object, one for its characters:
// with make_shared that is 3 allocations per event, as Rust's Arc + 2 Strings). In the latency
// workload `timestamp` carries a CLOCK_MONOTONIC reading rather than wall time. Subscribers
// are global subscriptions: like the peer's one channel, a publish writes one channel (the
// global one), and each publish is what the Database does after it stamped an event.
#include "bench_common.hpp"

#include <aurora/change_event.hpp>
#include <aurora/detail/hub.hpp>
#include <aurora/detail/subscriber.hpp>
#include <aurora/start.hpp>
#include <aurora/subscription.hpp>

#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/defer.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/version.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#ifndef AURORA_BENCH_LOCK
// Free-form design tag of the hub in the JSON "lock" field (a column of report.py); set it with
// -DAURORA_BENCH_LOCK=... when benchmarking a modified ring.
#define AURORA_BENCH_LOCK "slot-spinlock+waiter-mutex"
#endif

namespace {

namespace asio = boost::asio;
using aurora::bench::JsonLine;
using aurora::bench::PaddedCounter;
using aurora::detail::event_ptr;
using event_hub = aurora::detail::hub;

constexpr std::size_t pool_size = 1024;

// ------------------------------------------------------------------------------------ arguments

struct Args {
  std::string workload;
  std::optional<std::uint64_t> subs;
  std::uint64_t events = 0;
  std::uint64_t capacity = 10'000;
  std::uint64_t threads = 2;
  std::string event_mode = "alloc";
  std::uint64_t payload_bytes = 100;
  std::optional<std::uint64_t> window;
  std::uint64_t check_every = 256;
  std::uint64_t samples = 20'000;
  std::uint64_t warmup = 2'000;
  std::uint64_t run_id = 0;
  std::string publisher = "task";
  std::uint64_t idle_subs = 0;
};

[[noreturn]] void usage() {
  std::fputs(
      "usage: hub_bench --workload publish|fanout|latency|lag [--subs N] [--events M] [--capacity 10000]\n"
      "                 [--threads 2] [--event-mode alloc|pool] [--payload-bytes 100] [--window W]\n"
      "                 [--check-every 256] [--idle-subs 0] [--samples 20000] [--warmup 2000]\n"
      "                 [--publisher task|thread] [--run-id R]\n",
      stderr);
  std::exit(2);
}

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; i += 2) {
    const std::string_view key = argv[i];
    if (i + 1 >= argc) usage();
    const std::string_view value = argv[i + 1];
    const auto num = [value] {
      const auto n = aurora::bench::parse_u64(value);
      if (!n) usage();
      return *n;
    };
    if (key == "--workload")
      a.workload = value;
    else if (key == "--subs")
      a.subs = num();
    else if (key == "--events")
      a.events = num();
    else if (key == "--capacity")
      a.capacity = num();
    else if (key == "--threads")
      a.threads = num();
    else if (key == "--event-mode")
      a.event_mode = value;
    else if (key == "--payload-bytes")
      a.payload_bytes = num();
    else if (key == "--window")
      a.window = num();
    else if (key == "--check-every")
      a.check_every = std::max<std::uint64_t>(1, num());
    else if (key == "--samples")
      a.samples = num();
    else if (key == "--warmup")
      a.warmup = num();
    else if (key == "--run-id")
      a.run_id = num();
    else if (key == "--publisher")
      a.publisher = value;
    else if (key == "--idle-subs")
      a.idle_subs = num();
    else
      usage();
  }
  if (a.publisher != "task" && a.publisher != "thread") usage();
  if (a.event_mode != "alloc" && a.event_mode != "pool") usage();
  std::uint64_t default_subs = 0;
  std::uint64_t default_events = 0;
  if (a.workload == "publish") {
    default_subs = 0;
    default_events = 2'000'000;
  } else if (a.workload == "fanout") {
    default_subs = 4;
    default_events = 1'000'000;
  } else if (a.workload == "latency") {
    default_subs = 1;
  } else if (a.workload == "lag") {
    default_subs = 1;
    default_events = 100'000;
  } else {
    usage();  // also "hw": that one is the peer's alone
  }
  if (!a.subs) a.subs = default_subs;
  if (a.events == 0) a.events = default_events;
  if (!a.window) a.window = a.capacity / 2;
  if (a.capacity == 0 || a.threads == 0) usage();
  return a;
}

// ------------------------------------------------------------------------------------ events

std::chrono::system_clock::time_point monotonic_stamp() {
  return std::chrono::system_clock::time_point(std::chrono::duration_cast<std::chrono::system_clock::duration>(
      std::chrono::steady_clock::now().time_since_epoch()));
}

std::uint64_t stamp_ns(const aurora::ChangeEvent& ev) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(ev.timestamp.time_since_epoch()).count());
}

std::size_t payload_size(const aurora::ChangeEvent& ev) {
  return ev.document && ev.document->is_string() ? ev.document->get_ref<const std::string&>().size() : 0;
}

// Builds the peer's events: fresh per publish (alloc) or handle copies of 1,024 prebuilt (pool).
class EventFactory {
 public:
  EventFactory(std::uint64_t payload_bytes, bool pooled) : pooled_(pooled) {
    payload_ = R"({"name":"Ada Lovelace","age":36,"tags":["math","poet"],"note":")";
    while (payload_.size() + 2 < payload_bytes) payload_.push_back('x');
    payload_ += "\"}";
    if (pooled_) {
      pool_.reserve(pool_size);
      for (std::uint64_t i = 0; i < pool_size; ++i) pool_.push_back(build(i));
    }
  }

  [[nodiscard]] std::shared_ptr<aurora::ChangeEvent> build(std::uint64_t seq) const {
    auto ev = std::make_shared<aurora::ChangeEvent>();
    ev->sequence = seq;
    ev->operation = static_cast<aurora::OperationType>(seq % 3);
    ev->collection = collection_;
    char id[32];
    std::snprintf(id, sizeof id, "doc-%08llu", static_cast<unsigned long long>(seq));
    ev->document_id = id;
    ev->document = std::make_shared<const aurora::Document>(payload_);
    return ev;
  }

  [[nodiscard]] event_ptr make(std::uint64_t seq) const {
    if (pooled_) return pool_[static_cast<std::size_t>(seq & (pool_size - 1))];
    return build(seq);
  }

  // collection + document_id + payload sizes of every event: the checksum's unit.
  [[nodiscard]] std::uint64_t checksum_unit() const {
    return collection_.size() + std::string_view("doc-00000000").size() + payload_.size();
  }

 private:
  bool pooled_;
  std::string collection_ = "users";
  std::string payload_;
  std::vector<event_ptr> pool_;
};

// One publish as the Database does it once the event is stamped: store, then (after the
// commit lock, which a single publisher does not need) wake the parked readers and release
// the displaced event.
void publish(event_hub& hub, event_ptr ev) {
  aurora::detail::wake_batch batch;
  const std::span<event_ptr> one(&ev, 1);
  hub.prepare(one, batch);
  hub.publish(one, batch);
  batch.wake();
}

aurora::Subscription make_subscription(event_hub& hub) {
  auto state = std::make_shared<aurora::detail::subscriber>(std::nullopt);
  std::vector<std::shared_ptr<aurora::detail::event_ring>> unused;
  hub.subscribe(*state, {}, aurora::Start::now(), unused);
  return aurora::detail::subscription_access::make(std::move(state));
}

asio::awaitable<void> yield_now() { co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable); }

// Runs `ioc` on `threads` threads (this one included) until it runs out of work.
void run_threads(asio::io_context& ioc, std::uint64_t threads) {
  std::vector<std::thread> extra;
  for (std::uint64_t i = 1; i < threads; ++i) extra.emplace_back([&ioc] { ioc.run(); });
  ioc.run();
  for (auto& t : extra) t.join();
}

void common_fields(JsonLine& j, const Args& a) {
  j.str("impl", "aurora-hub");
  j.str("impl_version", "aurora-0.1.0(" + aurora::bench::compiler_tag() + ",boost-" +
                            std::to_string(BOOST_VERSION / 100000) + "." + std::to_string(BOOST_VERSION / 100 % 1000) +
                            ")");
  j.str("lock", AURORA_BENCH_LOCK);
  j.str("workload", a.workload);
  j.u("run_id", a.run_id);
  j.u("subs", *a.subs);
  j.u("capacity", a.capacity);
  j.u("effective_capacity", a.capacity);  // exact: the ring does not round up
  j.u("threads", a.threads);
  j.str("event_mode", a.event_mode);
  j.u("payload_bytes", a.payload_bytes);
  j.str("publisher", a.publisher);
}

// ------------------------------------------------------------------------------------ publish

// `subs` idle subscribers; M publish calls timed, event construction included. The hub stores
// every event whether or not anyone listens, so every publish counts as send_ok.
void workload_publish(const Args& a, JsonLine& j) {
  asio::io_context ioc(static_cast<int>(a.threads));
  auto ring = std::make_shared<event_hub>(static_cast<std::size_t>(a.capacity), 0);
  std::vector<aurora::Subscription> idle;
  for (std::uint64_t i = 0; i < *a.subs; ++i) idle.push_back(make_subscription(*ring));
  double wall = 0;
  std::uint64_t ok = 0;
  asio::co_spawn(
      ioc,
      [](const Args& args, event_hub& r, double& wall_s, std::uint64_t& sent) -> asio::awaitable<void> {
        const EventFactory factory(args.payload_bytes, args.event_mode == "pool");
        const auto t0 = std::chrono::steady_clock::now();
        for (std::uint64_t seq = 0; seq < args.events; ++seq) {
          publish(r, factory.make(seq));
          ++sent;
        }
        wall_s = aurora::bench::seconds_between(t0, std::chrono::steady_clock::now());
        co_return;
      }(a, *ring, wall, ok),
      asio::detached);
  run_threads(ioc, a.threads);
  const auto m = static_cast<double>(a.events);
  j.u("events", a.events);
  j.f("wall_s", wall);
  j.f("events_per_s", m / wall);
  j.f("ns_per_event", wall * 1e9 / m);
  j.u("send_ok", ok);
  j.u("send_err_no_receivers", 0);
}

// ------------------------------------------------------------------------------------ fanout

struct SubStats {
  std::uint64_t got = 0;
  std::uint64_t lagged_total = 0;
  std::uint64_t lag_errors = 0;
  std::uint64_t order_errors = 0;
  std::uint64_t checksum = 0;
};

struct FanoutState {
  const Args* args = nullptr;
  std::uint64_t subs = 0;
  bool pooled = false;
  std::unique_ptr<PaddedCounter[]> progress;
  std::atomic<std::uint64_t> ready{0};

  std::mutex mutex;  // guards what follows
  SubStats total;
  std::uint64_t min_got = UINT64_MAX;
  std::uint64_t finished = 0;
  std::chrono::steady_clock::time_point t0;
  std::chrono::steady_clock::time_point t_end;
  double publish_s = 0;
  std::uint64_t stalls = 0;
};

asio::awaitable<void> fanout_subscriber(aurora::Subscription sub, FanoutState& st, std::size_t idx) {
  st.ready.fetch_add(1, std::memory_order_release);
  const std::uint64_t m = st.args->events;
  const std::uint64_t mask = st.pooled ? pool_size - 1 : UINT64_MAX;
  SubStats s;
  std::uint64_t expected = 0;
  while (s.got + s.lagged_total < m) {
    const aurora::RecvResult r = co_await sub.recv();
    if (r) {
      const aurora::ChangeEvent& ev = *r;
      if (ev.sequence != (expected & mask)) ++s.order_errors;
      ++expected;
      // Touch every field like a real subscriber would.
      s.checksum += payload_size(ev) + ev.document_id.size() + ev.collection.size() +
                    (ev.operation == aurora::OperationType::Delete ? 0U : 0U);
      ++s.got;
      if ((s.got & 63) == 0) st.progress[idx].value.store(s.got + s.lagged_total, std::memory_order_relaxed);
    } else if (r.error().code == aurora::errc::lagged) {
      s.lagged_total += r.error().missed;
      ++s.lag_errors;
      expected += r.error().missed;
    } else {
      break;  // closed
    }
  }
  st.progress[idx].value.store(UINT64_MAX / 2, std::memory_order_relaxed);
  const std::lock_guard lock(st.mutex);
  st.total.got += s.got;
  st.total.lagged_total += s.lagged_total;
  st.total.lag_errors += s.lag_errors;
  st.total.order_errors += s.order_errors;
  st.total.checksum += s.checksum;
  st.min_got = std::min(st.min_got, s.got);
  if (++st.finished == st.subs) st.t_end = std::chrono::steady_clock::now();
}

asio::awaitable<void> fanout_publisher(std::shared_ptr<event_hub> ring, const EventFactory& factory, FanoutState& st) {
  while (st.ready.load(std::memory_order_acquire) < st.subs) co_await yield_now();
  const std::uint64_t m = st.args->events;
  const std::uint64_t window = *st.args->window;
  const std::uint64_t check_every = st.args->check_every;
  std::uint64_t stalls = 0;
  const auto t0 = std::chrono::steady_clock::now();
  {
    const std::lock_guard lock(st.mutex);
    st.t0 = t0;
  }
  for (std::uint64_t seq = 0; seq < m; ++seq) {
    if (window > 0 && seq % check_every == 0) {
      for (;;) {
        std::uint64_t min_progress = UINT64_MAX;
        for (std::uint64_t i = 0; i < st.subs; ++i) {
          min_progress = std::min(min_progress, st.progress[i].value.load(std::memory_order_relaxed));
        }
        if (seq <= min_progress || seq - min_progress <= window) break;
        ++stalls;
        co_await yield_now();
      }
    }
    publish(*ring, factory.make(seq));
  }
  const double publish_s = aurora::bench::seconds_between(t0, std::chrono::steady_clock::now());
  ring->close();  // as the peer drops its Sender
  const std::lock_guard lock(st.mutex);
  st.publish_s = publish_s;
  st.stalls = stalls;
}

void workload_fanout(const Args& a, JsonLine& j) {
  const std::uint64_t n = std::max<std::uint64_t>(1, *a.subs);
  const std::uint64_t m = a.events;
  asio::io_context ioc(static_cast<int>(a.threads));
  auto ring = std::make_shared<event_hub>(static_cast<std::size_t>(a.capacity), 0);
  const EventFactory factory(a.payload_bytes, a.event_mode == "pool");
  FanoutState st;
  st.args = &a;
  st.subs = n;
  st.pooled = a.event_mode == "pool";
  st.progress = std::make_unique<PaddedCounter[]>(static_cast<std::size_t>(n));
  std::vector<aurora::Subscription> idle;
  for (std::uint64_t i = 0; i < a.idle_subs; ++i) idle.push_back(make_subscription(*ring));
  for (std::size_t i = 0; i < n; ++i) {
    asio::co_spawn(ioc, fanout_subscriber(make_subscription(*ring), st, i), asio::detached);
  }
  asio::co_spawn(ioc, fanout_publisher(ring, factory, st), asio::detached);
  run_threads(ioc, a.threads);
  idle.clear();

  const double wall = aurora::bench::seconds_between(st.t0, st.t_end);
  const SubStats& tot = st.total;
  j.u("idle_subs", a.idle_subs);
  j.u("events", m);
  j.u("window", *a.window);
  j.f("wall_s", wall);
  j.f("publish_s", st.publish_s);
  j.f("events_per_s", static_cast<double>(m) / wall);
  j.f("deliveries_per_s", static_cast<double>(tot.got) / wall);
  j.f("ns_per_delivery", wall * 1e9 / static_cast<double>(std::max<std::uint64_t>(1, tot.got)));
  j.u("deliveries", tot.got);
  j.u("min_received_per_sub", st.min_got);
  j.u("lagged_total", tot.lagged_total);
  j.u("lag_errors", tot.lag_errors);
  j.u("order_errors", tot.order_errors);
  j.u("publisher_stalls", st.stalls);
  j.b("checksum_ok", tot.checksum == tot.got * factory.checksum_unit());
  j.b("no_lag", tot.lagged_total == 0 && tot.got == m * n);
}

// ------------------------------------------------------------------------------------ latency

// tokio::sync::Notify for one waiting coroutine: notify_one() wakes the waiter, or leaves a
// permit for the next wait. Like tokio, which runs a task woken from a worker next on that worker
// (its LIFO slot), the waiter is resumed with asio::defer: after the waking handler, on the
// waking thread when that is one of the context's threads.
class Notify {
 public:
  template <class CompletionToken>
  auto async_wait(CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void()>(
        [this](auto handler) {
          std::unique_lock lock(mutex_);
          if (permit_) {
            permit_ = false;
            lock.unlock();
            asio::post(std::move(handler));  // never complete inside the initiating function
            return;
          }
          waiter_ = std::make_unique<waiter_impl<decltype(handler)>>(std::move(handler));
        },
        token);
  }

  void notify_one() {
    std::unique_ptr<waiter> w;
    {
      const std::lock_guard lock(mutex_);
      if (!waiter_) {
        permit_ = true;
        return;
      }
      w = std::move(waiter_);
    }
    w->resume();
  }

 private:
  struct waiter {
    virtual ~waiter() = default;
    virtual void resume() = 0;
  };
  template <class Handler>
  struct waiter_impl final : waiter {
    explicit waiter_impl(Handler h) : handler(std::move(h)) {}
    void resume() override { asio::defer(std::move(handler)); }
    Handler handler;
  };

  std::mutex mutex_;
  bool permit_ = false;
  std::unique_ptr<waiter> waiter_;
};

// Wakes the publisher when the last subscriber has the event in flight: a Notify for the task
// publisher (tokio: Notify), a condition variable for the thread publisher (tokio: a std mpsc
// channel fed by a forwarding task).
struct LatencyState {
  std::uint64_t warmup = 0;
  std::atomic<std::uint64_t> remaining{0};
  std::atomic<std::uint64_t> last_latency{0};
  std::atomic<bool> lagged{false};
  Notify wake_task;
  bool thread_publisher = false;
  std::mutex wake_mutex;
  std::condition_variable wake_thread;  // the publisher waits on it for remaining == 0

  void wake() {
    if (thread_publisher) {
      // Taking the mutex orders this wake-up after the publisher's check of `remaining`.
      { const std::lock_guard lock(wake_mutex); }
      wake_thread.notify_one();
    } else {
      wake_task.notify_one();
    }
  }
};

asio::awaitable<void> latency_subscriber(aurora::Subscription sub, LatencyState& st, std::vector<std::uint64_t>& out) {
  for (;;) {
    const aurora::RecvResult r = co_await sub.recv();
    if (r) {
      const std::uint64_t d = aurora::bench::now_ns() - stamp_ns(*r);
      if (r->sequence >= st.warmup) out.push_back(d);
      if (st.remaining.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        st.last_latency.store(d, std::memory_order_release);
        st.wake();
      }
    } else if (r.error().code == aurora::errc::lagged) {
      st.lagged.store(true);
    } else {
      break;  // closed
    }
  }
}

// Publishes one freshly built event, stamped just before it goes into the ring.
void publish_timed(event_hub& ring, const EventFactory& factory, std::uint64_t seq) {
  std::shared_ptr<aurora::ChangeEvent> ev = factory.build(seq);
  ev->timestamp = monotonic_stamp();
  publish(ring, event_ptr(std::move(ev)));
}

struct LatencyRun {
  std::vector<std::uint64_t> all;
  double elapsed_s = 0;
};

asio::awaitable<void> latency_task_publisher(std::shared_ptr<event_hub> ring, const EventFactory& factory,
                                             LatencyState& st, std::uint64_t n, std::uint64_t total, LatencyRun& run) {
  const auto t0 = std::chrono::steady_clock::now();
  for (std::uint64_t seq = 0; seq < total; ++seq) {
    st.remaining.store(n, std::memory_order_release);
    publish_timed(*ring, factory, seq);
    while (st.remaining.load(std::memory_order_acquire) > 0) co_await st.wake_task.async_wait(asio::use_awaitable);
    if (seq >= st.warmup) run.all.push_back(st.last_latency.load(std::memory_order_acquire));
  }
  run.elapsed_s = aurora::bench::seconds_between(t0, std::chrono::steady_clock::now());
  ring->close();
}

void latency_thread_publisher(const std::shared_ptr<event_hub>& ring, const EventFactory& factory, LatencyState& st,
                              std::uint64_t n, std::uint64_t total, LatencyRun& run) {
  const auto t0 = std::chrono::steady_clock::now();
  for (std::uint64_t seq = 0; seq < total; ++seq) {
    st.remaining.store(n, std::memory_order_release);
    publish_timed(*ring, factory, seq);
    std::unique_lock lock(st.wake_mutex);
    st.wake_thread.wait(lock, [&st] { return st.remaining.load(std::memory_order_acquire) == 0; });
    lock.unlock();
    if (seq >= st.warmup) run.all.push_back(st.last_latency.load(std::memory_order_acquire));
  }
  run.elapsed_s = aurora::bench::seconds_between(t0, std::chrono::steady_clock::now());
  ring->close();
}

void workload_latency(const Args& a, JsonLine& j) {
  const std::uint64_t n = std::max<std::uint64_t>(1, *a.subs);
  const std::uint64_t total = a.warmup + a.samples;
  asio::io_context ioc(static_cast<int>(a.threads));
  auto ring = std::make_shared<event_hub>(static_cast<std::size_t>(a.capacity), 0);
  const EventFactory factory(a.payload_bytes, false);
  LatencyState st;
  st.warmup = a.warmup;
  st.thread_publisher = a.publisher == "thread";
  std::vector<std::vector<std::uint64_t>> per_sub(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < n; ++i) {
    per_sub[i].reserve(static_cast<std::size_t>(a.samples));
    asio::co_spawn(ioc, latency_subscriber(make_subscription(*ring), st, per_sub[i]), asio::detached);
  }
  LatencyRun run;
  run.all.reserve(static_cast<std::size_t>(a.samples));
  std::thread publisher_thread;
  if (st.thread_publisher) {
    publisher_thread = std::thread(
        [&ring, &factory, &st, n, total, &run] { latency_thread_publisher(ring, factory, st, n, total, run); });
  } else {
    asio::co_spawn(ioc, latency_task_publisher(ring, factory, st, n, total, run), asio::detached);
  }
  run_threads(ioc, a.threads);
  if (publisher_thread.joinable()) publisher_thread.join();
  if (st.lagged.load()) {
    std::fputs("hub_bench: the latency workload lagged\n", stderr);
    std::exit(1);
  }
  std::vector<std::uint64_t> lat;
  for (const auto& v : per_sub) lat.insert(lat.end(), v.begin(), v.end());
  std::sort(lat.begin(), lat.end());
  std::sort(run.all.begin(), run.all.end());
  double sum = 0;
  for (const std::uint64_t x : lat) sum += static_cast<double>(x);
  using aurora::bench::percentile;
  j.u("samples", a.samples);
  j.u("warmup", a.warmup);
  j.u("deliveries_measured", lat.size());
  j.u("lat_p50_ns", percentile(lat, 50));
  j.u("lat_p90_ns", percentile(lat, 90));
  j.u("lat_p99_ns", percentile(lat, 99));
  j.u("lat_p999_ns", percentile(lat, 99.9));
  j.u("lat_max_ns", lat.empty() ? 0 : lat.back());
  j.f("lat_mean_ns", sum / static_cast<double>(std::max<std::size_t>(1, lat.size())));
  j.u("all_p50_ns", percentile(run.all, 50));
  j.u("all_p99_ns", percentile(run.all, 99));
  j.f("roundtrips_per_s", static_cast<double>(total) / run.elapsed_s);
}

// ------------------------------------------------------------------------------------ lag

struct LagResult {
  double publish_s = 0;
  std::int64_t lagged_n = -1;
  std::int64_t resume_seq = -1;
  std::int64_t last_seq = -1;
  std::uint64_t retained = 0;
};

asio::awaitable<void> lag_run(const Args& a, std::shared_ptr<event_hub> ring, aurora::Subscription& sub,
                              LagResult& out) {
  const EventFactory factory(a.payload_bytes, false);
  const auto t0 = std::chrono::steady_clock::now();
  for (std::uint64_t seq = 0; seq < a.events; ++seq) publish(*ring, factory.make(seq));
  out.publish_s = aurora::bench::seconds_between(t0, std::chrono::steady_clock::now());
  aurora::RecvResult first = co_await sub.recv();
  if (!first && first.error().code == aurora::errc::lagged) {
    out.lagged_n = static_cast<std::int64_t>(first.error().missed);
    first = co_await sub.recv();
  } else if (first) {
    out.lagged_n = 0;
  }
  if (first) {
    out.resume_seq = static_cast<std::int64_t>(first->sequence);
    out.last_seq = out.resume_seq;
    out.retained = 1;
  }
  for (;;) {
    const aurora::RecvResult r = sub.try_recv();
    if (r) {
      ++out.retained;
      out.last_seq = static_cast<std::int64_t>(r->sequence);
      continue;
    }
    if (r.error().code == aurora::errc::lagged) {
      std::fputs("hub_bench: lagged twice\n", stderr);
      std::exit(1);
    }
    break;  // empty or closed
  }
}

void workload_lag(const Args& a, JsonLine& j) {
  asio::io_context ioc(static_cast<int>(a.threads));
  auto ring = std::make_shared<event_hub>(static_cast<std::size_t>(a.capacity), 0);
  aurora::Subscription sub = make_subscription(*ring);
  LagResult r;
  asio::co_spawn(ioc, lag_run(a, ring, sub, r), asio::detached);
  run_threads(ioc, a.threads);
  const auto m = static_cast<std::int64_t>(a.events);
  const auto cap = static_cast<std::int64_t>(a.capacity);
  std::int64_t pow2 = 1;
  while (pow2 < cap) pow2 *= 2;
  j.u("events", a.events);
  j.f("publish_s", r.publish_s);
  j.f("publish_events_per_s", static_cast<double>(a.events) / r.publish_s);
  j.i("lagged_n", r.lagged_n);
  j.i("resume_seq", r.resume_seq);
  j.i("last_seq", r.last_seq);
  j.u("retained_after_lag", r.retained);
  j.i("expected_lagged_n_if_exact_capacity", std::max<std::int64_t>(0, m - cap));
  j.i("expected_lagged_n_tokio", std::max<std::int64_t>(0, m - pow2));
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse_args(argc, argv);
  aurora::bench::RunAccounting accounting;
  accounting.start();
  JsonLine j;
  common_fields(j, a);
  if (a.workload == "publish")
    workload_publish(a, j);
  else if (a.workload == "fanout")
    workload_fanout(a, j);
  else if (a.workload == "latency")
    workload_latency(a, j);
  else
    workload_lag(a, j);
  accounting.finish(j);
  std::puts(j.text().c_str());
  return 0;
}
