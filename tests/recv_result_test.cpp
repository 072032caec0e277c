// Tests for aurora/recv_result.hpp.
#include <aurora/recv_result.hpp>

#include <catch2/catch.hpp>

#include <memory>

TEST_CASE("a default RecvResult holds errc::empty", "[recv_result]") {
  const aurora::RecvResult r;
  CHECK_FALSE(r);
  CHECK_FALSE(r.has_value());
  CHECK(r.error().code == aurora::errc::empty);
  CHECK(r.error().missed == 0);
  CHECK(r.event() == nullptr);
}

TEST_CASE("value() throws aurora::error with the held code", "[recv_result]") {
  const aurora::RecvResult r(aurora::RecvError{aurora::errc::lagged, 7});
  CHECK(r.error().missed == 7);
  try {
    (void)r.value();
    FAIL("value() did not throw");
  } catch (const aurora::error& e) {
    CHECK(e.code() == aurora::errc::lagged);
  }
}

TEST_CASE("a RecvResult shares its immutable event", "[recv_result]") {
  auto ev = std::make_shared<aurora::ChangeEvent>();
  ev->document_id = "d1";
  ev->sequence = 3;
  const aurora::RecvResult r{std::shared_ptr<const aurora::ChangeEvent>(ev)};
  REQUIRE(r);
  CHECK(r->document_id == "d1");
  CHECK((*r).sequence == 3);
  CHECK(&r.value() == ev.get());
  CHECK(r.event().get() == ev.get());
  CHECK(r.error().code == aurora::errc{});

  aurora::RecvResult copy = r;
  std::shared_ptr<const aurora::ChangeEvent> kept = std::move(copy).event();
  CHECK(kept.get() == ev.get());
}
