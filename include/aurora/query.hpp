// Query: a predicate over documents, parsed once from MongoDB-style JSON or built in C++.
#pragma once

#include <aurora/detail/query_parser.hpp>
#include <aurora/detail/query_program.hpp>
#include <aurora/detail/storable.hpp>
#include <aurora/errc.hpp>
#include <aurora/value.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace aurora {

class Query;

namespace detail {

// What other parts of Aurora need from a Query beyond its public API.
struct query_access {
  // Query::parse with errors reading "<context>: at <path>...", for a query inside another spec.
  static Query parse(const nlohmann::json& spec, std::string_view context, std::string path);
};

// A JSON array of `values`, moved in (copying a hostile depth could overflow the stack).
inline Value array_of(std::vector<Value>&& values) {
  Value out = Value::array();
  for (Value& v : values) out.push_back(std::move(v));
  return out;
}

}  // namespace detail

/// A compiled predicate over documents, in the MongoDB query subset: `$eq $ne $gt $gte $lt $lte
/// $in $nin $exists $and $or $nor $not`.
///
/// ```
/// Query q = Query::parse({{"age", {{"$gte", 21}}}, {"tier", "gold"}});   // from JSON
/// using namespace aurora::query;                                        // or with builders
/// Query r = field("age") >= 21 && field("tier") == "gold";
/// ```
/// The keys of a query object are paths (as for `FieldFilter`: dotted, or a JSON Pointer
/// starting with `/`) and must all hold; `$and`, `$or` and `$nor` take arrays of queries.
/// A path's value is either operators (`{"$gt": 21, "$lt": 65}`, all must hold) or a plain
/// value, which means `$eq` (an object without `$` keys is such a value).
///
/// Semantics: `$eq`/`$in` use JSON equality (`21 == 21.0`, `"21" != 21`, `null` only equals
/// `null`), with integers compared exactly; `$gt $gte $lt $lte` order numbers with numbers
/// (integers exactly, signed with unsigned too; a floating side compares as double), strings
/// with strings by UTF-8 bytes and booleans with booleans (`false < true`); values of
/// different types and a missing field never compare. `$ne`/`$nin` are the negations of
/// `$eq`/`$in`, so they hold for a missing field. `$not` negates the operators of one field.
/// No array-element magic: `{"tags": "a"}` does not match `["a", "b"]`.
///
/// A Query is a value: copies share one immutable compiled form, so copying is cheap and all
/// const members may be called concurrently from any thread.
class Query {
 public:
  /// The query `{}`: matches every document.
  Query() noexcept = default;

  /// Compiles `spec`, a JSON object in the syntax above.
  ///
  /// Throws `aurora::error(errc::invalid_argument)` whose message names the offending place,
  /// such as `query: at $.age.$gt: needs a number, string or bool to compare with`, for: a spec
  /// or `$and`/`$or`/`$nor` element that is not an object; an unknown operator (`$not` at the
  /// top level included); `$and`/`$or`/`$nor` without a non-empty array; `$in`/`$nin` without
  /// an array; `$exists` without a bool; a comparison operand that is not a number, string or
  /// bool; `$not` without an operator object; operators mixed with plain keys; an empty path or
  /// a malformed JSON Pointer; nesting deeper than `max_document_depth`; an operand holding NaN,
  /// an infinity or a discarded value. Also throws `std::bad_alloc`.
  [[nodiscard]] static Query parse(const nlohmann::json& spec) {
    return Query(detail::query_parser("query", "$").parse(spec));
  }

  /// True when `doc` satisfies the query. Never throws and never allocates.
  [[nodiscard]] bool matches(const Document& doc) const noexcept {
    return program_ == nullptr || program_->matches(doc);
  }

  /// Writes the query as JSON that `parse` turns back into the same query (operators spelled
  /// out, a lone `$eq` as a bare value). Found by nlohmann's ADL: `nlohmann::json j = q;`.
  /// Throws only `std::bad_alloc`.
  friend void to_json(nlohmann::json& j, const Query& q) {
    j = q.program_ == nullptr ? nlohmann::json::object() : q.program_->to_json();
  }

  /// The query that holds when both do (`$and`). Throws `aurora::error(errc::invalid_argument)`
  /// when the result would nest deeper than `max_document_depth`.
  friend Query operator&&(const Query& a, const Query& b) {
    return built(detail::query_program::combine(detail::query_op::all, a.program(), b.program()));
  }

  /// The query that holds when either does (`$or`). Throws like `&&`.
  friend Query operator||(const Query& a, const Query& b) {
    return built(detail::query_program::combine(detail::query_op::any, a.program(), b.program()));
  }

  /// The query that holds when `q` does not, written `{"$nor": [q]}`. Throws like `&&`.
  friend Query operator!(const Query& q) { return built(detail::query_program::negate(q.program())); }

 private:
  explicit Query(detail::query_program program)
      : program_(std::make_shared<const detail::query_program>(std::move(program))) {}

  [[nodiscard]] const detail::query_program& program() const {
    static const detail::query_program everything;
    return program_ == nullptr ? everything : *program_;
  }

  static Query built(detail::query_program program) {
    if (detail::nests_too_deep(program.to_json())) {
      throw error(errc::invalid_argument, "query: at $: nests deeper than aurora::max_document_depth (256)");
    }
    return Query(std::move(program));
  }

  friend struct detail::query_access;

  std::shared_ptr<const detail::query_program> program_;
};

inline Query detail::query_access::parse(const nlohmann::json& spec, std::string_view context, std::string path) {
  return Query(query_parser(context, std::move(path)).parse(spec));
}

/// Builders for `Query` in C++: `using namespace aurora::query;` then
/// `field("age") >= 21 && (field("tier").in({"gold", "platinum"}) || !field("trial").exists())`.
/// Each builder produces the same query as the JSON it stands for, and throws what
/// `Query::parse` throws for that JSON (`aurora::error(errc::invalid_argument)`).
namespace query {

class Field;

/// One field operator not yet applied to a field, for `Field::is_not`: `field("age").is_not(gt(5))`.
/// Made by `eq`, `ne`, `gt`, `gte`, `lt`, `lte`, `in`, `nin` and `exists`. A value type.
class Condition {
 private:
  Condition(std::string_view op, Value operand) : op_(op), operand_(std::move(operand)) {}

  std::string op_;
  Value operand_;

  friend class Field;
  friend Condition eq(Value);
  friend Condition ne(Value);
  friend Condition gt(Value);
  friend Condition gte(Value);
  friend Condition lt(Value);
  friend Condition lte(Value);
  friend Condition in(std::vector<Value>);
  friend Condition nin(std::vector<Value>);
  friend Condition exists(bool);
};

/// `{"$eq": v}`.
inline Condition eq(Value v) { return {"$eq", std::move(v)}; }
/// `{"$ne": v}`.
inline Condition ne(Value v) { return {"$ne", std::move(v)}; }
/// `{"$gt": v}`.
inline Condition gt(Value v) { return {"$gt", std::move(v)}; }
/// `{"$gte": v}`.
inline Condition gte(Value v) { return {"$gte", std::move(v)}; }
/// `{"$lt": v}`.
inline Condition lt(Value v) { return {"$lt", std::move(v)}; }
/// `{"$lte": v}`.
inline Condition lte(Value v) { return {"$lte", std::move(v)}; }
/// `{"$in": [values...]}`.
inline Condition in(std::vector<Value> values) { return {"$in", detail::array_of(std::move(values))}; }
/// `{"$nin": [values...]}`.
inline Condition nin(std::vector<Value> values) { return {"$nin", detail::array_of(std::move(values))}; }
/// `{"$exists": present}`.
inline Condition exists(bool present = true) { return {"$exists", present}; }

/// A path in a query under construction (dotted, or a JSON Pointer starting with `/`); its
/// operators make a `Query` about that path. The path is checked when the Query is made:
/// an empty path, a malformed pointer or a leading `$` (use `/$name`) throws there.
/// A value type.
class Field {
 public:
  /// A field at `path`.
  explicit Field(std::string path) : path_(std::move(path)) {}

  /// The path as given.
  [[nodiscard]] const std::string& path() const noexcept { return path_; }

  /// `{path: {"$eq": v}}`: the field exists and equals `v`.
  friend Query operator==(const Field& f, Value v) { return f.make("$eq", std::move(v)); }
  /// `{path: {"$ne": v}}`: the field is missing or differs from `v`.
  friend Query operator!=(const Field& f, Value v) { return f.make("$ne", std::move(v)); }
  /// `{path: {"$lt": v}}`; `v` must be a number, string or bool.
  friend Query operator<(const Field& f, Value v) { return f.make("$lt", std::move(v)); }
  /// `{path: {"$lte": v}}`; `v` must be a number, string or bool.
  friend Query operator<=(const Field& f, Value v) { return f.make("$lte", std::move(v)); }
  /// `{path: {"$gt": v}}`; `v` must be a number, string or bool.
  friend Query operator>(const Field& f, Value v) { return f.make("$gt", std::move(v)); }
  /// `{path: {"$gte": v}}`; `v` must be a number, string or bool.
  friend Query operator>=(const Field& f, Value v) { return f.make("$gte", std::move(v)); }

  /// `{path: {"$in": [values...]}}`: the field equals one of `values`.
  [[nodiscard]] Query in(std::vector<Value> values) const { return make("$in", detail::array_of(std::move(values))); }
  /// `{path: {"$nin": [values...]}}`: the field is missing or equals none of `values`.
  [[nodiscard]] Query nin(std::vector<Value> values) const { return make("$nin", detail::array_of(std::move(values))); }
  /// `{path: {"$exists": present}}`.
  [[nodiscard]] Query exists(bool present = true) const { return make("$exists", present); }
  /// `{path: {"$not": {op: operand}}}`: the condition does not hold (also when the field is missing).
  [[nodiscard]] Query is_not(Condition c) const {
    Value ops = Value::object();
    ops[c.op_] = std::move(c.operand_);
    return make("$not", std::move(ops));
  }

 private:
  [[nodiscard]] Query make(std::string_view op, Value operand) const {
    Value ops = Value::object();
    ops[std::string(op)] = std::move(operand);
    Value spec = Value::object();
    spec[path_] = std::move(ops);
    return Query::parse(spec);
  }

  std::string path_;
};

/// A field at `path`: `field("address.city") == "London"`, `field("/tags/0").exists()`.
inline Field field(std::string path) { return Field(std::move(path)); }

}  // namespace query
}  // namespace aurora
