// query_program: a compiled Query, a flat tree of nodes that matches without allocating.
#pragma once

#include <aurora/detail/field_path.hpp>
#include <aurora/detail/json_compare.hpp>
#include <aurora/errc.hpp>
#include <aurora/value.hpp>

#include <compare>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace aurora::detail {

// all/any/none combine whole queries ($and, $or, $nor); `field` looks one path up and holds the
// predicates that test what it found; the rest are those predicates ($not negates its own).
enum class query_op : std::uint8_t { all, any, none, field, eq, ne, gt, gte, lt, lte, in, nin, exists, negate };

// The JSON name of an operator ("$eq"), or "" for `field`.
constexpr std::string_view query_op_name(query_op op) noexcept {
  switch (op) {
    case query_op::all: return "$and";
    case query_op::any: return "$or";
    case query_op::none: return "$nor";
    case query_op::field: return "";
    case query_op::eq: return "$eq";
    case query_op::ne: return "$ne";
    case query_op::gt: return "$gt";
    case query_op::gte: return "$gte";
    case query_op::lt: return "$lt";
    case query_op::lte: return "$lte";
    case query_op::in: return "$in";
    case query_op::nin: return "$nin";
    case query_op::exists: return "$exists";
    case query_op::negate: return "$not";
  }
  return "";
}

// One node. The tree is stored in pre-order: a node's children follow it, the first at index + 1,
// each next one `size` nodes after the previous, the last ending at index + size.
struct query_node {
  query_op op = query_op::all;
  bool flag = false;        // $exists: its operand
  std::uint32_t size = 1;   // nodes in this subtree, itself included
  std::uint32_t arg = 0;    // field: index in `fields`; $eq ... $lte: in `values`; $in/$nin: first value
  std::uint32_t count = 0;  // $in/$nin: number of values
};

// A path as written (for to_json) and parsed once (for matching).
struct query_field {
  std::string text;
  field_path path;
};

// The canonical form both the parser and the builders produce: an `all` (or `any`) node never
// has a child of its own kind (they are flattened into it), a `none` never has an `any` child,
// and `all`/`any` never have exactly one child (it takes their place). to_json writes a
// canonical program so that parsing it back gives the same program.
class query_program {
 public:
  std::vector<query_node> nodes{query_node{}};  // nodes[0] is the root; an empty `all` matches all
  std::vector<query_field> fields;
  std::vector<Value> values;

  [[nodiscard]] bool matches(const nlohmann::json& doc) const noexcept { return eval(0, doc); }

  // The query as JSON, such that parsing it gives this program again (see above).
  [[nodiscard]] nlohmann::json to_json() const { return write_query(0); }

  // The program for `a op b` (op: all or any), canonical when both are.
  static query_program combine(query_op op, const query_program& a, const query_program& b) {
    query_program out;
    out.nodes.clear();
    std::vector<std::pair<const query_program*, std::size_t>> kids;  // child subtrees, by root index
    for (const query_program* p : {&a, &b}) {
      if (p->nodes[0].op == op) {
        p->for_each_child(0, [&](std::size_t c) { kids.emplace_back(p, c); });
      } else {
        kids.emplace_back(p, 0);
      }
    }
    if (kids.size() != 1) out.nodes.push_back(query_node{op});
    for (const auto& [p, root] : kids) out.append(*p, root);
    out.nodes[0].size = checked_size(out.nodes.size());
    return out;
  }

  // The program for `$nor: [a]`, canonical when `a` is.
  static query_program negate(const query_program& a) {
    query_program out;
    out.nodes[0].op = query_op::none;
    if (a.nodes[0].op == query_op::any) {
      a.for_each_child(0, [&](std::size_t c) { out.append(a, c); });
    } else {
      out.append(a, 0);
    }
    out.nodes[0].size = checked_size(out.nodes.size());
    return out;
  }

  // True when `v` is an object with a key that starts with '$': an operator object in a query.
  static bool has_operator_key(const nlohmann::json& v) noexcept {
    if (!v.is_object()) return false;
    for (const auto& entry : *v.get_ptr<const nlohmann::json::object_t*>()) {
      if (!entry.first.empty() && entry.first.front() == '$') return true;
    }
    return false;
  }

  // A node count or index as stored; a query cannot grow past 2^32 - 1 nodes or values.
  static std::uint32_t checked_size(std::size_t n) {
    if (n > std::numeric_limits<std::uint32_t>::max()) {
      throw error(errc::invalid_argument, "query: more than 2^32 - 1 nodes or values");
    }
    return static_cast<std::uint32_t>(n);
  }

 private:
  template <class F>
  void for_each_child(std::size_t i, F f) const {
    const std::size_t end = i + nodes[i].size;
    for (std::size_t c = i + 1; c < end; c += nodes[c].size) f(c);
  }

  // Copies the subtree of `src` rooted at `root` to the end of this program.
  void append(const query_program& src, std::size_t root) {
    const std::size_t end = root + src.nodes[root].size;
    for (std::size_t i = root; i < end; ++i) {
      query_node n = src.nodes[i];
      if (n.op == query_op::field) {
        n.arg = checked_size(fields.size());
        fields.push_back(src.fields[src.nodes[i].arg]);
      } else if (n.op >= query_op::eq && n.op <= query_op::nin) {
        n.arg = checked_size(values.size());
        const auto first = static_cast<std::ptrdiff_t>(src.nodes[i].arg);
        const auto count = static_cast<std::ptrdiff_t>(n.op == query_op::in || n.op == query_op::nin ? n.count : 1);
        values.insert(values.end(), src.values.begin() + first, src.values.begin() + first + count);
      }
      nodes.push_back(n);
    }
  }

  [[nodiscard]] bool eval(std::size_t i, const nlohmann::json& doc) const noexcept {
    const query_node& n = nodes[i];
    const std::size_t end = i + n.size;
    switch (n.op) {
      case query_op::all:
        for (std::size_t c = i + 1; c < end; c += nodes[c].size) {
          if (!eval(c, doc)) return false;
        }
        return true;
      case query_op::any:
        for (std::size_t c = i + 1; c < end; c += nodes[c].size) {
          if (eval(c, doc)) return true;
        }
        return false;
      case query_op::none:
        for (std::size_t c = i + 1; c < end; c += nodes[c].size) {
          if (eval(c, doc)) return false;
        }
        return true;
      case query_op::field: return test_all(i, fields[n.arg].path.find(doc));
      default: return false;  // predicates only appear under a field
    }
  }

  // True when every predicate under node `i` holds for `v` (nullptr: the field is missing).
  [[nodiscard]] bool test_all(std::size_t i, const nlohmann::json* v) const noexcept {
    const std::size_t end = i + nodes[i].size;
    for (std::size_t c = i + 1; c < end; c += nodes[c].size) {
      if (!test(c, v)) return false;
    }
    return true;
  }

  [[nodiscard]] bool test(std::size_t i, const nlohmann::json* v) const noexcept {
    const query_node& n = nodes[i];
    switch (n.op) {
      case query_op::eq: return v != nullptr && json_equal(*v, values[n.arg]);
      case query_op::ne: return v == nullptr || !json_equal(*v, values[n.arg]);
      case query_op::gt: return v != nullptr && std::is_gt(compare_values(*v, values[n.arg]));
      case query_op::gte: return v != nullptr && std::is_gteq(compare_values(*v, values[n.arg]));
      case query_op::lt: return v != nullptr && std::is_lt(compare_values(*v, values[n.arg]));
      case query_op::lte: return v != nullptr && std::is_lteq(compare_values(*v, values[n.arg]));
      case query_op::in: return v != nullptr && contains(n, *v);
      case query_op::nin: return v == nullptr || !contains(n, *v);
      case query_op::exists: return (v != nullptr) == n.flag;
      case query_op::negate: return !test_all(i, v);
      default: return false;
    }
  }

  [[nodiscard]] bool contains(const query_node& n, const nlohmann::json& v) const noexcept {
    for (std::size_t k = n.arg; k < std::size_t{n.arg} + n.count; ++k) {
      if (json_equal(v, values[k])) return true;
    }
    return false;
  }

  [[nodiscard]] nlohmann::json write_query(std::size_t i) const {
    const query_node& n = nodes[i];
    nlohmann::json out = nlohmann::json::object();
    if (n.op == query_op::field) {
      out[fields[n.arg].text] = write_field(i);
      return out;
    }
    if (n.op == query_op::all) {
      // One object with a key per child when the keys differ ({"a": 1, "$or": [...]}), else $and.
      bool merged = true;
      for_each_child(i, [&](std::size_t c) {
        const query_node& k = nodes[c];
        if (!merged) return;
        const std::string key = k.op == query_op::field ? fields[k.arg].text : std::string(query_op_name(k.op));
        if (k.op == query_op::all || out.contains(key)) {
          merged = false;
        } else if (k.op == query_op::field) {
          out[key] = write_field(c);
        } else {
          out[key] = write_children(c);
        }
      });
      if (merged) return out;
      out = nlohmann::json::object();
    }
    out[std::string(query_op_name(n.op))] = write_children(i);
    return out;
  }

  [[nodiscard]] nlohmann::json write_children(std::size_t i) const {
    nlohmann::json out = nlohmann::json::array();
    for_each_child(i, [&](std::size_t c) { out.push_back(write_query(c)); });
    return out;
  }

  // What follows a field's key: the bare value for a lone $eq (unless that value would read as
  // operators), else the operator object.
  [[nodiscard]] nlohmann::json write_field(std::size_t i) const {
    const query_node& only = nodes[i + 1];
    if (nodes[i].size == 2 && only.op == query_op::eq && !has_operator_key(values[only.arg])) {
      return values[only.arg];
    }
    return write_predicates(i);
  }

  [[nodiscard]] nlohmann::json write_predicates(std::size_t i) const {
    nlohmann::json out = nlohmann::json::object();
    for_each_child(i, [&](std::size_t c) {
      const query_node& p = nodes[c];
      nlohmann::json& slot = out[std::string(query_op_name(p.op))];
      if (p.op == query_op::exists) {
        slot = p.flag;
      } else if (p.op == query_op::negate) {
        slot = write_predicates(c);
      } else if (p.op == query_op::in || p.op == query_op::nin) {
        slot = nlohmann::json::array();
        for (std::size_t k = p.arg; k < std::size_t{p.arg} + p.count; ++k) slot.push_back(values[k]);
      } else {
        slot = values[p.arg];
      }
    });
    return out;
  }
};

}  // namespace aurora::detail
