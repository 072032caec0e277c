// aurora::sqlite::Storage: documents, collections and the change log of a database in one SQLite
// file (WAL), written one commit group at a time.
#pragma once

#include <aurora/change_event.hpp>
#include <aurora/detail/error_context.hpp>
#include <aurora/detail/uuid.hpp>
#include <aurora/errc.hpp>
#include <aurora/options.hpp>
#include <aurora/sqlite/detail/handle.hpp>
#include <aurora/sqlite/durability.hpp>
#include <aurora/value.hpp>

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace aurora::sqlite {

/// What `Storage::load` hands the stored state to: `v.collection(name)` once per collection
/// (sorted by name, also for collections that were emptied), then `v.document(collection, id,
/// doc)` once per document (sorted by collection, then id). The views are valid during the call.
template <class V>
concept LoadVisitor = requires(V& v, std::string_view name, Document&& doc) {
  v.collection(name);
  v.document(name, name, std::move(doc));
};

/// The SQLite settings a Storage runs with, as SQLite reports them (`PRAGMA journal_mode`,
/// `locking_mode` and `synchronous`).
struct Pragmas {
  std::string journal_mode;  ///< always "wal"
  std::string locking_mode;  ///< always "exclusive": one Storage owns the file while open
  int synchronous = 0;       ///< 2 (FULL) for Durability::full, 1 (NORMAL) for Durability::normal
};

/// The durable engine of a database: its documents, its collections and its change log (the last
/// `history` events) in one SQLite file in WAL mode. `write` makes a group of stamped events
/// durable in one transaction; `load` and `read_log` give them back after a restart.
///
/// File: tables `meta` (format version, database id, last sequence), `collections`, `documents`
/// (collection, id, JSON text) and `changelog` (one row per event). The last sequence is the
/// greater of `meta.last_sequence` and the change log's last row: with a change log (`history`
/// above 0, so its last row is never trimmed) a commit does not update `meta`, which saves a
/// page write per commit (about half the cost of a small commit under `synchronous=NORMAL`);
/// without one it does. The file's
/// `PRAGMA application_id` marks it as Aurora's. The connection uses `locking_mode=EXCLUSIVE`: an
/// open Storage holds the file locked, so no other process (or second Storage) can open or write
/// it until it is closed.
///
/// Errors: every SQLite failure throws `aurora::error(errc::storage_error)` whose message is
/// "<what>: <SQLite's message> (<extended result code name>)". After a failed `write` the
/// Storage refuses every later write (sticky): a failed fsync can lose data that a retried
/// fsync would then report as written. Recovery is reopening.
///
/// Thread safety: every member function may be called from any thread; they serialise on one
/// internal mutex (a `write` holds it through its commit, fsync included). `id()`,
/// `last_sequence()`, `oldest_logged()` and `failed()` do not wait for a write.
class Storage {
 public:
  /// Change-log events kept by default (for resuming subscriptions after a restart).
  static constexpr std::uint64_t default_history = 1'000'000;
  /// How long opening waits for a file that another connection holds locked.
  static constexpr std::chrono::milliseconds default_lock_timeout{2000};
  /// The version of the file layout this code writes and reads (`PRAGMA user_version`). 2: the
  /// change log's last row, not `meta.last_sequence`, may hold the last sequence. A version 1
  /// file (same tables) is marked 2 when opened, so that a version 1 library refuses it as newer
  /// rather than misreading its `meta.last_sequence`.
  static constexpr std::int64_t format_version = 2;
  /// `PRAGMA application_id` of an Aurora database file ("AUR1").
  static constexpr std::int32_t application_id = 0x41555231;

  /// Opens the database file `path`, creating it (with a new database id) when it does not exist
  /// or is an empty file, in WAL mode with `synchronous=FULL` (`Durability::full`) or `NORMAL`,
  /// and checks that both are in force. `history` is how many change-log events to keep (0: no
  /// log). A log that ends before the last commit (the file was written with `history` 0 since)
  /// is dropped at open: the commits after it are in no log, so replay starts after them.
  /// `lock_timeout` bounds the wait for a file locked by another connection.
  ///
  /// Errors (`aurora::error(errc::storage_error)`, the message starts with "open '<path>': "
  /// and says which): "locked by another process" (another open Storage or SQLite connection
  /// held the file for `lock_timeout`), "not an Aurora database" (not an SQLite file at all, or
  /// an SQLite database of another application), "the database file is corrupt", a newer format
  /// version, or the file cannot be opened or created.
  explicit Storage(std::string path, Durability durability = Durability::full, std::uint64_t history = default_history,
                   std::chrono::milliseconds lock_timeout = default_lock_timeout)
      : path_(std::move(path)), durability_(durability), history_(history) {
    try {
      open_file(lock_timeout);
    } catch (const detail::sqlite_error& e) {
      throw classify_open_error(e, lock_timeout);
    }
  }

  /// The same as the constructor, as a named function: `auto s = Storage::open(path);`.
  [[nodiscard]] static Storage open(const std::string& path, Durability durability = Durability::full,
                                    std::uint64_t history = default_history,
                                    std::chrono::milliseconds lock_timeout = default_lock_timeout) {
    return Storage(path, durability, history, lock_timeout);
  }

  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  Storage(Storage&&) = delete;
  Storage& operator=(Storage&&) = delete;

  /// Closes the file (SQLite checkpoints the log into it when it can). Never throws.
  ~Storage() = default;

  /// The database id: a UUID made when the file was created, the same after every reopen.
  [[nodiscard]] const std::string& id() const noexcept { return id_; }

  /// The path the Storage was opened with.
  [[nodiscard]] const std::string& path() const noexcept { return path_; }

  /// The durability it was opened with.
  [[nodiscard]] Durability durability() const noexcept { return durability_; }

  /// How many change-log events it keeps.
  [[nodiscard]] std::uint64_t history() const noexcept { return history_; }

  /// The most bytes of text the change-log row of one event may hold (its collection, id,
  /// document and before-image): the SQLite library's limit on one row less 1,000 bytes for the
  /// row's other columns. A `write` with a larger event fails like an I/O error (SQLITE_TOOBIG),
  /// which refuses every later write: check sizes before (DurableDatabase does).
  [[nodiscard]] std::size_t max_change_bytes() const noexcept {
    const auto limit = static_cast<std::size_t>(std::max(0, sqlite3_limit(db_.get(), SQLITE_LIMIT_LENGTH, -1)));
    constexpr std::size_t other_columns = aurora::detail::change_log_row_overhead;
    return limit > other_columns ? limit - other_columns : 0;
  }

  /// The sequence of the last event written (0 for a new database); the next write must start
  /// at `last_sequence() + 1`.
  [[nodiscard]] std::uint64_t last_sequence() const noexcept { return last_sequence_.load(std::memory_order_acquire); }

  /// The oldest sequence still in the change log; `last_sequence() + 1` when the log is empty.
  [[nodiscard]] std::uint64_t oldest_logged() const noexcept { return oldest_logged_.load(std::memory_order_acquire); }

  /// True after a write failed: every later write is refused.
  [[nodiscard]] bool failed() const noexcept { return failed_.load(std::memory_order_acquire); }

  /// Hands every collection, then every document, to `visitor` (see LoadVisitor) and returns the
  /// number of documents. The visitor runs under the Storage's mutex: it must not call the
  /// Storage. Errors: storage_error on an SQLite failure or a stored document that is not valid
  /// JSON (a corrupt file); what the visitor throws.
  template <LoadVisitor Visitor>
  std::size_t load(Visitor&& visitor) {
    const std::lock_guard lock(mutex_);
    {
      detail::statement q(db_, "SELECT name FROM collections ORDER BY name", "load: collections");
      detail::statement::run r(q);
      while (r.step()) visitor.collection(r.text(0));
    }
    std::size_t count = 0;
    detail::statement q(db_, "SELECT collection, id, document FROM documents ORDER BY collection, id",
                        "load: documents");
    detail::statement::run r(q);
    while (r.step()) {
      const std::string_view collection = r.text(0);
      const std::string_view id = r.text(1);
      Document doc = parse(r.text(2), "load: document '" + std::string(id) + "' of '" + std::string(collection) + "'");
      visitor.document(collection, id, std::move(doc));
      ++count;
    }
    return count;
  }

  /// Makes `events` durable in one SQLite transaction (`BEGIN IMMEDIATE ... COMMIT`): Insert and
  /// Update store the document (upsert), Delete removes it, an Insert into a new collection
  /// records the collection; every event is appended to the change log, which is then trimmed to
  /// its last `history()` events (more when a commit reaches across that point: commits are
  /// trimmed whole); without a change log (`history()` 0) `meta.last_sequence`
  /// becomes the last event's sequence. With
  /// `Durability::full` the commit is on disk (fsync) when this returns.
  ///
  /// Preconditions checked (`errc::invalid_argument`, nothing written, not sticky): the events
  /// are non-null, their sequences are `last_sequence() + 1, + 2, ...` in order, Insert and Update
  /// carry a document. A document whose strings are not valid UTF-8 cannot be stored as JSON text:
  /// `errc::invalid_document`, nothing written, not sticky.
  ///
  /// Errors: storage_error with SQLite's message when SQLite fails (I/O error, disk full, fsync
  /// failure, lost lock, corrupt page); the transaction is rolled back and from then on every
  /// write throws storage_error ("refused ..."). Whether a commit whose fsync failed is in the
  /// file after a reopen is unknown (it may be): treat the write as failed.
  void write(std::span<const std::shared_ptr<const ChangeEvent>> events) {
    const std::lock_guard lock(mutex_);
    if (failed()) {
      throw error(errc::storage_error, "write refused: an earlier write failed (" + failure_ +
                                           "); the storage accepts no more writes until it is reopened");
    }
    if (events.empty()) return;
    std::vector<encoded_event> encoded = encode(events);  // validates; throws before anything changes

    std::vector<const std::string*> new_collections;
    try {
      detail::statement::run(begin_).done();
      for (const encoded_event& e : encoded) apply(e, new_collections);
      const std::uint64_t last = encoded.back().ev->sequence;
      // With a change log its last row (never trimmed) records `last`: see the class comment.
      if (history_ == 0) detail::statement::run(set_last_sequence_).bind(1, static_cast<std::int64_t>(last)).done();
      std::uint64_t oldest = oldest_logged();
      if (history_ == 0) {
        oldest = last + 1;
      } else if (last - oldest + 1 > history_) {
        oldest = last - history_ + 1;
        // Commits are trimmed whole: one that reaches across the cut keeps its first events, so
        // the oldest logged event (where Start::oldest resumes) always begins a commit.
        detail::statement::run start(commit_start_);
        start.bind(1, static_cast<std::int64_t>(oldest));
        if (start.step() && !start.is_null(0)) oldest = static_cast<std::uint64_t>(start.int64(0));
        detail::statement::run(trim_).bind(1, static_cast<std::int64_t>(oldest)).done();
      }
      detail::statement::run(commit_).done();
      oldest_logged_.store(std::min(oldest, last + 1), std::memory_order_release);
      last_sequence_.store(last, std::memory_order_release);
      try {
        for (const std::string* name : new_collections) known_collections_.insert(*name);
      } catch (...) {  // only a shortcut: the next insert into it records it again (OR IGNORE)
      }
    } catch (const detail::sqlite_error& e) {
      fail(aurora::detail::error_context(e));
      throw detail::sqlite_error(e.result_code(), aurora::detail::error_context(e) +
                                                      "; the storage refuses every later write until it is reopened");
    } catch (const std::exception& e) {
      fail(aurora::detail::error_context(e));
      throw error(errc::storage_error, "write: " + aurora::detail::error_context(e) +
                                           "; the storage refuses every later write until it is reopened");
    }
  }

  /// Reads the change-log events with `sequence > after`, in order, at most `limit` of them,
  /// rebuilt as ChangeEvents (timestamps at microsecond precision), and hands each to `sink`
  /// (after the Storage's mutex is released, so the sink may call the Storage). Returns how many
  /// it read: fewer than `limit` means the log ended. `after >= last_sequence()` reads nothing.
  ///
  /// Errors: `errc::history_lost` when events after `after` were trimmed from the log (the
  /// message names the oldest logged sequence); storage_error on an SQLite failure or a
  /// malformed row (a corrupt file).
  template <class Sink>
  requires std::invocable<Sink&, std::shared_ptr<const ChangeEvent>> std::size_t read_log(std::uint64_t after,
                                                                                          std::size_t limit,
                                                                                          Sink&& sink) {
    std::vector<std::shared_ptr<const ChangeEvent>> events;
    {
      const std::lock_guard lock(mutex_);
      const std::uint64_t last = last_sequence();
      if (after >= last || limit == 0) return 0;
      const std::uint64_t oldest = oldest_logged();
      if (after + 1 < oldest) {
        throw error(errc::history_lost, "read_log: the events after " + std::to_string(after) +
                                            " are no longer in the change log; the oldest logged sequence is " +
                                            std::to_string(oldest));
      }
      const std::uint64_t wanted = std::min<std::uint64_t>(last - after, limit);
      events.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(wanted, 4096)));
      detail::statement::run r(read_log_);
      r.bind(1, static_cast<std::int64_t>(after)).bind(2, static_cast<std::int64_t>(wanted));
      std::uint64_t expect = after + 1;
      while (r.step()) {
        auto ev = decode(r);
        if (ev->sequence != expect) {
          throw error(errc::storage_error, "read_log: the change log has no event " + std::to_string(expect) +
                                               " (found " + std::to_string(ev->sequence) + "): the file is corrupt");
        }
        ++expect;
        events.push_back(std::move(ev));
      }
    }
    for (auto& ev : events) sink(std::move(ev));
    return events.size();
  }

  /// The journal mode, locking mode and synchronous level in force, read from SQLite.
  [[nodiscard]] Pragmas pragmas() {
    const std::lock_guard lock(mutex_);
    return read_pragmas();
  }

  /// Runs `PRAGMA integrity_check` and returns its report: "ok", or the problems found, one per
  /// line. Reads the whole file. Errors: storage_error on an SQLite failure.
  [[nodiscard]] std::string integrity_check() {
    const std::lock_guard lock(mutex_);
    detail::statement q(db_, "PRAGMA integrity_check", "integrity_check");
    detail::statement::run r(q);
    std::string report;
    while (r.step()) {
      if (!report.empty()) report.push_back('\n');
      report.append(r.text(0));
    }
    return report;
  }

 private:
  // An event with its JSON texts made before the transaction starts.
  struct encoded_event {
    const ChangeEvent* ev = nullptr;
    std::string document;      // empty: none
    std::string old_document;  // empty: none
    std::int64_t timestamp_us = 0;
  };

  static constexpr const char* schema_sql =
      "CREATE TABLE meta(key TEXT PRIMARY KEY NOT NULL, value NOT NULL) WITHOUT ROWID;"
      "CREATE TABLE collections(name TEXT PRIMARY KEY NOT NULL) WITHOUT ROWID;"
      "CREATE TABLE documents(collection TEXT NOT NULL, id TEXT NOT NULL, document TEXT NOT NULL,"
      "  PRIMARY KEY(collection, id)) WITHOUT ROWID;"
      "CREATE TABLE changelog(sequence INTEGER PRIMARY KEY, commit_sequence INTEGER NOT NULL,"
      "  collection TEXT NOT NULL, document_id TEXT NOT NULL,"
      "  op TEXT NOT NULL CHECK(op IN ('Insert', 'Update', 'Delete')), timestamp_us INTEGER NOT NULL,"
      "  document TEXT, old_document TEXT);";

  void open_file(std::chrono::milliseconds lock_timeout) {
    db_ = detail::connection(path_, lock_timeout);
    // Before the first access: the WAL index then lives in this process's memory (no -shm file)
    // and the file stays locked by this connection until it closes.
    db_.exec("PRAGMA locking_mode=EXCLUSIVE", "set locking_mode");

    // What the file is, read before changing anything in it. The first read of the file tells a
    // non-SQLite file (SQLITE_NOTADB), a corrupt one (SQLITE_CORRUPT) or a locked one (SQLITE_BUSY).
    const std::int64_t app_id = query_int("PRAGMA application_id", "read application_id");
    const std::int64_t version = query_int("PRAGMA user_version", "read user_version");
    const std::vector<std::string> tables = table_names();
    // Tables, indexes, views and triggers: a file that holds any of them is somebody's.
    const std::int64_t objects = query_int("SELECT count(*) FROM sqlite_schema", "read the schema");
    bool fresh = false;
    if (app_id == application_id) {
      if (version > format_version) {
        throw error(errc::storage_error, "open '" + path_ + "': the file has Aurora format version " +
                                             std::to_string(version) + ", newer than this library's (" +
                                             std::to_string(format_version) + ")");
      }
      for (const char* table : {"changelog", "collections", "documents", "meta"}) {
        if (!std::binary_search(tables.begin(), tables.end(), table)) {
          throw error(errc::storage_error, "open '" + path_ + "': the database file is corrupt: the table '" + table +
                                               "' of an Aurora database is missing");
        }
      }
    } else if (app_id == 0 && version == 0 && objects == 0) {
      fresh = true;
    } else {
      std::string listed;
      for (const auto& t : tables) listed += (listed.empty() ? "" : ", ") + t;
      throw error(
          errc::storage_error,
          "open '" + path_ + "': not an Aurora database: an SQLite database of another application (application_id " +
              std::to_string(app_id) + ", user_version " + std::to_string(version) +
              ", tables: " + (listed.empty() ? "none" : listed) + ", schema objects: " + std::to_string(objects) + ")");
    }

    const std::string mode = query_text("PRAGMA journal_mode=WAL", "set journal_mode=WAL");
    if (mode != "wal") {
      throw error(errc::storage_error,
                  "open '" + path_ + "': SQLite refused journal_mode=WAL (the journal mode is '" + mode + "')");
    }
    db_.exec(durability_ == Durability::full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
             "set synchronous");

    begin_ = detail::statement(db_, "BEGIN IMMEDIATE", "write: BEGIN IMMEDIATE");
    commit_ = detail::statement(db_, "COMMIT", "write: COMMIT");
    rollback_ = detail::statement(db_, "ROLLBACK", "write: ROLLBACK");
    if (fresh) create_schema();

    // Take the write lock once now: a file locked by another connection fails here, at open,
    // rather than at the first write. A version 1 file is marked with this version meanwhile.
    in_transaction([&] {
      if (!fresh && version < format_version) {
        db_.exec(("PRAGMA user_version=" + std::to_string(format_version)).c_str(), "set user_version");
        detail::statement mark(db_, "UPDATE meta SET value = ?1 WHERE key = 'format_version'",
                               "update meta.format_version");
        detail::statement::run(mark).bind(1, format_version).done();
      }
    });

    read_meta();
    prepare_statements();

    const Pragmas p = read_pragmas();
    const int want = durability_ == Durability::full ? 2 : 1;
    if (p.journal_mode != "wal" || p.locking_mode != "exclusive" || p.synchronous != want) {
      throw error(errc::storage_error,
                  "open '" + path_ + "': SQLite settings not in force: journal_mode=" + p.journal_mode +
                      " locking_mode=" + p.locking_mode + " synchronous=" + std::to_string(p.synchronous) +
                      " (wanted wal, " + "exclusive, " + std::to_string(want) + ")");
    }
  }

  void create_schema() {
    in_transaction([&] {
      db_.exec(schema_sql, "create the schema");
      db_.exec(("PRAGMA application_id=" + std::to_string(application_id)).c_str(), "set application_id");
      db_.exec(("PRAGMA user_version=" + std::to_string(format_version)).c_str(), "set user_version");
      const std::string id = aurora::detail::uuid_v7_generator{}.next(std::chrono::system_clock::now());
      detail::statement put(db_, "INSERT INTO meta(key, value) VALUES (?1, ?2)", "create the schema: meta");
      detail::statement::run(put).bind(1, "format_version").bind(2, format_version).done();
      detail::statement::run(put).bind(1, "database_id").bind(2, std::string_view(id)).done();
      detail::statement::run(put).bind(1, "last_sequence").bind(2, std::int64_t{0}).done();
    });
  }

  void read_meta() {
    const std::string where = "open '" + path_ + "': the database file is corrupt: ";
    detail::statement q(db_, "SELECT key, value, typeof(value) FROM meta", "read meta");
    detail::statement::run r(q);
    bool has_id = false;
    bool has_last = false;
    std::uint64_t last = 0;
    while (r.step()) {
      const std::string_view key = r.text(0);
      if (key == "database_id") {
        id_ = r.text(1);
        has_id = !id_.empty();
      } else if (key == "last_sequence") {
        if (r.text(2) != "integer" || r.int64(1) < 0) throw error(errc::storage_error, where + "meta.last_sequence");
        last = static_cast<std::uint64_t>(r.int64(1));
        has_last = true;
      }
    }
    if (!has_id || !has_last) {
      throw error(errc::storage_error, where + "meta lacks " + (has_id ? "last_sequence" : "database_id"));
    }
    std::int64_t min_logged = query_int("SELECT coalesce(min(sequence), 0) FROM changelog", "read changelog");
    std::int64_t max_logged = query_int("SELECT coalesce(max(sequence), 0) FROM changelog", "read changelog");
    if (max_logged < 0 || (min_logged <= 0 && max_logged != 0)) {
      throw error(errc::storage_error,
                  where + "the change log holds sequence " + std::to_string(min_logged) + " (sequences start at 1)");
    }
    if (max_logged != 0 && static_cast<std::uint64_t>(max_logged) < last) {
      // The file was written with history 0 after this log: the commits after its last row are
      // in no log, so it cannot be continued. Replaying it would skip them; drop it.
      drop_stale_log();
      min_logged = 0;
      max_logged = 0;
    }
    // Commits with a change log do not update meta.last_sequence (see the class comment).
    last = std::max(last, static_cast<std::uint64_t>(max_logged));
    last_sequence_.store(last, std::memory_order_release);
    oldest_logged_.store(max_logged == 0 ? last + 1 : static_cast<std::uint64_t>(min_logged),
                         std::memory_order_release);
    detail::statement names(db_, "SELECT name FROM collections", "read collections");
    detail::statement::run n(names);
    while (n.step()) known_collections_.emplace(n.text(0));
  }

  void drop_stale_log() {
    in_transaction(
        [&] { db_.exec("DELETE FROM changelog", "open: drop a change log that stopped before the last commit"); });
  }

  // Runs `body` between BEGIN IMMEDIATE and COMMIT; rolls back and rethrows if either fails.
  template <class Body>
  void in_transaction(Body&& body) {
    detail::statement::run(begin_).done();
    try {
      std::forward<Body>(body)();
      detail::statement::run(commit_).done();
    } catch (...) {
      rollback();
      throw;
    }
  }

  void prepare_statements() {
    upsert_ = detail::statement(db_,
                                "INSERT INTO documents(collection, id, document) VALUES (?1, ?2, ?3) "
                                "ON CONFLICT(collection, id) DO UPDATE SET document = excluded.document",
                                "write: store a document");
    erase_ =
        detail::statement(db_, "DELETE FROM documents WHERE collection = ?1 AND id = ?2", "write: delete a document");
    add_collection_ =
        detail::statement(db_, "INSERT OR IGNORE INTO collections(name) VALUES (?1)", "write: record a collection");
    append_ = detail::statement(db_,
                                "INSERT INTO changelog(sequence, commit_sequence, collection, document_id, op, "
                                "timestamp_us, document, old_document) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                                "write: append to the change log");
    set_last_sequence_ = detail::statement(db_, "UPDATE meta SET value = ?1 WHERE key = 'last_sequence'",
                                           "write: update meta.last_sequence");
    trim_ = detail::statement(db_, "DELETE FROM changelog WHERE sequence < ?1", "write: trim the change log");
    commit_start_ = detail::statement(db_,
                                      "SELECT MIN(sequence) FROM changelog WHERE sequence < ?1 AND "
                                      "commit_sequence >= ?1",
                                      "write: find where the commit at the trim point begins");
    read_log_ = detail::statement(db_,
                                  "SELECT sequence, commit_sequence, collection, document_id, op, timestamp_us, "
                                  "document, old_document FROM changelog WHERE sequence > ?1 ORDER BY sequence "
                                  "LIMIT ?2",
                                  "read_log");
  }

  // Checks the events and makes their JSON texts, before any change.
  [[nodiscard]] std::vector<encoded_event> encode(std::span<const std::shared_ptr<const ChangeEvent>> events) const {
    std::vector<encoded_event> out;
    out.reserve(events.size());
    std::uint64_t expect = last_sequence() + 1;
    for (const auto& ptr : events) {
      if (!ptr) throw error(errc::invalid_argument, "write: a null event");
      const ChangeEvent& ev = *ptr;
      if (ev.sequence != expect || ev.sequence > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        throw error(errc::invalid_argument, "write: event sequence " + std::to_string(ev.sequence) + ", expected " +
                                                std::to_string(expect) +
                                                " (sequences continue the stored ones, in order)");
      }
      ++expect;
      if (ev.operation != OperationType::Delete && !ev.document) {
        throw error(errc::invalid_argument, "write: event " + std::to_string(ev.sequence) + " (" +
                                                std::string(to_string(ev.operation)) + ") has no document");
      }
      encoded_event e;
      e.ev = &ev;
      try {
        if (ev.document) e.document = ev.document->dump();
        if (ev.old_document && history_ > 0) e.old_document = ev.old_document->dump();
      } catch (const nlohmann::json::exception& x) {
        throw error(errc::invalid_document, "write: event " + std::to_string(ev.sequence) +
                                                ": the document cannot be stored as JSON: " + x.what());
      }
      e.timestamp_us = std::chrono::duration_cast<std::chrono::microseconds>(ev.timestamp.time_since_epoch()).count();
      out.push_back(std::move(e));
    }
    return out;
  }

  void apply(const encoded_event& e, std::vector<const std::string*>& new_collections) {
    const ChangeEvent& ev = *e.ev;
    if (ev.operation == OperationType::Delete) {
      detail::statement::run(erase_).bind(1, ev.collection).bind(2, ev.document_id).done();
    } else {
      if (ev.operation == OperationType::Insert && !known_collections_.contains(ev.collection) &&
          std::none_of(new_collections.begin(), new_collections.end(),
                       [&](const std::string* n) { return *n == ev.collection; })) {
        detail::statement::run(add_collection_).bind(1, ev.collection).done();
        new_collections.push_back(&ev.collection);
      }
      detail::statement::run(upsert_).bind(1, ev.collection).bind(2, ev.document_id).bind(3, e.document).done();
    }
    if (history_ == 0) return;
    detail::statement::run r(append_);
    r.bind(1, static_cast<std::int64_t>(ev.sequence))
        .bind(2, static_cast<std::int64_t>(std::max(ev.commit, ev.sequence)))
        .bind(3, ev.collection)
        .bind(4, ev.document_id)
        .bind(5, to_string(ev.operation))
        .bind(6, e.timestamp_us);
    if (ev.document) {
      r.bind(7, e.document);
    } else {
      r.bind_null(7);
    }
    if (ev.old_document) {
      r.bind(8, e.old_document);
    } else {
      r.bind_null(8);
    }
    r.done();
  }

  [[nodiscard]] std::shared_ptr<ChangeEvent> decode(const detail::statement::run& r) const {
    auto ev = std::make_shared<ChangeEvent>();
    const std::int64_t sequence = r.int64(0);
    const std::string what = "read_log: event " + std::to_string(sequence);
    if (sequence <= 0 || r.int64(1) < sequence) {
      throw error(errc::storage_error, what + ": bad sequence or commit: the file is corrupt");
    }
    ev->sequence = static_cast<std::uint64_t>(sequence);
    ev->commit = static_cast<std::uint64_t>(r.int64(1));
    ev->collection = r.text(2);
    ev->document_id = r.text(3);
    const std::string_view op = r.text(4);
    if (op == "Insert") {
      ev->operation = OperationType::Insert;
    } else if (op == "Update") {
      ev->operation = OperationType::Update;
    } else if (op == "Delete") {
      ev->operation = OperationType::Delete;
    } else {
      throw error(errc::storage_error, what + ": unknown operation '" + std::string(op) + "': the file is corrupt");
    }
    ev->timestamp = std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::microseconds(r.int64(5))));
    if (!r.is_null(6)) ev->document = std::make_shared<const Document>(parse(r.text(6), what + ": document"));
    if (!r.is_null(7)) {
      ev->old_document = std::make_shared<const Document>(parse(r.text(7), what + ": old_document"));
    }
    return ev;
  }

  static Document parse(std::string_view text, const std::string& what) {
    try {
      return Document::parse(text);
    } catch (const nlohmann::json::exception& x) {
      throw error(errc::storage_error, what + " is not valid JSON (" + x.what() + "): the file is corrupt");
    }
  }

  void fail(const std::string& why) noexcept {
    rollback();
    try {
      failure_ = why;
    } catch (...) {  // out of memory for the message: the flag below is what matters
    }
    failed_.store(true, std::memory_order_release);
  }

  void rollback() noexcept {
    if (!db_.in_transaction()) return;
    try {
      detail::statement::run(rollback_).done();
    } catch (...) {  // the connection is refused from now on anyway
    }
  }

  [[nodiscard]] Pragmas read_pragmas() const {
    Pragmas p;
    p.journal_mode = query_text("PRAGMA journal_mode", "read journal_mode");
    p.locking_mode = query_text("PRAGMA locking_mode", "read locking_mode");
    p.synchronous = static_cast<int>(query_int("PRAGMA synchronous", "read synchronous"));
    return p;
  }

  [[nodiscard]] std::vector<std::string> table_names() const {
    detail::statement q(db_, "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name", "read the schema");
    detail::statement::run r(q);
    std::vector<std::string> names;
    while (r.step()) names.emplace_back(r.text(0));
    return names;
  }

  std::int64_t query_int(const char* sql, const char* what) const {
    detail::statement q(db_, sql, what);
    detail::statement::run r(q);
    return r.step() ? r.int64(0) : 0;
  }

  std::string query_text(const char* sql, const char* what) const {
    detail::statement q(db_, sql, what);
    detail::statement::run r(q);
    return r.step() ? std::string(r.text(0)) : std::string();
  }

  // The open error for the user: which kind of failure it is, then SQLite's message.
  [[nodiscard]] detail::sqlite_error classify_open_error(const detail::sqlite_error& e,
                                                         std::chrono::milliseconds timeout) const {
    const std::string where = "open '" + path_ + "': ";
    const std::string context = aurora::detail::error_context(e);
    switch (e.primary_code()) {
      case SQLITE_BUSY:
      case SQLITE_LOCKED:
        return {e.result_code(), where + "the database is locked by another process (or another open Storage) and " +
                                     "stayed locked for " + std::to_string(timeout.count()) + " ms: " + context};
      case SQLITE_NOTADB:
        return {e.result_code(), where + "not an Aurora database: the file is not an SQLite database: " + context};
      case SQLITE_CORRUPT: return {e.result_code(), where + "the database file is corrupt: " + context};
      default: return {e.result_code(), where + context};
    }
  }

  std::string path_;
  Durability durability_;
  std::uint64_t history_;
  std::string id_;
  std::atomic<std::uint64_t> last_sequence_{0};
  std::atomic<std::uint64_t> oldest_logged_{1};
  std::atomic<bool> failed_{false};

  std::mutex mutex_;  // serialises every use of the connection
  std::string failure_;
  std::set<std::string, std::less<>> known_collections_;
  // The connection first: statements are finalized (destroyed) before it closes.
  detail::connection db_;
  detail::statement begin_;
  detail::statement commit_;
  detail::statement rollback_;
  detail::statement upsert_;
  detail::statement erase_;
  detail::statement add_collection_;
  detail::statement append_;
  detail::statement set_last_sequence_;
  detail::statement trim_;
  detail::statement commit_start_;
  detail::statement read_log_;
};

}  // namespace aurora::sqlite
