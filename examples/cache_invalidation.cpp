// Cache invalidation: a read-through cache of `products` that drops entries as the change feed reports writes.
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
#include <iostream>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

namespace asio = boost::asio;

// Serves products from memory, reading the database on a miss. Used from one thread only (the
// io_context's), so it needs no lock.
class ProductCache {
 public:
  explicit ProductCache(const aurora::Database& db) : db_(db) {}

  std::optional<aurora::Document> get(const std::string& id) {
    if (auto it = entries_.find(id); it != entries_.end()) {
      ++hits;
      return it->second;
    }
    ++misses;
    std::optional<aurora::Document> doc = db_.get("products", id);
    if (doc) entries_.emplace(id, *doc);
    return doc;
  }

  void invalidate(const std::string& id) { invalidated += entries_.erase(id); }
  void clear() { entries_.clear(); }
  [[nodiscard]] const std::unordered_map<std::string, aurora::Document>& entries() const { return entries_; }

  std::size_t hits = 0, misses = 0, invalidated = 0;

 private:
  const aurora::Database& db_;
  std::unordered_map<std::string, aurora::Document> entries_;
};

// Drops the cached copy of every product that changes, until stopped (cancelled). On stop it
// drains what was already published: a cancelled recv loses no event.
asio::awaitable<void> invalidator(aurora::Subscription feed, ProductCache& cache) {
  auto apply = [&cache](const aurora::RecvResult& r) {
    if (r) {
      cache.invalidate(r->document_id);  // any operation: a cached copy is out of date
    } else {
      cache.clear();  // errc::lagged: which products changed is unknown, so forget them all
    }
  };
  co_await aurora::consume(feed, apply);
}

// A shop: mostly reads through the cache, sometimes a price change, a product withdrawn or added.
// Between two yields, invalidations wait in the feed, so a read may return the old value: the
// cache is eventually consistent, and `stale` counts how often that showed.
asio::awaitable<void> shop(aurora::Database& db, ProductCache& cache, asio::cancellation_signal& stop,
                           std::size_t& stale) {
  auto ex = co_await asio::this_coro::executor;
  std::mt19937 rng(42);  // fixed seed: the same run every time
  std::vector<std::string> ids;
  ids.reserve(20);
  for (int i = 0; i < 20; ++i) {
    ids.push_back(db.insert("products", {{"name", "item " + std::to_string(i)}, {"price", 100}}));
  }

  for (int step = 0; step < 5'000; ++step) {
    if (step % 8 == 0) co_await asio::post(ex, asio::use_awaitable);  // let the invalidator run
    const std::size_t pick = std::uniform_int_distribution<std::size_t>(0, ids.size() - 1)(rng);
    const int dice = std::uniform_int_distribution<int>(0, 99)(rng);
    if (dice < 80) {
      if (cache.get(ids[pick]) != db.get("products", ids[pick])) ++stale;
    } else if (dice < 97) {
      db.update("products", ids[pick], {{"price", std::uniform_int_distribution<int>(50, 500)(rng)}});
    } else {
      db.remove("products", ids[pick]);
      ids[pick] = db.insert("products", {{"name", "new item " + std::to_string(step)}, {"price", 100}});
    }
  }
  for (std::size_t i = 0; i < ids.size(); i += 2) db.update("products", ids[i], {{"on_sale", true}});  // not yet seen
  stop.emit(asio::cancellation_type::terminal);  // writer done: the invalidator applies the rest and returns
}

int main() {
  asio::io_context io;
  aurora::Database db;
  ProductCache cache(db);
  std::size_t stale = 0;
  asio::cancellation_signal stop;
  asio::co_spawn(io, invalidator(db.subscribe("products"), cache),
                 asio::bind_cancellation_slot(stop.slot(), asio::detached));
  asio::co_spawn(io, shop(db, cache, stop, stale), asio::detached);
  io.run();

  std::cout << "hits " << cache.hits << ", misses " << cache.misses << ", invalidated " << cache.invalidated
            << ", stale reads " << stale << ", cached now " << cache.entries().size() << '\n';
  std::size_t wrong = 0;
  for (const auto& [id, doc] : cache.entries()) {
    if (db.get("products", id) != doc) ++wrong;
  }
  if (wrong != 0 || cache.entries().empty() || cache.invalidated == 0) {
    std::cerr << "cache_invalidation: " << wrong << " cached products differ from the database\n";
    return 1;
  }
  return 0;
}
