// error_context: the text an exception was thrown with, without the error code's message that
// std::system_error appends to it, so that errors can be wrapped without repeating it.
#pragma once

#include <exception>
#include <string>
#include <system_error>

namespace aurora::sqlite::detail {

// e.what(), less the ": <code message>" suffix of a std::system_error (aurora::error is one).
inline std::string error_context(const std::exception& e) {
  std::string what = e.what();
  if (const auto* se = dynamic_cast<const std::system_error*>(&e)) {
    const std::string suffix = ": " + se->code().message();
    if (what.size() > suffix.size() && what.compare(what.size() - suffix.size(), suffix.size(), suffix) == 0) {
      what.resize(what.size() - suffix.size());
    }
  }
  return what;
}

}  // namespace aurora::sqlite::detail
