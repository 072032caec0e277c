// kill -9 rounds: a child process writes through the group committer from 4 threads and reports
// every acknowledged commit on a pipe; the parent kills it after a random few milliseconds,
// reopens the file and checks that nothing acknowledged was lost and that the file is whole.
// A negative control (a child that acknowledges before committing) proves the check can fail.
#include "support.hpp"

#include <aurora/sqlite/detail/group_commit.hpp>
#include <aurora/sqlite/storage.hpp>

#include <catch2/catch.hpp>

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace {

using aurora::Document;
using aurora::OperationType;
using aurora::sqlite::Storage;
using aurora_sqlite_test::event_ptr;
using aurora_sqlite_test::make_event;
using aurora_sqlite_test::temp_dir;

enum class child_kind { honest, acks_before_commit };

constexpr std::uint64_t crash_history = std::uint64_t{1} << 40;  // keep the whole log: the check reads 1..N

// The child: opens the storage and writes random inserts, updates and deletes (some commits hold
// several events) from 4 threads until it is killed. Sequences are assigned under a mutex that
// stands in for the database's commit lock, as is the model of the documents that gives each
// Update and Delete its old_document. Never returns.
[[noreturn]] void run_child(const std::string& path, aurora::Durability durability, child_kind kind, int ack_fd,
                            std::uint64_t seed) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  try {
    Storage storage(path, durability, crash_history);
    using batch = std::vector<event_ptr>;
    auto write = [&](std::span<batch> group) {
      std::vector<event_ptr> events;
      for (const batch& b : group) events.insert(events.end(), b.begin(), b.end());
      storage.write(events);
    };
    auto publish = [](std::span<batch>) {};
    aurora::sqlite::detail::group_commit<batch, decltype(write), decltype(publish)> committer(write, publish, 256);

    std::mutex commit_lock;
    std::uint64_t last_sequence = storage.last_sequence();
    std::map<aurora_sqlite_test::doc_key, Document> model;
    {
      aurora_sqlite_test::loaded_state state;
      storage.load(state);
      model = std::move(state.documents);
    }
    auto writer = [&](std::uint64_t thread_seed) {
      std::mt19937_64 rng(thread_seed);
      for (std::uint64_t i = 0; i < 1'000'000; ++i) {
        std::uint64_t ticket = 0;
        std::uint64_t last = 0;
        {
          const std::lock_guard lock(commit_lock);
          batch b;
          const std::uint64_t events = rng() % 4 == 0 ? 1 + rng() % 4 : 1;
          for (std::uint64_t k = 0; k < events; ++k) {
            const std::string collection(1, static_cast<char>('a' + rng() % 3));
            // Built by appending: g++ 12 -O3 warns (-Wstringop-overflow, a false positive) on "k" + to_string(...).
            std::string id(1, 'k');
            id += std::to_string(rng() % 24);
            const aurora_sqlite_test::doc_key key{collection, id};
            const std::uint64_t q = ++last_sequence;
            const auto it = model.find(key);
            std::shared_ptr<aurora::ChangeEvent> ev;
            if (it == model.end()) {
              Document doc{{"q", q}, {"pad", std::string(rng() % 200, 'x')}};
              ev = make_event(q, OperationType::Insert, collection, id, doc);
              model.emplace(key, std::move(doc));
            } else if (rng() % 3 != 0) {
              Document doc{{"q", q}, {"prev", it->second["q"]}};
              ev = make_event(q, OperationType::Update, collection, id, doc, it->second);
              it->second = std::move(doc);
            } else {
              ev = make_event(q, OperationType::Delete, collection, id, std::nullopt, it->second);
              model.erase(it);
            }
            b.push_back(std::move(ev));
          }
          last = last_sequence;
          for (const auto& ev : b) std::const_pointer_cast<aurora::ChangeEvent>(ev)->commit = last;
          if (kind == child_kind::acks_before_commit) aurora_sqlite_test::write_all(ack_fd, &last, sizeof last);
          ticket = committer.enqueue(std::move(b));
        }
        committer.wait(ticket);
        if (kind == child_kind::honest) aurora_sqlite_test::write_all(ack_fd, &last, sizeof last);
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
  std::string failure;  // of the harness itself (child died on its own, no ack, ...)
  std::uint64_t acknowledged = 0;
  std::uint64_t acks = 0;
  aurora_sqlite_test::check_result check;
};

// One round: fork the child, wait for its first acknowledgement, let it run `delay`, SIGKILL
// it, collect every acknowledgement it wrote, then check the file.
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

TEST_CASE("kill -9 loses no acknowledged commit and leaves a whole file", "[crash]") {
  const std::uint64_t default_rounds = 100;  // ~15 s (ThreadSanitizer builds too)
  const std::uint64_t rounds = env_or("AURORA_CRASH_ROUNDS", default_rounds);
  const std::uint64_t seed = env_or("AURORA_CRASH_SEED", std::random_device{}());
  INFO("AURORA_CRASH_SEED=" << seed << " AURORA_CRASH_ROUNDS=" << rounds);
  std::mt19937_64 rng(seed);
  temp_dir dir;
  const std::string path = dir.file("crash.db");  // one file for every round: each reopens the last crash
  std::uint64_t total_acks = 0;
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
    total_acks += r.acks;
  }
  INFO("rounds " << rounds << ", acknowledged commits " << total_acks << ", events " << last);
  CHECK(total_acks >= rounds);
}

TEST_CASE("negative control: a child that acknowledges before committing is caught", "[crash]") {
  const std::uint64_t seed = env_or("AURORA_CRASH_SEED", std::random_device{}());
  INFO("AURORA_CRASH_SEED=" << seed);
  std::mt19937_64 rng(seed);
  temp_dir dir;
  const std::string path = dir.file("liar.db");
  std::uint64_t caught = 0;
  std::uint64_t rounds = 0;
  for (; rounds < 30 && caught == 0; ++rounds) {
    const auto delay = std::chrono::microseconds(500 + rng() % 5000);
    const round_outcome r = crash_round(path, aurora::Durability::full, child_kind::acks_before_commit, delay, rng());
    REQUIRE(r.failure.empty());
    if (!r.check.ok()) {
      CHECK_THAT(r.check.failure, Catch::Contains("lost acknowledged commits"));
      ++caught;
    }
  }
  INFO("rounds until caught: " << rounds);
  CHECK(caught == 1);
}
