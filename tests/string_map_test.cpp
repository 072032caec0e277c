// inline_key_map (the documents of a collection), checked against std::map as the model.
#include <aurora/detail/string_map.hpp>

#include <catch2/catch.hpp>

#include <cstddef>
#include <map>
#include <random>
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

TEST_CASE("an inline_key_map agrees with std::map over random inserts and erases") {
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

TEST_CASE("an inline_key_map keeps every entry as it grows and as it empties") {
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

TEST_CASE("a moved inline_key keeps its bytes, inline or on the heap") {
  for (const std::string& s : {std::string("short"), std::string(64, 'x')}) {
    inline_key a(s);
    inline_key b(std::move(a));
    CHECK(std::string_view(b) == s);
    CHECK(std::string_view(a).empty());  // NOLINT(bugprone-use-after-move): moved-from is empty
    inline_key c(std::string_view("other"));
    c = std::move(b);
    CHECK(std::string_view(c) == s);
  }
}
