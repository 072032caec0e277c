// aurora::DurableDatabase out of memory while a group is prepared for publishing: the group is
// not written, its writers get storage_error, and the file and the feed agree.
//
// The channels' slot segments are the only 64-byte-aligned arrays the write path allocates, so
// this file replaces the aligned array forms of operator new / delete for the whole
// aurora_sqlite_tests executable: they allocate as usual until a test arms `fail_next_segment`,
// which makes the next one throw std::bad_alloc. clang's ThreadSanitizer runtime defines these
// operators in the same archive as the ones it needs (the link fails), so the TSan build leaves
// this file out; the other builds, ASan included, run it.
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define AURORA_TEST_NO_NEW_REPLACEMENT 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define AURORA_TEST_NO_NEW_REPLACEMENT 1
#endif

#ifndef AURORA_TEST_NO_NEW_REPLACEMENT
#include "support.hpp"

#include <aurora/sqlite.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

namespace {

std::atomic<bool> fail_next_segment{false};

void* aligned_array_new(std::size_t size, std::align_val_t align) {
  if (fail_next_segment.exchange(false)) throw std::bad_alloc();
  void* p = nullptr;
  if (posix_memalign(&p, static_cast<std::size_t>(align), size == 0 ? 1 : size) != 0) throw std::bad_alloc();
  return p;
}

}  // namespace

void* operator new[](std::size_t size, std::align_val_t align) { return aligned_array_new(size, align); }

void* operator new[](std::size_t size, std::align_val_t align, const std::nothrow_t& /*unused*/) noexcept {
  try {
    return aligned_array_new(size, align);
  } catch (...) {
    return nullptr;
  }
}

void operator delete[](void* p, std::align_val_t /*unused*/) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t /*unused*/, std::align_val_t /*unused*/) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t /*unused*/, const std::nothrow_t& /*unused*/) noexcept {
  std::free(p);
}

namespace {

using aurora::Document;
using aurora::DurableDatabase;
using aurora::errc;
using aurora_sqlite_test::event_ptr;
using aurora_sqlite_test::temp_dir;

std::string doc_id(int i) { return "d" + std::to_string(i); }

// Every event `sub` holds now (nothing is in flight).
std::vector<event_ptr> held(aurora::Subscription& sub) {
  std::vector<event_ptr> out;
  for (aurora::RecvResult r = sub.try_recv(); r; r = sub.try_recv()) out.push_back(r.event());
  return out;
}

// Inserts d1, d2, ... into "orders" with the next segment allocation armed to fail before each,
// until one insert fails; returns its number. d0 is already there.
int insert_until_failure(DurableDatabase& db) {
  for (int i = 1; i < 1000; ++i) {
    fail_next_segment = true;
    try {
      db.insert("orders", doc_id(i), Document{{"n", i}});
    } catch (const aurora::error& e) {
      fail_next_segment = false;
      CHECK(e.code() == errc::storage_error);
      CHECK_THAT(e.what(), Catch::Contains("group commit failed: std::bad_alloc"));
      return i;
    }
  }
  fail_next_segment = false;
  FAIL("no insert needed a new segment of slots");
  return 0;
}

}  // namespace

TEST_CASE("DurableDatabase: a commit that cannot be prepared for publishing is not written", "[durable]") {
  temp_dir dir;
  const std::string path = dir.file("db");
  int failed = 0;
  {
    DurableDatabase db(path);
    auto everything = db.subscribe_global();
    auto orders = db.subscribe("orders");
    db.insert("orders", doc_id(0), {{"n", 0}});
    failed = insert_until_failure(db);
    const auto last = static_cast<std::uint64_t>(failed);  // d0 .. d(failed - 1)

    // Undone in memory, refused from now on, and the feed holds exactly what was committed.
    CHECK_FALSE(db.get("orders", doc_id(failed)));
    CHECK(db.size("orders") == last);
    CHECK(db.last_sequence() == last);  // also: the leader let go of the publish lock
    try {
      db.insert("orders", "later", {{"n", -1}});
      FAIL("a write after the failed commit was accepted");
    } catch (const aurora::error& e) {
      CHECK(e.code() == errc::storage_error);
    }
    for (auto* sub : {&everything, &orders}) {
      const auto events = held(*sub);
      REQUIRE(events.size() == last);
      CHECK(events.back()->sequence == last);
      CHECK(events.back()->document_id == doc_id(failed - 1));
    }
  }
  // The file agrees: the failed commit was never written.
  DurableDatabase db(path);
  CHECK(db.last_sequence() == static_cast<std::uint64_t>(failed));
  CHECK(db.size("orders") == static_cast<std::uint64_t>(failed));
  CHECK_FALSE(db.get("orders", doc_id(failed)));
  CHECK(db.get("orders", doc_id(failed - 1)));
  db.insert("orders", doc_id(failed), {{"n", failed}});  // writes again after the reopen
  CHECK(db.last_sequence() == static_cast<std::uint64_t>(failed) + 1);
}

TEST_CASE("DurableDatabase: a transaction that cannot be prepared for publishing is not written", "[durable]") {
  temp_dir dir;
  const std::string path = dir.file("db");
  {
    DurableDatabase db(path);
    db.insert("orders", doc_id(0), {{"n", 0}});
  }
  {
    // Reopened, the channels hold no slots yet: the next commit allocates their first segments.
    DurableDatabase db(path);
    auto orders = db.subscribe("orders");
    fail_next_segment = true;
    try {
      db.transaction([](aurora::Transaction& tx) {
        tx.insert("orders", "t1", {{"n", 1}});
        tx.insert("orders", "t2", {{"n", 2}});
        tx.insert("audit", "a1", {{"of", "t1 t2"}});
      });
      FAIL("the transaction was committed");
    } catch (const aurora::error& e) {
      CHECK(e.code() == errc::storage_error);
    }
    CHECK_FALSE(fail_next_segment);  // the failure came from a segment
    fail_next_segment = false;
    CHECK_FALSE(db.get("orders", "t1"));
    CHECK(db.collections() == std::vector<std::string>{"orders"});
    CHECK(db.last_sequence() == 1);
    CHECK(held(orders).empty());
  }
  DurableDatabase db(path);
  CHECK(db.last_sequence() == 1);
  CHECK_FALSE(db.get("orders", "t1"));
  CHECK_FALSE(db.get("orders", "t2"));
  CHECK(db.collections() == std::vector<std::string>{"orders"});
}

#endif  // AURORA_TEST_NO_NEW_REPLACEMENT
