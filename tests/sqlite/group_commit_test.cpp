// detail::group_commit with fake write/publish callables: grouping, order, failures, wake-ups.
#include <aurora/sqlite/detail/group_commit.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using batch = std::vector<std::uint64_t>;  // the sequences of one commit

// A gate a fake write can stop at until the test opens it (no sleeping).
class gate {
 public:
  void open() {
    const std::lock_guard lock(mutex_);
    open_ = true;
    cv_.notify_all();
  }
  void pass() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return open_; });
  }
  void mark_reached() {
    const std::lock_guard lock(mutex_);
    reached_ = true;
    cv_.notify_all();
  }
  void wait_reached() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return reached_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool open_ = false;
  bool reached_ = false;
};

// Records every write and publish; written from the leader's thread only, read after joins.
struct recorder {
  std::vector<std::vector<batch>> writes;
  std::vector<std::uint64_t> published;
  std::function<void(std::span<batch>)> on_write;  // may block or throw

  auto write_fn() {
    return [this](std::span<batch> group) {
      if (on_write) on_write(group);
      writes.emplace_back(group.begin(), group.end());
    };
  }
  auto publish_fn() {
    return [this](std::span<batch> group) {
      for (const batch& b : group) published.insert(published.end(), b.begin(), b.end());
    };
  }
};

template <class W, class P, class D = aurora::sqlite::detail::no_discard>
using committer = aurora::sqlite::detail::group_commit<batch, W, P, D>;

template <class W, class P, class D = aurora::sqlite::detail::no_discard>
auto make_committer(W w, P p, std::size_t max_group = 1024, D d = D{}) {
  return std::make_unique<committer<W, P, D>>(std::move(w), std::move(p), max_group, std::move(d));
}

std::string storage_error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const aurora::error& e) {
    if (e.code() == aurora::errc::storage_error) return e.what();
    return std::string("wrong errc: ") + e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("one waiter writes every queued batch in one group, in order", "[sqlite][group_commit]") {
  recorder rec;
  auto gc = make_committer(rec.write_fn(), rec.publish_fn());
  const auto t1 = gc->enqueue({1});
  const auto t2 = gc->enqueue({2, 3});
  const auto t3 = gc->enqueue({4});
  CHECK(t1 == 1);
  CHECK(t3 == 3);
  gc->wait(t2);  // leads: takes all three
  REQUIRE(rec.writes.size() == 1);
  CHECK(rec.writes[0] == std::vector<batch>{{1}, {2, 3}, {4}});
  CHECK(rec.published == std::vector<std::uint64_t>{1, 2, 3, 4});
  gc->wait(t1);  // already done: no new write
  gc->wait(t3);
  CHECK(rec.writes.size() == 1);
  gc->flush();
  CHECK(rec.writes.size() == 1);
}

TEST_CASE("a group is bounded by max_group and the waiter leads until its batch is done", "[sqlite][group_commit]") {
  recorder rec;
  auto gc = make_committer(rec.write_fn(), rec.publish_fn(), 4);
  for (std::uint64_t q = 1; q <= 10; ++q) gc->enqueue({q});
  gc->wait(10);
  REQUIRE(rec.writes.size() == 3);
  CHECK(rec.writes[0].size() == 4);
  CHECK(rec.writes[1].size() == 4);
  CHECK(rec.writes[2].size() == 2);
  CHECK(rec.published.size() == 10);
}

TEST_CASE("batches queued during a write go out together in the next one", "[sqlite][group_commit][threads]") {
  recorder rec;
  gate g;
  rec.on_write = [&](std::span<batch> group) {
    if (group.front().front() == 1) {
      g.mark_reached();
      g.pass();
    }
  };
  auto gc = make_committer(rec.write_fn(), rec.publish_fn());
  const auto t1 = gc->enqueue({1});
  std::thread leader([&] { gc->wait(t1); });
  g.wait_reached();  // the first group ({1}) is being written
  std::vector<std::uint64_t> tickets;
  for (std::uint64_t q = 2; q <= 4; ++q) tickets.push_back(gc->enqueue({q}));
  std::vector<std::thread> followers;
  for (const auto t : tickets) followers.emplace_back([&, t] { gc->wait(t); });
  g.open();
  leader.join();
  for (auto& f : followers) f.join();
  REQUIRE(rec.writes.size() == 2);  // one write per group: {1}, then {2, 3, 4}
  CHECK(rec.writes[0] == std::vector<batch>{{1}});
  CHECK(rec.writes[1] == std::vector<batch>{{2}, {3}, {4}});
  CHECK(rec.published == std::vector<std::uint64_t>{1, 2, 3, 4});
}

TEST_CASE("a failed group fails its waiters, every later batch and every later enqueue",
          "[sqlite][group_commit][threads]") {
  recorder rec;
  gate g;
  rec.on_write = [&](std::span<batch> group) {
    if (group.front().front() == 2) {
      g.mark_reached();
      g.pass();
      throw std::runtime_error("disk on fire");
    }
  };
  std::vector<std::uint64_t> discarded;  // by the failed leader, before any waiter wakes
  std::atomic<bool> discarded_before_wake{true};
  std::atomic<int> woken{0};
  auto discard = [&](std::span<batch> batches) noexcept {
    if (woken.load() != 0) discarded_before_wake = false;
    for (const batch& b : batches) discarded.insert(discarded.end(), b.begin(), b.end());
  };
  auto gc = make_committer(rec.write_fn(), rec.publish_fn(), 1024, discard);
  gc->wait(gc->enqueue({1}));  // a good group first
  const auto t2 = gc->enqueue({2});
  const auto t3 = gc->enqueue({3});
  std::string e2;
  std::string e3;
  std::thread leader([&] {
    e2 = storage_error_of([&] { gc->wait(t2); });
    ++woken;
  });
  std::thread follower([&] {
    e3 = storage_error_of([&] { gc->wait(t3); });
    ++woken;
  });
  g.wait_reached();                  // writing the group {2, 3}
  const auto t4 = gc->enqueue({4});  // queued behind the failing group
  g.open();
  leader.join();
  follower.join();
  CHECK_THAT(e2, Catch::Contains("group commit failed") && Catch::Contains("disk on fire"));
  CHECK_THAT(e3, Catch::Contains("group commit failed") && Catch::Contains("disk on fire"));
  CHECK_THAT(storage_error_of([&] { gc->wait(t4); }), Catch::Contains("refused") && Catch::Contains("disk on fire"));
  CHECK_THAT(storage_error_of([&] { gc->enqueue({5}); }), Catch::Contains("refused"));
  CHECK(gc->failed());
  gc->wait(1);  // done before the failure: still fine
  CHECK(rec.writes.size() == 1);
  CHECK(rec.published == std::vector<std::uint64_t>{1});  // nothing of the failed group published
  // The failed group and the batch dropped behind it went to discard, in order, before any
  // waiter saw the error (so a Database can undo them before its write calls throw).
  CHECK(discarded == std::vector<std::uint64_t>{2, 3, 4});
  CHECK(discarded_before_wake.load());
}

TEST_CASE("a publish that throws fails the group like a write", "[sqlite][group_commit]") {
  recorder rec;
  auto publish = [](std::span<batch>) { throw std::runtime_error("publish broke"); };
  auto gc = make_committer(rec.write_fn(), publish);
  const auto t = gc->enqueue({1});
  CHECK_THAT(storage_error_of([&] { gc->wait(t); }), Catch::Contains("publish broke"));
  CHECK(gc->failed());
}

TEST_CASE("an unknown ticket is invalid_argument", "[sqlite][group_commit]") {
  recorder rec;
  auto gc = make_committer(rec.write_fn(), rec.publish_fn());
  CHECK_THROWS_AS(gc->wait(0), aurora::error);
  CHECK_THROWS_AS(gc->wait(1), aurora::error);
  gc->flush();  // nothing queued: returns at once
}

TEST_CASE("many writers: commit order kept, one write per group, no lost wake-up", "[sqlite][group_commit][threads]") {
  constexpr std::uint64_t per_thread = 3000;
  const int threads = GENERATE(2, 8);
  std::atomic<std::uint64_t> write_calls{0};
  std::atomic<std::uint64_t> order_errors{0};
  std::atomic<std::uint64_t> next_written{1};
  std::vector<std::uint64_t> published;
  auto write = [&](std::span<batch> group) {
    write_calls.fetch_add(1, std::memory_order_relaxed);
    for (const batch& b : group) {
      for (const auto q : b) {
        if (q != next_written.load(std::memory_order_relaxed)) order_errors.fetch_add(1, std::memory_order_relaxed);
        next_written.store(q + 1, std::memory_order_relaxed);
      }
    }
  };
  auto publish = [&](std::span<batch> group) {
    for (const batch& b : group) published.insert(published.end(), b.begin(), b.end());
  };
  auto gc = make_committer(write, publish, 64);

  std::mutex commit_lock;  // stands in for the database's commit lock
  std::uint64_t last_sequence = 0;
  std::atomic<std::uint64_t> acked_out_of_order{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < threads; ++w) {
    writers.emplace_back([&, w] {
      for (std::uint64_t i = 0; i < per_thread; ++i) {
        std::uint64_t ticket = 0;
        std::uint64_t last = 0;
        {
          const std::lock_guard lock(commit_lock);
          const std::uint64_t n = 1 + (i + static_cast<std::uint64_t>(w)) % 3;  // 1 to 3 events a commit
          batch b;
          for (std::uint64_t k = 0; k < n; ++k) b.push_back(++last_sequence);
          last = b.back();
          ticket = gc->enqueue(std::move(b));
        }
        gc->wait(ticket);
        // Acknowledged only once everything up to it is written.
        if (next_written.load(std::memory_order_relaxed) <= last) acked_out_of_order.fetch_add(1);
      }
    });
  }
  for (auto& t : writers) t.join();
  CHECK(order_errors.load() == 0);
  CHECK(acked_out_of_order.load() == 0);
  REQUIRE(published.size() == last_sequence);
  for (std::size_t i = 0; i < published.size(); ++i) {
    if (published[i] != i + 1) FAIL("published out of order at " << i);
  }
  const std::uint64_t commits = per_thread * static_cast<std::uint64_t>(threads);
  CHECK(write_calls.load() <= commits);
  INFO("commits " << commits << ", writes " << write_calls.load());
  SUCCEED();
}
