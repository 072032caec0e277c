// Opening what is not a healthy Aurora database: each kind gives storage_error saying which.
#include "support.hpp"

#include <aurora/sqlite/storage.hpp>

#include <catch2/catch.hpp>

#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace {

using aurora::Document;
using aurora::OperationType;
using aurora::sqlite::Storage;
using aurora_sqlite_test::event_ptr;
using aurora_sqlite_test::make_event;
using aurora_sqlite_test::temp_dir;

// The message of the storage_error that opening `path` throws ("" if it opens).
std::string open_error(const std::string& path,
                       std::chrono::milliseconds lock_timeout = std::chrono::milliseconds(100)) {
  try {
    Storage s(path, aurora::Durability::full, Storage::default_history, lock_timeout);
  } catch (const aurora::error& e) {
    if (e.code() != aurora::errc::storage_error) return std::string("wrong errc: ") + e.what();
    return e.what();
  }
  return {};
}

void raw_sql(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  sqlite3_close(db);
  REQUIRE(rc == SQLITE_OK);
}

void make_database(const std::string& path, int documents) {
  Storage s(path);
  for (int i = 1; i <= documents; ++i) {
    const std::vector<event_ptr> batch{make_event(static_cast<std::uint64_t>(i), OperationType::Insert, "c",
                                                  "id" + std::to_string(i),
                                                  Document{{"payload", std::string(200, 'x')}, {"i", i}})};
    s.write(batch);
  }
}

void overwrite(const std::string& path, long offset, std::size_t count, char byte) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  REQUIRE(f.good());
  f.seekp(offset);
  const std::string junk(count, byte);
  f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  REQUIRE(f.good());
}

}  // namespace

TEST_CASE("a file that is not SQLite at all is not an Aurora database", "[sqlite][open]") {
  temp_dir dir;
  const std::string path = dir.file("notes.txt");
  {
    std::ofstream f(path);
    for (int i = 0; i < 100; ++i) f << "This is a text file, not a database. ";
  }
  const std::string what = open_error(path);
  INFO(what);
  CHECK_THAT(what, Catch::Contains("not an Aurora database") && Catch::Contains("not an SQLite database") &&
                       Catch::Contains("SQLITE_NOTADB") && Catch::Contains(path));
}

TEST_CASE("an SQLite database of another application is not an Aurora database", "[sqlite][open]") {
  temp_dir dir;
  const std::string path = dir.file("other.db");
  raw_sql(path, "CREATE TABLE people(name TEXT); INSERT INTO people VALUES ('Ada');");
  const std::string what = open_error(path);
  INFO(what);
  CHECK_THAT(what, Catch::Contains("not an Aurora database") && Catch::Contains("another application") &&
                       Catch::Contains("people"));
  // Left as it was: still a rollback-journal database with its row.
  raw_sql(path, "SELECT * FROM people");
  CHECK_FALSE(std::ifstream(path + "-wal").good());
}

TEST_CASE("an SQLite database of another application without tables is not taken over either", "[sqlite][open]") {
  // A file with only a view, or only a user_version, is somebody's: "no tables" is not "new".
  temp_dir dir;
  const std::string with_view = dir.file("view.db");
  raw_sql(with_view, "CREATE VIEW answers AS SELECT 42 AS answer;");
  std::string what = open_error(with_view);
  INFO(what);
  CHECK_THAT(what, Catch::Contains("not an Aurora database") && Catch::Contains("schema objects: 1"));
  raw_sql(with_view, "SELECT * FROM answers");
  CHECK_FALSE(std::ifstream(with_view + "-wal").good());

  const std::string with_version = dir.file("version.db");
  raw_sql(with_version, "PRAGMA user_version=7;");
  what = open_error(with_version);
  INFO(what);
  CHECK_THAT(what, Catch::Contains("not an Aurora database") && Catch::Contains("user_version 7"));
}

TEST_CASE("an empty file becomes a new database", "[sqlite][open]") {
  temp_dir dir;
  const std::string path = dir.file("empty");
  std::ofstream(path).close();
  CHECK(open_error(path).empty());
}

TEST_CASE("a corrupt file is reported as corrupt", "[sqlite][open]") {
  temp_dir dir;
  const std::string path = dir.file("db");
  make_database(path, 200);

  SECTION("its schema page") {
    overwrite(path, 100, 3000, '\x5a');  // page 1 after the 100-byte file header
    const std::string what = open_error(path);
    INFO(what);
    CHECK_THAT(what, Catch::Contains("corrupt") && Catch::Contains("SQLITE_CORRUPT"));
  }
  SECTION("its document pages: found when loading") {
    for (long page = 3; page < 40; ++page) overwrite(path, page * 4096 + 8, 2000, '\x5a');
    std::string what;
    try {
      Storage s(path);
      aurora_sqlite_test::loaded_state state;
      s.load(state);
      (void)aurora_sqlite_test::read_all(s);
      what = s.integrity_check();
    } catch (const aurora::error& e) {
      CHECK(e.code() == aurora::errc::storage_error);
      what = e.what();
    }
    INFO(what);
    CHECK_THAT(what, Catch::Contains("corrupt") || Catch::Contains("malformed") || Catch::Contains("not valid JSON"));
  }
}

TEST_CASE("a newer format version is refused", "[sqlite][open]") {
  temp_dir dir;
  const std::string path = dir.file("db");
  make_database(path, 1);
  raw_sql(path, "PRAGMA user_version=99");
  const std::string what = open_error(path);
  INFO(what);
  CHECK_THAT(what, Catch::Contains("format version 99") && Catch::Contains("newer"));
}

TEST_CASE("a version 1 file opens, keeps its last sequence and is marked version 2", "[sqlite][open]") {
  temp_dir dir;
  const std::string path = dir.file("db");
  make_database(path, 3);
  // As version 1 wrote it: meta.last_sequence updated by every commit.
  raw_sql(path,
          "PRAGMA user_version=1; UPDATE meta SET value = 1 WHERE key = 'format_version'; "
          "UPDATE meta SET value = 3 WHERE key = 'last_sequence'");
  {
    Storage s(path);
    CHECK(s.last_sequence() == 3);
  }
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  sqlite3_stmt* q = nullptr;
  REQUIRE(sqlite3_prepare_v2(db,
                             "SELECT value FROM meta WHERE key = 'format_version' UNION ALL SELECT user_version "
                             "FROM pragma_user_version",
                             -1, &q, nullptr) == SQLITE_OK);
  std::vector<std::int64_t> versions;
  while (sqlite3_step(q) == SQLITE_ROW) versions.push_back(sqlite3_column_int64(q, 0));
  sqlite3_finalize(q);
  sqlite3_close(db);
  CHECK(versions == std::vector<std::int64_t>{Storage::format_version, Storage::format_version});
  CHECK(Storage::format_version == 2);
}

TEST_CASE("an Aurora file that lost a table is corrupt", "[sqlite][open]") {
  temp_dir dir;
  const std::string path = dir.file("db");
  make_database(path, 1);
  raw_sql(path, "DROP TABLE changelog");
  const std::string what = open_error(path);
  INFO(what);
  CHECK_THAT(what, Catch::Contains("corrupt") && Catch::Contains("changelog"));
}

TEST_CASE("a path that cannot be opened says so", "[sqlite][open]") {
  temp_dir dir;
  const std::string what = open_error(dir.file("no/such/dir/db"));
  INFO(what);
  CHECK_THAT(what, Catch::Contains("cannot open") && Catch::Contains("SQLITE_CANTOPEN"));
}

TEST_CASE("a database held by another process is reported as locked", "[sqlite][open]") {
  temp_dir dir;
  const std::string path = dir.file("db");
  make_database(path, 3);

  int ready[2];
  int release[2];
  REQUIRE(pipe(ready) == 0);
  REQUIRE(pipe(release) == 0);
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {  // holds the database open until the parent closes `release`
    close(ready[0]);
    close(release[1]);
    int status = 0;
    try {
      Storage s(path);
      const char ok = 'R';
      aurora_sqlite_test::write_all(ready[1], &ok, 1);
      char ignored = 0;
      (void)aurora_sqlite_test::read_all(release[0], &ignored, 1);  // until EOF
    } catch (...) {
      status = 1;
    }
    _exit(status);
  }
  close(ready[1]);
  close(release[0]);
  char signal = 0;
  REQUIRE(aurora_sqlite_test::read_all(ready[0], &signal, 1));
  REQUIRE(signal == 'R');

  const std::string what = open_error(path, std::chrono::milliseconds(50));
  INFO(what);
  CHECK_THAT(what, Catch::Contains("locked by another process") && Catch::Contains("SQLITE_BUSY"));

  close(release[1]);
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  close(ready[0]);
  CHECK(open_error(path).empty());  // free again
}

TEST_CASE("a second Storage on an open file is refused", "[sqlite][open]") {
  temp_dir dir;
  const std::string path = dir.file("db");
  Storage first(path);
  const std::string what = open_error(path, std::chrono::milliseconds(20));
  INFO(what);
  CHECK_THAT(what, Catch::Contains("locked by another process"));
  CHECK(first.integrity_check() == "ok");
}
