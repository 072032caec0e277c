// A VFS shim for fault injection: registered as SQLite's default for its lifetime, it wraps the
// real VFS and fails xRead, xWrite or xSync on demand (fault_test, and the Redis bridge's tests
// over a DurableDatabase).
#pragma once

#include <catch2/catch.hpp>

#include <sqlite3.h>

#include <atomic>
#include <cstring>

namespace aurora_sqlite_test {

// What the shim does to the next writes and syncs: pass them on, or fail them with `code`.
struct fault_plan {
  std::atomic<bool> fail_writes{false};
  std::atomic<bool> fail_syncs{false};
  std::atomic<bool> fail_reads{false};
  std::atomic<int> write_code{SQLITE_IOERR_WRITE};
  std::atomic<int> failed_calls{0};
};
inline fault_plan plan;  // one shim per process, as SQLite's VFS list is global

// A file of the shim: ours first, then the real VFS's file (szOsFile bytes).
struct shim_file {
  sqlite3_file base;
  sqlite3_file* real() { return reinterpret_cast<sqlite3_file*>(this + 1); }
};

inline shim_file* as_shim(sqlite3_file* f) { return reinterpret_cast<shim_file*>(f); }
inline sqlite3_file* real(sqlite3_file* f) { return as_shim(f)->real(); }

inline int shim_close(sqlite3_file* f) { return real(f)->pMethods->xClose(real(f)); }
inline int shim_read(sqlite3_file* f, void* buf, int n, sqlite3_int64 off) {
  if (plan.fail_reads.load()) {
    plan.failed_calls.fetch_add(1);
    return SQLITE_IOERR_READ;
  }
  return real(f)->pMethods->xRead(real(f), buf, n, off);
}
inline int shim_write(sqlite3_file* f, const void* buf, int n, sqlite3_int64 off) {
  if (plan.fail_writes.load()) {
    plan.failed_calls.fetch_add(1);
    return plan.write_code.load();
  }
  return real(f)->pMethods->xWrite(real(f), buf, n, off);
}
inline int shim_truncate(sqlite3_file* f, sqlite3_int64 size) { return real(f)->pMethods->xTruncate(real(f), size); }
inline int shim_sync(sqlite3_file* f, int flags) {
  if (plan.fail_syncs.load()) {
    plan.failed_calls.fetch_add(1);
    return SQLITE_IOERR_FSYNC;
  }
  return real(f)->pMethods->xSync(real(f), flags);
}
inline int shim_file_size(sqlite3_file* f, sqlite3_int64* size) { return real(f)->pMethods->xFileSize(real(f), size); }
inline int shim_lock(sqlite3_file* f, int level) { return real(f)->pMethods->xLock(real(f), level); }
inline int shim_unlock(sqlite3_file* f, int level) { return real(f)->pMethods->xUnlock(real(f), level); }
inline int shim_check_reserved(sqlite3_file* f, int* out) {
  return real(f)->pMethods->xCheckReservedLock(real(f), out);
}
inline int shim_file_control(sqlite3_file* f, int op, void* arg) {
  return real(f)->pMethods->xFileControl(real(f), op, arg);
}
inline int shim_sector_size(sqlite3_file* f) { return real(f)->pMethods->xSectorSize(real(f)); }
inline int shim_device(sqlite3_file* f) { return real(f)->pMethods->xDeviceCharacteristics(real(f)); }
inline int shim_shm_map(sqlite3_file* f, int region, int size, int extend, void volatile** out) {
  return real(f)->pMethods->xShmMap(real(f), region, size, extend, out);
}
inline int shim_shm_lock(sqlite3_file* f, int offset, int n, int flags) {
  return real(f)->pMethods->xShmLock(real(f), offset, n, flags);
}
inline void shim_shm_barrier(sqlite3_file* f) { real(f)->pMethods->xShmBarrier(real(f)); }
inline int shim_shm_unmap(sqlite3_file* f, int del) { return real(f)->pMethods->xShmUnmap(real(f), del); }
inline int shim_fetch(sqlite3_file* f, sqlite3_int64 off, int n, void** out) {
  return real(f)->pMethods->xFetch(real(f), off, n, out);
}
inline int shim_unfetch(sqlite3_file* f, sqlite3_int64 off, void* p) {
  return real(f)->pMethods->xUnfetch(real(f), off, p);
}

inline const sqlite3_io_methods shim_methods = {
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

inline sqlite3_vfs* real_vfs = nullptr;

inline int shim_open(sqlite3_vfs* /*vfs*/, sqlite3_filename name, sqlite3_file* f, int flags, int* out_flags) {
  shim_file* file = as_shim(f);
  file->base.pMethods = nullptr;
  const int rc = real_vfs->xOpen(real_vfs, name, file->real(), flags, out_flags);
  if (rc == SQLITE_OK && file->real()->pMethods != nullptr) {
    REQUIRE(file->real()->pMethods->iVersion >= 3);
    file->base.pMethods = &shim_methods;
  }
  return rc;
}
inline int shim_delete(sqlite3_vfs*, const char* name, int sync_dir) {
  return real_vfs->xDelete(real_vfs, name, sync_dir);
}
inline int shim_access(sqlite3_vfs*, const char* name, int flags, int* out) {
  return real_vfs->xAccess(real_vfs, name, flags, out);
}
inline int shim_full_pathname(sqlite3_vfs*, const char* name, int n, char* out) {
  return real_vfs->xFullPathname(real_vfs, name, n, out);
}
inline void* shim_dl_open(sqlite3_vfs*, const char* name) { return real_vfs->xDlOpen(real_vfs, name); }
inline void shim_dl_error(sqlite3_vfs*, int n, char* msg) { real_vfs->xDlError(real_vfs, n, msg); }
inline void (*shim_dl_sym(sqlite3_vfs*, void* h, const char* sym))(void) { return real_vfs->xDlSym(real_vfs, h, sym); }
inline void shim_dl_close(sqlite3_vfs*, void* h) { real_vfs->xDlClose(real_vfs, h); }
inline int shim_randomness(sqlite3_vfs*, int n, char* out) { return real_vfs->xRandomness(real_vfs, n, out); }
inline int shim_sleep(sqlite3_vfs*, int us) { return real_vfs->xSleep(real_vfs, us); }
inline int shim_current_time(sqlite3_vfs*, double* out) { return real_vfs->xCurrentTime(real_vfs, out); }
inline int shim_get_last_error(sqlite3_vfs*, int n, char* out) { return real_vfs->xGetLastError(real_vfs, n, out); }
inline int shim_current_time_int64(sqlite3_vfs*, sqlite3_int64* out) {
  return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

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

}  // namespace aurora_sqlite_test
