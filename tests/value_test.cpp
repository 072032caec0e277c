// Tests for aurora/value.hpp: documents and operation names.
#include <aurora/value.hpp>

#include <catch2/catch.hpp>

TEST_CASE("to_string names each operation", "[value]") {
  STATIC_REQUIRE(aurora::to_string(aurora::OperationType::Insert) == "Insert");
  CHECK(aurora::to_string(aurora::OperationType::Update) == "Update");
  CHECK(aurora::to_string(aurora::OperationType::Delete) == "Delete");
}

TEST_CASE("Value and Document are nlohmann::json", "[value]") {
  aurora::Document doc = {{"name", "Ada"}, {"age", 36}};
  CHECK(doc.is_object());
  aurora::Value v = doc["age"];
  CHECK(v == 36);
}
