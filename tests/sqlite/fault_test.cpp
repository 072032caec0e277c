// I/O faults under the storage: a VFS shim (fault_vfs.hpp), registered as SQLite's default for
// the test, fails xRead, xWrite or xSync on demand.
#include "fault_vfs.hpp"
#include "support.hpp"

#include <aurora/sqlite.hpp>
#include <aurora/sqlite/storage.hpp>

#include <catch2/catch.hpp>

#include <sqlite3.h>

#include <atomic>
#include <cstring>
#include <string>
#include <system_error>
#include <vector>

namespace {

using aurora::Document;
using aurora::OperationType;
using aurora::sqlite::Storage;
using aurora_sqlite_test::event_ptr;
using aurora_sqlite_test::make_event;
using aurora_sqlite_test::plan;
using aurora_sqlite_test::shim_registration;
using aurora_sqlite_test::temp_dir;

std::vector<event_ptr> insert(std::uint64_t sequence) {
  return {make_event(sequence, OperationType::Insert, "c", "id" + std::to_string(sequence),
                     Document{{"n", sequence}, {"pad", std::string(100, 'p')}})};
}

// Writes 1..3, fails the write of 4 as `arm` says, then checks refusal and the file afterwards.
void check_failed_write(const std::string& path, aurora::Durability durability, void (*arm)(),
                        const char* expected_code) {
  shim_registration shim;
  {
    Storage s(path, durability);
    for (std::uint64_t q = 1; q <= 3; ++q) s.write(insert(q));
    arm();
    std::string what;
    try {
      s.write(insert(4));
    } catch (const aurora::error& e) {
      CHECK(e.code() == aurora::errc::storage_error);
      what = e.what();
    }
    plan.fail_writes = false;
    plan.fail_syncs = false;
    INFO(what);
    CHECK(plan.failed_calls.load() > 0);
    CHECK_THAT(what, Catch::Contains(expected_code) && Catch::Contains("refuses every later write"));
    CHECK(s.failed());
    CHECK(s.last_sequence() == 3);

    // Sticky: refused even though the disk works again.
    try {
      s.write(insert(4));
      FAIL("a write after a failed one must be refused");
    } catch (const aurora::error& e) {
      CHECK(e.code() == aurora::errc::storage_error);
      CHECK_THAT(e.what(), Catch::Contains("refused") && Catch::Contains(expected_code));
    }
    // Reads still work.
    CHECK(aurora_sqlite_test::read_all(s).size() == 3);
  }
  // Reopened: exactly what was committed before the failure.
  const auto result = aurora_sqlite_test::check_database(path, 3);
  INFO(result.failure);
  CHECK(result.ok());
  CHECK(result.last_sequence == 3);
  Storage s(path, durability);
  s.write(insert(4));  // a reopened storage writes again
  CHECK(s.last_sequence() == 4);
}

}  // namespace

TEST_CASE("a failing disk write throws storage_error and keeps what was committed", "[crash][fault]") {
  temp_dir dir;
  const auto durability = GENERATE(aurora::Durability::full, aurora::Durability::normal);
  check_failed_write(
      dir.file("db"), durability,
      [] {
        plan.write_code = SQLITE_IOERR_WRITE;
        plan.fail_writes = true;
      },
      "SQLITE_IOERR_WRITE");
}

TEST_CASE("a full disk throws storage_error and keeps what was committed", "[crash][fault]") {
  temp_dir dir;
  check_failed_write(
      dir.file("db"), aurora::Durability::full,
      [] {
        plan.write_code = SQLITE_FULL;
        plan.fail_writes = true;
      },
      "SQLITE_FULL");
}

TEST_CASE("a failing fsync throws storage_error and refuses later writes", "[crash][fault]") {
  temp_dir dir;
  check_failed_write(
      dir.file("db"), aurora::Durability::full, [] { plan.fail_syncs = true; }, "SQLITE_IOERR_FSYNC");
}

// Through the database: the failing commit throws storage_error, memory is as it was, nothing is
// published, and every later write is refused, even once the disk works again.
TEST_CASE("DurableDatabase: a failing commit changes nothing, publishes nothing, refuses later writes",
          "[crash][fault]") {
  temp_dir dir;
  const std::string path = dir.file("db");
  const bool fail_sync = GENERATE(true, false);
  INFO((fail_sync ? "fsync fails" : "write fails"));
  {
    shim_registration shim;
    aurora::DurableDatabase db(path);
    db.insert("c", "a", {{"v", 1}});
    db.insert("c", "b", {{"v", 2}});
    auto sub = db.subscribe_global();
    if (fail_sync) {
      plan.fail_syncs = true;
    } else {
      plan.write_code = SQLITE_IOERR_WRITE;
      plan.fail_writes = true;
    }
    auto code_of = [](auto fn) -> std::error_code {
      try {
        fn();
      } catch (const aurora::error& e) {
        return e.code();
      }
      return {};
    };
    CHECK(code_of([&] {
            db.transaction([](aurora::Transaction& tx) {
              tx.update("c", "a", {{"v", 10}});
              tx.remove("c", "b");
              tx.insert("new", "x", {{"v", 3}});
            });
          }) == aurora::errc::storage_error);
    plan.fail_writes = false;
    plan.fail_syncs = false;
    CHECK(plan.failed_calls.load() > 0);
    CHECK(*db.get("c", "a") == Document{{"v", 1}});
    CHECK(*db.get("c", "b") == Document{{"v", 2}});
    CHECK(db.collections() == std::vector<std::string>{"c"});
    CHECK(db.last_sequence() == 2);
    const aurora::RecvResult r = sub.try_recv();
    CHECK((!r && r.error().code == aurora::errc::empty));
    CHECK(code_of([&] { db.insert("c", "d", {{"v", 4}}); }) == aurora::errc::storage_error);
    CHECK(code_of([&] { db.remove("c", "a"); }) == aurora::errc::storage_error);
    CHECK(db.snapshot("c").documents.size() == 2);  // reads go on
    CHECK(db.size("c") == 2);
  }
  const auto result = aurora_sqlite_test::check_database(path, 2);
  INFO(result.failure);
  CHECK(result.ok());
  // A commit whose fsync failed may be in the file or not (treated as failed either way); the
  // file is whole, and reopening recovers.
  aurora::DurableDatabase db(path);
  CHECK(db.last_sequence() == result.last_sequence);
  if (!fail_sync) CHECK(db.last_sequence() == 2);
  db.insert("c", "d", {{"v", 4}});
  CHECK(db.last_sequence() == result.last_sequence + 1);
}

TEST_CASE("DurableDatabase: a resume whose change log cannot be read reports storage_error once, then closed",
          "[crash][fault]") {
  constexpr std::uint64_t page = aurora::detail::replay_page;
  temp_dir dir;
  const std::string path = dir.file("db");
  {
    aurora::DurableDatabase db(path);
    for (std::uint64_t i = 0; i < 3 * page; ++i) db.insert("c", {{"i", i}, {"pad", std::string(100, 'p')}});
  }
  shim_registration shim;
  aurora::DurableDatabase db(path);                             // reopened: the log's pages are not in SQLite's cache
  auto sub = db.subscribe_global({}, aurora::Start::after(0));  // reads the first page
  plan.fail_reads = true;
  std::uint64_t received = 0;
  aurora::RecvResult r = sub.try_recv();
  for (; r; r = sub.try_recv()) CHECK(r->sequence == ++received);
  plan.fail_reads = false;
  CHECK(plan.failed_calls.load() > 0);
  CHECK(received == page);
  CHECK(r.error().code == aurora::errc::storage_error);
  CHECK(sub.try_recv().error().code == aurora::errc::closed);  // going on would leave a gap
  CHECK_FALSE(sub.is_open());
  // The database is unharmed: a new resume reads the whole log, and writes go on.
  auto again = db.subscribe_global({}, aurora::Start::after(0));
  std::uint64_t n = 0;
  for (r = again.try_recv(); r; r = again.try_recv()) ++n;
  CHECK(n == 3 * page);
  db.insert("c", {{"i", -1}});
  CHECK(db.last_sequence() == 3 * page + 1);
}
