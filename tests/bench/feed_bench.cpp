// feed_bench: what the change feed 2.0 features cost (Google Benchmark; --benchmark_format=json).
//
//   feed_bench --benchmark_filter=Deliver     filtered (5-condition query) vs unfiltered delivery
//   feed_bench --benchmark_filter=Subscribe   subscribe with Start::after over 10,000 retained events
//
// Deliver/N: N inserts of ~100-byte documents, then a subscription drains the N events with
// try_recv; items = deliveries. N = 64 is a live feed (the reader keeps up, the documents are
// still in cache); N = 10,000 a backlog read long after it was written (cold documents). The
// query holds for every document, so both variants deliver the same events and the ratio of
// their rates is what the query costs a subscriber. Subscribe: the time of one subscribe()
// that must catch up on 10,000 retained events (collection channel: through the retained
// history; global: directly).
#include <aurora/aurora.hpp>

#include <benchmark/benchmark.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace {

constexpr int batch = 10'000;

aurora::Document customer(int i) {
  return {{"name", "customer-" + std::to_string(i)},
          {"age", 20 + i % 50},
          {"tier", i % 2 == 0 ? "gold" : "platinum"},
          {"active", true},
          {"country", "NZ"},
          {"score", 50.5 + i % 40}};
}

// Every customer() passes it: five conditions, as a live query would hold.
aurora::EventFilter five_conditions() {
  return aurora::EventFilter::from_json({{"where",
                                          {{"age", {{"$gte", 18}}},
                                           {"tier", {{"$in", {"gold", "platinum"}}}},
                                           {"active", true},
                                           {"country", {{"$ne", "US"}}},
                                           {"score", {{"$lt", 100}}}}}});
}

void deliver(benchmark::State& state, std::optional<aurora::EventFilter> filter) {
  const auto n = static_cast<int>(state.range(0));
  aurora::Database db{aurora::Options{.channel_capacity = batch}};
  auto sub = db.subscribe("customers", std::move(filter));
  std::vector<aurora::Document> docs;
  for (int i = 0; i < n; ++i) docs.push_back(customer(i));
  std::int64_t delivered = 0;
  for (auto _ : state) {
    for (const aurora::Document& doc : docs) db.insert("customers", doc);
    for (aurora::RecvResult r = sub.try_recv(); r; r = sub.try_recv()) ++delivered;
  }
  if (delivered != static_cast<std::int64_t>(state.iterations()) * n) state.SkipWithError("events went missing");
  state.SetItemsProcessed(delivered);
}

void BM_DeliverUnfiltered(benchmark::State& state) { deliver(state, std::nullopt); }
void BM_DeliverQuery5(benchmark::State& state) { deliver(state, five_conditions()); }

void subscribe_after(benchmark::State& state, bool global) {
  aurora::Database db{aurora::Options{.channel_capacity = batch}};
  for (int i = 0; i < batch; ++i) db.insert("customers", customer(i));
  const std::uint64_t from = db.last_sequence() - batch;
  for (auto _ : state) {
    aurora::Subscription sub = global ? db.subscribe_global({}, aurora::Start::after(from))
                                      : db.subscribe("customers", {}, aurora::Start::after(from));
    benchmark::DoNotOptimize(sub);
  }
}

void BM_SubscribeAfter10000Collection(benchmark::State& state) { subscribe_after(state, false); }
void BM_SubscribeAfter10000Global(benchmark::State& state) { subscribe_after(state, true); }

}  // namespace

BENCHMARK(BM_DeliverUnfiltered)->Arg(64)->Arg(batch)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_DeliverQuery5)->Arg(64)->Arg(batch)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SubscribeAfter10000Collection)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SubscribeAfter10000Global)->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
