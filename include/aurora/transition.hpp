// Transition: how a delivered event moved its document relative to a filter's view.
#pragma once

#include <string_view>

namespace aurora {

/// How an event moved its document relative to a subscription's view (the documents that pass
/// the filter's document conditions): `enter` (Insert, or an Update from outside the view),
/// `change` (an Update inside the view before and after), `leave` (Delete, or an Update that
/// takes the document out of the view).
enum class Transition { enter, change, leave };

/// `"enter"`, `"change"` or `"leave"`.
constexpr std::string_view to_string(Transition t) noexcept {
  switch (t) {
    case Transition::enter: return "enter";
    case Transition::change: return "change";
    case Transition::leave: return "leave";
  }
  return "unknown";
}

}  // namespace aurora
