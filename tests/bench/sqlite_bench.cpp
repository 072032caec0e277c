// sqlite_bench: durable inserts per second, Aurora's storage engine and aurora::DurableDatabase
// beside the raw SQLite a user would write by hand, and the time to reopen a large database. One
// JSON line each:
//
//   raw_sqlite      one prepared INSERT of the JSON text per transaction (autocommit), WAL, the
//                   same synchronous level: the peer
//   storage         aurora::sqlite::Storage, 1 writer, one event per write()
//   storage_group   --threads writers (16) through the group committer, Durability::full
//   reopen_load     writes --load-docs documents (1,000 per write), closes, then times opening
//                   the file and loading every document into per-collection hash maps
//   db              aurora::DurableDatabase, 1 writer, db.insert of a ~100-byte document
//   db_group        aurora::DurableDatabase, --threads writers (16), db.insert, Durability::full
//   db_reopen       a DurableDatabase with --load-docs documents (transactions of 1,000 inserts),
//                   closed, then timed: the DurableDatabase constructor (open, load, ready)
//
// When raw_sqlite ran in the same invocation, the db and db_group lines carry `vs_raw`: their
// inserts/s over raw_sqlite's (db_group: over raw_sqlite at Durability::full only).
//
//   sqlite_bench                                     # every workload, small sizes
//   sqlite_bench --workload load --load-docs 1000000
//   sqlite_bench --workload db_reopen --load-docs 1000000
//   sqlite_bench --workload raw,db,db_group --durability full --events 2000
//   sqlite_bench --durability normal --events 20000
//
// Files go to a fresh directory under --dir (default: the system's temporary directory), removed
// at the end. fsync time on a VM varies 5-10x between runs: compare lines of the same run.
#include "bench_common.hpp"

#include <aurora/sqlite.hpp>
#include <aurora/sqlite/detail/group_commit.hpp>
#include <aurora/sqlite/storage.hpp>

#include <sqlite3.h>
#include <stdlib.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

using aurora::bench::JsonLine;
using event_ptr = std::shared_ptr<const aurora::ChangeEvent>;
using clock_type = std::chrono::steady_clock;

struct Args {
  std::set<std::string, std::less<>> workloads{"all"};  // raw storage group load db db_group db_reopen all
  aurora::Durability durability = aurora::Durability::full;
  std::uint64_t events = 2'000;         // raw_sqlite and storage
  std::uint64_t group_events = 20'000;  // storage_group, all threads together
  std::uint64_t threads = 16;
  std::uint64_t load_docs = 10'000;
  std::string dir = std::filesystem::temp_directory_path().string();
};

[[noreturn]] void usage() {
  std::fputs(
      "usage: sqlite_bench [--workload W[,W...]] [--durability full|normal] [--events 2000]\n"
      "                    [--group-events 20000] [--threads 16] [--load-docs 10000] [--dir /tmp]\n"
      "       W: raw | storage | group | load | db | db_group | db_reopen | all (default all)\n",
      stderr);
  std::exit(2);
}

std::uint64_t parse_number(std::string_view s) {
  const auto n = aurora::bench::parse_u64(s);
  if (!n) usage();
  return *n;
}

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; i += 2) {
    const std::string_view key = argv[i];
    if (i + 1 >= argc) usage();
    const std::string_view value = argv[i + 1];
    if (key == "--workload") {
      static const std::set<std::string_view> known{"raw", "storage",  "group",     "load",
                                                    "db",  "db_group", "db_reopen", "all"};
      a.workloads.clear();
      for (std::string_view rest = value; !rest.empty();) {
        const std::size_t comma = rest.find(',');
        const std::string_view w = rest.substr(0, comma);
        if (!known.contains(w)) usage();
        a.workloads.emplace(w);
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      }
      if (a.workloads.empty()) usage();
    } else if (key == "--durability") {
      if (value == "full") {
        a.durability = aurora::Durability::full;
      } else if (value == "normal") {
        a.durability = aurora::Durability::normal;
      } else {
        usage();
      }
    } else if (key == "--events") {
      a.events = std::max<std::uint64_t>(1, parse_number(value));
    } else if (key == "--group-events") {
      a.group_events = std::max<std::uint64_t>(1, parse_number(value));
    } else if (key == "--threads") {
      a.threads = std::max<std::uint64_t>(1, parse_number(value));
    } else if (key == "--load-docs") {
      a.load_docs = std::max<std::uint64_t>(1, parse_number(value));
    } else if (key == "--dir") {
      a.dir = value;
    } else {
      usage();
    }
  }
  return a;
}

// A ~100-byte document, as db_bench writes.
aurora::Document make_document(std::uint64_t i) {
  return aurora::Document{{"seq", i}, {"name", "user-" + std::to_string(i)}, {"payload", std::string(60, 'x')}};
}

std::string make_id(std::uint64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "doc-%012llu", static_cast<unsigned long long>(i));
  return buf;
}

std::shared_ptr<aurora::ChangeEvent> make_insert(std::uint64_t sequence, std::string collection, std::string id,
                                                 aurora::Document doc) {
  auto ev = std::make_shared<aurora::ChangeEvent>();
  ev->sequence = sequence;
  ev->commit = sequence;
  ev->operation = aurora::OperationType::Insert;
  ev->collection = std::move(collection);
  ev->document_id = std::move(id);
  ev->document = std::make_shared<const aurora::Document>(std::move(doc));
  ev->timestamp = std::chrono::system_clock::now();
  return ev;
}

double seconds_since(clock_type::time_point start) { return aurora::bench::seconds_between(start, clock_type::now()); }

JsonLine line(const Args& a, std::string_view workload) {
  JsonLine j;
  j.str("bench", "sqlite_bench").str("workload", workload).str("compiler", aurora::bench::compiler_tag());
  j.str("sqlite", sqlite3_libversion()).str("durability", aurora::to_string(a.durability));
  return j;
}

void die(sqlite3* db, const char* what) {
  std::fprintf(stderr, "sqlite_bench: %s: %s\n", what, db != nullptr ? sqlite3_errmsg(db) : "?");
  std::exit(1);
}

// The peer: what a user writes by hand with the SQLite C API. Returns its inserts per second.
double raw_sqlite(const Args& a, const std::string& dir) {
  const std::string path = dir + "/raw.db";
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) die(db, "open");
  const char* setup = a.durability == aurora::Durability::full ? "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                                                               : "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;";
  if (sqlite3_exec(db, setup, nullptr, nullptr, nullptr) != SQLITE_OK) die(db, "pragmas");
  if (sqlite3_exec(db, "CREATE TABLE docs(id TEXT PRIMARY KEY, body TEXT NOT NULL)", nullptr, nullptr, nullptr) !=
      SQLITE_OK) {
    die(db, "create");
  }
  sqlite3_stmt* insert = nullptr;
  if (sqlite3_prepare_v2(db, "INSERT INTO docs(id, body) VALUES (?1, ?2)", -1, &insert, nullptr) != SQLITE_OK) {
    die(db, "prepare");
  }
  const auto start = clock_type::now();
  for (std::uint64_t i = 1; i <= a.events; ++i) {
    const std::string id = make_id(i);
    const std::string body = make_document(i).dump();
    sqlite3_bind_text(insert, 1, id.data(), static_cast<int>(id.size()), SQLITE_STATIC);
    sqlite3_bind_text(insert, 2, body.data(), static_cast<int>(body.size()), SQLITE_STATIC);
    if (sqlite3_step(insert) != SQLITE_DONE) die(db, "insert");
    sqlite3_reset(insert);
  }
  const double s = seconds_since(start);
  sqlite3_finalize(insert);
  sqlite3_close(db);
  JsonLine j = line(a, "raw_sqlite");
  j.u("writers", 1).u("events", a.events).u("commits", a.events).f("seconds", s);
  j.f("inserts_per_s", static_cast<double>(a.events) / s);
  std::puts(j.text().c_str());
  return static_cast<double>(a.events) / s;
}

// Storage::write with one event per call, from one thread.
void storage_single(const Args& a, const std::string& dir) {
  aurora::sqlite::Storage storage(dir + "/single.db", a.durability);
  const auto start = clock_type::now();
  for (std::uint64_t i = 1; i <= a.events; ++i) {
    const std::vector<event_ptr> events{make_insert(i, "docs", make_id(i), make_document(i))};
    storage.write(events);
  }
  const double s = seconds_since(start);
  JsonLine j = line(a, "storage");
  j.u("writers", 1).u("events", a.events).u("commits", a.events).f("seconds", s);
  j.f("inserts_per_s", static_cast<double>(a.events) / s);
  std::puts(j.text().c_str());
}

// --threads writers, each commit one insert, sequences assigned under a commit lock, made durable
// through the group committer (Durability::full, whatever --durability says).
void storage_group(const Args& a, const std::string& dir) {
  aurora::sqlite::Storage storage(dir + "/group.db", aurora::Durability::full);
  using batch = std::vector<event_ptr>;
  std::uint64_t writes = 0;  // by the leader only
  std::vector<event_ptr> flat;
  auto write = [&](std::span<batch> group) {
    flat.clear();
    for (const batch& b : group) flat.insert(flat.end(), b.begin(), b.end());
    storage.write(flat);
    ++writes;
  };
  auto publish = [](std::span<batch>) {};
  aurora::sqlite::detail::group_commit<batch, decltype(write), decltype(publish)> committer(write, publish, 1024);
  std::mutex commit_lock;
  std::uint64_t last_sequence = 0;
  const std::uint64_t per_thread = (a.group_events + a.threads - 1) / a.threads;
  std::vector<std::thread> threads;
  const auto start = clock_type::now();
  for (std::uint64_t t = 0; t < a.threads; ++t) {
    threads.emplace_back([&] {
      for (std::uint64_t i = 0; i < per_thread; ++i) {
        std::uint64_t ticket = 0;
        {
          const std::lock_guard lock(commit_lock);
          const std::uint64_t q = ++last_sequence;
          ticket = committer.enqueue(batch{make_insert(q, "docs", make_id(q), make_document(q))});
        }
        committer.wait(ticket);
      }
    });
  }
  for (auto& t : threads) t.join();
  const double s = seconds_since(start);
  const std::uint64_t events = per_thread * a.threads;
  if (storage.last_sequence() != events) {
    std::fprintf(stderr, "sqlite_bench: storage_group wrote %llu events, expected %llu\n",
                 static_cast<unsigned long long>(storage.last_sequence()), static_cast<unsigned long long>(events));
    std::exit(1);
  }
  Args full = a;
  full.durability = aurora::Durability::full;
  JsonLine j = line(full, "storage_group");
  j.u("writers", a.threads).u("events", events).u("commits", events).u("group_writes", writes).f("seconds", s);
  j.f("events_per_write", static_cast<double>(events) / static_cast<double>(std::max<std::uint64_t>(writes, 1)));
  j.f("inserts_per_s", static_cast<double>(events) / s);
  std::puts(j.text().c_str());
}

// What a Database does with load(): one hash map of documents per collection.
struct map_loader {
  std::unordered_map<std::string, std::unordered_map<std::string, aurora::Document>> collections;
  std::unordered_map<std::string, aurora::Document>* current = nullptr;
  std::string current_name;

  void collection(std::string_view name) { collections.try_emplace(std::string(name)); }
  void document(std::string_view collection, std::string_view id, aurora::Document&& doc) {
    if (current == nullptr || current_name != collection) {
      current_name = collection;
      current = &collections[current_name];
    }
    current->emplace(std::string(id), std::move(doc));
  }
};

void reopen_load(const Args& a, const std::string& dir) {
  const std::string path = dir + "/load.db";
  const auto write_start = clock_type::now();
  {
    aurora::sqlite::Storage storage(path, aurora::Durability::normal);
    std::vector<event_ptr> batch;
    for (std::uint64_t i = 1; i <= a.load_docs; ++i) {
      batch.push_back(make_insert(i, i % 2 == 0 ? "even" : "odd", make_id(i), make_document(i)));
      if (batch.size() == 1000 || i == a.load_docs) {
        storage.write(batch);
        batch.clear();
      }
    }
  }
  const double write_s = seconds_since(write_start);
  const auto file_bytes = std::filesystem::file_size(path);

  const auto open_start = clock_type::now();
  aurora::sqlite::Storage storage(path, a.durability);
  const double open_s = seconds_since(open_start);
  const auto load_start = clock_type::now();
  map_loader loader;
  const std::size_t n = storage.load(loader);
  const double load_s = seconds_since(load_start);
  if (n != a.load_docs) {
    std::fprintf(stderr, "sqlite_bench: loaded %zu documents, wrote %llu\n", n,
                 static_cast<unsigned long long>(a.load_docs));
    std::exit(1);
  }
  JsonLine j = line(a, "reopen_load");
  j.u("documents", n).u("file_bytes", file_bytes).f("write_s", write_s).f("open_s", open_s).f("load_s", load_s);
  j.f("reopen_load_s", open_s + load_s).f("docs_per_s", static_cast<double>(n) / (open_s + load_s));
  j.u("vm_hwm_kib", aurora::bench::vm_hwm_kib());
  std::puts(j.text().c_str());
}

[[noreturn]] void fail_count(const char* workload, std::uint64_t got, std::uint64_t expected) {
  std::fprintf(stderr, "sqlite_bench: %s: %llu, expected %llu\n", workload, static_cast<unsigned long long>(got),
               static_cast<unsigned long long>(expected));
  std::exit(1);
}

// DurableDatabase::insert from one thread, --durability.
void db_single(const Args& a, const std::string& dir, std::optional<double> raw_rate) {
  aurora::Options options;
  options.durability = a.durability;
  aurora::DurableDatabase db(dir + "/db.db", options);
  const auto start = clock_type::now();
  for (std::uint64_t i = 1; i <= a.events; ++i) db.insert("docs", make_id(i), make_document(i));
  const double s = seconds_since(start);
  if (db.last_sequence() != a.events) fail_count("db: last_sequence", db.last_sequence(), a.events);
  const double rate = static_cast<double>(a.events) / s;
  JsonLine j = line(a, "db");
  j.u("writers", 1).u("events", a.events).u("commits", a.events).f("seconds", s).f("inserts_per_s", rate);
  if (raw_rate) j.f("vs_raw", rate / *raw_rate);
  std::puts(j.text().c_str());
}

// DurableDatabase::insert from --threads threads, Durability::full (whatever --durability says):
// concurrent commits share one SQLite transaction and one fsync.
void db_group(const Args& a, const std::string& dir, std::optional<double> raw_full_rate) {
  aurora::Options options;
  options.durability = aurora::Durability::full;
  aurora::DurableDatabase db(dir + "/db_group.db", options);
  const std::uint64_t per_thread = (a.group_events + a.threads - 1) / a.threads;
  std::vector<std::thread> threads;
  const auto start = clock_type::now();
  for (std::uint64_t t = 0; t < a.threads; ++t) {
    threads.emplace_back([&db, t, per_thread] {
      for (std::uint64_t i = 0; i < per_thread; ++i) {
        const std::uint64_t n = t * per_thread + i + 1;
        db.insert("docs", make_id(n), make_document(n));
      }
    });
  }
  for (auto& t : threads) t.join();
  const double s = seconds_since(start);
  const std::uint64_t events = per_thread * a.threads;
  if (db.last_sequence() != events) fail_count("db_group: last_sequence", db.last_sequence(), events);
  if (db.size("docs") != events) fail_count("db_group: documents", db.size("docs"), events);
  const double rate = static_cast<double>(events) / s;
  Args full = a;
  full.durability = aurora::Durability::full;
  JsonLine j = line(full, "db_group");
  j.u("writers", a.threads).u("events", events).u("commits", events).f("seconds", s).f("inserts_per_s", rate);
  if (raw_full_rate) j.f("vs_raw", rate / *raw_full_rate);
  std::puts(j.text().c_str());
}

// Writes --load-docs documents through a DurableDatabase (transactions of 1,000 inserts, default
// history: the change log keeps up to 1,000,000 events), closes it, then times its reopening:
// the constructor opens the file, loads every document and is ready for writes and reads.
void db_reopen(const Args& a, const std::string& dir) {
  const std::string path = dir + "/db_reopen.db";
  aurora::Options options;
  options.durability = a.durability;
  const auto write_start = clock_type::now();
  {
    aurora::DurableDatabase db(path, options);
    for (std::uint64_t first = 1; first <= a.load_docs; first += 1000) {
      const std::uint64_t last = std::min(a.load_docs, first + 999);
      db.transaction([&](aurora::Transaction& tx) {
        for (std::uint64_t i = first; i <= last; ++i) {
          tx.insert(i % 2 == 0 ? "even" : "odd", make_id(i), make_document(i));
        }
      });
    }
  }
  const double write_s = seconds_since(write_start);
  const auto file_bytes = std::filesystem::file_size(path);

  const auto open_start = clock_type::now();
  aurora::DurableDatabase db(path, options);
  const double reopen_s = seconds_since(open_start);
  const std::uint64_t n = db.size("even") + db.size("odd");
  if (n != a.load_docs) fail_count("db_reopen: documents", n, a.load_docs);
  if (db.last_sequence() != a.load_docs) fail_count("db_reopen: last_sequence", db.last_sequence(), a.load_docs);
  JsonLine j = line(a, "db_reopen");
  j.u("documents", n).u("file_bytes", file_bytes).f("write_s", write_s).f("reopen_s", reopen_s);
  j.f("docs_per_s", static_cast<double>(n) / reopen_s).u("vm_hwm_kib", aurora::bench::vm_hwm_kib());
  std::puts(j.text().c_str());
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse_args(argc, argv);
  std::string tmpl = a.dir + "/aurora-sqlite-bench-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    std::perror("sqlite_bench: mkdtemp");
    return 1;
  }
  const std::string dir = tmpl;
  int status = 0;
  try {
    const bool all = a.workloads.contains("all");
    auto want = [&](std::string_view w) { return all || a.workloads.contains(w); };
    std::optional<double> raw_rate;
    if (want("raw")) raw_rate = raw_sqlite(a, dir);
    if (want("storage")) storage_single(a, dir);
    if (want("group")) storage_group(a, dir);
    if (want("db")) db_single(a, dir, raw_rate);
    if (want("db_group")) {
      db_group(a, dir, a.durability == aurora::Durability::full ? raw_rate : std::nullopt);
    }
    if (want("load")) reopen_load(a, dir);
    if (want("db_reopen")) db_reopen(a, dir);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sqlite_bench: %s\n", e.what());
    status = 1;
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return status;
}
