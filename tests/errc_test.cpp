// Tests for aurora/errc.hpp: the error enum, its category, and aurora::error.
#include <aurora/errc.hpp>

#include <catch2/catch.hpp>

#include <set>
#include <string>
#include <system_error>
#include <type_traits>

namespace {
const aurora::errc all_codes[] = {
    aurora::errc::lagged,           aurora::errc::closed,         aurora::errc::empty,
    aurora::errc::not_found,        aurora::errc::already_exists, aurora::errc::invalid_document,
    aurora::errc::invalid_argument, aurora::errc::history_lost,   aurora::errc::storage_error};
}

TEST_CASE("errc converts to std::error_code and boost::system::error_code", "[errc]") {
  std::error_code ec = aurora::errc::lagged;
  CHECK(ec == aurora::errc::lagged);
  CHECK(ec != aurora::errc::closed);
  CHECK(std::string(ec.category().name()) == "aurora");

  boost::system::error_code bec = aurora::errc::closed;
  CHECK(bec == aurora::errc::closed);
  CHECK(std::string(bec.category().name()) == "aurora");

  // make_error_code is found by ADL.
  auto made = make_error_code(aurora::errc::not_found);
  static_assert(std::is_same_v<decltype(made), boost::system::error_code>);
  CHECK(made.value() == static_cast<int>(aurora::errc::not_found));

  // A std::error_code made from the Boost one compares equal to the enum.
  std::error_code converted = made;
  CHECK(converted == aurora::errc::not_found);
  CHECK(&converted.category() == &std::error_code(aurora::errc::lagged).category());
}

TEST_CASE("every errc has its own readable message", "[errc]") {
  std::set<std::string> messages;
  for (aurora::errc e : all_codes) {
    const std::string m = std::error_code(e).message();
    CHECK_FALSE(m.empty());
    CHECK(m.find("unknown") == std::string::npos);
    messages.insert(m);
  }
  CHECK(messages.size() == std::size(all_codes));
}

TEST_CASE("aurora::error is a std::system_error carrying the errc", "[errc]") {
  static_assert(std::is_base_of_v<std::system_error, aurora::error>);
  try {
    throw aurora::error(aurora::errc::already_exists, "insert");
  } catch (const aurora::error& e) {
    CHECK(e.code() == aurora::errc::already_exists);
    CHECK(e.value() == aurora::errc::already_exists);
    CHECK(std::string(e.what()).find("insert") == 0);
  }
  try {
    throw aurora::error(aurora::errc::closed);
  } catch (const std::system_error& e) {
    CHECK(e.code() == aurora::errc::closed);
    CHECK(e.code().message() == std::error_code(aurora::errc::closed).message());
  }
}

TEST_CASE("RecvError compares by code and missed", "[errc]") {
  CHECK(aurora::RecvError{aurora::errc::lagged, 5} == aurora::RecvError{aurora::errc::lagged, 5});
  CHECK(aurora::RecvError{aurora::errc::lagged, 5} != aurora::RecvError{aurora::errc::lagged, 6});
  CHECK(aurora::RecvError{}.missed == 0);
}
