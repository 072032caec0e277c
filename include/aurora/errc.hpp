// Error codes of Aurora: the aurora::errc enum, its "aurora" category and aurora::error.
#pragma once

#include <boost/system/error_category.hpp>
#include <boost/system/error_code.hpp>

#include <cstdint>
#include <string>
#include <system_error>
#include <type_traits>

namespace aurora {

/// Every error Aurora reports, as a value of the `"aurora"` error category.
///
/// Usable as `boost::system::error_code` and as `std::error_code`
/// (`std::error_code ec = aurora::errc::lagged;` compiles); `make_error_code` is found by ADL.
enum class errc : int {
  lagged = 1,        ///< the subscription fell more than the channel capacity behind
  closed,            ///< the subscription was unsubscribed or its Database destroyed
  empty,             ///< `try_recv`: nothing is ready yet
  not_found,         ///< the collection was never written, or the id is not present
  already_exists,    ///< `insert` with an id that is already present
  invalid_document,  ///< a document or patch that is not a JSON object, or cannot be stored
  invalid_argument,  ///< an empty collection name or id, a bad option, query or start position
  history_lost,      ///< `Start::after(s)`: events after `s` are no longer retained
  storage_error,     ///< the durable storage failed (I/O, disk full, locked or corrupt file)
};

namespace detail {

class error_category_impl final : public boost::system::error_category {
 public:
  // A fixed id makes the category compare equal across shared libraries.
  constexpr error_category_impl() noexcept : boost::system::error_category(0xa7c3'2f19'5e0b'4d61ULL) {}

  const char* name() const noexcept override { return "aurora"; }

  std::string message(int ev) const override { return describe(ev); }

  char const* message(int ev, char* /*buffer*/, std::size_t /*len*/) const noexcept override { return describe(ev); }

 private:
  static const char* describe(int ev) noexcept {
    switch (static_cast<errc>(ev)) {
      case errc::lagged: return "subscriber lagged behind: events were overwritten before it read them";
      case errc::closed: return "subscription closed";
      case errc::empty: return "no event ready";
      case errc::not_found: return "collection or document not found";
      case errc::already_exists: return "document id already exists";
      case errc::invalid_document: return "invalid document: not a JSON object that can be stored";
      case errc::invalid_argument: return "invalid argument";
      case errc::history_lost: return "history lost: the events to resume from are no longer retained";
      case errc::storage_error: return "storage error";
    }
    return "unknown aurora error";
  }
};

}  // namespace detail

/// The `"aurora"` error category (one instance per program). Thread-safe.
inline const boost::system::error_category& error_category() noexcept {
  static const detail::error_category_impl instance;
  return instance;
}

/// Makes a `boost::system::error_code` (convertible to `std::error_code`) from `e`.
inline boost::system::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), error_category()}; }

/// The exception every throwing Aurora call raises; `code()` holds an `aurora::errc`.
///
/// `catch (const aurora::error& e) { if (e.code() == aurora::errc::not_found) ... }`
class error : public std::system_error {
 public:
  /// An error for `e` with the category's message.
  explicit error(errc e) : std::system_error(std::error_code(make_error_code(e))) {}

  /// An error for `e` whose `what()` starts with `context`.
  error(errc e, const std::string& context) : std::system_error(std::error_code(make_error_code(e)), context) {}

  /// The `aurora::errc` this error carries.
  [[nodiscard]] errc value() const noexcept { return static_cast<errc>(code().value()); }
};

/// Why a receive produced no event: `code` is `lagged`, `closed` or `empty`;
/// `missed` is the number of channel events skipped, for `lagged` only (else 0).
struct RecvError {
  errc code{};               ///< the reason
  std::uint64_t missed = 0;  ///< events overwritten before this subscription read them (`lagged`)

  /// Equal when both fields are equal.
  friend bool operator==(const RecvError&, const RecvError&) = default;
};

}  // namespace aurora

template <>
struct boost::system::is_error_code_enum<aurora::errc> : std::true_type {};

template <>
struct std::is_error_code_enum<aurora::errc> : std::true_type {};
