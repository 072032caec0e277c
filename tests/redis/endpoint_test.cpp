// Tests for aurora/redis/endpoint.hpp: parsing, factories, text form and error messages.
#include <aurora/redis/endpoint.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <string_view>

using aurora::errc;
using aurora::redis::Endpoint;

namespace {

// The message of the aurora::error that parsing `text` throws (its code must be invalid_argument).
std::string parse_error(std::string_view text) {
  try {
    (void)Endpoint(text);
  } catch (const aurora::error& e) {
    CHECK(e.code() == errc::invalid_argument);
    return e.what();
  }
  FAIL("no error for \"" << std::string(text) << "\"");
  return {};
}

}  // namespace

TEST_CASE("endpoint: unix and tcp forms parse", "[redis][endpoint]") {
  const Endpoint local{"unix:/run/redis/redis.sock"};
  CHECK(local.kind() == Endpoint::Kind::local);
  CHECK(local.path() == "/run/redis/redis.sock");
  CHECK(local.host().empty());
  CHECK(local.port() == 0);
  CHECK(local.to_string() == "unix:/run/redis/redis.sock");

  const Endpoint relative{"unix:redis.sock"};
  CHECK(relative.path() == "redis.sock");

  const Endpoint tcp{"tcp://127.0.0.1:6379"};
  CHECK(tcp.kind() == Endpoint::Kind::tcp);
  CHECK(tcp.host() == "127.0.0.1");
  CHECK(tcp.port() == 6379);
  CHECK(tcp.path().empty());
  CHECK(tcp.to_string() == "tcp://127.0.0.1:6379");

  const Endpoint name{"tcp://redis.example.com:1"};
  CHECK(name.host() == "redis.example.com");
  CHECK(name.port() == 1);

  const Endpoint v6{"tcp://[::1]:65535"};
  CHECK(v6.host() == "::1");
  CHECK(v6.port() == 65535);
  CHECK(v6.to_string() == "tcp://[::1]:65535");
}

TEST_CASE("endpoint: the default is Redis's own, and text forms round-trip", "[redis][endpoint]") {
  CHECK(Endpoint() == Endpoint("tcp://127.0.0.1:6379"));
  for (const char* text : {"unix:/tmp/x.sock", "tcp://localhost:7000", "tcp://[fe80::1]:6380", "tcp://10.0.0.1:1"}) {
    CHECK(Endpoint(Endpoint(text).to_string()) == Endpoint(text));
    CHECK(Endpoint(text).to_string() == text);
  }
  CHECK(Endpoint::tcp("::1", 6379) == Endpoint("tcp://[::1]:6379"));
  CHECK(Endpoint::local("/a.sock") == Endpoint("unix:/a.sock"));
  CHECK(Endpoint("unix:/a.sock") != Endpoint("unix:/b.sock"));
}

TEST_CASE("endpoint: bad text is invalid_argument naming the text and the problem", "[redis][endpoint]") {
  struct bad_case {
    std::string text;
    std::string why;
  };
  const bad_case cases[] = {
      {"", "must start with \"unix:\" or \"tcp://\""},
      {"redis://localhost:6379", "must start with \"unix:\" or \"tcp://\""},
      {"UNIX:/x.sock", "must start with"},
      {"unix:", "the socket path is empty"},
      {std::string("unix:/a\0b", 9), "\"unix:/a\\x00b\": the socket path holds a NUL byte"},
      {"unix:/" + std::string(107, 'p'), "108 bytes long, more than the 107"},
      {"tcp://", "the port is missing"},
      {"tcp://localhost", "the port is missing"},
      {"tcp://:6379", "the host is empty"},
      {"tcp://localhost:", "the port is empty"},
      {"tcp://localhost:0", "is not a number from 1 to 65535"},
      {"tcp://localhost:65536", "\"65536\" is not a number from 1 to 65535"},
      {"tcp://localhost:63a", "is not a number"},
      {"tcp://localhost:-1", "is not a number"},
      {"tcp://localhost:+1", "is not a number"},
      {"tcp://localhost: 1", "is not a number"},
      {"tcp://::1:6379", "must be in brackets"},
      {"tcp://[::1:6379", "lacks its closing ']'"},
      {"tcp://[::1]6379", "a ':' and a port must follow"},
      {"tcp://[]:6379", "the host is empty"},
      {"tcp://a/b:6379", "must not contain"},
      {"tcp://a]:6379", "must not contain"},
  };
  for (const bad_case& c : cases) {
    INFO("text: " << c.text);
    const std::string what = parse_error(c.text);
    CHECK_THAT(what, Catch::Contains(c.why));
    CHECK_THAT(what, Catch::StartsWith("aurora::redis::Endpoint \""));
  }
  const std::string longest = "/" + std::string(106, 'p');
  CHECK(Endpoint("unix:" + longest).path() == longest);
}

TEST_CASE("endpoint: factories check their arguments", "[redis][endpoint]") {
  CHECK_THROWS_MATCHES(Endpoint::tcp("", 6379), aurora::error,
                       Catch::Message("aurora::redis::Endpoint \"tcp://\": the host is empty: invalid argument"));
  CHECK_THROWS_WITH(Endpoint::tcp("localhost", 0), Catch::Contains("the port must be from 1 to 65535"));
  CHECK_THROWS_WITH(Endpoint::tcp("a/b", 1), Catch::Contains("must not contain"));
  CHECK_THROWS_WITH(Endpoint::local(""), Catch::Contains("the socket path is empty"));
  CHECK_THROWS_WITH(Endpoint::local(std::string(200, 'x')), Catch::Contains("200 bytes long"));
  CHECK(Endpoint::tcp("localhost", 1).to_string() == "tcp://localhost:1");
}
