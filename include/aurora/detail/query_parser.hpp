// query_parser: turns a MongoDB-style JSON query into a canonical query_program, strictly.
#pragma once

#include <aurora/detail/field_path.hpp>
#include <aurora/detail/query_program.hpp>
#include <aurora/detail/storable.hpp>
#include <aurora/errc.hpp>
#include <aurora/value.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace aurora::detail {

// Appends `key` to a JSONPath-like location for error messages: `.age` for plain names, else
// `['a.b']`, quoting at most 64 bytes (cut on a UTF-8 boundary) so a huge key stays readable.
inline void append_path_key(std::string& path, std::string_view key) {
  const bool plain = !key.empty() && key.find_first_not_of(
                                         "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                         "0123456789_$-") == std::string_view::npos;
  if (plain && key.size() <= 64) {
    path.push_back('.');
    path.append(key);
    return;
  }
  constexpr std::size_t limit = 64;
  std::size_t cut = std::min(key.size(), limit);
  while (cut < key.size() && cut > 0 && (static_cast<unsigned char>(key[cut]) & 0xC0U) == 0x80U) --cut;
  path.append("['");
  path.append(key.substr(0, cut));
  if (cut < key.size()) path.append("...");
  path.append("']");
}

// Why `value`, placed inside a query object at `depth` (the query itself is at depth 1), cannot
// be an operand, or nullptr: it would nest the query deeper than max_document_depth, or it holds
// what no document can (NaN, an infinity, a discarded value). Checked without recursion.
inline const char* bad_operand(const nlohmann::json& value, std::size_t depth) {
  return walk(value, [depth](const nlohmann::json& v, std::size_t level) -> const char* {
    if (v.is_structured() && depth + level > max_document_depth) {
      return "nests deeper than aurora::max_document_depth (256)";
    }
    if (v.is_discarded()) return "holds a discarded value";
    if (v.is_number_float() && !std::isfinite(*v.get_ptr<const double*>())) return "holds a NaN or infinite number";
    return nullptr;
  });
}

// Throws aurora::error(errc::invalid_argument) reading "<context>: at <path>: <why>".
[[noreturn]] inline void spec_error(std::string_view context, const std::string& path, std::string_view why) {
  throw error(errc::invalid_argument, std::string(context) + ": at " + path + ": " + std::string(why));
}

// Why `text` cannot be a path in a query or filter spec, or nullptr: it is empty, or a malformed
// JSON Pointer (`parsed` is `field_path(text)`).
inline const char* path_problem(const std::string& text, const field_path& parsed) noexcept {
  if (text.empty()) return "empty path";
  if (!parsed.valid()) return "malformed JSON Pointer (after '~' only '0' or '1' may follow)";
  return nullptr;
}

// Parses one query spec. `context` ("query", "filter") starts every error message and `path`
// names the spec's own place ("$", "$.where"); errors are aurora::error(errc::invalid_argument)
// reading "<context>: at <path>: <why>".
class query_parser {
 public:
  query_parser(std::string_view context, std::string path) : context_(context), path_(std::move(path)) {}

  query_program parse(const nlohmann::json& spec) {
    query_program out;
    program_ = &out;
    out.nodes.clear();
    emit(parse_query(spec, 1));
    return out;
  }

 private:
  [[noreturn]] void fail(std::string_view why) const { spec_error(context_, path_, why); }

  // A node before it is laid out in pre-order.
  struct draft {
    query_op op = query_op::all;
    bool flag = false;
    std::uint32_t arg = 0;
    std::uint32_t count = 0;
    std::vector<draft> kids;
  };

  // Restores the error path when a key or index has been handled.
  class path_mark {
   public:
    explicit path_mark(std::string& path) : path_(path), size_(path.size()) {}
    path_mark(const path_mark&) = delete;
    path_mark& operator=(const path_mark&) = delete;
    ~path_mark() { path_.resize(size_); }

   private:
    std::string& path_;
    std::size_t size_;
  };

  static bool is_operator(std::string_view key) noexcept { return !key.empty() && key.front() == '$'; }

  void check_depth(std::size_t depth) const {
    if (depth > max_document_depth) fail("nests deeper than aurora::max_document_depth (256)");
  }

  // A query object at `depth`: the implicit AND of its keys.
  draft parse_query(const nlohmann::json& spec, std::size_t depth) {
    if (!spec.is_object()) fail("a query must be a JSON object");
    check_depth(depth);
    std::vector<draft> kids;
    for (const auto& [key, value] : *spec.get_ptr<const nlohmann::json::object_t*>()) {
      const path_mark mark(path_);
      append_path_key(path_, key);
      if (!is_operator(key)) {
        add(query_op::all, parse_field(key, value, depth), kids);
      } else if (key == "$and" || key == "$or" || key == "$nor") {
        add(query_op::all, parse_logical(key, value, depth + 1), kids);
      } else if (key == "$not") {
        fail(R"(unknown operator: $not applies to a field ({"a": {"$not": {"$gt": 1}}}); negate a query with $nor)");
      } else {
        fail("unknown operator");
      }
    }
    return finish(query_op::all, std::move(kids));
  }

  // $and / $or / $nor: a non-empty array (at `depth`) of queries.
  draft parse_logical(std::string_view key, const nlohmann::json& array, std::size_t depth) {
    if (!array.is_array() || array.empty()) fail("needs a non-empty array of queries");
    check_depth(depth);
    const query_op op = key == "$and" ? query_op::all : key == "$or" ? query_op::any : query_op::none;
    // The elements of $nor are or-ed before the negation.
    const query_op join = op == query_op::all ? query_op::all : query_op::any;
    std::vector<draft> kids;
    for (std::size_t i = 0; i < array.size(); ++i) {
      const path_mark mark(path_);
      path_ += '[' + std::to_string(i) + ']';
      add(join, parse_query(array[i], depth + 1), kids);
    }
    if (op == query_op::none) return draft{query_op::none, false, 0, 0, std::move(kids)};
    return finish(op, std::move(kids));
  }

  // `key: value` in a query object at `depth`: operators, or a plain value to equal.
  draft parse_field(const std::string& key, const nlohmann::json& value, std::size_t depth) {
    field_path parsed(key);
    if (const char* why = path_problem(key, parsed)) fail(why);
    draft field{query_op::field, false, query_program::checked_size(program_->fields.size()), 0, {}};
    program_->fields.push_back(query_field{key, std::move(parsed)});
    if (query_program::has_operator_key(value)) {
      parse_predicates(value, depth + 1, field.kids);
    } else {
      field.kids.push_back(operand(query_op::eq, value, depth));
    }
    return field;
  }

  // An operator object at `depth`: {"$gt": 1, "$lt": 5}, every key an operator.
  void parse_predicates(const nlohmann::json& ops, std::size_t depth, std::vector<draft>& out) {
    check_depth(depth);
    const auto& object = *ops.get_ptr<const nlohmann::json::object_t*>();
    for (const auto& entry : object) {
      if (!is_operator(entry.first)) {
        append_path_key(path_, entry.first);
        fail("operators mixed with a plain key (an object without '$' keys is a value to compare for equality)");
      }
    }
    for (const auto& [key, value] : object) {
      const path_mark mark(path_);
      append_path_key(path_, key);
      const query_op op = predicate_op(key);
      switch (op) {
        case query_op::gt:
        case query_op::gte:
        case query_op::lt:
        case query_op::lte:
          if (!value.is_number() && !value.is_string() && !value.is_boolean()) {
            fail("needs a number, string or bool to compare with");
          }
          out.push_back(operand(op, value, depth));
          break;
        case query_op::in:
        case query_op::nin: {
          if (!value.is_array()) fail("needs an array of values");
          if (const char* why = bad_operand(value, depth)) fail(why);
          draft d{op,
                  false,
                  query_program::checked_size(program_->values.size()),
                  query_program::checked_size(value.size()),
                  {}};
          program_->values.insert(program_->values.end(), value.begin(), value.end());
          out.push_back(std::move(d));
          break;
        }
        case query_op::exists:
          if (!value.is_boolean()) fail("needs true or false");
          out.push_back(draft{op, value.get<bool>(), 0, 0, {}});
          break;
        case query_op::negate: {
          if (!query_program::has_operator_key(value)) {
            fail(R"(needs an object of operators, such as {"$gt": 1})");
          }
          draft d{op, false, 0, 0, {}};
          parse_predicates(value, depth + 1, d.kids);
          out.push_back(std::move(d));
          break;
        }
        default: out.push_back(operand(op, value, depth)); break;  // $eq, $ne: any value
      }
    }
  }

  [[nodiscard]] query_op predicate_op(std::string_view key) const {
    for (const query_op op : {query_op::eq, query_op::ne, query_op::gt, query_op::gte, query_op::lt, query_op::lte,
                              query_op::in, query_op::nin, query_op::exists, query_op::negate}) {
      if (key == query_op_name(op)) return op;
    }
    if (key == "$and" || key == "$or" || key == "$nor") {
      fail("unknown operator here: $and, $or and $nor combine queries, not the conditions on one field");
    }
    fail("unknown operator");
  }

  // A predicate holding one value, inside an object at `depth`.
  draft operand(query_op op, const nlohmann::json& value, std::size_t depth) {
    if (const char* why = bad_operand(value, depth)) fail(why);
    draft d{op, false, query_program::checked_size(program_->values.size()), 1, {}};
    program_->values.push_back(value);
    return d;
  }

  // Adds `child` to the children of a `parent` node, flattening a child of the same kind.
  static void add(query_op parent, draft child, std::vector<draft>& kids) {
    if (child.op == parent) {
      for (draft& k : child.kids) kids.push_back(std::move(k));
    } else {
      kids.push_back(std::move(child));
    }
  }

  // An all/any node of `kids`, or the only kid itself.
  static draft finish(query_op op, std::vector<draft> kids) {
    if (kids.size() == 1) return std::move(kids.front());
    return draft{op, false, 0, 0, std::move(kids)};
  }

  // Lays `d` out in pre-order.
  void emit(const draft& d) {
    const std::size_t index = program_->nodes.size();
    program_->nodes.push_back(query_node{d.op, d.flag, 1, d.arg, d.count});
    for (const draft& k : d.kids) emit(k);
    program_->nodes[index].size = query_program::checked_size(program_->nodes.size() - index);
  }

  std::string_view context_;
  std::string path_;
  query_program* program_ = nullptr;
};

}  // namespace aurora::detail
