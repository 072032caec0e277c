// I/O faults under the storage: a VFS shim, registered as SQLite's default for the test, wraps
// the real VFS and fails xWrite or xSync on demand.
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
using aurora_sqlite_test::temp_dir;

// What the shim does to the next writes and syncs: pass them on, or fail them with `code`.
struct fault_plan {
  std::atomic<bool> fail_writes{false};
  std::atomic<bool> fail_syncs{false};
  std::atomic<bool> fail_reads{false};
  std::atomic<int> write_code{SQLITE_IOERR_WRITE};
  std::atomic<int> failed_calls{0};
};
fault_plan plan;  // one shim per process, as SQLite's VFS list is global

// A file of the shim: ours first, then the real VFS's file (szOsFile bytes).
struct shim_file {
  sqlite3_file base;
  sqlite3_file* real() { return reinterpret_cast<sqlite3_file*>(this + 1); }
};

shim_file* as_shim(sqlite3_file* f) { return reinterpret_cast<shim_file*>(f); }
sqlite3_file* real(sqlite3_file* f) { return as_shim(f)->real(); }

int shim_close(sqlite3_file* f) { return real(f)->pMethods->xClose(real(f)); }
int shim_read(sqlite3_file* f, void* buf, int n, sqlite3_int64 off) {
  if (plan.fail_reads.load()) {
    plan.failed_calls.fetch_add(1);
    return SQLITE_IOERR_READ;
  }
  return real(f)->pMethods->xRead(real(f), buf, n, off);
}
int shim_write(sqlite3_file* f, const void* buf, int n, sqlite3_int64 off) {
  if (plan.fail_writes.load()) {
    plan.failed_calls.fetch_add(1);
    return plan.write_code.load();
  }
  return real(f)->pMethods->xWrite(real(f), buf, n, off);
}
int shim_truncate(sqlite3_file* f, sqlite3_int64 size) { return real(f)->pMethods->xTruncate(real(f), size); }
int shim_sync(sqlite3_file* f, int flags) {
  if (plan.fail_syncs.load()) {
    plan.failed_calls.fetch_add(1);
    return SQLITE_IOERR_FSYNC;
  }
  return real(f)->pMethods->xSync(real(f), flags);
}
int shim_file_size(sqlite3_file* f, sqlite3_int64* size) { return real(f)->pMethods->xFileSize(real(f), size); }
int shim_lock(sqlite3_file* f, int level) { return real(f)->pMethods->xLock(real(f), level); }
int shim_unlock(sqlite3_file* f, int level) { return real(f)->pMethods->xUnlock(real(f), level); }
int shim_check_reserved(sqlite3_file* f, int* out) { return real(f)->pMethods->xCheckReservedLock(real(f), out); }
int shim_file_control(sqlite3_file* f, int op, void* arg) { return real(f)->pMethods->xFileControl(real(f), op, arg); }
int shim_sector_size(sqlite3_file* f) { return real(f)->pMethods->xSectorSize(real(f)); }
int shim_device(sqlite3_file* f) { return real(f)->pMethods->xDeviceCharacteristics(real(f)); }
int shim_shm_map(sqlite3_file* f, int region, int size, int extend, void volatile** out) {
  return real(f)->pMethods->xShmMap(real(f), region, size, extend, out);
}
int shim_shm_lock(sqlite3_file* f, int offset, int n, int flags) {
  return real(f)->pMethods->xShmLock(real(f), offset, n, flags);
}
void shim_shm_barrier(sqlite3_file* f) { real(f)->pMethods->xShmBarrier(real(f)); }
int shim_shm_unmap(sqlite3_file* f, int del) { return real(f)->pMethods->xShmUnmap(real(f), del); }
int shim_fetch(sqlite3_file* f, sqlite3_int64 off, int n, void** out) {
  return real(f)->pMethods->xFetch(real(f), off, n, out);
}
int shim_unfetch(sqlite3_file* f, sqlite3_int64 off, void* p) { return real(f)->pMethods->xUnfetch(real(f), off, p); }

const sqlite3_io_methods shim_methods = {
    3,
    shim_close,
    shim_read,
    shim_write,
    shim_truncate,
    shim_sync,
    shim_file_size,
    shim_lock,
    shim_unlock,
    shim_check_reserved,
    shim_file_control,
    shim_sector_size,
    shim_device,
    shim_shm_map,
    shim_shm_lock,
    shim_shm_barrier,
    shim_shm_unmap,
    shim_fetch,
    shim_unfetch,
};

sqlite3_vfs* real_vfs = nullptr;

int shim_open(sqlite3_vfs* /*vfs*/, sqlite3_filename name, sqlite3_file* f, int flags, int* out_flags) {
  shim_file* file = as_shim(f);
  file->base.pMethods = nullptr;
  const int rc = real_vfs->xOpen(real_vfs, name, file->real(), flags, out_flags);
  if (rc == SQLITE_OK && file->real()->pMethods != nullptr) {
    REQUIRE(file->real()->pMethods->iVersion >= 3);
    file->base.pMethods = &shim_methods;
  }
  return rc;
}
int shim_delete(sqlite3_vfs*, const char* name, int sync_dir) { return real_vfs->xDelete(real_vfs, name, sync_dir); }
int shim_access(sqlite3_vfs*, const char* name, int flags, int* out) {
  return real_vfs->xAccess(real_vfs, name, flags, out);
}
int shim_full_pathname(sqlite3_vfs*, const char* name, int n, char* out) {
  return real_vfs->xFullPathname(real_vfs, name, n, out);
}
void* shim_dl_open(sqlite3_vfs*, const char* name) { return real_vfs->xDlOpen(real_vfs, name); }
void shim_dl_error(sqlite3_vfs*, int n, char* msg) { real_vfs->xDlError(real_vfs, n, msg); }
void (*shim_dl_sym(sqlite3_vfs*, void* h, const char* sym))(void) { return real_vfs->xDlSym(real_vfs, h, sym); }
void shim_dl_close(sqlite3_vfs*, void* h) { real_vfs->xDlClose(real_vfs, h); }
int shim_randomness(sqlite3_vfs*, int n, char* out) { return real_vfs->xRandomness(real_vfs, n, out); }
int shim_sleep(sqlite3_vfs*, int us) { return real_vfs->xSleep(real_vfs, us); }
int shim_current_time(sqlite3_vfs*, double* out) { return real_vfs->xCurrentTime(real_vfs, out); }
int shim_get_last_error(sqlite3_vfs*, int n, char* out) { return real_vfs->xGetLastError(real_vfs, n, out); }
int shim_current_time_int64(sqlite3_vfs*, sqlite3_int64* out) { return real_vfs->xCurrentTimeInt64(real_vfs, out); }

// Registers the shim as the default VFS for its lifetime (every Storage opened meanwhile uses it).
class shim_registration {
 public:
  shim_registration() {
    real_vfs = sqlite3_vfs_find(nullptr);
    REQUIRE(real_vfs != nullptr);
    REQUIRE(real_vfs->iVersion >= 2);
    std::memset(&vfs_, 0, sizeof vfs_);
    vfs_.iVersion = 2;
    vfs_.szOsFile = static_cast<int>(sizeof(shim_file)) + real_vfs->szOsFile;
    vfs_.mxPathname = real_vfs->mxPathname;
    vfs_.zName = "aurora_fault_shim";
    vfs_.xOpen = shim_open;
    vfs_.xDelete = shim_delete;
    vfs_.xAccess = shim_access;
    vfs_.xFullPathname = shim_full_pathname;
    vfs_.xDlOpen = shim_dl_open;
    vfs_.xDlError = shim_dl_error;
    vfs_.xDlSym = shim_dl_sym;
    vfs_.xDlClose = shim_dl_close;
    vfs_.xRandomness = shim_randomness;
    vfs_.xSleep = shim_sleep;
    vfs_.xCurrentTime = shim_current_time;
    vfs_.xGetLastError = shim_get_last_error;
    vfs_.xCurrentTimeInt64 = shim_current_time_int64;
    plan.fail_writes = false;
    plan.fail_syncs = false;
    plan.failed_calls = 0;
    plan.fail_reads = false;
    REQUIRE(sqlite3_vfs_register(&vfs_, 1) == SQLITE_OK);
  }
  shim_registration(const shim_registration&) = delete;
  shim_registration& operator=(const shim_registration&) = delete;
  ~shim_registration() {
    plan.fail_writes = false;
    plan.fail_syncs = false;
    plan.fail_reads = false;
    sqlite3_vfs_unregister(&vfs_);
  }

 private:
  sqlite3_vfs vfs_{};
};

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
