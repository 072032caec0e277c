// kill -9 rounds through aurora::DurableDatabase: a child process writes (single writes and
// transactions) from 4 threads and acknowledges, on a pipe, the published head after each write
// returns; the parent kills it after a random few milliseconds, reopens the file and checks that
// the log is exactly 1..N, N >= every acknowledged sequence, and the documents are the log
// replayed. A negative control (a child that acknowledges before writing) proves the check bites.
#include "support.hpp"

#include <aurora/sqlite.hpp>

#include <catch2/catch.hpp>

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

using aurora::Document;
using aurora_sqlite_test::temp_dir;

enum class child_kind { honest, acks_before_writing };

constexpr std::uint64_t crash_history = std::uint64_t{1} << 40;  // keep the whole log: the check reads 1..N

// A write of the child that may fail for a reason of the model (taken id, missing document).
template <class Fn>
void tolerate(Fn fn) {
  try {
    fn();
  } catch (const aurora::error& e) {
    if (e.code() != aurora::errc::not_found && e.code() != aurora::errc::already_exists) throw;
  }
}

[[noreturn]] void run_child(const std::string& path, aurora::Durability durability, child_kind kind, int ack_fd,
                            std::uint64_t seed) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  try {
    aurora::Options options;
    options.durability = durability;
    options.history = crash_history;
    aurora::DurableDatabase db(path, options);
    auto one_write = [](auto& target, std::mt19937_64& rng) {
      const std::string collection(1, static_cast<char>('a' + rng() % 3));
      // Built by appending: g++ 12 -O3 warns (-Wstringop-overflow, a false positive) on "k" + to_string(...).
      std::string id(1, 'k');
      id += std::to_string(rng() % 24);
      switch (rng() % 3) {
        case 0:
          tolerate([&] { target.insert(collection, id, Document{{"pad", std::string(rng() % 200, 'x')}}); });
          break;
        case 1: tolerate([&] { target.update(collection, id, Document{{"n", rng() % 1000}}); }); break;
        default: tolerate([&] { target.remove(collection, id); }); break;
      }
    };
    auto writer = [&](std::uint64_t thread_seed) {
      std::mt19937_64 rng(thread_seed);
      for (;;) {
        if (kind == child_kind::acks_before_writing) {
          const std::uint64_t claim = db.last_sequence() + 1;
          aurora_sqlite_test::write_all(ack_fd, &claim, sizeof claim);
        }
        const std::uint64_t before = db.last_sequence();
        if (rng() % 4 == 0) {
          db.transaction([&](aurora::Transaction& tx) {
            const std::uint64_t n = 1 + rng() % 4;
            for (std::uint64_t k = 0; k < n; ++k) one_write(tx, rng);
          });
        } else {
          one_write(db, rng);
        }
        const std::uint64_t head = db.last_sequence();  // published, hence durable
        if (kind == child_kind::honest && head > before) aurora_sqlite_test::write_all(ack_fd, &head, sizeof head);
      }
    };
    std::vector<std::thread> threads;
    for (std::uint64_t t = 0; t < 4; ++t) threads.emplace_back(writer, seed * 31 + t);
    for (auto& t : threads) t.join();
  } catch (...) {
    _exit(3);
  }
  _exit(0);
}

struct round_outcome {
  std::string failure;  // of the harness itself
  std::uint64_t acknowledged = 0;
  std::uint64_t acks = 0;
  aurora_sqlite_test::check_result check;
};

round_outcome crash_round(const std::string& path, aurora::Durability durability, child_kind kind,
                          std::chrono::microseconds delay, std::uint64_t seed) {
  round_outcome out;
  int fds[2];
  if (pipe(fds) != 0) {
    out.failure = "pipe failed";
    return out;
  }
  const pid_t child = fork();
  if (child < 0) {
    out.failure = "fork failed";
    return out;
  }
  if (child == 0) {
    close(fds[0]);
    run_child(path, durability, kind, fds[1], seed);
  }
  close(fds[1]);
  auto read_ack = [&] {
    std::uint64_t q = 0;
    if (!aurora_sqlite_test::read_all(fds[0], &q, sizeof q)) return false;
    out.acknowledged = std::max(out.acknowledged, q);
    ++out.acks;
    return true;
  };
  bool alive = read_ack();  // the child opened the file and committed once
  const auto deadline = std::chrono::steady_clock::now() + delay;
  while (alive) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() < 0) break;
    pollfd p{fds[0], POLLIN, 0};
    const int ready = poll(&p, 1, static_cast<int>(left.count()));  // the one timer: when to kill
    if (ready == 0) break;
    if (ready > 0) alive = read_ack();
  }
  kill(child, SIGKILL);
  while (read_ack()) {  // what it acknowledged before it died is still in the pipe
  }
  close(fds[0]);
  int status = 0;
  waitpid(child, &status, 0);
  if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) {
    out.failure = "the child ended on its own (status " + std::to_string(status) + ")";
    return out;
  }
  if (out.acks == 0) {
    out.failure = "the child acknowledged nothing";
    return out;
  }
  out.check = aurora_sqlite_test::check_database(path, out.acknowledged);
  return out;
}

std::uint64_t env_or(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return std::strtoull(v, nullptr, 10);
}

}  // namespace

TEST_CASE("DurableDatabase: kill -9 loses no acknowledged write and leaves a whole file", "[crash]") {
  const std::uint64_t default_rounds = 100;  // tests/stress/run.sh runs 500 (AURORA_CRASH_ROUNDS)
  const std::uint64_t rounds = env_or("AURORA_CRASH_ROUNDS", default_rounds);
  const std::uint64_t seed = env_or("AURORA_CRASH_SEED", std::random_device{}());
  INFO("AURORA_CRASH_SEED=" << seed << " AURORA_CRASH_ROUNDS=" << rounds);
  std::mt19937_64 rng(seed);
  temp_dir dir;
  const std::string path = dir.file("crash.db");  // every round reopens the last crash
  std::uint64_t last = 0;
  for (std::uint64_t round = 0; round < rounds; ++round) {
    const auto durability = round % 2 == 0 ? aurora::Durability::full : aurora::Durability::normal;
    const auto delay = std::chrono::microseconds(500 + rng() % 8000);
    const round_outcome r = crash_round(path, durability, child_kind::honest, delay, rng());
    INFO("round " << round << " (" << aurora::to_string(durability) << ", kill after " << delay.count()
                  << " us): acknowledged up to " << r.acknowledged << ", file ends at " << r.check.last_sequence);
    REQUIRE(r.failure.empty());
    REQUIRE(r.check.failure.empty());
    CHECK(r.check.last_sequence >= last);
    last = r.check.last_sequence;
  }
  // The file reopens as a database that goes on where it stopped.
  aurora::Options options;
  options.history = crash_history;
  aurora::DurableDatabase db(path, options);
  CHECK(db.last_sequence() == last);
  db.insert("after", {{"ok", true}});
  CHECK(db.last_sequence() == last + 1);
}

TEST_CASE("DurableDatabase negative control: acknowledging before writing is caught", "[crash]") {
  const std::uint64_t seed = env_or("AURORA_CRASH_SEED", std::random_device{}());
  INFO("AURORA_CRASH_SEED=" << seed);
  std::mt19937_64 rng(seed);
  temp_dir dir;
  const std::string path = dir.file("liar.db");
  bool caught = false;
  for (std::uint64_t rounds = 0; rounds < 30 && !caught; ++rounds) {
    const auto delay = std::chrono::microseconds(500 + rng() % 5000);
    const round_outcome r = crash_round(path, aurora::Durability::full, child_kind::acks_before_writing, delay, rng());
    REQUIRE(r.failure.empty());
    if (!r.check.ok()) {
      CHECK_THAT(r.check.failure, Catch::Contains("lost acknowledged commits"));
      caught = true;
    }
  }
  CHECK(caught);
}
