// Tests for aurora/subscription.hpp: recv, try_recv, cancellation, unsubscribe and close.
#include <aurora/database.hpp>
#include <aurora/subscription.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <variant>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using aurora::errc;
using aurora::RecvResult;

namespace {

// Runs `io` until it has no work left; fails (instead of hanging) if that takes too long.
std::size_t run_bounded(asio::io_context& io, std::chrono::seconds limit = std::chrono::seconds(60)) {
  const std::size_t handlers = io.run_for(limit);
  REQUIRE(io.stopped());
  return handlers;
}

// A recv callback bound to `io`, recording what it got.
struct recorded {
  bool done = false;
  boost::system::error_code ec;
  RecvResult result;
};

auto record_into(asio::io_context& io, recorded& out) {
  return asio::bind_executor(io.get_executor(), [&out](boost::system::error_code ec, RecvResult r) {
    out.done = true;
    out.ec = ec;
    out.result = std::move(r);
  });
}

aurora::Document doc(int i) { return {{"i", i}}; }

// Every receive in `out` completed with the event of doc(i).
void check_all_got(const std::vector<recorded>& out, int i) {
  for (std::size_t k = 0; k < out.size(); ++k) {
    INFO("subscriber " << k);
    REQUIRE(out[k].done);
    CHECK_FALSE(out[k].ec);
    REQUIRE(out[k].result);
    CHECK(out[k].result->document->at("i") == i);
  }
}

// `n` subscriptions to "users".
std::vector<aurora::Subscription> subscribe_users(aurora::Database& db, std::size_t n) {
  std::vector<aurora::Subscription> subs;
  for (std::size_t i = 0; i < n; ++i) subs.push_back(db.subscribe("users"));
  return subs;
}

}  // namespace

TEST_CASE("a new subscription sees only events published after subscribe", "[subscription]") {
  aurora::Database db;
  db.insert("users", doc(0));
  auto sub = db.subscribe("users");
  CHECK(sub.try_recv().error().code == errc::empty);
  db.insert("users", doc(1));
  RecvResult r = sub.try_recv();
  REQUIRE(r);
  CHECK(r->document->at("i") == 1);
  CHECK(sub.try_recv().error().code == errc::empty);
}

TEST_CASE("recv returns ready events without suspending, yielding when its budget runs out", "[subscription]") {
  aurora::Database db;
  auto sub = db.subscribe("users");
  constexpr int n = 1000;
  for (int i = 0; i < n; ++i) db.insert("users", doc(i));

  asio::io_context io;
  int received = 0;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (int i = 0; i < n; ++i) {
          RecvResult r = co_await sub.recv();
          if (r && r->document->at("i") == i) ++received;
        }
      },
      asio::detached);
  const std::size_t handlers = run_bounded(io);
  CHECK(received == n);
  // Starting the coroutine, and a yield when the time budget runs out (at most one per 16
  // events), not one handler per event.
  CHECK(handlers <= 3 + n / 16);
}

TEST_CASE("a subscriber that never runs out of events does not starve its executor", "[subscription]") {
  // Every event the subscriber takes, it replaces with a new one (as a writer faster than the
  // subscriber would): without the budget its loop would never suspend and the other coroutine
  // on this single-threaded executor would never run.
  aurora::Database db;
  auto sub = db.subscribe("users");
  db.insert("users", doc(0));
  asio::io_context io;
  bool other_ran = false;
  int received = 0;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        while (!other_ran) {
          RecvResult r = co_await sub.recv();
          REQUIRE(r);
          ++received;
          db.insert("users", doc(received));
        }
      },
      asio::detached);
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        other_ran = true;
        co_return;
      },
      asio::detached);
  run_bounded(io);
  CHECK(other_ran);
  CHECK(received >= 1);
}

TEST_CASE("a parked recv is resumed by the next publish, on the coroutine's executor", "[subscription]") {
  aurora::Database db;
  auto sub = db.subscribe("users");
  asio::io_context io;
  std::optional<RecvResult> got;
  bool on_own_executor = false;
  std::thread::id resumed_on;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        got = co_await sub.recv();
        const asio::any_io_executor ex = co_await asio::this_coro::executor;
        on_own_executor = io.get_executor().running_in_this_thread() && ex == asio::any_io_executor(io.get_executor());
        resumed_on = std::this_thread::get_id();
      },
      asio::detached);
  io.poll();  // the coroutine starts and parks: nothing is published yet
  REQUIRE_FALSE(got);

  std::thread writer([&] { db.insert("users", doc(7)); });  // publish from another thread
  writer.join();
  run_bounded(io);
  REQUIRE(got);
  REQUIRE(*got);
  CHECK((*got)->document->at("i") == 7);
  CHECK(on_own_executor);
  CHECK(resumed_on == std::this_thread::get_id());
}

TEST_CASE("recv skips events its filter rejects", "[subscription]") {
  aurora::Database db;
  aurora::EventFilter f;
  f.field_filters = {{"i", 3}};
  auto sub = db.subscribe("users", f);
  asio::io_context io;
  std::optional<RecvResult> got;
  asio::co_spawn(
      io, [&]() -> asio::awaitable<void> { got = co_await sub.recv(); }, asio::detached);
  io.poll();
  for (int i = 0; i < 5; ++i) db.insert("users", doc(i));  // wakes it for 0, 1, 2 too
  run_bounded(io);
  REQUIRE(got);
  REQUIRE(*got);
  CHECK((*got)->document->at("i") == 3);
  CHECK(sub.try_recv().error().code == errc::empty);  // 4 was skipped
}

TEST_CASE("recv with a timer through awaitable operators: the timeout loses no event", "[subscription][cancel]") {
  using namespace asio::experimental::awaitable_operators;
  aurora::Database db;
  auto sub = db.subscribe("users");
  asio::io_context io;
  int timeouts = 0;
  std::vector<int> received;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        asio::steady_timer timer(co_await asio::this_coro::executor);
        while (received.size() < 3) {
          timer.expires_after(1ms);
          auto v = co_await (sub.recv() || timer.async_wait(asio::use_awaitable));
          if (v.index() == 1) {
            ++timeouts;
            // Nothing was lost while we timed out: publish now, the next recv sees it.
            db.insert("users", doc(static_cast<int>(received.size())));
            continue;
          }
          RecvResult& r = std::get<0>(v);
          if (r) received.push_back(r->document->at("i").get<int>());
        }
      },
      asio::detached);
  run_bounded(io);  // returns: no work is left behind by the cancelled receives
  CHECK(timeouts >= 1);
  CHECK(received == std::vector<int>{0, 1, 2});
}

TEST_CASE("a parked recv cancelled by its slot completes with operation_aborted", "[subscription][cancel]") {
  aurora::Database db;
  auto sub = db.subscribe("users");
  asio::io_context io;
  asio::cancellation_signal signal;
  recorded out;
  sub.async_recv(asio::bind_cancellation_slot(signal.slot(), record_into(io, out)));
  CHECK_FALSE(out.done);  // never completes inside the initiating call
  signal.emit(asio::cancellation_type::terminal);
  run_bounded(io);
  REQUIRE(out.done);
  CHECK(out.ec == asio::error::operation_aborted);

  db.insert("users", doc(1));
  RecvResult r = sub.try_recv();
  REQUIRE(r);
  CHECK(r->document->at("i") == 1);
}

TEST_CASE("a cancellation after the wake-up was queued loses no event", "[subscription][cancel]") {
  aurora::Database db;
  auto sub = db.subscribe("users");
  asio::io_context io;
  asio::cancellation_signal signal;
  recorded out;
  sub.async_recv(asio::bind_cancellation_slot(signal.slot(), record_into(io, out)));
  db.insert("users", doc(1));                      // queues the wake-up on io
  signal.emit(asio::cancellation_type::terminal);  // then the cancellation arrives
  run_bounded(io);
  REQUIRE(out.done);
  CHECK(out.ec == asio::error::operation_aborted);
  CHECK_FALSE(out.result);

  RecvResult r = sub.try_recv();  // the event is still there
  REQUIRE(r);
  CHECK(r->document->at("i") == 1);

  // A late emit on the old slot does not touch the next receive.
  recorded next;
  sub.async_recv(record_into(io, next));
  signal.emit(asio::cancellation_type::terminal);
  db.insert("users", doc(2));
  io.restart();
  run_bounded(io);
  REQUIRE(next.done);
  CHECK_FALSE(next.ec);
  REQUIRE(next.result);
  CHECK(next.result->document->at("i") == 2);
}

TEST_CASE("a cancelled co_await recv throws operation_aborted", "[subscription][cancel]") {
  aurora::Database db;
  auto sub = db.subscribe("users");
  asio::io_context io;
  asio::cancellation_signal signal;
  std::exception_ptr error;
  bool done = false;
  asio::co_spawn(io, sub.recv(),
                 asio::bind_cancellation_slot(signal.slot(), [&](const std::exception_ptr& e, const RecvResult&) {
                   error = e;
                   done = true;
                 }));
  io.poll();
  signal.emit(asio::cancellation_type::terminal);
  run_bounded(io);
  REQUIRE(done);
  REQUIRE(error);
  try {
    std::rethrow_exception(error);
  } catch (const boost::system::system_error& e) {
    CHECK(e.code() == asio::error::operation_aborted);
  }
}

TEST_CASE("try_recv never waits and reports empty", "[subscription]") {
  aurora::Database db;
  auto sub = db.subscribe("users");
  CHECK(sub.try_recv().error().code == errc::empty);
  CHECK(sub.try_recv().error().code == errc::empty);
}

TEST_CASE("unsubscribe frees the place, closes receives and completes a pending one", "[subscription]") {
  aurora::Database db;
  auto a = db.subscribe("users");
  auto b = db.subscribe("users");
  auto g = db.subscribe_global();
  CHECK(db.subscriber_count("users") == 2);
  CHECK(db.global_subscriber_count() == 1);

  asio::io_context io;
  recorded pending;
  a.async_recv(record_into(io, pending));
  a.unsubscribe();
  CHECK(db.subscriber_count("users") == 1);
  run_bounded(io);
  REQUIRE(pending.done);
  CHECK_FALSE(pending.ec);
  CHECK(pending.result.error().code == errc::closed);

  db.insert("users", doc(1));
  CHECK(a.try_recv().error().code == errc::closed);
  a.unsubscribe();  // idempotent
  CHECK(db.subscriber_count("users") == 1);

  g = aurora::Subscription();  // move-assigning over a subscription frees its place
  CHECK(db.global_subscriber_count() == 0);
  {
    auto moved = std::move(b);
    CHECK(db.subscriber_count("users") == 1);
    CHECK(b.try_recv().error().code == errc::closed);  // NOLINT(bugprone-use-after-move): defined as closed
  }
  CHECK(db.subscriber_count("users") == 0);
}

TEST_CASE("destroying the database: unread events first, then closed for good", "[subscription][close]") {
  asio::io_context io;
  aurora::Subscription reader;
  aurora::Subscription waiting;
  recorded pending;
  {
    aurora::Database db;
    reader = db.subscribe("users");
    waiting = db.subscribe_global();
    waiting.async_recv(record_into(io, pending));
    io.poll();
    db.insert("users", doc(1));
    db.insert("users", doc(2));
  }
  // The subscription outlives its database.
  RecvResult r1 = reader.try_recv();
  RecvResult r2 = reader.try_recv();
  REQUIRE(r1);
  REQUIRE(r2);
  CHECK(r1->sequence == 1);
  CHECK(r2->sequence == 2);
  CHECK(reader.try_recv().error().code == errc::closed);
  CHECK(reader.try_recv().error().code == errc::closed);

  run_bounded(io);  // the pending receive was woken: it got the first event
  REQUIRE(pending.done);
  REQUIRE(pending.result);
  CHECK(pending.result->sequence == 1);
}

TEST_CASE("a pending recv completes with closed when the database goes away", "[subscription][close]") {
  asio::io_context io;
  std::optional<RecvResult> got;
  auto db = std::make_unique<aurora::Database>();
  asio::co_spawn(
      io, [&, sub = db->subscribe("users")]() mutable -> asio::awaitable<void> { got = co_await sub.recv(); },
      asio::detached);
  io.poll();
  REQUIRE_FALSE(got);
  db.reset();
  run_bounded(io);
  REQUIRE(got);
  CHECK(got->error().code == errc::closed);
}

TEST_CASE("lag through the database: the worked example", "[subscription][lag]") {
  aurora::Database db;  // capacity 10,000
  auto sub = db.subscribe("events");
  const aurora::Document small = {{"k", 1}};
  for (int i = 0; i < 100'000; ++i) db.insert("events", std::to_string(i), small);

  RecvResult lagged = sub.try_recv();
  REQUIRE_FALSE(lagged);
  CHECK(lagged.error().code == errc::lagged);
  CHECK(lagged.error().missed == 90'000);

  // Event number 90,000 (0-based) is the one with sequence 90,001.
  for (std::uint64_t seq = 90'001; seq <= 100'000; ++seq) {
    RecvResult r = sub.try_recv();
    REQUIRE(r);
    REQUIRE(r->sequence == seq);
  }
  CHECK(sub.try_recv().error().code == errc::empty);
}

TEST_CASE("missed counts channel events, including ones the filter drops", "[subscription][lag]") {
  aurora::Database db{aurora::Options{.channel_capacity = 4}};
  aurora::EventFilter deletes_only;
  deletes_only.operation = aurora::OperationType::Delete;
  auto sub = db.subscribe("users", deletes_only);
  for (int i = 0; i < 9; ++i) db.insert("users", doc(i));
  RecvResult r = sub.try_recv();
  CHECK(r.error().code == errc::lagged);
  CHECK(r.error().missed == 5);
  CHECK(sub.try_recv().error().code == errc::empty);  // the 4 retained were filtered out
}

TEST_CASE("a lagged co_await recv goes on from the oldest retained event", "[subscription][lag]") {
  aurora::Database db{aurora::Options{.channel_capacity = 3}};
  auto sub = db.subscribe("users");
  for (int i = 0; i < 10; ++i) db.insert("users", doc(i));
  asio::io_context io;
  std::vector<RecvResult> got;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (int k = 0; k < 4; ++k) got.push_back(co_await sub.recv());
      },
      asio::detached);
  run_bounded(io);
  REQUIRE(got.size() == 4);
  CHECK(got[0].error() == aurora::RecvError{errc::lagged, 7});
  for (int k = 1; k < 4; ++k) {
    REQUIRE(got[static_cast<std::size_t>(k)]);
    CHECK(got[static_cast<std::size_t>(k)]->document->at("i") == 6 + k);
  }
}

TEST_CASE("an empty subscription is closed", "[subscription]") {
  aurora::Subscription none;
  CHECK_FALSE(none);
  CHECK(none.try_recv().error().code == errc::closed);
  asio::io_context io;
  recorded out;
  none.async_recv(record_into(io, out));
  run_bounded(io);
  REQUIRE(out.done);
  CHECK(out.result.error().code == errc::closed);
}

TEST_CASE("a second receive while one is in flight completes with already_started", "[subscription]") {
  aurora::Database db;
  auto sub = db.subscribe("users");
  asio::io_context io;
  recorded first;
  recorded second;
  sub.async_recv(record_into(io, first));   // parks
  sub.async_recv(record_into(io, second));  // refused, at once
  CHECK_FALSE(second.done);                 // but not inside the initiating call
  io.poll();
  REQUIRE(second.done);
  CHECK(second.ec == asio::error::already_started);
  CHECK_FALSE(first.done);  // the first one is untouched

  db.insert("users", doc(7));
  io.restart();
  run_bounded(io);
  REQUIRE(first.done);
  CHECK_FALSE(first.ec);
  REQUIRE(first.result);
  CHECK(first.result->document->at("i") == 7);

  // Through co_await: the second receive throws system_error(already_started).
  std::optional<boost::system::error_code> thrown;
  RecvResult got;
  asio::co_spawn(
      io, [&]() -> asio::awaitable<void> { got = co_await sub.recv(); }, asio::detached);
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        try {
          (void)co_await sub.recv();
        } catch (const boost::system::system_error& e) {
          thrown = e.code();
        }
      },
      asio::detached);
  io.restart();
  io.poll();
  REQUIRE(thrown);
  CHECK(*thrown == asio::error::already_started);
  db.insert("users", doc(8));
  run_bounded(io);
  REQUIRE(got);
  CHECK(got->document->at("i") == 8);
}

TEST_CASE("async_recv defaults to use_awaitable, and is_open follows the subscription", "[subscription]") {
  aurora::Database db;
  auto sub = db.subscribe("users");
  CHECK(sub.is_open());
  db.insert("users", doc(1));
  asio::io_context io;
  RecvResult got;
  asio::co_spawn(
      io, [&]() -> asio::awaitable<void> { got = co_await sub.async_recv(); }, asio::detached);
  run_bounded(io);
  REQUIRE(got);
  CHECK(got->document->at("i") == 1);
  static_assert(
      std::is_same_v<aurora::Subscription::completion_signature, void(boost::system::error_code, aurora::RecvResult)>);

  aurora::Subscription moved = std::move(sub);
  CHECK_FALSE(sub.is_open());  // NOLINT(bugprone-use-after-move)
  CHECK(moved.is_open());
  moved.unsubscribe();
  CHECK_FALSE(moved.is_open());
  CHECK_FALSE(aurora::Subscription().is_open());
}

TEST_CASE("a cancellation before a queued receive runs is not held until the next publish", "[subscription][cancel]") {
  // The receive found an event at once and queued itself to read it on the executor; the
  // cancellation arrives before that runs. It must complete with operation_aborted when it runs,
  // with no further publish, and leave the event in place.
  aurora::Database db;
  auto sub = db.subscribe("users");
  db.insert("users", doc(1));
  asio::io_context io;
  asio::cancellation_signal signal;
  recorded out;
  sub.async_recv(asio::bind_cancellation_slot(signal.slot(), record_into(io, out)));
  signal.emit(asio::cancellation_type::terminal);
  run_bounded(io);
  REQUIRE(out.done);
  CHECK(out.ec == asio::error::operation_aborted);
  RecvResult r = sub.try_recv();
  REQUIRE(r);
  CHECK(r->document->at("i") == 1);

  // The same while parked: completes without any publish.
  recorded parked;
  asio::cancellation_signal signal2;
  sub.async_recv(asio::bind_cancellation_slot(signal2.slot(), record_into(io, parked)));
  io.restart();
  io.poll();
  CHECK_FALSE(parked.done);
  signal2.emit(asio::cancellation_type::terminal);
  run_bounded(io);
  REQUIRE(parked.done);
  CHECK(parked.ec == asio::error::operation_aborted);
}

// ------------------------------------------------------------------------ batched wake-ups

TEST_CASE("parked receives on one io_context are resumed by one hand-off per publish", "[subscription][wake]") {
  aurora::Database db;
  asio::io_context io;
  constexpr std::size_t n = 8;
  std::vector<aurora::Subscription> subs = subscribe_users(db, n);
  std::vector<recorded> out(n);
  for (std::size_t i = 0; i < n; ++i) subs[i].async_recv(record_into(io, out[i]));
  CHECK(io.poll() == 0);  // all parked: nothing queued yet
  io.restart();

  db.insert("users", doc(1));  // from a thread that does not run io
  CHECK(io.run_one() == 1);    // one piece of work resumes all of them
  check_all_got(out, 1);
  CHECK(io.poll() == 0);  // and nothing else was queued
}

namespace {

// Runs `io` on one more thread; the destructor stops `io` and joins, also when a test fails.
class extra_thread {
 public:
  explicit extra_thread(asio::io_context& io)
      : io_(io), work_(asio::make_work_guard(io)), thread_([&io] { io.run_for(60s); }) {}
  extra_thread(const extra_thread&) = delete;
  extra_thread& operator=(const extra_thread&) = delete;
  ~extra_thread() {
    work_.reset();
    io_.stop();
    thread_.join();
  }

 private:
  asio::io_context& io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;
};

// What a writing handler saw, shared with the receive handlers. The writer waits (under
// `mutex`) until everything posted before its `marker` has run on the other thread of the
// context: a receive that was posted, not held, has then completed.
struct held_check : std::enable_shared_from_this<held_check> {
  std::mutex mutex;
  std::condition_variable changed;
  int held_got = 0;    // completions of the receive that should be held
  int posted_got = 0;  // completions of receives that should be posted
  bool marker_ran = false;
  bool writer_saw_all_posted = false;
  int held_while_writing = -1;
  bool writer_done = false;

  auto counter(asio::io_context& io, int held_check::*field, int expected) {
    return asio::bind_executor(
        io.get_executor(), [self = shared_from_this(), field, expected](boost::system::error_code ec, RecvResult r) {
          const bool ok = !ec && r && r->document->at("i") == expected;
          const std::lock_guard lock(self->mutex);
          (*self).*field += ok ? 1 : 100;
          self->changed.notify_all();
        });
  }

  // In the writing handler, after its writes: posts the marker and waits for it.
  void wait_for_posted(asio::io_context& io, int posted_expected) {
    asio::post(io, [self = shared_from_this()] {
      const std::lock_guard lock(self->mutex);
      self->marker_ran = true;
      self->changed.notify_all();
    });
    std::unique_lock lock(mutex);
    writer_saw_all_posted = changed.wait_for(lock, 20s, [&] { return marker_ran && posted_got >= posted_expected; });
    held_while_writing = held_got;
    writer_done = true;
    changed.notify_all();
  }

  // On the test's thread: waits until the writer is done and the held receive ran.
  void wait_until_done() {
    std::unique_lock lock(mutex);
    changed.wait_for(lock, 40s, [this] { return writer_done && held_got != 0; });
  }
};

}  // namespace

TEST_CASE("a write from a handler that wakes one receive on its context resumes it after the handler",
          "[subscription][wake][threads]") {
  aurora::Database db;
  asio::io_context io(2);
  auto on_a = db.subscribe("a");
  std::vector<aurora::Subscription> on_b;
  on_b.push_back(db.subscribe("b"));
  on_b.push_back(db.subscribe("b"));
  const extra_thread thread_1(io);
  const extra_thread thread_2(io);
  // Twice: the second round shows that the first gave its deferred hand-off back.
  for (int round = 0; round < 2; ++round) {
    INFO("round " << round);
    auto check = std::make_shared<held_check>();
    on_a.async_recv(check->counter(io, &held_check::held_got, 1));
    for (auto& sub : on_b) sub.async_recv(check->counter(io, &held_check::posted_got, 2));
    asio::post(io, [&db, &io, check] {
      db.insert("b", doc(2));  // two receives: posted, the other thread runs them now
      db.insert("a", doc(1));  // one receive: deferred to after this handler
      check->wait_for_posted(io, 2);
    });
    check->wait_until_done();
    const std::lock_guard lock(check->mutex);
    REQUIRE(check->writer_done);
    CHECK(check->writer_saw_all_posted);
    CHECK(check->held_while_writing == 0);  // held while the handler ran
    CHECK(check->held_got == 1);            // and resumed after it returned
    CHECK(check->posted_got == 2);
  }
}

TEST_CASE("while a deferred hand-off waits the next one is posted", "[subscription][wake][threads]") {
  aurora::Database db;
  asio::io_context io(2);
  auto on_a = db.subscribe("a");
  auto on_b = db.subscribe("b");
  const extra_thread thread_1(io);
  const extra_thread thread_2(io);
  auto check = std::make_shared<held_check>();
  on_a.async_recv(check->counter(io, &held_check::held_got, 1));
  on_b.async_recv(check->counter(io, &held_check::posted_got, 2));
  asio::post(io, [&db, &io, check] {
    db.insert("a", doc(1));  // deferred
    db.insert("b", doc(2));  // one receive too, but the deferral is taken: posted
    check->wait_for_posted(io, 1);
  });
  check->wait_until_done();
  const std::lock_guard lock(check->mutex);
  REQUIRE(check->writer_done);
  CHECK(check->writer_saw_all_posted);
  CHECK(check->held_while_writing == 0);
  CHECK(check->held_got == 1);
  CHECK(check->posted_got == 1);
}

namespace {

// A receive handler that must never run: the receive is destroyed with its context.
struct never_run {
  std::shared_ptr<bool> invoked = std::make_shared<bool>(false);

  [[nodiscard]] auto on(asio::io_context& io) const {
    return asio::bind_executor(io.get_executor(),
                               [flag = invoked](boost::system::error_code, const RecvResult&) { *flag = true; });
  }
  // How many receives still hold the handler.
  [[nodiscard]] long held() const { return invoked.use_count() - 1; }
};

// `sub` has no receive in flight any more, and its next one, on a new context, gets doc(1).
void check_next_receive_gets_first_event(aurora::Subscription& sub) {
  asio::io_context io;
  recorded out;
  sub.async_recv(record_into(io, out));
  run_bounded(io);
  REQUIRE(out.done);
  CHECK_FALSE(out.ec);  // not already_started
  REQUIRE(out.result);
  CHECK(out.result->document->at("i") == 1);
}

}  // namespace

TEST_CASE("a receive queued with its event on a context that goes away is destroyed and the next may start",
          "[subscription][close]") {
  aurora::Database db;
  auto sub = db.subscribe("users");
  db.insert("users", doc(1));
  const never_run handler;
  {
    asio::io_context io;
    sub.async_recv(handler.on(io));  // the event is there: queued to read it, never run
    CHECK(handler.held() == 1);
  }
  CHECK_FALSE(*handler.invoked);
  CHECK(handler.held() == 0);
  check_next_receive_gets_first_event(sub);  // the event is still there
}

TEST_CASE("a receive parked on a context that goes away is destroyed and the next may start", "[subscription][close]") {
  aurora::Database db;
  auto sub = db.subscribe("users");
  const never_run handler;
  {
    asio::io_context io;
    sub.async_recv(handler.on(io));
    CHECK(io.poll() == 0);  // parked
    CHECK(handler.held() == 1);
  }
  CHECK_FALSE(*handler.invoked);
  CHECK(handler.held() == 0);
  db.insert("users", doc(1));  // nothing parked to wake
  check_next_receive_gets_first_event(sub);
}

TEST_CASE("a deferred hand-off still queued when its context goes away destroys its receive",
          "[subscription][wake][close]") {
  aurora::Database db;
  auto sub = db.subscribe("users");
  const never_run handler;
  {
    asio::io_context io;
    sub.async_recv(handler.on(io));
    asio::post(io, [&] {
      db.insert("users", doc(1));  // defers the hand-off to after this handler...
      io.stop();                   // ...which the context never gets to
    });
    io.run();
    CHECK(handler.held() == 1);  // the queued hand-off holds the receive
  }
  CHECK_FALSE(*handler.invoked);
  CHECK(handler.held() == 0);
  check_next_receive_gets_first_event(sub);  // the receive took no event
}

TEST_CASE("a batched wake-up completes each receive on its own executor", "[subscription][wake][threads]") {
  aurora::Options options;
  constexpr int events = 2000;
  options.channel_capacity = events;  // nobody lags: every receive must see every event
  aurora::Database db(options);
  asio::io_context io(2);
  asio::io_context other(1);
  auto strand = asio::make_strand(io);
  constexpr std::size_t plain = 6;
  constexpr std::size_t stranded = 3;
  constexpr std::size_t elsewhere = 3;
  constexpr std::size_t n = plain + stranded + elsewhere;
  struct tally {
    int received = 0;
    int out_of_order = 0;
    int wrong_executor = 0;
    bool ended_ok = false;
  };
  std::vector<tally> tallies(n);
  std::atomic<std::size_t> started{0};
  auto reader = [&](aurora::Subscription sub, tally& t, std::function<bool()> on_executor) -> asio::awaitable<void> {
    started.fetch_add(1);
    for (int expected = 0; expected < events; ++expected) {
      const RecvResult r = co_await sub.recv();
      if (!on_executor()) ++t.wrong_executor;
      if (!r) co_return;
      if (r->document->at("i") != expected) ++t.out_of_order;
      ++t.received;
    }
    t.ended_ok = true;
  };
  auto work = asio::make_work_guard(io);
  auto other_work = asio::make_work_guard(other);
  for (std::size_t i = 0; i < n; ++i) {
    auto sub = db.subscribe("users");
    if (i < plain) {
      asio::co_spawn(io,
                     reader(std::move(sub), tallies[i], [&io] { return io.get_executor().running_in_this_thread(); }),
                     asio::detached);
    } else if (i < plain + stranded) {
      asio::co_spawn(strand, reader(std::move(sub), tallies[i], [&strand] { return strand.running_in_this_thread(); }),
                     asio::detached);
    } else {
      asio::co_spawn(
          other, reader(std::move(sub), tallies[i], [&other] { return other.get_executor().running_in_this_thread(); }),
          asio::detached);
    }
  }
  std::vector<std::thread> threads;
  threads.emplace_back([&io] { io.run_for(60s); });
  threads.emplace_back([&io] { io.run_for(60s); });
  threads.emplace_back([&other] { other.run_for(60s); });
  std::thread writer([&] {
    for (int i = 0; i < events; ++i) db.insert("users", doc(i));
  });
  writer.join();
  work.reset();
  other_work.reset();
  for (auto& t : threads) t.join();
  CHECK(started.load() == n);
  for (std::size_t i = 0; i < n; ++i) {
    INFO("subscriber " << i);
    CHECK(tallies[i].received == events);
    CHECK(tallies[i].out_of_order == 0);
    CHECK(tallies[i].wrong_executor == 0);
    CHECK(tallies[i].ended_ok);
  }
}

TEST_CASE("a handler that throws out of a batched wake-up does not lose the others", "[subscription][wake]") {
  aurora::Database db;
  asio::io_context io;
  std::vector<aurora::Subscription> subs = subscribe_users(db, 3);
  std::vector<recorded> out(subs.size());
  subs[0].async_recv(record_into(io, out[0]));
  subs[1].async_recv(asio::bind_executor(io.get_executor(), [&out](boost::system::error_code ec, RecvResult r) {
    out[1].done = true;
    out[1].ec = ec;
    out[1].result = std::move(r);
    throw std::runtime_error("handler failed");
  }));
  subs[2].async_recv(record_into(io, out[2]));
  db.insert("users", doc(5));
  CHECK_THROWS_AS(io.run(), std::runtime_error);
  io.restart();
  run_bounded(io);
  check_all_got(out, 5);
  // Each can receive again.
  for (std::size_t i = 0; i < subs.size(); ++i) {
    out[i] = recorded{};
    subs[i].async_recv(record_into(io, out[i]));
  }
  db.insert("users", doc(6));
  io.restart();
  run_bounded(io);
  check_all_got(out, 6);
}

TEST_CASE("a batched wake-up queued on a context that goes away destroys its receives", "[subscription][wake][close]") {
  aurora::Database db;
  auto sub_a = db.subscribe("users");
  auto sub_b = db.subscribe("users");
  auto token = std::make_shared<int>(0);
  bool invoked = false;
  {
    asio::io_context io;
    auto handler = [&invoked, token](boost::system::error_code, const RecvResult&) { invoked = true; };
    sub_a.async_recv(asio::bind_executor(io.get_executor(), handler));
    sub_b.async_recv(asio::bind_executor(io.get_executor(), handler));
    CHECK(token.use_count() == 4);  // `handler` and the two receives hold it
    db.insert("users", doc(1));     // queues the hand-off; io never runs it
  }
  CHECK_FALSE(invoked);
  CHECK(token.use_count() == 1);  // both handlers were destroyed with the context
  db.insert("users", doc(2));     // nothing left to wake
  CHECK(token.use_count() == 1);
  // Neither receive is in flight any more: both read on, from the event that woke them.
  asio::io_context io;
  std::vector<recorded> out(2);
  sub_a.async_recv(record_into(io, out[0]));
  sub_b.async_recv(record_into(io, out[1]));
  run_bounded(io);
  check_all_got(out, 1);
}
