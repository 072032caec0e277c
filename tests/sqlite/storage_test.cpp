// aurora::sqlite::Storage: create, write, reopen, change log, trimming, PRAGMAs, bad input.
#include "support.hpp"

#include <aurora/sqlite/storage.hpp>

#include <catch2/catch.hpp>

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace {

using aurora::Document;
using aurora::OperationType;
using aurora::sqlite::Storage;
using aurora_sqlite_test::event_ptr;
using aurora_sqlite_test::loaded_state;
using aurora_sqlite_test::make_event;
using aurora_sqlite_test::read_all;
using aurora_sqlite_test::temp_dir;

void write(Storage& s, std::vector<event_ptr> events) { s.write(events); }

bool same_event(const aurora::ChangeEvent& a, const aurora::ChangeEvent& b) {
  return a.sequence == b.sequence && a.commit == b.commit && a.collection == b.collection &&
         a.document_id == b.document_id && a.operation == b.operation &&
         aurora::detail::same_document(a.document, b.document) &&
         aurora::detail::same_document(a.old_document, b.old_document) && a.timestamp == b.timestamp;
}

// Ten events over two collections: "people" ends with p1 (updated) and p3, "empty" is emptied.
std::vector<event_ptr> sample_events() {
  return {
      make_event(1, OperationType::Insert, "people", "p1", Document{{"name", "Ada"}}),
      make_event(2, OperationType::Insert, "people", "p2", Document{{"name", "Bob"}}),
      make_event(3, OperationType::Insert, "empty", "e1", Document{{"x", 1}}),
      make_event(4, OperationType::Update, "people", "p1", Document{{"name", "Ada"}, {"age", 36}},
                 Document{{"name", "Ada"}}),
      make_event(5, OperationType::Delete, "people", "p2", std::nullopt, Document{{"name", "Bob"}}),
      make_event(6, OperationType::Delete, "empty", "e1", std::nullopt, Document{{"x", 1}}),
      make_event(7, OperationType::Insert, "people", "p3",
                 Document{{"nested", {{"a", Document::array({1, 2.5, "three", nullptr, true})}}}}),
  };
}

}  // namespace

TEST_CASE("a new storage starts empty with a database id", "[sqlite][storage]") {
  temp_dir dir;
  Storage s(dir.file("db"));
  CHECK(s.id().size() == 36);
  CHECK(s.last_sequence() == 0);
  CHECK(s.oldest_logged() == 1);
  CHECK_FALSE(s.failed());
  loaded_state state;
  CHECK(s.load(state) == 0);
  CHECK(state.collections.empty());
  CHECK(read_all(s).empty());
  CHECK(s.integrity_check() == "ok");
}

TEST_CASE("reopening restores documents, collections, id, change log and last_sequence", "[sqlite][storage]") {
  temp_dir dir;
  const std::string path = dir.file("db");
  const std::vector<event_ptr> events = sample_events();
  std::string id;
  {
    auto s = Storage::open(path);
    id = s.id();
    write(s, {events[0], events[1], events[2]});  // one transaction of three events
    write(s, {events[3]});
    write(s, {events[4], events[5]});
    write(s, {events[6]});
    CHECK(s.last_sequence() == 7);
  }
  Storage s(path, aurora::Durability::normal);
  CHECK(s.id() == id);
  CHECK(s.last_sequence() == 7);
  CHECK(s.oldest_logged() == 1);

  loaded_state state;
  CHECK(s.load(state) == 2);
  CHECK(state.collections == std::vector<std::string>{"empty", "people"});  // emptied, still there
  CHECK(state.documents.size() == 2);
  CHECK(state.documents.at({"people", "p1"}) == Document{{"name", "Ada"}, {"age", 36}});
  CHECK(state.documents.at({"people", "p3"}) == *events[6]->document);
  CHECK(state.order == std::vector<aurora_sqlite_test::doc_key>{{"people", "p1"}, {"people", "p3"}});

  const std::vector<event_ptr> log = read_all(s);
  REQUIRE(log.size() == events.size());
  for (std::size_t i = 0; i < log.size(); ++i) {
    INFO("event " << i + 1);
    CHECK(same_event(*log[i], *events[i]));
  }

  // The sequence goes on where it stopped.
  write(s, {make_event(8, OperationType::Insert, "people", "p4", Document::object())});
  CHECK(s.last_sequence() == 8);
}

TEST_CASE("a transaction's events keep their commit and timestamps at microsecond precision", "[sqlite][storage]") {
  temp_dir dir;
  Storage s(dir.file("db"));
  auto a = make_event(1, OperationType::Insert, "c", "a", Document{{"v", 1}});
  auto b = make_event(2, OperationType::Insert, "c", "b", Document{{"v", 2}});
  a->commit = b->commit = 2;
  a->timestamp = b->timestamp =
      std::chrono::system_clock::time_point(std::chrono::nanoseconds(1'700'000'000'123'456'789LL));
  write(s, {a, b});
  const auto log = read_all(s);
  REQUIRE(log.size() == 2);
  CHECK(log[0]->commit == 2);
  CHECK(log[1]->commit == 2);
  CHECK(log[0]->timestamp == std::chrono::system_clock::time_point(std::chrono::microseconds(1'700'000'000'123'456LL)));
  CHECK(aurora::to_rfc3339(log[0]->timestamp) == aurora::to_rfc3339(a->timestamp));
}

TEST_CASE("the PRAGMAs asked for are in force", "[sqlite][storage]") {
  temp_dir dir;
  const std::string path = dir.file("db");
  {
    Storage s(path, aurora::Durability::full);
    const aurora::sqlite::Pragmas p = s.pragmas();
    CHECK(p.journal_mode == "wal");
    CHECK(p.locking_mode == "exclusive");
    CHECK(p.synchronous == 2);  // FULL
    CHECK(s.durability() == aurora::Durability::full);
  }
  Storage s(path, aurora::Durability::normal);
  const aurora::sqlite::Pragmas p = s.pragmas();
  CHECK(p.journal_mode == "wal");
  CHECK(p.locking_mode == "exclusive");
  CHECK(p.synchronous == 1);  // NORMAL
  CHECK(aurora::to_string(aurora::Durability::normal) == "normal");
}

TEST_CASE("read_log pages through the log and stops at the end", "[sqlite][storage]") {
  temp_dir dir;
  Storage s(dir.file("db"));
  for (std::uint64_t q = 1; q <= 25; ++q) {
    write(s, {make_event(q, OperationType::Insert, "c", "id" + std::to_string(q), Document{{"q", q}})});
  }
  std::vector<std::uint64_t> seen;
  CHECK(s.read_log(10, 5, [&](event_ptr ev) { seen.push_back(ev->sequence); }) == 5);
  CHECK(seen == std::vector<std::uint64_t>{11, 12, 13, 14, 15});
  seen.clear();
  CHECK(s.read_log(20, 100, [&](event_ptr ev) { seen.push_back(ev->sequence); }) == 5);
  CHECK(seen.front() == 21);
  CHECK(seen.back() == 25);
  CHECK(s.read_log(25, 100, [](const event_ptr&) {}) == 0);
  CHECK(s.read_log(99, 100, [](const event_ptr&) {}) == 0);
  CHECK(s.read_log(0, 0, [](const event_ptr&) {}) == 0);
  // The sink may call the storage (it runs after the storage's lock is released).
  CHECK(s.read_log(0, 2, [&](const event_ptr&) { (void)s.pragmas(); }) == 2);
}

TEST_CASE("the change log keeps the last `history` events, also after reopening", "[sqlite][storage]") {
  temp_dir dir;
  const std::string path = dir.file("db");
  {
    Storage s(path, aurora::Durability::full, 5);
    for (std::uint64_t q = 1; q <= 12; q += 3) {
      std::vector<event_ptr> batch;
      for (std::uint64_t k = q; k < q + 3; ++k) {
        batch.push_back(make_event(k, OperationType::Insert, "c", std::to_string(k), Document::object()));
      }
      write(s, batch);
    }
    CHECK(s.last_sequence() == 12);
    CHECK(s.oldest_logged() == 8);
  }
  Storage s(path, aurora::Durability::full, 5);
  CHECK(s.oldest_logged() == 8);
  const auto log = read_all(s, 7);
  REQUIRE(log.size() == 5);
  CHECK(log.front()->sequence == 8);
  try {
    (void)s.read_log(6, 10, [](const event_ptr&) {});
    FAIL("read_log(6) must throw history_lost");
  } catch (const aurora::error& e) {
    CHECK(e.code() == aurora::errc::history_lost);
    CHECK_THAT(e.what(), Catch::Contains("oldest logged sequence is 8"));
  }
  loaded_state state;
  CHECK(s.load(state) == 12);  // documents are not trimmed
}

TEST_CASE("the change log trims a commit whole: the oldest logged event begins a commit", "[sqlite][storage]") {
  temp_dir dir;
  Storage s(dir.file("db"), aurora::Durability::full, 5);
  auto single = [&](std::uint64_t q) {
    write(s, {make_event(q, OperationType::Insert, "c", std::to_string(q), Document::object())});
  };
  std::vector<event_ptr> tx;  // sequences 1..3, one commit
  for (std::uint64_t q = 1; q <= 3; ++q) {
    auto ev = make_event(q, OperationType::Insert, "c", std::to_string(q), Document::object());
    ev->commit = 3;
    tx.push_back(ev);
  }
  write(s, tx);
  for (std::uint64_t q = 4; q <= 7; ++q) single(q);
  // The last 5 would start at 3, inside the commit 1..3: it is kept whole.
  CHECK(s.oldest_logged() == 1);
  CHECK(read_all(s).size() == 7);
  single(8);  // the last 5 start at 4, a commit of its own
  CHECK(s.oldest_logged() == 4);
  const auto log = read_all(s, 3);
  REQUIRE(log.size() == 5);
  CHECK(log.front()->sequence == 4);
}

TEST_CASE("the last sequence survives reopening with and without a change log", "[sqlite][storage]") {
  // With a change log the last sequence is its last row (meta is not updated); without one,
  // meta.last_sequence. Switching between the two in either direction keeps it.
  temp_dir dir;
  const std::string path = dir.file("db");
  std::uint64_t q = 0;
  auto write_n = [&](Storage& s, int n) {
    for (int i = 0; i < n; ++i) {
      ++q;
      write(s, {make_event(q, OperationType::Insert, "c", std::to_string(q), Document::object())});
    }
  };
  for (const std::uint64_t history : {std::uint64_t{3}, std::uint64_t{0}, std::uint64_t{2}, std::uint64_t{0}}) {
    {
      Storage s(path, aurora::Durability::normal, history);
      INFO("history " << history << ", written before " << q);
      CHECK(s.last_sequence() == q);
      write_n(s, 4);
      CHECK(s.last_sequence() == q);
    }
    Storage s(path, aurora::Durability::normal, history);
    CHECK(s.last_sequence() == q);
    loaded_state state;
    CHECK(s.load(state) == q);
  }
  Storage s(path, aurora::Durability::normal, 5);
  CHECK(s.last_sequence() == 16);
  write_n(s, 1);
  CHECK(s.last_sequence() == 17);
}

TEST_CASE("a change log that stopped while history was 0 is not replayed across the gap", "[sqlite][storage]") {
  temp_dir dir;
  const std::string path = dir.file("db");
  auto insert = [](Storage& s, std::uint64_t q) {
    write(s, {make_event(q, OperationType::Insert, "c", std::to_string(q), Document::object())});
  };
  {
    Storage s(path, aurora::Durability::normal, 10);
    for (std::uint64_t q = 1; q <= 3; ++q) insert(s, q);  // logged
  }
  {
    Storage s(path, aurora::Durability::normal, 0);
    for (std::uint64_t q = 4; q <= 5; ++q) insert(s, q);  // in no log
  }
  {
    Storage s(path, aurora::Durability::normal, 10);
    CHECK(s.last_sequence() == 5);
    CHECK(s.oldest_logged() == 6);  // 1..3 could not be followed by 4 and 5
    CHECK_THROWS_AS(s.read_log(1, 10, [](const event_ptr&) {}), aurora::error);
    insert(s, 6);
    const auto log = read_all(s, 5);
    REQUIRE(log.size() == 1);
    CHECK(log.front()->sequence == 6);
  }
  Storage s(path, aurora::Durability::normal, 10);
  CHECK(s.last_sequence() == 6);
  CHECK(s.oldest_logged() == 6);
  try {
    (void)s.read_log(2, 10, [](const event_ptr&) {});
    FAIL("read_log(2) must throw history_lost");
  } catch (const aurora::error& e) {
    CHECK(e.code() == aurora::errc::history_lost);
  }
  loaded_state state;
  CHECK(s.load(state) == 6);  // the documents are all there
}

TEST_CASE("history 0 keeps no change log", "[sqlite][storage]") {
  temp_dir dir;
  Storage s(dir.file("db"), aurora::Durability::normal, 0);
  write(s, {make_event(1, OperationType::Insert, "c", "a", Document::object())});
  write(s, {make_event(2, OperationType::Update, "c", "a", Document{{"v", 1}}, Document::object())});
  CHECK(s.last_sequence() == 2);
  CHECK(s.oldest_logged() == 3);
  CHECK(read_all(s, 2).empty());
  CHECK_THROWS_AS(s.read_log(0, 10, [](const event_ptr&) {}), aurora::error);
}

TEST_CASE("write checks its events before changing anything, and such errors are not sticky", "[sqlite][storage]") {
  temp_dir dir;
  Storage s(dir.file("db"));
  write(s, {make_event(1, OperationType::Insert, "c", "a", Document::object())});

  auto expect_error = [&](std::vector<event_ptr> events, aurora::errc code, const char* text) {
    try {
      s.write(events);
      FAIL("write must throw");
    } catch (const aurora::error& e) {
      CHECK(e.code() == code);
      CHECK_THAT(e.what(), Catch::Contains(text));
    }
  };
  expect_error({make_event(3, OperationType::Insert, "c", "b", Document::object())}, aurora::errc::invalid_argument,
               "expected 2");
  expect_error({make_event(1, OperationType::Insert, "c", "b", Document::object())}, aurora::errc::invalid_argument,
               "expected 2");
  expect_error({make_event(2, OperationType::Insert, "c", "b", Document::object()),
                make_event(4, OperationType::Insert, "c", "d", Document::object())},
               aurora::errc::invalid_argument, "expected 3");
  expect_error({make_event(2, OperationType::Update, "c", "a")}, aurora::errc::invalid_argument, "no document");
  expect_error({nullptr}, aurora::errc::invalid_argument, "null");
  // Not valid UTF-8: nlohmann::json cannot write it as JSON text.
  expect_error({make_event(2, OperationType::Insert, "c", "b", Document{{"bad", std::string("\xff\xfe")}})},
               aurora::errc::invalid_document, "cannot be stored");

  CHECK_FALSE(s.failed());
  CHECK(s.last_sequence() == 1);
  s.write({});  // nothing to do
  write(s, {make_event(2, OperationType::Insert, "c", "b", Document::object())});
  CHECK(s.last_sequence() == 2);
  loaded_state state;
  CHECK(s.load(state) == 2);
}

TEST_CASE("ids and collection names are stored byte for byte", "[sqlite][storage]") {
  temp_dir dir;
  const std::string path = dir.file("db");
  const std::string odd_id = std::string("with\0nul", 8) + "'\"; DROP TABLE documents; --";
  {
    Storage s(path);
    write(s, {make_event(1, OperationType::Insert, "ünïcødé ✓", odd_id, Document{{"k", "v"}})});
  }
  Storage s(path);
  loaded_state state;
  s.load(state);
  CHECK(state.collections == std::vector<std::string>{"ünïcødé ✓"});
  CHECK(state.documents.count({"ünïcødé ✓", odd_id}) == 1);
  CHECK(read_all(s).at(0)->document_id == odd_id);
}
