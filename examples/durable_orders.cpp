// Durable orders: a DurableDatabase keeps its orders in an SQLite file. The program writes
// orders, a consumer handles some of them and keeps the sequence of the last one it handled,
// the database is closed and reopened (as after a restart), more orders arrive, and the consumer
// resumes from its stored sequence with `Start::after`: the events before the restart come from
// the change log, the later ones live, with nothing missed and nothing handled twice.
#include <aurora/sqlite.hpp>

#include <stdlib.h>  // NOLINT(modernize-deprecated-headers): mkdtemp is POSIX, declared here

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace fs = std::filesystem;

namespace {

// A temporary directory, removed with the database file in it.
struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "aurora-orders-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path = tmpl;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// What the consumer stores between runs.
struct Checkpoint {
  std::uint64_t last_sequence = 0;
  std::vector<std::string> handled;  // order numbers, in the order they were handled
};

// Handles at most `limit` of the events the subscription holds now.
void handle(aurora::Subscription& sub, Checkpoint& cp, std::size_t limit) {
  for (std::size_t i = 0; i < limit; ++i) {
    aurora::RecvResult r = sub.try_recv();
    if (!r) break;  // empty: nothing more right now
    cp.handled.push_back(r->document->at("number").get<std::string>());
    cp.last_sequence = r->sequence;
  }
}

}  // namespace

int main() {
  TempDir dir;
  const std::string file = (dir.path / "orders.db").string();
  Checkpoint cp;
  std::string database_id;

  {  // First run: 10 orders; the consumer handles 6 of them, then everything stops.
    aurora::DurableDatabase db(file);
    database_id = db.id();
    auto orders = db.subscribe("orders");
    for (int i = 1; i <= 10; ++i) db.insert("orders", {{"number", "order-" + std::to_string(i)}, {"qty", i}});
    handle(orders, cp, 6);
    std::cout << "first run: handled " << cp.handled.size() << " orders up to sequence " << cp.last_sequence << "\n";
  }

  {  // After the restart: the same database, 5 more orders, and the consumer resumes.
    aurora::Options options;
    options.channel_capacity = 64;
    aurora::DurableDatabase db(file, options);
    if (db.id() != database_id) {
      std::cerr << "the database id changed across the restart\n";
      return EXIT_FAILURE;
    }
    for (int i = 11; i <= 15; ++i) db.insert("orders", {{"number", "order-" + std::to_string(i)}, {"qty", i}});
    auto orders = db.subscribe("orders", {}, aurora::Start::after(cp.last_sequence));
    db.insert("orders", {{"number", "order-16"}, {"qty", 16}});  // live, after the hand-off
    handle(orders, cp, 100);
    std::cout << "second run: " << db.size("orders") << " orders stored, last sequence " << db.last_sequence() << "\n";
  }

  std::vector<std::string> expected;
  for (int i = 1; i <= 16; ++i) expected.push_back("order-" + std::to_string(i));
  if (cp.handled != expected) {
    std::cerr << "handled " << cp.handled.size() << " orders, expected each of the 16 exactly once, in order\n";
    return EXIT_FAILURE;
  }
  std::cout << "every order handled exactly once across the restart\n";
  return EXIT_SUCCESS;
}
