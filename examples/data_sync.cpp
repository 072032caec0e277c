// Data sync: mirror `products` into a JSON-lines file, and when the feed lags, resync from the collection.
#include <aurora/aurora.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace asio = boost::asio;
namespace fs = std::filesystem;

// The external store: a JSON-lines file, one {"id", "doc"} or {"id", "deleted"} line per change;
// the last line of an id wins.
class JsonLinesStore {
 public:
  explicit JsonLinesStore(fs::path file) : file_(std::move(file)), out_(file_, std::ios::app) {}

  void upsert(const std::string& id, const aurora::Document& doc) {
    out_ << nlohmann::json{{"id", id}, {"doc", doc}}.dump() << '\n';
  }
  void erase(const std::string& id) { out_ << nlohmann::json{{"id", id}, {"deleted", true}}.dump() << '\n'; }

  // Replaces the file with exactly `docs`: writes a new file, then renames it over the old one.
  void rewrite(const std::vector<std::pair<std::string, aurora::Document>>& docs) {
    out_.close();
    const fs::path next = fs::path(file_).concat(".next");
    {
      std::ofstream fresh(next, std::ios::trunc);
      for (const auto& [id, doc] : docs) fresh << nlohmann::json{{"id", id}, {"doc", doc}}.dump() << '\n';
    }
    fs::rename(next, file_);
    out_.open(file_, std::ios::app);
  }

  void flush() { out_.flush(); }

  // What the file holds now.
  [[nodiscard]] std::map<std::string, aurora::Document> load() const {
    std::map<std::string, aurora::Document> docs;
    std::ifstream in(file_);
    for (std::string line; std::getline(in, line);) {
      const nlohmann::json entry = nlohmann::json::parse(line);
      const std::string id = entry.at("id").get<std::string>();
      if (entry.contains("deleted")) {
        docs.erase(id);
      } else {
        docs.insert_or_assign(id, entry.at("doc"));
      }
    }
    return docs;
  }

 private:
  fs::path file_;
  std::ofstream out_;
};

// Mirrors every change into the store until stopped (cancelled); on stop it drains what was already
// published, since a cancelled recv loses no event.
//
// On errc::lagged the missed changes are gone, so it rebuilds the store from a snapshot of the
// collection. The feed then goes on with the events it still holds, some older than the snapshot:
// those with a sequence the snapshot already reflects are skipped, so nothing is applied twice.
asio::awaitable<void> sync(aurora::Database& db, aurora::Subscription feed, JsonLinesStore& store, int& resyncs) {
  std::uint64_t reflected = 0;  // the snapshot's sequence: older events are already in the store
  auto apply = [&](const aurora::RecvResult& r) {
    if (!r) {  // errc::lagged
      std::cout << "sync lagged (" << r.error().missed << " changes missed): resyncing from a snapshot\n";
      ++resyncs;
      const aurora::Snapshot snap = db.snapshot("products");
      store.rewrite(snap.documents);
      reflected = snap.sequence;
    } else if (r->sequence <= reflected) {
      return;
    } else if (r->operation == aurora::OperationType::Delete) {
      store.erase(r->document_id);
    } else {
      store.upsert(r->document_id, *r->document);
    }
  };
  co_await aurora::consume(feed, apply);
}

// The application: adds, reprices and withdraws products. `yield` lets the sync run after each
// write; without it, a burst outruns the 8-slot channel and the sync lags.
asio::awaitable<void> shop(aurora::Database& db, asio::cancellation_signal& stop) {
  auto ex = co_await asio::this_coro::executor;
  std::mt19937 rng(7);  // fixed seed: the same run every time
  std::vector<std::string> live;
  auto write = [&] {
    const int dice = std::uniform_int_distribution<int>(0, 9)(rng);
    if (live.size() < 5 || dice < 4) {
      live.push_back(db.insert("products", {{"price", 100}, {"stock", 10}}));
      return;
    }
    const std::size_t pick = std::uniform_int_distribution<std::size_t>(0, live.size() - 1)(rng);
    if (dice < 8) {
      db.update("products", live[pick], {{"price", std::uniform_int_distribution<int>(1, 999)(rng)}});
    } else {
      db.remove("products", live[pick]);
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(pick));
    }
  };
  for (int i = 0; i < 40; ++i) {  // steady traffic: the sync keeps up
    write();
    co_await asio::post(ex, asio::use_awaitable);
  }
  for (int i = 0; i < 200; ++i) write();  // a burst: the sync falls more than 8 changes behind
  for (int i = 0; i < 40; ++i) {
    co_await asio::post(ex, asio::use_awaitable);
    write();  // the last one is still unread when the stop comes: the sync drains it
  }
  stop.emit(asio::cancellation_type::terminal);
}

// A scratch directory, removed with everything in it.
struct TempDir {
  fs::path path = fs::temp_directory_path() / ("aurora-data-sync-" + std::to_string(std::random_device{}()));
  TempDir() { fs::create_directories(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
};

int main() {
  const TempDir dir;
  asio::io_context io;
  aurora::Database db{aurora::Options{.channel_capacity = 8}};  // tiny on purpose, to show the resync
  JsonLinesStore store(dir.path / "products.jsonl");
  int resyncs = 0;
  asio::cancellation_signal stop;
  asio::co_spawn(io, sync(db, db.subscribe("products"), store, resyncs),
                 asio::bind_cancellation_slot(stop.slot(), asio::detached));
  asio::co_spawn(io, shop(db, stop), asio::detached);
  io.run();
  store.flush();

  const std::map<std::string, aurora::Document> mirrored = store.load();
  const aurora::Snapshot truth = db.snapshot("products");
  const std::map<std::string, aurora::Document> expected(truth.documents.begin(), truth.documents.end());
  std::cout << expected.size() << " products, " << mirrored.size() << " mirrored, " << resyncs << " resyncs\n";
  if (mirrored != expected || resyncs == 0) {
    std::cerr << "data_sync: the file differs from the collection\n";
    return 1;
  }
  return 0;
}
