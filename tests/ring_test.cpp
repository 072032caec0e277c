// Tests for aurora/detail/ring.hpp: the broadcast ring and its lag arithmetic, without Asio.
#include <aurora/detail/ring.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

using aurora::detail::broadcast_ring;
using aurora::detail::read_status;

namespace {

// Publishes positions first..last-1 as values.
void publish_range(broadcast_ring<std::uint64_t>& ring, std::uint64_t first, std::uint64_t last) {
  for (std::uint64_t i = first; i < last; ++i) ring.publish(i);
}

struct counting_waiter final : aurora::detail::ring_waiter {
  std::atomic<int> notified{0};
  void notify() noexcept override { notified.fetch_add(1); }
};

// Parks a thread until notified (for the threaded test).
struct blocking_waiter final : aurora::detail::ring_waiter {
  std::mutex m;
  std::condition_variable cv;
  bool woken = false;
  void notify() noexcept override {
    const std::lock_guard lock(m);
    woken = true;
    cv.notify_one();
  }
};

// In its wake-up, wakes the waiters of another ring on the same thread (as a receive destroyed
// in its wake-up may close a database's channels), then parks again on its own ring.
struct chaining_waiter final : aurora::detail::ring_waiter {
  chaining_waiter(broadcast_ring<std::uint64_t>& own_ring, broadcast_ring<std::uint64_t>& other_ring)
      : own(own_ring), other(other_ring) {}
  void notify() noexcept override {
    ++notified;
    other.notify_waiters();
    own.add_waiter(self.lock());
  }
  broadcast_ring<std::uint64_t>& own;
  broadcast_ring<std::uint64_t>& other;
  std::weak_ptr<chaining_waiter> self;
  int notified = 0;
};

}  // namespace

TEST_CASE("the worked example: 100,000 events to an idle reader of capacity 10,000", "[ring]") {
  broadcast_ring<std::uint64_t> ring(10'000);
  std::uint64_t cursor = ring.tail();
  publish_range(ring, 0, 100'000);

  std::uint64_t value = 0;
  std::uint64_t missed = 0;
  REQUIRE(ring.try_read(cursor, value, missed) == read_status::lagged);
  CHECK(missed == 90'000);

  for (std::uint64_t expected = 90'000; expected < 100'000; ++expected) {
    REQUIRE(ring.try_read(cursor, value, missed) == read_status::ok);
    REQUIRE(value == expected);
  }
  CHECK(ring.try_read(cursor, value, missed) == read_status::empty);
}

TEST_CASE("the capacity is exact, not rounded up", "[ring]") {
  for (const std::uint64_t capacity : {1ULL, 3ULL, 1000ULL, 1023ULL, 1025ULL}) {
    broadcast_ring<std::uint64_t> ring(capacity);
    CHECK(ring.capacity() == capacity);
    std::uint64_t value = 0;
    std::uint64_t missed = 0;

    // N == C unread: no lag, all C in order.
    std::uint64_t cursor = ring.tail();
    publish_range(ring, 0, capacity);
    for (std::uint64_t i = 0; i < capacity; ++i) {
      REQUIRE(ring.try_read(cursor, value, missed) == read_status::ok);
      REQUIRE(value == i);
    }
    REQUIRE(ring.try_read(cursor, value, missed) == read_status::empty);

    // N == C + 1 unread: missed exactly 1.
    publish_range(ring, capacity, 2 * capacity + 1);
    REQUIRE(ring.try_read(cursor, value, missed) == read_status::lagged);
    CHECK(missed == 1);
    REQUIRE(ring.try_read(cursor, value, missed) == read_status::ok);
    CHECK(value == capacity + 1);
  }
}

TEST_CASE("a reader sees only what was published after it started", "[ring]") {
  broadcast_ring<std::uint64_t> ring(8);
  publish_range(ring, 0, 5);
  std::uint64_t cursor = ring.tail();
  std::uint64_t value = 0;
  std::uint64_t missed = 0;
  CHECK(ring.try_read(cursor, value, missed) == read_status::empty);
  CHECK_FALSE(ring.ready(cursor));
  ring.publish(5);
  CHECK(ring.ready(cursor));
  REQUIRE(ring.try_read(cursor, value, missed) == read_status::ok);
  CHECK(value == 5);
}

TEST_CASE("lag after lag keeps counting exactly", "[ring]") {
  broadcast_ring<std::uint64_t> ring(4);
  std::uint64_t cursor = 0;
  std::uint64_t value = 0;
  std::uint64_t missed = 0;
  std::uint64_t received = 0;
  std::uint64_t total_missed = 0;
  std::uint64_t published = 0;
  for (int round = 0; round < 50; ++round) {
    const auto burst = static_cast<std::uint64_t>(1 + (round * 7) % 11);
    publish_range(ring, published, published + burst);
    published += burst;
    // Read one or two, then let the writer run ahead again.
    for (int k = 0; k < 2; ++k) {
      const read_status s = ring.try_read(cursor, value, missed);
      if (s == read_status::ok) {
        ++received;
      } else if (s == read_status::lagged) {
        total_missed += missed;
      }
    }
  }
  for (;;) {
    const read_status s = ring.try_read(cursor, value, missed);
    if (s == read_status::empty) break;
    if (s == read_status::ok) ++received;
    if (s == read_status::lagged) total_missed += missed;
  }
  CHECK(received + total_missed == published);
}

TEST_CASE("close lets readers drain, then reports closed for good", "[ring]") {
  broadcast_ring<std::uint64_t> ring(8);
  std::uint64_t cursor = ring.tail();
  publish_range(ring, 0, 3);
  ring.close();
  CHECK(ring.closed());
  std::uint64_t value = 0;
  std::uint64_t missed = 0;
  for (std::uint64_t i = 0; i < 3; ++i) {
    REQUIRE(ring.try_read(cursor, value, missed) == read_status::ok);
    CHECK(value == i);
  }
  CHECK(ring.try_read(cursor, value, missed) == read_status::closed);
  CHECK(ring.try_read(cursor, value, missed) == read_status::closed);
  CHECK(ring.ready(cursor));
}

TEST_CASE("publish hands back the value it displaced", "[ring]") {
  broadcast_ring<std::shared_ptr<int>> ring(2);
  CHECK(ring.publish(std::make_shared<int>(1)) == nullptr);
  CHECK(ring.publish(std::make_shared<int>(2)) == nullptr);
  auto displaced = ring.publish(std::make_shared<int>(3));
  REQUIRE(displaced != nullptr);
  CHECK(*displaced == 1);
  CHECK(displaced.use_count() == 1);  // the ring no longer holds it
}

TEST_CASE("a capacity of zero is rejected", "[ring]") {
  CHECK_THROWS_AS(broadcast_ring<int>(0), std::invalid_argument);
}

TEST_CASE("parked waiters are woken once by the next publish or by close", "[ring]") {
  broadcast_ring<std::uint64_t> ring(4);
  auto w = std::make_shared<counting_waiter>();

  ring.notify_waiters();  // nobody parked: nothing happens
  ring.add_waiter(w);
  ring.add_waiter(w);  // listed once only
  ring.publish(0);
  ring.notify_waiters();
  CHECK(w->notified == 1);
  ring.publish(1);
  ring.notify_waiters();  // no longer parked
  CHECK(w->notified == 1);

  ring.add_waiter(w);
  ring.remove_waiter(w.get());
  ring.publish(2);
  ring.notify_waiters();
  CHECK(w->notified == 1);

  ring.add_waiter(w);
  ring.close();
  CHECK(w->notified == 2);
}

TEST_CASE("a waiter's wake-up may wake another ring's waiters and park again", "[ring]") {
  broadcast_ring<std::uint64_t> first(4);
  broadcast_ring<std::uint64_t> second(4);
  auto chaining = std::make_shared<chaining_waiter>(first, second);
  chaining->self = chaining;
  auto behind = std::make_shared<counting_waiter>();  // listed after it on the same ring
  auto inner = std::make_shared<counting_waiter>();
  first.add_waiter(chaining);
  first.add_waiter(behind);
  second.add_waiter(inner);
  first.publish(0);
  first.notify_waiters();  // the nested wake-up of `second` runs inside this one
  CHECK(chaining->notified == 1);
  CHECK(behind->notified == 1);
  CHECK(inner->notified == 1);
  first.publish(1);
  first.notify_waiters();  // only the waiter that parked again
  CHECK(chaining->notified == 2);
  CHECK(behind->notified == 1);
  CHECK(inner->notified == 1);
  second.add_waiter(inner);
  second.publish(0);
  second.notify_waiters();  // its list holds `inner` alone
  CHECK(inner->notified == 2);
  CHECK(behind->notified == 1);
  CHECK(chaining->notified == 2);
}

TEST_CASE("subscriber counts go up and down", "[ring]") {
  broadcast_ring<int> ring(4);
  CHECK(ring.subscriber_count() == 0);
  ring.add_subscriber();
  ring.add_subscriber();
  ring.remove_subscriber();
  CHECK(ring.subscriber_count() == 1);
}

TEST_CASE("a writer thread and a parking reader thread agree on every count", "[ring][threads]") {
  constexpr std::uint64_t total = 200'000;
  broadcast_ring<std::uint64_t> ring(1'000);
  std::uint64_t received = 0;
  std::uint64_t total_missed = 0;
  std::uint64_t order_errors = 0;

  std::thread reader([&] {
    auto waiter = std::make_shared<blocking_waiter>();
    std::uint64_t cursor = 0;
    std::uint64_t next = 0;  // the value expected next
    std::uint64_t value = 0;
    std::uint64_t missed = 0;
    while (received + total_missed < total) {
      switch (ring.try_read(cursor, value, missed)) {
        case read_status::ok:
          if (value != next) ++order_errors;
          next = value + 1;
          ++received;
          break;
        case read_status::lagged:
          total_missed += missed;
          next += missed;
          break;
        case read_status::empty: {
          // Park, then re-check: a publish before add_waiter does not wake us.
          {
            const std::lock_guard lock(waiter->m);
            waiter->woken = false;
          }
          ring.add_waiter(waiter);
          if (ring.ready(cursor)) break;
          std::unique_lock lock(waiter->m);
          waiter->cv.wait(lock, [&] { return waiter->woken; });
          break;
        }
        case read_status::closed: return;
      }
    }
  });

  for (std::uint64_t i = 0; i < total; ++i) {
    ring.publish(i);
    ring.notify_waiters();
  }
  reader.join();
  CHECK(order_errors == 0);
  CHECK(received + total_missed == total);
  CHECK(received >= 1'000);  // at least the retained tail
}

TEST_CASE("a reader releases the value it held after unlocking the slot", "[ring]") {
  // The value a reader held before its read may be the last owner of an item the ring already
  // displaced. Its destructor here publishes into the very slot being read: if it ran under
  // that slot's lock, this thread would spin on its own lock forever.
  struct hook {
    std::function<void()> on_destroy;
    hook(const hook&) = delete;
    hook& operator=(const hook&) = delete;
    explicit hook(std::function<void()> f) : on_destroy(std::move(f)) {}
    ~hook() {
      if (on_destroy) on_destroy();
    }
  };
  broadcast_ring<std::shared_ptr<const hook>> ring(2);
  bool destroyed = false;
  auto first = std::make_shared<const hook>([&] {
    ring.publish(std::make_shared<const hook>(nullptr));  // into slot 1, the one being read
    destroyed = true;
  });
  ring.publish(first);                                  // position 0, slot 0
  ring.publish(std::make_shared<const hook>(nullptr));  // position 1, slot 1
  first.reset();
  std::uint64_t cursor = 0;
  std::uint64_t missed = 0;
  std::shared_ptr<const hook> out;
  REQUIRE(ring.try_read(cursor, out, missed) == read_status::ok);  // out = position 0
  (void)ring.publish(std::make_shared<const hook>(nullptr));       // position 2 displaces it
  REQUIRE(ring.try_read(cursor, out, missed) == read_status::ok);  // releases position 0
  CHECK(destroyed);
  CHECK(ring.tail() == 4);
}

TEST_CASE("slot memory grows with use, not with capacity", "[ring]") {
  constexpr std::size_t segment = broadcast_ring<int>::segment_slots;
  broadcast_ring<int> ring(10'000);
  CHECK(ring.allocated_slots() == 0);
  std::uint64_t cursor = 0;
  int value = 0;
  std::uint64_t missed = 0;
  CHECK(ring.try_read(cursor, value, missed) == read_status::empty);  // no segment yet: empty
  for (int i = 0; i < 3; ++i) ring.publish(i);
  CHECK(ring.allocated_slots() == segment);
  ring.reserve(2 * segment);  // the next publishes cannot fail
  CHECK(ring.allocated_slots() == 3 * segment);
  for (int i = 3; i < 20'000; ++i) ring.publish(i);
  CHECK(ring.allocated_slots() == 10'000);  // the last segment is exactly as long as needed
  REQUIRE(ring.try_read(cursor, value, missed) == read_status::lagged);
  CHECK(missed == 10'000);
}

TEST_CASE("a ring may start at any position", "[ring]") {
  broadcast_ring<std::uint64_t> ring(4, 1'000);
  CHECK(ring.tail() == 1'000);
  std::uint64_t cursor = ring.tail();
  for (std::uint64_t i = 0; i < 6; ++i) ring.publish(1'000 + i);
  std::uint64_t value = 0;
  std::uint64_t missed = 0;
  REQUIRE(ring.try_read(cursor, value, missed) == read_status::lagged);
  CHECK(missed == 2);
  REQUIRE(ring.try_read(cursor, value, missed) == read_status::ok);
  CHECK(value == 1'002);
}

TEST_CASE("publish_all makes a batch readable together, first item last", "[ring]") {
  broadcast_ring<std::uint64_t> ring(8);
  ring.publish(100);
  std::uint64_t cursor = ring.tail();  // 1: the batch's first position
  const std::vector<std::uint64_t> batch = {1, 2, 3, 4};
  std::vector<bool> first_ready_after;  // after each item is stored, in the order stored
  ring.publish_all(batch, [&](std::uint64_t) { first_ready_after.push_back(ring.ready(cursor)); });
  CHECK(first_ready_after == std::vector<bool>{false, false, false, true});
  std::uint64_t value = 0;
  std::uint64_t missed = 0;
  for (std::uint64_t expected : batch) {
    REQUIRE(ring.try_read(cursor, value, missed) == read_status::ok);
    CHECK(value == expected);
  }
  CHECK(ring.try_read(cursor, value, missed) == read_status::empty);

  // More than the capacity: only the last C are kept, and a reader is told what it missed.
  std::vector<std::uint64_t> big(20);
  for (std::uint64_t i = 0; i < big.size(); ++i) big[i] = 1'000 + i;
  std::uint64_t displaced = 0;
  ring.publish_all(big, [&](std::uint64_t) { ++displaced; });
  CHECK(displaced == 8);
  REQUIRE(ring.try_read(cursor, value, missed) == read_status::lagged);
  CHECK(missed == 12);
  REQUIRE(ring.try_read(cursor, value, missed) == read_status::ok);
  CHECK(value == 1'012);
}
