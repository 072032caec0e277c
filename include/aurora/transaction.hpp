// Transaction: the writes and reads of one all-or-nothing commit, made by Database::transaction.
#pragma once

#include <aurora/value.hpp>

#include <cstddef>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace aurora {

class Transaction;

namespace detail {

// What a transaction does to its database: implemented by each database's commit scope.
class transaction_ops {
 public:
  transaction_ops() = default;
  transaction_ops(const transaction_ops&) = delete;
  transaction_ops& operator=(const transaction_ops&) = delete;

  virtual std::string insert(std::string_view collection, Document doc) = 0;
  virtual std::string insert(std::string_view collection, std::string id, Document doc) = 0;
  virtual void update(std::string_view collection, std::string_view id, const Document& patch) = 0;
  virtual void replace(std::string_view collection, std::string_view id, Document doc) = 0;
  virtual void remove(std::string_view collection, std::string_view id) = 0;
  [[nodiscard]] virtual const Document* find(std::string_view collection, std::string_view id) const = 0;
  [[nodiscard]] virtual std::size_t size(std::string_view collection) const = 0;

 protected:
  ~transaction_ops() = default;
};

struct transaction_access {
  static Transaction make(transaction_ops& ops) noexcept;
};

// The databases whose transaction function the current thread is running, innermost first.
struct transaction_mark {
  explicit transaction_mark(const void* database) noexcept : db(database), outer(innermost()) { innermost() = this; }
  transaction_mark(const transaction_mark&) = delete;
  transaction_mark& operator=(const transaction_mark&) = delete;
  ~transaction_mark() { innermost() = outer; }

  // True when this thread is inside a transaction function of `database`.
  static bool inside(const void* database) noexcept {
    for (const transaction_mark* m = innermost(); m != nullptr; m = m->outer) {
      if (m->db == database) return true;
    }
    return false;
  }

  const void* db;
  transaction_mark* outer;

 private:
  static transaction_mark*& innermost() noexcept {
    thread_local transaction_mark* top = nullptr;
    return top;
  }
};

}  // namespace detail

/// The writes and reads of one transaction, handed to the function given to
/// `Database::transaction`. Writes have the Database's names, arguments and errors; a write
/// that throws changed nothing (the transaction goes on if the function catches it). Reads see
/// the transaction's own writes. Each write becomes one event, in write order, published when
/// the function returns; nothing is published if it throws.
///
/// Valid only inside that function, on the thread that runs it; not copyable.
class Transaction {
 public:
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction() = default;

  /// As `Database::insert(collection, doc)`: stores `doc` under a new id and returns it.
  std::string insert(std::string_view collection, Document doc) { return ops_->insert(collection, std::move(doc)); }

  /// As `Database::insert(collection, id, doc)`: stores `doc` under the caller's `id`.
  std::string insert(std::string_view collection, std::string id, Document doc) {
    return ops_->insert(collection, std::move(id), std::move(doc));
  }

  /// As `Database::insert_into`: a document made of `fields`, under a new id.
  std::string insert_into(std::string_view collection, std::initializer_list<std::pair<std::string, Value>> fields) {
    Document doc = Document::object();
    for (const auto& [key, value] : fields) doc[key] = value;
    return insert(collection, std::move(doc));
  }

  /// As `Database::update`: an RFC 7386 merge patch of document `id`.
  void update(std::string_view collection, std::string_view id, const Document& patch) {
    ops_->update(collection, id, patch);
  }

  /// As `Database::replace`.
  void replace(std::string_view collection, std::string_view id, Document doc) {
    ops_->replace(collection, id, std::move(doc));
  }

  /// As `Database::remove`.
  void remove(std::string_view collection, std::string_view id) { ops_->remove(collection, id); }

  /// A copy of document `id` as this transaction sees it, or nothing.
  [[nodiscard]] std::optional<Document> get(std::string_view collection, std::string_view id) const {
    const Document* doc = ops_->find(collection, id);
    if (doc == nullptr) return std::nullopt;
    return *doc;
  }

  /// How many documents `collection` holds as this transaction sees it.
  [[nodiscard]] std::size_t size(std::string_view collection) const { return ops_->size(collection); }

 private:
  friend struct detail::transaction_access;
  explicit Transaction(detail::transaction_ops& ops) noexcept : ops_(&ops) {}

  detail::transaction_ops* ops_;
};

inline Transaction detail::transaction_access::make(transaction_ops& ops) noexcept { return Transaction(ops); }

}  // namespace aurora
