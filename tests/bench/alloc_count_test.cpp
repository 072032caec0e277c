// alloc_count_test: proves that the read path allocates nothing per delivery. Global operator
// new/delete are replaced by counting versions; N receives of already-published events, through
// Subscription::try_recv and through `co_await sub.recv()` (the fast path), must allocate O(1),
// the same for N = 1,000 as for N = 100,000. Also reports (without asserting) what a receive
// that parks and is woken by a publish costs.
//
// Exit status 0 when the read path is O(1), 1 otherwise. Output: one line per measurement.
#include <aurora/change_event.hpp>
#include <aurora/detail/hub.hpp>
#include <aurora/detail/subscriber.hpp>
#include <aurora/filter.hpp>
#include <aurora/start.hpp>
#include <aurora/subscription.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <utility>
#include <vector>

// ------------------------------------------------------------------------------ counting new

namespace {

std::atomic<std::uint64_t> allocations{0};

void* counted_alloc(std::size_t size) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}

void* counted_aligned_alloc(std::size_t size, std::align_val_t align) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  void* p = nullptr;
  const auto a = std::max(sizeof(void*), static_cast<std::size_t>(align));
  if (posix_memalign(&p, a, size == 0 ? 1 : size) != 0) throw std::bad_alloc();
  return p;
}

}  // namespace

void* operator new(std::size_t size) { return counted_alloc(size); }
void* operator new[](std::size_t size) { return counted_alloc(size); }
void* operator new(std::size_t size, std::align_val_t align) { return counted_aligned_alloc(size, align); }
void* operator new[](std::size_t size, std::align_val_t align) { return counted_aligned_alloc(size, align); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return counted_alloc(size);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return counted_alloc(size);
  } catch (...) {
    return nullptr;
  }
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

// ------------------------------------------------------------------------------ the test

namespace {

namespace asio = boost::asio;
using aurora::detail::event_ptr;
using event_hub = aurora::detail::hub;

// One publish as the Database does it once the event is stamped.
void publish(event_hub& hub, event_ptr ev) {
  aurora::detail::wake_batch batch;
  const std::span<event_ptr> one(&ev, 1);
  hub.prepare(one, batch);
  hub.publish(one, batch);
  batch.wake();
}

aurora::Subscription subscribe(event_hub& hub, const std::optional<aurora::EventFilter>& filter) {
  auto state = std::make_shared<aurora::detail::subscriber>(filter);
  std::vector<std::shared_ptr<aurora::detail::event_ring>> unused;
  hub.subscribe(*state, {}, aurora::Start::now(), unused);
  return aurora::detail::subscription_access::make(std::move(state));
}

std::uint64_t allocated() { return allocations.load(std::memory_order_relaxed); }

// N events, each a document {"shard": i % 2}, built before anything is counted.
std::vector<event_ptr> make_events(std::size_t n) {
  std::vector<event_ptr> events;
  events.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    auto ev = std::make_shared<aurora::ChangeEvent>();
    ev->collection = "users";
    ev->document_id = "doc";
    ev->sequence = i + 1;
    ev->document = std::make_shared<const aurora::Document>(aurora::Document{{"shard", i % 2}});
    events.push_back(std::move(ev));
  }
  return events;
}

struct Fixture {
  std::shared_ptr<event_hub> hub;
  aurora::Subscription sub;
  std::size_t expected;  // how many of the published events pass the filter
};

// A ring of capacity n, a subscription (filtered to shard 0 when `filtered`), n events published.
Fixture make_fixture(const std::vector<event_ptr>& events, bool filtered) {
  Fixture f;
  f.hub = std::make_shared<event_hub>(events.size(), 0);
  std::optional<aurora::EventFilter> filter;
  if (filtered) filter = aurora::EventFilter{{}, {{"shard", 0}}};
  f.sub = subscribe(*f.hub, filter);
  for (const auto& ev : events) publish(*f.hub, ev);
  f.expected = filtered ? (events.size() + 1) / 2 : events.size();
  return f;
}

// Allocations made while receiving every published event with try_recv.
std::uint64_t count_try_recv(const std::vector<event_ptr>& events, bool filtered, bool& ok) {
  Fixture f = make_fixture(events, filtered);
  std::size_t got = 0;
  const std::uint64_t before = allocated();
  for (;;) {
    const aurora::RecvResult r = f.sub.try_recv();
    if (!r) break;
    ++got;
  }
  const std::uint64_t used = allocated() - before;
  ok = ok && got == f.expected;
  return used;
}

// Allocations made while a coroutine receives every published event with co_await sub.recv()
// (all already there: the fast path), counted inside the coroutine.
std::uint64_t count_co_await_recv(const std::vector<event_ptr>& events, bool filtered, bool& ok) {
  Fixture f = make_fixture(events, filtered);
  asio::io_context ioc(1);
  std::uint64_t used = 0;
  std::size_t got = 0;
  asio::co_spawn(
      ioc,
      [](aurora::Subscription& sub, std::size_t n, std::uint64_t& out, std::size_t& count) -> asio::awaitable<void> {
        // Counted from the first receive on: Asio's first coroutine-frame allocations included.
        const std::uint64_t before = allocated();
        for (std::size_t i = 0; i < n; ++i) {
          const aurora::RecvResult r = co_await sub.recv();
          if (!r) break;
          ++count;
        }
        out = allocated() - before;
      }(f.sub, f.expected, used, got),
      asio::detached);
  ioc.run();
  ok = ok && got == f.expected;
  return used;
}

// Allocations per receive that parks and is woken by the next publish (single thread: the
// publisher coroutine publishes one event, then yields so that the receiver runs).
double count_parked_recv(std::size_t n) {
  const auto events = make_events(n);
  auto hub = std::make_shared<event_hub>(n, 0);
  aurora::Subscription sub = subscribe(*hub, std::nullopt);
  asio::io_context ioc(1);
  std::uint64_t before = 0;
  std::uint64_t after = 0;
  asio::co_spawn(
      ioc,
      [](aurora::Subscription& s, std::size_t count, std::uint64_t& b, std::uint64_t& a) -> asio::awaitable<void> {
        for (std::size_t i = 0; i < count; ++i) {
          if (i == 1) b = allocated();  // after the first cycle has warmed the caches
          const aurora::RecvResult r = co_await s.recv();
          if (!r) break;
        }
        a = allocated();
      }(sub, n, before, after),
      asio::detached);
  asio::co_spawn(
      ioc,
      [](event_hub& h, const std::vector<event_ptr>& evs) -> asio::awaitable<void> {
        for (const auto& ev : evs) {
          co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
          publish(h, ev);
        }
      }(*hub, events),
      asio::detached);
  ioc.run();
  return static_cast<double>(after - before) / static_cast<double>(n - 1);
}

// Allocations per delivery when `subs` receives park on one io_context and each publish wakes
// them in one batch (one hand-off resumes all of them). Counted over the whole run after the
// first round, divided by the deliveries.
double count_batched_recv(std::size_t n, std::size_t subs, bool& ok) {
  const auto events = make_events(n);
  auto hub = std::make_shared<event_hub>(n, 0);
  std::vector<aurora::Subscription> s;
  for (std::size_t i = 0; i < subs; ++i) s.push_back(subscribe(*hub, std::nullopt));
  asio::io_context ioc(1);
  std::vector<std::size_t> got(subs, 0);
  std::uint64_t before = 0;
  std::uint64_t after = 0;
  for (std::size_t i = 0; i < subs; ++i) {
    asio::co_spawn(
        ioc,
        [](aurora::Subscription& sub, std::size_t count, std::size_t& g) -> asio::awaitable<void> {
          for (std::size_t k = 0; k < count; ++k) {
            const aurora::RecvResult r = co_await sub.recv();
            if (!r) break;
            ++g;
          }
        }(s[i], n, got[i]),
        asio::detached);
  }
  asio::co_spawn(
      ioc,
      [](event_hub& h, const std::vector<event_ptr>& evs, std::uint64_t& b, std::uint64_t& a) -> asio::awaitable<void> {
        for (std::size_t k = 0; k < evs.size(); ++k) {
          // Every reader has parked again before the next publish.
          co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
          if (k == 1) b = allocated();  // after the first round has warmed the caches
          publish(h, evs[k]);
        }
        co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
        a = allocated();
      }(*hub, events, before, after),
      asio::detached);
  ioc.run();
  for (std::size_t g : got) ok = ok && g == n;
  return static_cast<double>(after - before) / static_cast<double>((n - 1) * subs);
}

}  // namespace

int main() {
  constexpr std::size_t small = 1'000;
  constexpr std::size_t large = 100'000;
  constexpr std::uint64_t bound = 16;  // O(1): a few warm-up allocations at most, whatever N
  const auto small_events = make_events(small);
  const auto large_events = make_events(large);
  bool ok = true;
  bool counts_ok = true;
  {
    // The counter sees allocations (the events above were counted while being built).
    const std::uint64_t before = allocated();
    const auto probe = make_events(10);
    if (allocated() - before < probe.size()) {
      std::printf("FAIL: the counting operator new is not in use\n");
      return 1;
    }
  }

  struct Case {
    const char* name;
    bool coroutine;
    bool filtered;
  };
  const Case cases[] = {
      {"try_recv", false, false},
      {"try_recv, filter passing 1/2", false, true},
      {"co_await recv (fast path)", true, false},
      {"co_await recv (fast path), filter passing 1/2", true, true},
  };
  for (const Case& c : cases) {
    const std::uint64_t a = c.coroutine ? count_co_await_recv(small_events, c.filtered, counts_ok)
                                        : count_try_recv(small_events, c.filtered, counts_ok);
    const std::uint64_t b = c.coroutine ? count_co_await_recv(large_events, c.filtered, counts_ok)
                                        : count_try_recv(large_events, c.filtered, counts_ok);
    const bool pass = a <= bound && b <= bound;
    ok = ok && pass;
    std::printf("%-48s N=%zu: %llu allocations, N=%zu: %llu allocations  %s\n", c.name, small,
                static_cast<unsigned long long>(a), large, static_cast<unsigned long long>(b), pass ? "O(1)" : "FAIL");
  }
  std::printf("%-48s %.2f allocations per receive (reported, not asserted)\n",
              "co_await recv, parked + woken by publish", count_parked_recv(10'000));
  {
    // No allocation per delivery: the batch's hand-off comes from Asio's recycled handler memory.
    // One allocation per woken receive would read >= 1, one per publish 1/16. What remains
    // (about 1 per 60 publishes, the same before the wake-ups were batched) is below 1/100.
    constexpr std::size_t rounds = 4'000;
    constexpr std::size_t subs = 16;
    const double per = count_batched_recv(rounds, subs, counts_ok);
    const bool pass = per < 0.01;
    ok = ok && pass;
    std::printf("%-48s %.4f allocations per delivery (%zu receivers, %zu publishes)  %s\n",
                "co_await recv, parked + woken in batches", per, subs, rounds, pass ? "ok" : "FAIL");
  }
  if (!counts_ok) std::printf("FAIL: a receive loop did not see every published event\n");
  return ok && counts_ok ? 0 : 1;
}
