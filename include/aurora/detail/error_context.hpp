// error_context: the text an exception was thrown with, without the error code's text that
// std::system_error and boost::system::system_error append to it, so that errors can be wrapped
// without repeating it.
#pragma once

#include <boost/system/system_error.hpp>

#include <exception>
#include <string>
#include <system_error>

namespace aurora::detail {

// e.what(), less the ": <message>" suffix of a std::system_error (aurora::error is one) or the
// ": <message> [<category>:<value>]" suffix of a boost::system::system_error.
inline std::string error_context(const std::exception& e) {
  std::string what = e.what();
  std::string suffix;
  if (const auto* se = dynamic_cast<const std::system_error*>(&e)) {
    suffix = ": " + se->code().message();
  } else if (const auto* be = dynamic_cast<const boost::system::system_error*>(&e)) {
    suffix = ": " + be->code().what();
  }
  if (!suffix.empty() && what.size() > suffix.size() && what.ends_with(suffix))
    what.resize(what.size() - suffix.size());
  return what;
}

}  // namespace aurora::detail
