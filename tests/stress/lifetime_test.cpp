// Lifetime: subscriptions, databases and io_contexts destroyed in every order while receives
// are pending. Run under ASan (leaks included) and TSan; the assertions check that nothing
// leaks (coroutine frames are freed, places are freed) and that pending receives complete.
#include "support.hpp"

#include <aurora/aurora.hpp>

#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace asio = boost::asio;

namespace {

// Lives in a coroutine frame; tells when the frame is destroyed.
struct frame_guard {
  std::atomic<int>* alive;
  explicit frame_guard(std::atomic<int>& a) : alive(&a) { ++*alive; }
  frame_guard(const frame_guard&) = delete;
  frame_guard& operator=(const frame_guard&) = delete;
  ~frame_guard() { --*alive; }
};

struct outcome {
  int receives = 0;
  std::optional<aurora::errc> last_error;
  std::uint64_t last_sequence = 0;
};

// Receives until closed; owns its subscription, as the README's follow() loop does.
asio::awaitable<void> follow(aurora::Subscription sub, std::atomic<int>& alive, outcome& out) {
  const frame_guard guard(alive);
  for (;;) {
    aurora::RecvResult r = co_await sub.recv();
    ++out.receives;
    if (r) {
      out.last_sequence = r->sequence;
      continue;
    }
    out.last_error = r.error().code;
    if (r.error().code == aurora::errc::closed) break;
  }
}

// One receive on a subscription it does not own.
asio::awaitable<void> receive_once(aurora::Subscription& sub, std::atomic<int>& alive, outcome& out) {
  const frame_guard guard(alive);
  aurora::RecvResult r = co_await sub.recv();
  ++out.receives;
  if (r) {
    out.last_sequence = r->sequence;
  } else {
    out.last_error = r.error().code;
  }
}

}  // namespace

TEST_CASE("A Subscription dropped with a receive pending completes it with closed", "[lifetime]") {
  aurora::Database db;
  asio::io_context io;
  std::atomic<int> alive{0};
  outcome out;
  auto sub = std::make_unique<aurora::Subscription>(db.subscribe("c"));
  asio::co_spawn(io, receive_once(*sub, alive, out), asio::detached);
  io.poll();  // parks the receive
  REQUIRE(alive == 1);
  REQUIRE(out.receives == 0);
  REQUIRE(db.subscriber_count("c") == 1);
  sub.reset();
  REQUIRE(db.subscriber_count("c") == 0);
  io.run();  // returns: the receive completed and released its work
  REQUIRE(out.receives == 1);
  REQUIRE(out.last_error == aurora::errc::closed);
  REQUIRE(alive == 0);
}

TEST_CASE("Move-assigning over a Subscription with a receive pending completes it with closed", "[lifetime]") {
  aurora::Database db;
  asio::io_context io;
  std::atomic<int> alive{0};
  outcome out;
  aurora::Subscription sub = db.subscribe("c");
  asio::co_spawn(io, receive_once(sub, alive, out), asio::detached);
  io.poll();
  sub = db.subscribe_global();
  REQUIRE(db.subscriber_count("c") == 0);
  REQUIRE(db.global_subscriber_count() == 1);
  io.run();
  REQUIRE(out.last_error == aurora::errc::closed);
}

TEST_CASE("The Database destroyed before the io_context closes its parked receivers", "[lifetime]") {
  std::atomic<int> alive{0};
  outcome out;
  asio::io_context io;
  {
    aurora::Database db;
    asio::co_spawn(io, follow(db.subscribe("c"), alive, out), asio::detached);
    io.poll();
    db.insert("c", {{"a", 1}});
  }
  io.run();
  REQUIRE(out.receives == 2);  // the event, then closed
  REQUIRE(out.last_sequence == 1);
  REQUIRE(out.last_error == aurora::errc::closed);
  REQUIRE(alive == 0);
}

TEST_CASE("An io_context destroyed with parked receivers frees them and their frames", "[lifetime]") {
  // The receive is parked (not queued) when the io_context goes: the recv_service destroys it,
  // with the coroutine frame that owns the Subscription, so nothing leaks and later publishes
  // and the Database's destruction touch no freed io_context.
  const bool stop_first = GENERATE(false, true);
  const bool sub_outside = GENERATE(false, true);
  INFO("stop first: " << stop_first << ", subscription outside the frame: " << sub_outside);
  aurora::Database db;
  std::atomic<int> alive{0};
  outcome out;
  std::optional<aurora::Subscription> outside;
  {
    asio::io_context io;
    if (sub_outside) {
      outside.emplace(db.subscribe("c"));
      asio::co_spawn(io, receive_once(*outside, alive, out), asio::detached);
    } else {
      asio::co_spawn(io, follow(db.subscribe("c"), alive, out), asio::detached);
    }
    io.poll();
    REQUIRE(alive == 1);
    if (stop_first) io.stop();
  }
  REQUIRE(alive == 0);  // the frame went with the io_context
  REQUIRE(out.receives == 0);
  REQUIRE(db.subscriber_count("c") == (sub_outside ? 1U : 0U));
  db.insert("c", {{"a", 1}});  // wakes nothing: the receive is gone
  if (outside) {
    REQUIRE(outside->try_recv().has_value());  // the event is still there for the next receive
    outside.reset();
  }
  REQUIRE(db.subscriber_count("c") == 0);
}

TEST_CASE("An io_context destroyed with a wake-up queued frees the receive", "[lifetime]") {
  aurora::Database db;
  std::atomic<int> alive{0};
  outcome out;
  {
    asio::io_context io;
    asio::co_spawn(io, follow(db.subscribe("c"), alive, out), asio::detached);
    io.poll();
    db.insert("c", {{"a", 1}});  // queues the wake-up on io, which never runs it
  }
  REQUIRE(alive == 0);
  REQUIRE(out.receives == 0);
  REQUIRE(db.subscriber_count("c") == 0);
}

TEST_CASE("A stopped io_context keeps its parked receivers until it runs again", "[lifetime]") {
  aurora::Database db;
  asio::io_context io;
  std::atomic<int> alive{0};
  outcome out;
  aurora::Subscription sub = db.subscribe("c");
  asio::co_spawn(io, receive_once(sub, alive, out), asio::detached);
  io.poll();
  io.stop();
  db.insert("c", {{"a", 1}});
  REQUIRE(out.receives == 0);
  io.restart();
  io.run();
  REQUIRE(out.receives == 1);
  REQUIRE(out.last_sequence == 1);
  REQUIRE(alive == 0);
}

TEST_CASE("A Subscription outlives its Database", "[lifetime]") {
  aurora::Subscription sub;
  {
    aurora::Database db;
    sub = db.subscribe_global();
    db.insert("c", {{"a", 1}});
  }
  REQUIRE(sub.try_recv().has_value());
  REQUIRE(sub.try_recv().error().code == aurora::errc::closed);
  REQUIRE(sub.try_recv().error().code == aurora::errc::closed);
  asio::io_context io;
  std::atomic<int> alive{0};
  outcome out;
  asio::co_spawn(io, receive_once(sub, alive, out), asio::detached);
  io.run();
  REQUIRE(out.last_error == aurora::errc::closed);
}

TEST_CASE("A use_future receive parked on the system executor completes when its Subscription goes", "[lifetime]") {
  aurora::Database db;
  auto sub = std::make_unique<aurora::Subscription>(db.subscribe("c"));
  std::future<aurora::RecvResult> f = sub->async_recv(asio::use_future);
  sub.reset();
  REQUIRE(f.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
  REQUIRE(f.get().error().code == aurora::errc::closed);
}

TEST_CASE("io_contexts destroyed while another thread publishes leave nothing behind", "[lifetime][threads]") {
  // Wake-ups race with the io_context's shutdown: each is either queued before it (and freed by
  // the scheduler) or finds the receive already destroyed by the recv_service.
  aurora::Database db;
  std::atomic<bool> stop{false};
  std::string writer_failure;
  std::thread writer([&] {
    try {
      while (!stop.load()) db.insert("c", {{"a", 1}});
    } catch (const std::exception& e) {
      writer_failure = e.what();
    }
  });
  std::atomic<int> alive{0};
  std::vector<outcome> outs(50);
  {
    const aurora_test::watchdog dog("io_context shutdown races", std::chrono::seconds(120));
    for (int round = 0; round < 40; ++round) {
      asio::io_context io;
      for (auto& out : outs) {
        asio::co_spawn(asio::make_strand(io), follow(db.subscribe(round % 2 == 0 ? "c" : "other"), alive, out),
                       asio::detached);
      }
      for (int i = 0; i < 20 && io.poll_one() > 0; ++i) {
      }
    }
  }
  stop = true;
  writer.join();
  REQUIRE(writer_failure.empty());
  REQUIRE(alive == 0);
  REQUIRE(db.subscriber_count("c") == 0);
  REQUIRE(db.subscriber_count("other") == 0);
}

TEST_CASE("io_context::run returns once every receive completed, was cancelled or closed", "[lifetime]") {
  const aurora_test::watchdog dog("run returns", std::chrono::seconds(60));
  auto db = std::make_unique<aurora::Database>();
  asio::io_context io;
  std::atomic<int> alive{0};
  std::vector<outcome> outs(3);
  aurora::Subscription kept = db->subscribe("c");
  aurora::Subscription third = db->subscribe("d");
  asio::cancellation_signal cancel;
  asio::co_spawn(io, follow(db->subscribe("c"), alive, outs[0]), asio::detached);
  asio::co_spawn(io, receive_once(kept, alive, outs[1]), asio::detached);
  asio::co_spawn(io, receive_once(third, alive, outs[2]), asio::bind_cancellation_slot(cancel.slot(), asio::detached));
  io.poll();
  REQUIRE(alive == 3);
  db->insert("c", {{"a", 1}});  // completes the receive on `kept`; follow() waits again
  io.poll();
  REQUIRE(outs[1].receives == 1);
  REQUIRE(alive == 2);
  cancel.emit(asio::cancellation_type::terminal);  // the receive on `third` throws operation_aborted
  io.poll();
  REQUIRE(alive == 1);
  REQUIRE(outs[2].receives == 0);
  db->insert("d", {{"b", 2}});
  REQUIRE(third.try_recv().has_value());  // still usable after the cancellation
  db.reset();                             // follow() reads closed and ends
  io.run();                               // and nothing else holds work
  REQUIRE(alive == 0);
  REQUIRE(outs[0].receives == 2);
  REQUIRE(outs[0].last_error == aurora::errc::closed);
}

TEST_CASE("recv raced with a completion already queued loses no event, whichever side wins", "[cancel]") {
  // `post || recv()`: the posted side completes first, so the receive is cancelled and must not
  // have consumed an event; `recv() || post`: the receive wins. Single-threaded, deterministic.
  using namespace boost::asio::experimental::awaitable_operators;
  aurora::Database db;
  aurora::Subscription sub = db.subscribe_global();
  constexpr std::uint64_t events = 200;
  for (std::uint64_t i = 0; i < events; ++i) db.insert("c", {{"i", i}});
  asio::io_context io;
  std::uint64_t next = 1;
  std::uint64_t received = 0;
  std::uint64_t lost_races = 0;
  std::uint64_t rounds = 0;
  bool in_order = true;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        while (received < events && rounds < 10 * events) {
          ++rounds;
          std::optional<aurora::RecvResult> r;
          if (rounds % 2 == 0) {
            auto v = co_await (asio::post(ex, asio::use_awaitable) || sub.recv());
            if (v.index() == 1) r = std::get<1>(std::move(v));
          } else {
            auto v = co_await (sub.recv() || asio::post(ex, asio::use_awaitable));
            if (v.index() == 0) r = std::get<0>(std::move(v));
          }
          if (!r) {
            ++lost_races;
            continue;
          }
          if (!*r || (*r)->sequence != next) in_order = false;
          ++next;
          ++received;
        }
      },
      asio::detached);
  io.run();
  INFO("received " << received << " in " << rounds << " rounds, " << lost_races << " lost races");
  REQUIRE(in_order);
  REQUIRE(received == events);
  REQUIRE(lost_races > 0);
  REQUIRE(sub.try_recv().error().code == aurora::errc::empty);
}

namespace {

// An execution-context service that runs a callback when its context shuts down.
struct shutdown_hook final : asio::execution_context::service {
  static inline asio::execution_context::id id;
  explicit shutdown_hook(asio::execution_context& c) : service(c) {}
  std::function<void()> on_shutdown;
  void shutdown() override {
    if (on_shutdown) on_shutdown();
  }
};

}  // namespace

TEST_CASE("An io_context destroyed while a strand's queued handler owns the Database does not deadlock", "[lifetime]") {
  // The strand is made after the first receive parked, so its service shuts down first and
  // destroys the queued handler: ~Database closes the channels and hands the receive parked on
  // the strand back to it, whose shut-down service destroys it inline, with the coroutine frame
  // that owns its Subscription. Nothing may be locked around that post.
  std::atomic<int> alive{0};
  outcome a;
  outcome b;
  auto db = std::make_shared<aurora::Database>();
  {
    asio::io_context io;
    asio::co_spawn(io, follow(db->subscribe("c"), alive, a), asio::detached);
    io.poll();
    auto strand = asio::make_strand(io);
    asio::co_spawn(strand, follow(db->subscribe("c"), alive, b), asio::detached);
    io.poll();
    REQUIRE(alive == 2);
    asio::post(strand, [keep = std::move(db)] {});  // queued, never run: the Database's last owner
  }
  CHECK(alive == 0);
}

TEST_CASE("An io_context destroyed on one thread while another writes does not deadlock", "[lifetime][threads]") {
  // The writer's wake-up reaches a receive parked on a strand whose service already shut down,
  // while the io_context's destructor runs on this thread.
  std::atomic<int> alive{0};
  outcome a;
  outcome b;
  aurora::Database db;
  auto io = std::make_unique<asio::io_context>();
  asio::co_spawn(*io, follow(db.subscribe("c"), alive, a), asio::detached);
  io->poll();
  std::mutex m;
  std::condition_variable cv;
  bool go = false;
  bool inserted = false;
  asio::use_service<shutdown_hook>(*io).on_shutdown = [&] {  // between the strand's and ours
    std::unique_lock lock(m);
    go = true;
    cv.notify_all();
    cv.wait_for(lock, std::chrono::seconds(10), [&] { return inserted; });
  };
  {
    auto strand = asio::make_strand(*io);
    asio::co_spawn(strand, follow(db.subscribe("c"), alive, b), asio::detached);
    io->poll();
  }
  REQUIRE(alive == 2);
  std::thread writer([&] {
    {
      std::unique_lock lock(m);
      cv.wait(lock, [&] { return go; });
    }
    db.insert("c", {{"x", 1}});
    const std::lock_guard lock(m);
    inserted = true;
    cv.notify_all();
  });
  io.reset();
  writer.join();
  CHECK(inserted);
  CHECK(alive == 0);
}
