// Transfers: four threads move money between accounts with transactions. A transfer reads both
// balances inside the transaction and aborts (by throwing) when the payer would go below zero,
// so the total never changes and no balance is negative. An auditor on the global feed checks
// that every commit is one whole transfer (its events share `commit`) that moves nothing out of
// thin air.
#include <aurora/aurora.hpp>

#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

struct insufficient_funds : std::runtime_error {
  insufficient_funds() : std::runtime_error("insufficient funds") {}
};

constexpr int accounts = 5;
constexpr std::int64_t initial = 1000;

std::string account(int i) { return "acct-" + std::to_string(i); }

}  // namespace

int main() {
  aurora::Database db;
  for (int i = 0; i < accounts; ++i) db.insert("accounts", account(i), {{"balance", initial}});
  const std::uint64_t opened = db.last_sequence();
  auto audit = db.subscribe_global({}, aurora::Start::after(opened));

  constexpr int teller_count = 4;
  std::vector<std::thread> tellers;
  tellers.reserve(teller_count);
  std::vector<int> aborted(teller_count, 0);
  for (int t = 0; t < teller_count; ++t) {
    tellers.emplace_back([&db, &aborted, t] {
      std::mt19937 rng(static_cast<unsigned>(t) + 1);
      for (int i = 0; i < 500; ++i) {
        const int from = static_cast<int>(rng() % accounts);
        const int to = (from + 1 + static_cast<int>(rng() % (accounts - 1))) % accounts;
        const std::int64_t amount = 1 + static_cast<std::int64_t>(rng() % 300);
        try {
          db.transaction([&](aurora::Transaction& tx) {
            const std::int64_t a = tx.get("accounts", account(from))->at("balance").get<std::int64_t>();
            const std::int64_t b = tx.get("accounts", account(to))->at("balance").get<std::int64_t>();
            if (a < amount) throw insufficient_funds();
            tx.update("accounts", account(from), {{"balance", a - amount}});
            tx.update("accounts", account(to), {{"balance", b + amount}});
          });
        } catch (const insufficient_funds&) {
          ++aborted[static_cast<std::size_t>(t)];  // nothing changed, nothing published
        }
      }
    });
  }
  for (auto& t : tellers) t.join();

  // The invariant on the final state.
  std::int64_t total = 0;
  for (const auto& [id, doc] : db.snapshot("accounts").documents) {
    const std::int64_t balance = doc.at("balance").get<std::int64_t>();
    if (balance < 0) {
      std::cerr << id << " went negative\n";
      return EXIT_FAILURE;
    }
    total += balance;
  }
  // The audit: every commit is two updates that move the same amount.
  std::map<std::uint64_t, std::int64_t> moved;  // commit -> sum of balance changes
  std::map<std::uint64_t, int> events;
  for (;;) {
    aurora::RecvResult r = audit.try_recv();
    if (!r) break;
    const std::int64_t delta =
        r->document->at("balance").get<std::int64_t>() - r->old_document->at("balance").get<std::int64_t>();
    moved[r->commit] += delta;
    ++events[r->commit];
  }
  int aborted_total = 0;
  for (int a : aborted) aborted_total += a;
  bool whole = true;
  for (const auto& [commit, sum] : moved) whole = whole && sum == 0 && events[commit] == 2;
  std::cout << moved.size() << " transfers committed, " << aborted_total << " aborted, total " << total << "\n";
  if (total != accounts * initial || !whole || static_cast<int>(moved.size()) + aborted_total != teller_count * 500) {
    std::cerr << "the invariant does not hold\n";
    return EXIT_FAILURE;
  }
  std::cout << "the total is unchanged and every transfer is whole\n";
  return EXIT_SUCCESS;
}
