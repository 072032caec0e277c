// Tests for aurora/change_event.hpp: RFC 3339 timestamps and the JSON form of events.
#include <aurora/change_event.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <string>

using std::chrono::system_clock;
using namespace std::chrono_literals;

TEST_CASE("to_rfc3339 writes UTC with microseconds, truncated", "[change_event]") {
  CHECK(aurora::to_rfc3339(system_clock::time_point{}) == "1970-01-01T00:00:00.000000Z");
  // 2026-11-26T18:30:05.123456789Z
  const auto tp = system_clock::time_point{std::chrono::duration_cast<system_clock::duration>(
      std::chrono::sys_days{std::chrono::year{2026} / 11 / 26}.time_since_epoch() + 18h + 30min + 5s + 123456789ns)};
  CHECK(aurora::to_rfc3339(tp) == "2026-11-26T18:30:05.123456Z");
  // Truncation, not rounding, and correct borrows before the epoch.
  CHECK(aurora::to_rfc3339(system_clock::time_point{1999999us}) == "1970-01-01T00:00:01.999999Z");
  CHECK(aurora::to_rfc3339(system_clock::time_point{-1us}) == "1969-12-31T23:59:59.999999Z");
  CHECK(aurora::to_rfc3339(system_clock::time_point{std::chrono::duration_cast<system_clock::duration>(
            std::chrono::sys_days{std::chrono::year{2024} / 2 / 29}.time_since_epoch() + 23h + 59min + 59s)}) ==
        "2024-02-29T23:59:59.000000Z");
}

TEST_CASE("to_json writes every field, with null for absent documents", "[change_event]") {
  const aurora::ChangeEvent ev{
      .collection = "users",
      .document_id = "u1",
      .operation = aurora::OperationType::Delete,
      .document = nullptr,
      .old_document = std::make_shared<const aurora::Document>(aurora::Document{{"name", "Ada"}}),
      .timestamp = system_clock::time_point{1500ms},
      .sequence = 42};

  const nlohmann::json j = ev;
  CHECK(j.size() == 8);
  CHECK(j.at("collection") == "users");
  CHECK(j.at("document_id") == "u1");
  CHECK(j.at("operation") == "Delete");
  CHECK(j.at("document").is_null());
  CHECK(j.at("old_document") == nlohmann::json{{"name", "Ada"}});
  CHECK(j.at("timestamp") == "1970-01-01T00:00:01.500000Z");
  CHECK(j.at("sequence") == 42);
}

TEST_CASE("to_json does not throw on strings that are not UTF-8", "[change_event]") {
  const aurora::ChangeEvent ev{
      .collection = "c",
      .document_id = std::string("\xff\xfe", 2),
      .operation = aurora::OperationType::Insert,
      .document = std::make_shared<const aurora::Document>(aurora::Document{{"bad", std::string("\xc3\x28", 2)}}),
      .old_document = nullptr,
      .timestamp = {},
      .sequence = 1};
  nlohmann::json j;
  CHECK_NOTHROW(j = ev);
  // Only dump() validates UTF-8; a caller logging events can ask it to replace bad bytes.
  CHECK_NOTHROW(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}
