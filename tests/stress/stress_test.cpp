// Stress: 4 writers and 64 subscribers on 2 io threads with exact lag accounting, subscription
// churn during writes, receives raced against timers, and teardown with receives pending.
//
// Size: AURORA_STRESS_EVENTS (environment) overrides the configured default (1,000,000 in
// release builds). Time limit per test: AURORA_STRESS_TIMEOUT seconds (default 300).
// Every assertion runs on the main thread after the worker threads are joined.
#include "support.hpp"

#include <aurora/aurora.hpp>

#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <variant>
#include <vector>

namespace asio = boost::asio;
using namespace boost::asio::experimental::awaitable_operators;
using aurora_test::io_threads;
using aurora_test::watchdog;

namespace {

constexpr std::size_t collections = 4;
constexpr std::size_t global_channel = collections;  // index of the global channel in per-channel arrays

std::string collection_name(std::size_t k) { return "c" + std::to_string(k); }

// Keeps writers at most `window` events (plus one in flight per writer) ahead of the "reliable"
// subscribers, so that those never lag and must receive every event, whatever the scheduling.
// Waiting uses a condition variable, which the subscribers notify every `notify_every` events: a
// smaller window could leave a writer waiting for a notification that never comes.
//
// A writer counts its event before writing it (`will_publish`), so that a consumer can never be
// ahead of the count: were it counted after, a reliable subscriber could receive an event not yet
// counted, a writer checking then would read a negative gap as "full" and wait for a notification
// that no consumer sends once the others are done (the hang CI saw). For the same reason `gap`
// reads the consumed count before the published one.
class flow_gate {
 public:
  explicit flow_gate(std::uint64_t window) : window_(window) {
    if (window < notify_every) throw std::invalid_argument("flow_gate: a window under notify_every can miss a wake-up");
  }

  void wait_room(std::size_t k) {
    if (has_room(k)) return;
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return has_room(k); });
  }

  void will_publish(std::size_t k) {
    published_[k].fetch_add(1);
    published_[global_channel].fetch_add(1);
  }

  void consumed(std::size_t channel, std::uint64_t count) {
    consumed_[channel].store(count);
    if (count % notify_every == 0) {
      { const std::lock_guard lock(mutex_); }
      cv_.notify_all();
    }
  }

  std::uint64_t published_on(std::size_t channel) const { return published_[channel].load(); }

 private:
  static constexpr std::uint64_t notify_every = 32;

  bool has_room(std::size_t k) const { return gap(k) < window_ && gap(global_channel) < window_; }

  std::uint64_t gap(std::size_t channel) const {
    const std::uint64_t consumed = consumed_[channel].load();
    return published_[channel].load() - consumed;
  }

  const std::uint64_t window_;
  std::array<std::atomic<std::uint64_t>, collections + 1> published_{};
  std::array<std::atomic<std::uint64_t>, collections + 1> consumed_{};
  std::mutex mutex_;
  std::condition_variable cv_;
};

enum class pace { reliable, stalled, slow, normal };

const char* to_string(pace p) {
  switch (p) {
    case pace::reliable: return "reliable";
    case pace::stalled: return "stalled";
    case pace::slow: return "slow";
    case pace::normal: return "normal";
  }
  return "?";
}

// What one subscriber saw; written by its coroutine only, read after the io threads joined.
struct subscriber_record {
  std::size_t channel = 0;
  pace kind = pace::normal;
  std::uint64_t received = 0;
  std::uint64_t missed = 0;
  std::uint64_t lag_errors = 0;
  std::uint64_t first_missed = 0;
  std::uint64_t received_before_first_lag = 0;
  std::uint64_t last_sequence = 0;
  std::uint64_t bytes = 0;  // JSON the slow ones serialised
  bool ordered = true;
  bool right_channel = true;
  bool finished = false;
  aurora::errc final_code{};
  std::atomic<std::uint64_t> progress{0};  // for the watchdog report
};

asio::awaitable<void> consume(aurora::Subscription sub, subscriber_record& rec, flow_gate& gate,
                              asio::steady_timer* hold) {
  auto ex = co_await asio::this_coro::executor;
  if (hold != nullptr) {
    boost::system::error_code ec;
    co_await hold->async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  const std::string expected = rec.channel == global_channel ? std::string() : collection_name(rec.channel);
  for (;;) {
    aurora::RecvResult r = co_await sub.recv();
    if (r) {
      ++rec.received;
      rec.progress.store(rec.received, std::memory_order_relaxed);
      if (r->sequence <= rec.last_sequence) rec.ordered = false;
      rec.last_sequence = r->sequence;
      if (!expected.empty() && r->collection != expected) rec.right_channel = false;
      if (rec.kind == pace::reliable) gate.consumed(rec.channel, rec.received);
      if (rec.kind == pace::slow) {
        const nlohmann::json j = *r;
        rec.bytes += j.dump().size();
        for (int i = 0; i < 3; ++i) co_await asio::post(ex, asio::use_awaitable);
      }
      continue;
    }
    if (r.error().code == aurora::errc::lagged) {
      if (rec.lag_errors == 0) {
        rec.first_missed = r.error().missed;
        rec.received_before_first_lag = rec.received;
      }
      ++rec.lag_errors;
      rec.missed += r.error().missed;
      continue;
    }
    rec.final_code = r.error().code;
    break;
  }
  rec.finished = true;
}

struct writer_record {
  std::array<std::uint64_t, collections> inserted{};
  std::array<std::uint64_t, collections> removed{};
  std::string failure;
};

void write_events(aurora::Database& db, flow_gate& gate, std::size_t writer, std::uint64_t count, writer_record& rec) {
  std::array<std::vector<std::string>, collections> live;
  try {
    for (std::uint64_t i = 0; i < count; ++i) {
      const std::size_t k = (writer + i) % collections;
      const std::string name = collection_name(k);
      gate.wait_room(k);
      gate.will_publish(k);
      const std::uint64_t step = i % 8;
      if (step == 5 && !live[k].empty()) {
        db.update(name, live[k][i % live[k].size()], {{"u", i}});
      } else if (step == 7 && !live[k].empty()) {
        db.remove(name, live[k].back());
        live[k].pop_back();
        ++rec.removed[k];
      } else if (step == 6 && !live[k].empty()) {
        db.replace(name, live[k].front(), {{"w", writer}, {"r", i}});
      } else {
        live[k].push_back(db.insert(name, {{"w", writer}, {"n", i}}));
        ++rec.inserted[k];
      }
    }
  } catch (const std::exception& e) {
    rec.failure = e.what();
  }
}

}  // namespace

TEST_CASE("4 writers and 64 subscribers on 2 io threads account for every event", "[stress]") {
  const std::uint64_t events = aurora_test::stress_events();
  constexpr std::size_t capacity = 1024;
  constexpr std::size_t writers = 4;
  std::printf("stress: %llu events, 4 writers, 64 subscribers, capacity %zu\n", static_cast<unsigned long long>(events),
              capacity);

  auto db = std::make_unique<aurora::Database>(aurora::Options{.channel_capacity = capacity});
  flow_gate gate(capacity / 2);
  asio::io_context io;

  // 8 global subscribers and 14 per collection: 1 reliable, 1 stalled, then slow and normal ones.
  std::vector<std::unique_ptr<subscriber_record>> records;
  std::vector<std::unique_ptr<asio::steady_timer>> holds;
  auto add = [&](std::size_t channel, pace kind) {
    auto rec = std::make_unique<subscriber_record>();
    rec->channel = channel;
    rec->kind = kind;
    auto strand = asio::make_strand(io);
    asio::steady_timer* hold = nullptr;
    if (kind == pace::stalled) {
      holds.push_back(std::make_unique<asio::steady_timer>(strand, asio::steady_timer::time_point::max()));
      hold = holds.back().get();
    }
    aurora::Subscription sub =
        channel == global_channel ? db->subscribe_global() : db->subscribe(collection_name(channel));
    asio::co_spawn(strand, consume(std::move(sub), *rec, gate, hold), asio::detached);
    records.push_back(std::move(rec));
  };
  auto add_channel = [&](std::size_t channel, int slow, int normal) {
    add(channel, pace::reliable);
    add(channel, pace::stalled);
    for (int i = 0; i < slow; ++i) add(channel, pace::slow);
    for (int i = 0; i < normal; ++i) add(channel, pace::normal);
  };
  add_channel(global_channel, 2, 4);
  for (std::size_t k = 0; k < collections; ++k) add_channel(k, 4, 8);
  REQUIRE(records.size() == 64);
  REQUIRE(db->global_subscriber_count() == 8);

  std::array<writer_record, writers> writer_records;
  {
    const watchdog dog("4x64 stress", std::chrono::seconds(300), [&] {
      // Appended piece by piece: g++ 12 at -O3 misreads `" " + std::to_string(...)` as an
      // overflowing memcpy (-Wstringop-overflow).
      std::string s = "published ";
      s += std::to_string(gate.published_on(global_channel));
      s += "; received:";
      for (const auto& r : records) {
        s += ' ';
        s += std::to_string(r->progress.load());
      }
      return s;
    });
    io_threads pool(io, 2);
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (std::size_t w = 0; w < writers; ++w) {
      const std::uint64_t share = events / writers + (w == 0 ? events % writers : 0);
      threads.emplace_back(write_events, std::ref(*db), std::ref(gate), w, share, std::ref(writer_records[w]));
    }
    for (auto& t : threads) t.join();
    const auto written = std::chrono::steady_clock::now();
    for (auto& hold : holds) {
      asio::post(hold->get_executor(), [&h = *hold] { h.expires_at(asio::steady_timer::time_point::min()); });
    }
    db.reset();  // subscribers drain, then read closed; the io threads run out of work
    pool.join();
    const auto drained = std::chrono::steady_clock::now();
    using ms = std::chrono::milliseconds;
    std::printf("stress: wrote in %lld ms, drained in %lld ms\n",
                static_cast<long long>(std::chrono::duration_cast<ms>(written - start).count()),
                static_cast<long long>(std::chrono::duration_cast<ms>(drained - written).count()));
  }

  for (const auto& w : writer_records) REQUIRE(w.failure.empty());
  std::array<std::uint64_t, collections + 1> published{};
  for (std::size_t ch = 0; ch <= collections; ++ch) published[ch] = gate.published_on(ch);
  REQUIRE(published[global_channel] == events);

  std::uint64_t deliveries = 0;
  std::uint64_t lagged_subscribers = 0;
  std::uint64_t slow_missed = 0;
  for (const auto& r : records) {
    INFO("subscriber of channel " << r->channel << " (" << to_string(r->kind) << "): received " << r->received
                                  << ", missed " << r->missed << " in " << r->lag_errors << " lag errors, published "
                                  << published[r->channel]);
    REQUIRE(r->finished);
    REQUIRE(r->final_code == aurora::errc::closed);
    REQUIRE(r->ordered);
    REQUIRE(r->right_channel);
    REQUIRE(r->received + r->missed == published[r->channel]);
    if (r->kind == pace::reliable) {
      REQUIRE(r->missed == 0);
      REQUIRE(r->received == published[r->channel]);
    }
    if (r->kind == pace::stalled) {
      // It read nothing until the writers finished: one lag, then exactly the last C events.
      if (published[r->channel] > capacity) {
        REQUIRE(r->lag_errors == 1);
        REQUIRE(r->received_before_first_lag == 0);
        REQUIRE(r->first_missed == published[r->channel] - capacity);
        REQUIRE(r->received == capacity);
      } else {
        REQUIRE(r->lag_errors == 0);
      }
    }
    if (r->kind == pace::reliable && r->channel == global_channel) REQUIRE(r->last_sequence == events);
    if (r->kind == pace::slow) slow_missed += r->missed;
    if (r->lag_errors > 0) ++lagged_subscribers;
    deliveries += r->received;
  }
  std::printf("stress: %llu deliveries; %llu of 64 subscribers lagged; slow ones missed %llu events\n",
              static_cast<unsigned long long>(deliveries), static_cast<unsigned long long>(lagged_subscribers),
              static_cast<unsigned long long>(slow_missed));
}

TEST_CASE("The stored state after the 4x64 stress writes matches what the writers did", "[stress]") {
  // Same writers without subscribers: the collections hold exactly inserts minus removes.
  const std::uint64_t events = std::max<std::uint64_t>(aurora_test::stress_events() / 10, 1000);
  aurora::Database db;
  flow_gate gate(std::numeric_limits<std::uint64_t>::max());
  std::array<writer_record, 4> recs;
  {
    const watchdog dog("stored state", std::chrono::seconds(300));
    std::vector<std::thread> threads;
    for (std::size_t w = 0; w < 4; ++w) {
      threads.emplace_back(write_events, std::ref(db), std::ref(gate), w, events / 4, std::ref(recs[w]));
    }
    for (auto& t : threads) t.join();
  }
  for (std::size_t k = 0; k < collections; ++k) {
    std::uint64_t expected = 0;
    for (const auto& r : recs) {
      REQUIRE(r.failure.empty());
      expected += r.inserted[k] - r.removed[k];
    }
    REQUIRE(db.size(collection_name(k)) == expected);
  }
}

namespace {

struct churn_record {
  std::uint64_t subscriptions = 0;
  std::uint64_t events = 0;
  std::uint64_t closed_while_pending = 0;
  std::uint64_t event_while_pending = 0;
  std::uint64_t timeouts = 0;
  std::string failure;
};

asio::awaitable<void> churn(aurora::Database& db, std::uint64_t rounds, std::size_t who, churn_record& rec) {
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer timer(ex);
  std::minstd_rand rng(static_cast<std::uint_fast32_t>(who + 1));
  aurora::Subscription keep;  // move-assigned over: its place must be freed at once
  for (std::uint64_t round = 0; round < rounds; ++round) {
    aurora::Subscription sub;
    switch (round % 3) {
      case 0: sub = db.subscribe_global(); break;
      case 1: sub = db.subscribe("a"); break;
      default:
        sub = db.subscribe("b", aurora::EventFilter{.operation = aurora::OperationType::Insert, .field_filters = {}});
        break;
    }
    ++rec.subscriptions;
    std::uint64_t last = 0;
    for (int i = 0; i < 3; ++i) {
      timer.expires_after(std::chrono::microseconds(rng() % 200));
      auto v = co_await (sub.recv() || timer.async_wait(asio::use_awaitable));
      if (v.index() == 1) {
        ++rec.timeouts;
        continue;
      }
      const aurora::RecvResult& r = std::get<0>(v);
      if (r) {
        ++rec.events;
        if (r->sequence <= last) rec.failure = "sequence went backwards";
        last = r->sequence;
      } else if (r.error().code != aurora::errc::lagged) {
        rec.failure = "unexpected receive error " + std::string(aurora::make_error_code(r.error().code).message());
      }
    }
    if (round % 2 == 0) {
      // A receive pending when the subscription is unsubscribed completes (event or closed).
      std::optional<aurora::RecvResult> outcome;
      boost::system::error_code outcome_ec;
      sub.async_recv(asio::bind_executor(ex, [&](boost::system::error_code ec, aurora::RecvResult r) {
        outcome_ec = ec;
        outcome = std::move(r);
      }));
      sub.unsubscribe();
      while (!outcome) co_await asio::post(ex, asio::use_awaitable);
      if (outcome_ec) rec.failure = "pending receive failed: " + outcome_ec.message();
      if (*outcome) {
        ++rec.event_while_pending;
      } else if (outcome->error().code == aurora::errc::closed) {
        ++rec.closed_while_pending;
      } else if (outcome->error().code != aurora::errc::lagged) {
        rec.failure = "pending receive ended with an unexpected error";
      }
      if (sub.try_recv().error().code != aurora::errc::closed) rec.failure = "try_recv after unsubscribe not closed";
    } else {
      keep = std::move(sub);
    }
  }
}

}  // namespace

TEST_CASE("Subscribing and unsubscribing while 2 writers write frees every place", "[stress][churn]") {
  const std::uint64_t rounds = std::max<std::uint64_t>(aurora_test::stress_events() / 2000, 100);
  constexpr std::size_t churners = 8;
  aurora::Database db{aurora::Options{.channel_capacity = 256}};
  asio::io_context io;
  std::array<churn_record, churners> recs;
  std::atomic<bool> stop{false};
  std::array<std::uint64_t, 2> written{};
  std::array<std::string, 2> writer_failure;
  {
    const watchdog dog("churn", std::chrono::seconds(300));
    std::vector<std::thread> writers;
    for (std::size_t w = 0; w < 2; ++w) {
      writers.emplace_back([&, w] {
        try {
          std::array<std::vector<std::string>, 2> ids;
          while (!stop.load()) {
            const std::size_t c = written[w] % 2;
            const char* name = c == 0 ? "a" : "b";
            if (written[w] % 5 == 4 && !ids[c].empty()) {
              db.remove(name, ids[c].back());
              ids[c].pop_back();
            } else {
              ids[c].push_back(db.insert(name, {{"w", w}, {"n", written[w]}}));
            }
            ++written[w];
          }
        } catch (const std::exception& e) {
          writer_failure[w] = e.what();
        }
      });
    }
    for (std::size_t c = 0; c < churners; ++c) {
      asio::co_spawn(asio::make_strand(io), churn(db, rounds, c, recs[c]), [&](std::exception_ptr e) {
        if (e) recs[c].failure = "churn coroutine threw";
      });
    }
    io_threads pool(io, 2);
    pool.join();
    stop = true;
    for (auto& t : writers) t.join();
  }
  std::uint64_t subscriptions = 0, events = 0, closed = 0, evented = 0, timeouts = 0;
  for (const auto& r : recs) {
    INFO(r.failure);
    REQUIRE(r.failure.empty());
    REQUIRE(r.subscriptions == rounds);
    subscriptions += r.subscriptions;
    events += r.events;
    closed += r.closed_while_pending;
    evented += r.event_while_pending;
    timeouts += r.timeouts;
  }
  for (const auto& f : writer_failure) {
    INFO(f);
    REQUIRE(f.empty());
  }
  REQUIRE(db.global_subscriber_count() == 0);
  REQUIRE(db.subscriber_count("a") == 0);
  REQUIRE(db.subscriber_count("b") == 0);
  std::printf(
      "churn: %llu subscriptions, %llu events, pending receives ended %llu closed / %llu with an event, "
      "%llu timer wins, %llu writes\n",
      static_cast<unsigned long long>(subscriptions), static_cast<unsigned long long>(events),
      static_cast<unsigned long long>(closed), static_cast<unsigned long long>(evented),
      static_cast<unsigned long long>(timeouts), static_cast<unsigned long long>(written[0] + written[1]));
}

namespace {

struct race_record {
  std::uint64_t received = 0;
  std::uint64_t iterations = 0;
  std::uint64_t timer_wins = 0;
  std::uint64_t expected_next = 1;
  std::string failure;
};

// `pace` (for one racer): raised per event received, so the writer publishes the next event only
// once that racer has the previous one and the channel often runs empty while timers run.
asio::awaitable<void> race(aurora::Subscription sub, std::uint64_t events, std::uint32_t seed, race_record& rec,
                           aurora_test::counter* pace) {
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer timer(ex);
  std::minstd_rand rng(seed);
  while (rec.received < events && rec.failure.empty()) {
    ++rec.iterations;
    const auto r = rng() % 8;
    timer.expires_after(std::chrono::microseconds(r < 2 ? 0 : r * 5));  // 0: a wake-up already queued
    auto v = co_await (sub.recv() || timer.async_wait(asio::use_awaitable));
    if (v.index() == 1) {
      ++rec.timer_wins;
      continue;
    }
    const aurora::RecvResult& res = std::get<0>(v);
    if (!res) {
      rec.failure = "receive error " + aurora::make_error_code(res.error().code).message();
      break;
    }
    if (res->sequence != rec.expected_next) {
      rec.failure = "expected sequence " + std::to_string(rec.expected_next) + ", got " + std::to_string(res->sequence);
      break;
    }
    ++rec.expected_next;
    ++rec.received;
    if (pace != nullptr) pace->add();
  }
  if (pace != nullptr) pace->add(events);  // never leave the writer waiting
}

}  // namespace

TEST_CASE("recv raced against timers on strands loses no event", "[stress][cancel]") {
  const std::uint64_t events = std::max<std::uint64_t>(aurora_test::stress_events() / 20, 2000);
  aurora::Database db{aurora::Options{.channel_capacity = static_cast<std::size_t>(events) + 1}};
  asio::io_context io;
  std::array<race_record, 4> recs;
  aurora_test::counter pace;
  std::string writer_failure;
  {
    const watchdog dog("timer race", std::chrono::seconds(300), [&] {
      std::string s = "received / races / timer wins:";
      for (const auto& r : recs) {
        s += " " + std::to_string(r.received) + "/" + std::to_string(r.iterations) + "/" + std::to_string(r.timer_wins);
      }
      return s;
    });
    for (std::size_t i = 0; i < recs.size(); ++i) {
      aurora::Subscription sub = i % 2 == 0 ? db.subscribe_global() : db.subscribe("r");
      asio::co_spawn(asio::make_strand(io),
                     race(std::move(sub), events, static_cast<std::uint32_t>(i + 7), recs[i], i == 0 ? &pace : nullptr),
                     [&, i](std::exception_ptr e) {
                       if (e) recs[i].failure = "race coroutine threw";
                     });
    }
    io_threads pool(io, 2);
    std::thread writer([&] {
      try {
        for (std::uint64_t i = 0; i < events; ++i) {
          db.insert("r", {{"i", i}});
          if (i % 2 == 0) pace.wait_for_at_least(i + 1);  // half the time, let the channel run empty
        }
      } catch (const std::exception& e) {
        writer_failure = e.what();
      }
    });
    writer.join();
    pool.join();
  }
  REQUIRE(writer_failure.empty());
  std::uint64_t iterations = 0, timer_wins = 0;
  for (const auto& r : recs) {
    INFO(r.failure);
    REQUIRE(r.failure.empty());
    REQUIRE(r.received == events);
    iterations += r.iterations;
    timer_wins += r.timer_wins;
  }
  std::printf("timer race: %llu events to 4 subscribers, %llu races, %llu won by the timer\n",
              static_cast<unsigned long long>(events), static_cast<unsigned long long>(iterations),
              static_cast<unsigned long long>(timer_wins));
}

TEST_CASE("Destroying the Database with 100 receives pending on 2 threads closes each", "[stress][lifetime]") {
  const std::uint64_t rounds = std::max<std::uint64_t>(aurora_test::stress_events() / 50000, 5);
  const watchdog dog("destroy with pending receives", std::chrono::seconds(300));
  for (std::uint64_t round = 0; round < rounds; ++round) {
    auto db = std::make_unique<aurora::Database>();
    asio::io_context io;
    constexpr int receivers = 100;
    aurora_test::counter started;
    std::array<std::atomic<int>, receivers> outcome{};  // 1: closed, 2: anything else
    for (int i = 0; i < receivers; ++i) {
      static constexpr std::array<const char*, 3> names = {"c0", "c1", "c2"};
      aurora::Subscription sub =
          i % 4 == 0 ? db->subscribe_global() : db->subscribe(names[static_cast<std::size_t>(i % 3)]);
      asio::co_spawn(
          asio::make_strand(io),
          [](aurora::Subscription s, aurora_test::counter& go, std::atomic<int>& out) -> asio::awaitable<void> {
            go.add();
            aurora::RecvResult r = co_await s.recv();
            out = (!r && r.error().code == aurora::errc::closed && s.try_recv().error().code == aurora::errc::closed)
                      ? 1
                      : 2;
          }(std::move(sub), started, outcome[static_cast<std::size_t>(i)]),
          asio::detached);
    }
    io_threads pool(io, 2);
    started.wait_for_at_least(receivers);
    std::thread destroyer([&] { db.reset(); });
    destroyer.join();
    pool.join();  // returns only if every receive completed and released its work
    for (const auto& o : outcome) REQUIRE(o.load() == 1);
  }
}
