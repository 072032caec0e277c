// inline_key_map (the documents of a collection), checked against std::map as the model.
#include <aurora/detail/string_map.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstddef>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using aurora::detail::inline_key;
using aurora::detail::inline_key_map;

// Every key of `model` is found with its value, nothing else is, and iteration visits exactly the
// model's entries.
void check_same(const inline_key_map<int>& map, const std::map<std::string, int>& model,
                const std::vector<std::string>& keys) {
  REQUIRE(map.size() == model.size());
  REQUIRE(map.empty() == model.empty());
  for (const std::string& key : keys) {
    auto it = map.find(key);
    auto m = model.find(key);
    if (m == model.end()) {
      REQUIRE(it == map.end());
    } else {
      REQUIRE(it != map.end());
      CHECK(std::string_view(it->first) == key);
      CHECK(it->second == m->second);
    }
  }
  std::map<std::string, int> seen;
  for (const auto& [key, value] : map) REQUIRE(seen.emplace(std::string(std::string_view(key)), value).second);
  CHECK(seen == model);
}

}  // namespace

TEST_CASE("an inline_key_map agrees with std::map over random inserts and erases", "[string_map]") {
  // Few keys and many operations keep the table small, so runs of occupied buckets are long and
  // erasing shifts them back often; some keys are longer than inline_key keeps inline.
  std::vector<std::string> keys;
  for (std::size_t i = 0; i < 40; ++i) {
    keys.push_back(i % 5 == 0 ? std::string(50 + i, static_cast<char>('a' + i % 26)) : "id-" + std::to_string(i));
  }
  keys.emplace_back();  // the empty key works like any other
  std::mt19937 rng(12345);
  inline_key_map<int> map;
  std::map<std::string, int> model;
  for (int step = 0; step < 20000; ++step) {
    const std::string& key = keys[rng() % keys.size()];
    const int value = static_cast<int>(rng() % 1000);
    switch (rng() % 4) {
      case 0: {
        auto [it, fresh] = map.try_emplace(key);
        REQUIRE(fresh == (model.count(key) == 0));
        if (fresh) {
          CHECK(it->second == 0);
          it->second = value;
          model[key] = value;
        } else {
          CHECK(it->second == model[key]);
        }
        break;
      }
      case 1:
        map.insert_or_assign(key, value);
        model[key] = value;
        break;
      case 2: REQUIRE(map.erase(key) == model.erase(key)); break;
      default:
        if (auto it = map.find(key); it != map.end()) {
          map.erase(it);
          model.erase(key);
        }
        break;
    }
    if (step % 97 == 0) check_same(map, model, keys);
  }
  check_same(map, model, keys);
}

TEST_CASE("an inline_key_map keeps every entry as it grows and as it empties", "[string_map]") {
  inline_key_map<std::size_t> map;
  std::vector<std::string> ids;
  for (std::size_t i = 0; i < 5000; ++i) ids.push_back("0190a5c2-7b3e-7" + std::to_string(100000 + i));
  for (std::size_t i = 0; i < ids.size(); ++i) REQUIRE(map.try_emplace(ids[i]).second);
  for (std::size_t i = 0; i < ids.size(); ++i) map.find(ids[i])->second = i;
  REQUIRE(map.size() == ids.size());
  // Erase every other one: the last entry moves into each hole.
  for (std::size_t i = 0; i < ids.size(); i += 2) REQUIRE(map.erase(ids[i]) == 1);
  REQUIRE(map.size() == ids.size() / 2);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    auto it = map.find(ids[i]);
    if (i % 2 == 0) {
      REQUIRE(it == map.end());
    } else {
      REQUIRE(it != map.end());
      REQUIRE(it->second == i);
    }
  }
  while (!map.empty()) map.erase(map.begin());
  for (const std::string& id : ids) REQUIRE(map.find(id) == map.end());
  REQUIRE(map.try_emplace(ids.front()).second);  // usable again
}

TEST_CASE("erasing from a run that wraps past the end of the table shifts it back", "[string_map]") {
  // Keys whose home is one of the last two buckets or the first one of the first table (16
  // buckets, which holds up to 12 entries): inserted together they fill the end of the table
  // and go on at its start, so erasing any of them shifts buckets back across the end.
  const std::size_t mask = 15;
  std::vector<std::string> keys;
  for (const std::size_t home : {std::size_t{15}, std::size_t{15}, std::size_t{15}, std::size_t{14}, std::size_t{14},
                                 std::size_t{0}, std::size_t{0}, std::size_t{15}}) {
    for (int i = 0;; ++i) {
      std::string key = "k" + std::to_string(i);
      if ((aurora::detail::string_hash{}(key)&mask) != home) continue;
      if (std::find(keys.begin(), keys.end(), key) != keys.end()) continue;
      keys.push_back(std::move(key));
      break;
    }
  }
  for (std::size_t first = 0; first < keys.size(); ++first) {
    inline_key_map<int> map;
    std::map<std::string, int> model;
    for (std::size_t i = 0; i < keys.size(); ++i) {
      map.try_emplace(keys[i]).first->second = static_cast<int>(i);
      model[keys[i]] = static_cast<int>(i);
    }
    check_same(map, model, keys);
    // Erase `first`, then the others from the end of the list back.
    std::vector<std::size_t> order{first};
    for (std::size_t i = keys.size(); i-- > 0;) {
      if (i != first) order.push_back(i);
    }
    for (const std::size_t i : order) {
      REQUIRE(map.erase(keys[i]) == 1);
      model.erase(keys[i]);
      check_same(map, model, keys);
    }
  }
}

TEST_CASE("a moved inline_key keeps its bytes, inline or on the heap", "[string_map]") {
  for (const std::string& s : {std::string("short"), std::string(64, 'x')}) {
    inline_key a(s);
    inline_key b(std::move(a));
    CHECK(std::string_view(b) == s);
    CHECK(std::string_view(a).empty());  // NOLINT(bugprone-use-after-move): moved-from is empty
    for (const std::string& before : {std::string("other"), std::string(50, 'y')}) {
      inline_key c(before);
      inline_key d(b);
      c = std::move(d);
      CHECK(std::string_view(c) == s);
    }
    inline_key& same = b;
    b = std::move(same);
    CHECK(std::string_view(b) == s);
  }
}

TEST_CASE("an inline_key_map never moves an entry as it grows and releases every value", "[string_map]") {
  auto value = std::make_shared<int>(7);
  std::vector<std::string> ids;
  for (std::size_t i = 0; i < 3000; ++i)
    ids.push_back(i % 100 == 0 ? std::string(60, 'k') + std::to_string(i) : std::to_string(i));
  {
    inline_key_map<std::shared_ptr<int>> map;
    std::vector<const void*> where;  // each entry's address when inserted, across 10 segments
    where.push_back(&*map.try_emplace(ids[0]).first);
    for (std::size_t i = 1; i < ids.size(); ++i) {
      map.insert_or_assign(ids[i], value);
      where.push_back(&*map.find(ids[i]));
    }
    for (std::size_t i = 0; i < ids.size(); ++i) REQUIRE(&*map.find(ids[i]) == where[i]);  // none moved
    CHECK(std::set<const void*>(where.begin(), where.end()).size() == ids.size());
    CHECK(value.use_count() == static_cast<long>(ids.size()));  // every entry but the first, and `value`

    inline_key_map<std::shared_ptr<int>> moved(std::move(map));
    CHECK(map.empty());  // NOLINT(bugprone-use-after-move): a moved-from map is empty
    CHECK(map.find(ids[1]) == map.end());
    REQUIRE(moved.size() == ids.size());
    for (std::size_t i = 0; i < ids.size(); ++i) REQUIRE(&*moved.find(ids[i]) == where[i]);
    CHECK(*moved.find(ids[2999])->second == 7);

    inline_key_map<std::shared_ptr<int>> assigned;
    assigned.insert_or_assign("other", value);
    assigned = std::move(moved);  // releases "other"'s value
    CHECK(value.use_count() == static_cast<long>(ids.size()));
    for (std::size_t i = 0; i < ids.size(); i += 3) REQUIRE(assigned.erase(ids[i]) == 1);
    CHECK(value.use_count() == 1 + static_cast<long>(assigned.size()));  // the first went with the others
    map.insert_or_assign(ids[0], value);                                 // a moved-from map is usable again
    CHECK(map.size() == 1);
  }
  CHECK(value.use_count() == 1);  // the maps' destructors released every value
}
