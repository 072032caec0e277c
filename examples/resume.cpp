// Resume: a consumer stops, keeps the sequence of the last event it handled, and later goes on
// from there with `Start::after`: nothing missed, nothing handled twice.
#include <aurora/aurora.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

namespace asio = boost::asio;

// What the consumer keeps between runs. A real one stores `last_sequence` with its own data, in
// the same transaction, so the two cannot disagree.
struct Checkpoint {
  std::uint64_t last_sequence = 0;
  std::vector<std::string> shipped;  // order ids, in the order they were handled
};

// Ships every new order until stopped; consume() hands over what was already published first.
asio::awaitable<void> shipper(aurora::Subscription orders, Checkpoint& checkpoint) {
  co_await aurora::consume(orders, [&checkpoint](const aurora::RecvResult& r) {
    if (!r) return;  // errc::lagged: cannot happen here (see data_sync.cpp for a resync)
    checkpoint.shipped.push_back(r->document_id);
    checkpoint.last_sequence = r->sequence;
  });
}

// Runs the shipper from `start` while `writes` new orders are placed, then stops it.
void run_shipper(aurora::Database& db, aurora::Start start, int writes, Checkpoint& checkpoint) {
  asio::io_context io;
  asio::cancellation_signal stop;
  const aurora::EventFilter new_orders{aurora::OperationType::Insert, {}};
  asio::co_spawn(io, shipper(db.subscribe("orders", new_orders, start), checkpoint),
                 asio::bind_cancellation_slot(stop.slot(), asio::detached));
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (int i = 0; i < writes; ++i) {
          db.insert("orders", {{"item", i}});
          co_await asio::post(io, asio::use_awaitable);  // the shipper handles it now or later
        }
        stop.emit(asio::cancellation_type::terminal);
      },
      asio::detached);
  io.run();
}

int main() {
  aurora::Database db;
  Checkpoint checkpoint;

  run_shipper(db, aurora::Start::now(), 5, checkpoint);  // first run
  std::cout << "first run: shipped " << checkpoint.shipped.size() << ", checkpoint #" << checkpoint.last_sequence
            << '\n';

  // While the shipper is down the shop goes on: orders, and writes to other collections.
  for (int i = 0; i < 7; ++i) {
    db.insert("orders", {{"item", 100 + i}});
    db.insert("audit", {{"note", i}});
  }

  // Second run: from the checkpoint. (A checkpoint older than the retained history, the last
  // Options::channel_capacity events, makes subscribe throw errc::history_lost: then start over
  // from db.snapshot() instead.)
  run_shipper(db, aurora::Start::after(checkpoint.last_sequence), 3, checkpoint);
  std::cout << "second run: shipped " << checkpoint.shipped.size() << " in all, checkpoint #"
            << checkpoint.last_sequence << '\n';

  // Every order was shipped exactly once, in the order it was placed.
  const aurora::Snapshot orders = db.snapshot("orders");
  std::vector<std::string> placed;
  for (const auto& [id, doc] : orders.documents) placed.push_back(id);  // ids sort in creation order
  if (checkpoint.shipped != placed || placed.size() != 15) {
    std::cerr << "resume: orders were missed or shipped twice\n";
    return 1;
  }
  return 0;
}
