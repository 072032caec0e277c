// A minimal Aurora user: one insert, received through a coroutine subscription.
#include <aurora/aurora.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdio>

int main() {
  boost::asio::io_context io;
  aurora::Database db;
  aurora::Subscription sub = db.subscribe("users");
  bool received = false;
  boost::asio::co_spawn(
      io,
      [&]() -> boost::asio::awaitable<void> {
        aurora::RecvResult r = co_await sub.recv();
        received = r && r->collection == "users";
      },
      boost::asio::detached);
  db.insert("users", {{"name", "Ada"}});
  io.run();
  std::puts(received ? "consumer: received the insert" : "consumer: FAILED");
  return received ? 0 : 1;
}
