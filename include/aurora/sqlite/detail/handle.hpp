// RAII handles for SQLite: one per connection (sqlite3*) and one per prepared statement
// (sqlite3_stmt*), with SQLite's failures turned into aurora::error(errc::storage_error).
#pragma once

#include <aurora/errc.hpp>

#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#if SQLITE_VERSION_NUMBER < 3024000
#error "aurora::sqlite needs SQLite 3.24 or newer (upsert)"
#endif

namespace aurora::sqlite::detail {

// The symbolic name of an SQLite result code, primary or extended: "SQLITE_IOERR_FSYNC".
inline const char* code_name(int rc) noexcept {
  switch (rc) {
    case SQLITE_OK: return "SQLITE_OK";
    case SQLITE_ERROR: return "SQLITE_ERROR";
    case SQLITE_INTERNAL: return "SQLITE_INTERNAL";
    case SQLITE_PERM: return "SQLITE_PERM";
    case SQLITE_ABORT: return "SQLITE_ABORT";
    case SQLITE_BUSY: return "SQLITE_BUSY";
    case SQLITE_LOCKED: return "SQLITE_LOCKED";
    case SQLITE_NOMEM: return "SQLITE_NOMEM";
    case SQLITE_READONLY: return "SQLITE_READONLY";
    case SQLITE_INTERRUPT: return "SQLITE_INTERRUPT";
    case SQLITE_IOERR: return "SQLITE_IOERR";
    case SQLITE_CORRUPT: return "SQLITE_CORRUPT";
    case SQLITE_NOTFOUND: return "SQLITE_NOTFOUND";
    case SQLITE_FULL: return "SQLITE_FULL";
    case SQLITE_CANTOPEN: return "SQLITE_CANTOPEN";
    case SQLITE_PROTOCOL: return "SQLITE_PROTOCOL";
    case SQLITE_EMPTY: return "SQLITE_EMPTY";
    case SQLITE_SCHEMA: return "SQLITE_SCHEMA";
    case SQLITE_TOOBIG: return "SQLITE_TOOBIG";
    case SQLITE_CONSTRAINT: return "SQLITE_CONSTRAINT";
    case SQLITE_MISMATCH: return "SQLITE_MISMATCH";
    case SQLITE_MISUSE: return "SQLITE_MISUSE";
    case SQLITE_NOLFS: return "SQLITE_NOLFS";
    case SQLITE_AUTH: return "SQLITE_AUTH";
    case SQLITE_FORMAT: return "SQLITE_FORMAT";
    case SQLITE_RANGE: return "SQLITE_RANGE";
    case SQLITE_NOTADB: return "SQLITE_NOTADB";
    case SQLITE_NOTICE: return "SQLITE_NOTICE";
    case SQLITE_WARNING: return "SQLITE_WARNING";
    case SQLITE_ROW: return "SQLITE_ROW";
    case SQLITE_DONE: return "SQLITE_DONE";
#ifdef SQLITE_ERROR_MISSING_COLLSEQ
    case SQLITE_ERROR_MISSING_COLLSEQ: return "SQLITE_ERROR_MISSING_COLLSEQ";
#endif
#ifdef SQLITE_ERROR_RETRY
    case SQLITE_ERROR_RETRY: return "SQLITE_ERROR_RETRY";
#endif
#ifdef SQLITE_ERROR_SNAPSHOT
    case SQLITE_ERROR_SNAPSHOT: return "SQLITE_ERROR_SNAPSHOT";
#endif
#ifdef SQLITE_IOERR_READ
    case SQLITE_IOERR_READ: return "SQLITE_IOERR_READ";
#endif
#ifdef SQLITE_IOERR_SHORT_READ
    case SQLITE_IOERR_SHORT_READ: return "SQLITE_IOERR_SHORT_READ";
#endif
#ifdef SQLITE_IOERR_WRITE
    case SQLITE_IOERR_WRITE: return "SQLITE_IOERR_WRITE";
#endif
#ifdef SQLITE_IOERR_FSYNC
    case SQLITE_IOERR_FSYNC: return "SQLITE_IOERR_FSYNC";
#endif
#ifdef SQLITE_IOERR_DIR_FSYNC
    case SQLITE_IOERR_DIR_FSYNC: return "SQLITE_IOERR_DIR_FSYNC";
#endif
#ifdef SQLITE_IOERR_TRUNCATE
    case SQLITE_IOERR_TRUNCATE: return "SQLITE_IOERR_TRUNCATE";
#endif
#ifdef SQLITE_IOERR_FSTAT
    case SQLITE_IOERR_FSTAT: return "SQLITE_IOERR_FSTAT";
#endif
#ifdef SQLITE_IOERR_UNLOCK
    case SQLITE_IOERR_UNLOCK: return "SQLITE_IOERR_UNLOCK";
#endif
#ifdef SQLITE_IOERR_RDLOCK
    case SQLITE_IOERR_RDLOCK: return "SQLITE_IOERR_RDLOCK";
#endif
#ifdef SQLITE_IOERR_DELETE
    case SQLITE_IOERR_DELETE: return "SQLITE_IOERR_DELETE";
#endif
#ifdef SQLITE_IOERR_BLOCKED
    case SQLITE_IOERR_BLOCKED: return "SQLITE_IOERR_BLOCKED";
#endif
#ifdef SQLITE_IOERR_NOMEM
    case SQLITE_IOERR_NOMEM: return "SQLITE_IOERR_NOMEM";
#endif
#ifdef SQLITE_IOERR_ACCESS
    case SQLITE_IOERR_ACCESS: return "SQLITE_IOERR_ACCESS";
#endif
#ifdef SQLITE_IOERR_CHECKRESERVEDLOCK
    case SQLITE_IOERR_CHECKRESERVEDLOCK: return "SQLITE_IOERR_CHECKRESERVEDLOCK";
#endif
#ifdef SQLITE_IOERR_LOCK
    case SQLITE_IOERR_LOCK: return "SQLITE_IOERR_LOCK";
#endif
#ifdef SQLITE_IOERR_CLOSE
    case SQLITE_IOERR_CLOSE: return "SQLITE_IOERR_CLOSE";
#endif
#ifdef SQLITE_IOERR_DIR_CLOSE
    case SQLITE_IOERR_DIR_CLOSE: return "SQLITE_IOERR_DIR_CLOSE";
#endif
#ifdef SQLITE_IOERR_SHMOPEN
    case SQLITE_IOERR_SHMOPEN: return "SQLITE_IOERR_SHMOPEN";
#endif
#ifdef SQLITE_IOERR_SHMSIZE
    case SQLITE_IOERR_SHMSIZE: return "SQLITE_IOERR_SHMSIZE";
#endif
#ifdef SQLITE_IOERR_SHMLOCK
    case SQLITE_IOERR_SHMLOCK: return "SQLITE_IOERR_SHMLOCK";
#endif
#ifdef SQLITE_IOERR_SHMMAP
    case SQLITE_IOERR_SHMMAP: return "SQLITE_IOERR_SHMMAP";
#endif
#ifdef SQLITE_IOERR_SEEK
    case SQLITE_IOERR_SEEK: return "SQLITE_IOERR_SEEK";
#endif
#ifdef SQLITE_IOERR_DELETE_NOENT
    case SQLITE_IOERR_DELETE_NOENT: return "SQLITE_IOERR_DELETE_NOENT";
#endif
#ifdef SQLITE_IOERR_MMAP
    case SQLITE_IOERR_MMAP: return "SQLITE_IOERR_MMAP";
#endif
#ifdef SQLITE_IOERR_GETTEMPPATH
    case SQLITE_IOERR_GETTEMPPATH: return "SQLITE_IOERR_GETTEMPPATH";
#endif
#ifdef SQLITE_IOERR_CONVPATH
    case SQLITE_IOERR_CONVPATH: return "SQLITE_IOERR_CONVPATH";
#endif
#ifdef SQLITE_IOERR_VNODE
    case SQLITE_IOERR_VNODE: return "SQLITE_IOERR_VNODE";
#endif
#ifdef SQLITE_IOERR_AUTH
    case SQLITE_IOERR_AUTH: return "SQLITE_IOERR_AUTH";
#endif
#ifdef SQLITE_IOERR_BEGIN_ATOMIC
    case SQLITE_IOERR_BEGIN_ATOMIC: return "SQLITE_IOERR_BEGIN_ATOMIC";
#endif
#ifdef SQLITE_IOERR_COMMIT_ATOMIC
    case SQLITE_IOERR_COMMIT_ATOMIC: return "SQLITE_IOERR_COMMIT_ATOMIC";
#endif
#ifdef SQLITE_IOERR_ROLLBACK_ATOMIC
    case SQLITE_IOERR_ROLLBACK_ATOMIC: return "SQLITE_IOERR_ROLLBACK_ATOMIC";
#endif
#ifdef SQLITE_IOERR_DATA
    case SQLITE_IOERR_DATA: return "SQLITE_IOERR_DATA";
#endif
#ifdef SQLITE_IOERR_CORRUPTFS
    case SQLITE_IOERR_CORRUPTFS: return "SQLITE_IOERR_CORRUPTFS";
#endif
#ifdef SQLITE_LOCKED_SHAREDCACHE
    case SQLITE_LOCKED_SHAREDCACHE: return "SQLITE_LOCKED_SHAREDCACHE";
#endif
#ifdef SQLITE_LOCKED_VTAB
    case SQLITE_LOCKED_VTAB: return "SQLITE_LOCKED_VTAB";
#endif
#ifdef SQLITE_BUSY_RECOVERY
    case SQLITE_BUSY_RECOVERY: return "SQLITE_BUSY_RECOVERY";
#endif
#ifdef SQLITE_BUSY_SNAPSHOT
    case SQLITE_BUSY_SNAPSHOT: return "SQLITE_BUSY_SNAPSHOT";
#endif
#ifdef SQLITE_BUSY_TIMEOUT
    case SQLITE_BUSY_TIMEOUT: return "SQLITE_BUSY_TIMEOUT";
#endif
#ifdef SQLITE_CANTOPEN_NOTEMPDIR
    case SQLITE_CANTOPEN_NOTEMPDIR: return "SQLITE_CANTOPEN_NOTEMPDIR";
#endif
#ifdef SQLITE_CANTOPEN_ISDIR
    case SQLITE_CANTOPEN_ISDIR: return "SQLITE_CANTOPEN_ISDIR";
#endif
#ifdef SQLITE_CANTOPEN_FULLPATH
    case SQLITE_CANTOPEN_FULLPATH: return "SQLITE_CANTOPEN_FULLPATH";
#endif
#ifdef SQLITE_CANTOPEN_CONVPATH
    case SQLITE_CANTOPEN_CONVPATH: return "SQLITE_CANTOPEN_CONVPATH";
#endif
#ifdef SQLITE_CANTOPEN_DIRTYWAL
    case SQLITE_CANTOPEN_DIRTYWAL: return "SQLITE_CANTOPEN_DIRTYWAL";
#endif
#ifdef SQLITE_CANTOPEN_SYMLINK
    case SQLITE_CANTOPEN_SYMLINK: return "SQLITE_CANTOPEN_SYMLINK";
#endif
#ifdef SQLITE_CORRUPT_VTAB
    case SQLITE_CORRUPT_VTAB: return "SQLITE_CORRUPT_VTAB";
#endif
#ifdef SQLITE_CORRUPT_SEQUENCE
    case SQLITE_CORRUPT_SEQUENCE: return "SQLITE_CORRUPT_SEQUENCE";
#endif
#ifdef SQLITE_CORRUPT_INDEX
    case SQLITE_CORRUPT_INDEX: return "SQLITE_CORRUPT_INDEX";
#endif
#ifdef SQLITE_READONLY_RECOVERY
    case SQLITE_READONLY_RECOVERY: return "SQLITE_READONLY_RECOVERY";
#endif
#ifdef SQLITE_READONLY_CANTLOCK
    case SQLITE_READONLY_CANTLOCK: return "SQLITE_READONLY_CANTLOCK";
#endif
#ifdef SQLITE_READONLY_ROLLBACK
    case SQLITE_READONLY_ROLLBACK: return "SQLITE_READONLY_ROLLBACK";
#endif
#ifdef SQLITE_READONLY_DBMOVED
    case SQLITE_READONLY_DBMOVED: return "SQLITE_READONLY_DBMOVED";
#endif
#ifdef SQLITE_READONLY_CANTINIT
    case SQLITE_READONLY_CANTINIT: return "SQLITE_READONLY_CANTINIT";
#endif
#ifdef SQLITE_READONLY_DIRECTORY
    case SQLITE_READONLY_DIRECTORY: return "SQLITE_READONLY_DIRECTORY";
#endif
#ifdef SQLITE_ABORT_ROLLBACK
    case SQLITE_ABORT_ROLLBACK: return "SQLITE_ABORT_ROLLBACK";
#endif
#ifdef SQLITE_CONSTRAINT_CHECK
    case SQLITE_CONSTRAINT_CHECK: return "SQLITE_CONSTRAINT_CHECK";
#endif
#ifdef SQLITE_CONSTRAINT_COMMITHOOK
    case SQLITE_CONSTRAINT_COMMITHOOK: return "SQLITE_CONSTRAINT_COMMITHOOK";
#endif
#ifdef SQLITE_CONSTRAINT_FOREIGNKEY
    case SQLITE_CONSTRAINT_FOREIGNKEY: return "SQLITE_CONSTRAINT_FOREIGNKEY";
#endif
#ifdef SQLITE_CONSTRAINT_FUNCTION
    case SQLITE_CONSTRAINT_FUNCTION: return "SQLITE_CONSTRAINT_FUNCTION";
#endif
#ifdef SQLITE_CONSTRAINT_NOTNULL
    case SQLITE_CONSTRAINT_NOTNULL: return "SQLITE_CONSTRAINT_NOTNULL";
#endif
#ifdef SQLITE_CONSTRAINT_PRIMARYKEY
    case SQLITE_CONSTRAINT_PRIMARYKEY: return "SQLITE_CONSTRAINT_PRIMARYKEY";
#endif
#ifdef SQLITE_CONSTRAINT_TRIGGER
    case SQLITE_CONSTRAINT_TRIGGER: return "SQLITE_CONSTRAINT_TRIGGER";
#endif
#ifdef SQLITE_CONSTRAINT_UNIQUE
    case SQLITE_CONSTRAINT_UNIQUE: return "SQLITE_CONSTRAINT_UNIQUE";
#endif
#ifdef SQLITE_CONSTRAINT_VTAB
    case SQLITE_CONSTRAINT_VTAB: return "SQLITE_CONSTRAINT_VTAB";
#endif
#ifdef SQLITE_CONSTRAINT_ROWID
    case SQLITE_CONSTRAINT_ROWID: return "SQLITE_CONSTRAINT_ROWID";
#endif
#ifdef SQLITE_CONSTRAINT_PINNED
    case SQLITE_CONSTRAINT_PINNED: return "SQLITE_CONSTRAINT_PINNED";
#endif
#ifdef SQLITE_CONSTRAINT_DATATYPE
    case SQLITE_CONSTRAINT_DATATYPE: return "SQLITE_CONSTRAINT_DATATYPE";
#endif
#ifdef SQLITE_NOTICE_RECOVER_WAL
    case SQLITE_NOTICE_RECOVER_WAL: return "SQLITE_NOTICE_RECOVER_WAL";
#endif
#ifdef SQLITE_NOTICE_RECOVER_ROLLBACK
    case SQLITE_NOTICE_RECOVER_ROLLBACK: return "SQLITE_NOTICE_RECOVER_ROLLBACK";
#endif
#ifdef SQLITE_WARNING_AUTOINDEX
    case SQLITE_WARNING_AUTOINDEX: return "SQLITE_WARNING_AUTOINDEX";
#endif
#ifdef SQLITE_AUTH_USER
    case SQLITE_AUTH_USER: return "SQLITE_AUTH_USER";
#endif
#ifdef SQLITE_OK_LOAD_PERMANENTLY
    case SQLITE_OK_LOAD_PERMANENTLY: return "SQLITE_OK_LOAD_PERMANENTLY";
#endif
#ifdef SQLITE_OK_SYMLINK
    case SQLITE_OK_SYMLINK: return "SQLITE_OK_SYMLINK";
#endif
    default: break;
  }
  return "SQLITE_UNKNOWN";
}

// A storage_error raised by SQLite. what() is "<what>: <SQLite's message> (<code name>)";
// result_code() keeps the extended result code so that callers can tell the kinds apart (locked,
// corrupt, not a database, I/O). Users catch it as aurora::error.
class sqlite_error : public aurora::error {
 public:
  sqlite_error(int rc, const std::string& message) : aurora::error(errc::storage_error, message), rc_(rc) {}

  [[nodiscard]] int result_code() const noexcept { return rc_; }
  [[nodiscard]] int primary_code() const noexcept { return rc_ & 0xff; }

 private:
  int rc_;
};

// The error for result code `rc` of an operation on `db` (may be null): SQLite's own message
// for it when `db` holds one, else the generic text of the code.
inline sqlite_error make_error(sqlite3* db, int rc, std::string_view what) {
  std::string message(what);
  message += ": ";
  const bool specific = db != nullptr && sqlite3_extended_errcode(db) == rc;
  message += specific ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  message += " (";
  message += code_name(rc);
  message += ')';
  return {rc, message};
}

// One SQLite connection, closed by the destructor (after its statements: sqlite3_close_v2
// keeps the connection until the last statement is finalized). Not thread-safe: opened with
// SQLITE_OPEN_NOMUTEX, so its owner serialises every use.
class connection {
 public:
  connection() = default;

  // Opens (creating it if needed) the database file `path` with extended result codes and a
  // busy timeout of `busy_timeout`: SQLite retries a locked file that long, then fails with
  // SQLITE_BUSY. Throws sqlite_error("open '<path>'...").
  connection(const std::string& path, std::chrono::milliseconds busy_timeout) {
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
#ifdef SQLITE_OPEN_EXRESCODE
    flags |= SQLITE_OPEN_EXRESCODE;
#endif
    const int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
    if (rc != SQLITE_OK) {
      // sqlite3_open_v2 gives a handle (to report the error with) even when it fails.
      sqlite_error e = make_error(db_, rc, "cannot open the file");
      close();
      throw e;
    }
    sqlite3_extended_result_codes(db_, 1);
    const auto ms = busy_timeout.count();
    sqlite3_busy_timeout(db_, ms < 0 ? 0 : ms > INT32_MAX ? INT32_MAX : static_cast<int>(ms));
  }

  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;
  connection(connection&& other) noexcept : db_(std::exchange(other.db_, nullptr)) {}
  connection& operator=(connection&& other) noexcept {
    if (this != &other) {
      close();
      db_ = std::exchange(other.db_, nullptr);
    }
    return *this;
  }
  ~connection() { close(); }

  [[nodiscard]] sqlite3* get() const noexcept { return db_; }

  // Runs `sql` (one or more statements; result rows are ignored). Throws sqlite_error(what).
  void exec(const char* sql, std::string_view what) const {
    const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) throw make_error(db_, rc, what);
  }

  // True while a transaction is open (BEGIN without COMMIT or ROLLBACK yet).
  [[nodiscard]] bool in_transaction() const noexcept { return db_ != nullptr && sqlite3_get_autocommit(db_) == 0; }

 private:
  void close() noexcept {
    if (db_ != nullptr) sqlite3_close_v2(db_);
    db_ = nullptr;
  }

  sqlite3* db_ = nullptr;
};

// One prepared statement, prepared once (SQLITE_PREPARE_PERSISTENT) and run many times: bind,
// step until done, reset. Text is bound without a copy (SQLITE_STATIC), so what is bound must
// stay alive until reset(). Use it through a `statement::run` guard, which resets it (and
// clears its bindings) however the use ends.
class statement {
 public:
  statement() = default;

  // Prepares `sql` on `db`. Throws sqlite_error("prepare <what>").
  statement(const connection& db, std::string_view sql, std::string_view what) : db_(db.get()), what_(what) {
    const int rc =
        sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr);
    if (rc != SQLITE_OK) throw make_error(db_, rc, "prepare " + what_);
  }

  statement(const statement&) = delete;
  statement& operator=(const statement&) = delete;
  statement(statement&& other) noexcept
      : db_(std::exchange(other.db_, nullptr)),
        stmt_(std::exchange(other.stmt_, nullptr)),
        what_(std::move(other.what_)) {}
  statement& operator=(statement&& other) noexcept {
    if (this != &other) {
      sqlite3_finalize(stmt_);
      db_ = std::exchange(other.db_, nullptr);
      stmt_ = std::exchange(other.stmt_, nullptr);
      what_ = std::move(other.what_);
    }
    return *this;
  }
  ~statement() { sqlite3_finalize(stmt_); }

  // One use of the statement: binds, steps, reads columns; resets it when destroyed.
  class run {
   public:
    explicit run(statement& s) noexcept : s_(s) {}
    run(const run&) = delete;
    run& operator=(const run&) = delete;
    ~run() {
      sqlite3_reset(s_.stmt_);
      sqlite3_clear_bindings(s_.stmt_);
    }

    // Parameters are numbered from 1.
    run& bind(int index, std::int64_t value) {
      check(sqlite3_bind_int64(s_.stmt_, index, value));
      return *this;
    }
    // Not copied: keep it alive until the run ends. Text longer than SQLite's length limit fails
    // with SQLITE_TOOBIG (never truncated: the 64-bit call takes the whole length).
    run& bind(int index, std::string_view text) {
      check(sqlite3_bind_text64(s_.stmt_, index, text.data(), static_cast<sqlite3_uint64>(text.size()), SQLITE_STATIC,
                                SQLITE_UTF8));
      return *this;
    }
    run& bind_null(int index) {
      check(sqlite3_bind_null(s_.stmt_, index));
      return *this;
    }

    // Steps once: true when a row is ready, false when the statement is done.
    bool step() {
      const int rc = sqlite3_step(s_.stmt_);
      if (rc == SQLITE_ROW) return true;
      if (rc == SQLITE_DONE) return false;
      throw make_error(s_.db_, rc, s_.what_);
    }

    // Steps to the end (for statements that return no rows).
    void done() {
      while (step()) {
      }
    }

    // Columns of the current row, numbered from 0.
    [[nodiscard]] std::int64_t int64(int column) const noexcept { return sqlite3_column_int64(s_.stmt_, column); }
    [[nodiscard]] bool is_null(int column) const noexcept {
      return sqlite3_column_type(s_.stmt_, column) == SQLITE_NULL;
    }
    [[nodiscard]] std::string_view text(int column) const noexcept {  // valid until the next step
      const auto* p = sqlite3_column_text(s_.stmt_, column);
      const int n = sqlite3_column_bytes(s_.stmt_, column);
      if (p == nullptr) return {};
      return {reinterpret_cast<const char*>(p), static_cast<std::size_t>(n)};
    }

   private:
    void check(int rc) const {
      if (rc != SQLITE_OK) throw make_error(s_.db_, rc, "bind " + s_.what_);
    }

    statement& s_;
  };

 private:
  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
  std::string what_;
};

}  // namespace aurora::sqlite::detail
