// RecvResult: what one receive yields, a shared immutable ChangeEvent or a RecvError.
#pragma once

#include <aurora/change_event.hpp>
#include <aurora/errc.hpp>
#include <aurora/transition.hpp>

#include <cassert>
#include <memory>
#include <utility>

namespace aurora {

/// The outcome of `Subscription::recv` / `try_recv`: either an event or a `RecvError`.
///
/// ```
/// RecvResult r = co_await sub.recv();
/// if (r) { use(r->document_id); } else if (r.error().code == errc::lagged) { ... }
/// ```
/// A default-constructed result holds `errc::empty`. Copies share the event. Not synchronised:
/// one object must not be modified concurrently, but distinct copies may be used from any thread.
class RecvResult {
 public:
  /// Holds `RecvError{errc::empty}`.
  RecvResult() noexcept = default;

  /// Holds `event`, which must not be null, with the transition its operation implies (Insert:
  /// `enter`, Update: `change`, Delete: `leave`).
  explicit RecvResult(std::shared_ptr<const ChangeEvent> event) noexcept
      : RecvResult(std::move(event), Transition::change) {
    transition_ = natural_transition(event_->operation);
  }

  /// Holds `event`, which must not be null, and how it moved its document relative to the
  /// subscription's view.
  RecvResult(std::shared_ptr<const ChangeEvent> event, Transition transition) noexcept
      : event_(std::move(event)), error_{}, transition_(transition) {
    assert(event_ != nullptr);
  }

  /// Holds `error`.
  explicit RecvResult(RecvError error) noexcept : error_(error) {}

  /// True when this holds an event.
  [[nodiscard]] bool has_value() const noexcept { return event_ != nullptr; }

  /// True when this holds an event.
  explicit operator bool() const noexcept { return has_value(); }

  /// The event. Precondition: `has_value()`.
  [[nodiscard]] const ChangeEvent& operator*() const noexcept {
    assert(has_value());
    return *event_;
  }

  /// The event's members. Precondition: `has_value()`.
  [[nodiscard]] const ChangeEvent* operator->() const noexcept {
    assert(has_value());
    return event_.get();
  }

  /// The event; throws `aurora::error` with `error().code` when this holds an error.
  [[nodiscard]] const ChangeEvent& value() const {
    if (!has_value()) throw aurora::error(error_.code);
    return *event_;
  }

  /// How the event moved its document relative to the subscription's view (see `Transition`).
  /// Precondition: `has_value()`.
  [[nodiscard]] Transition transition() const noexcept {
    assert(has_value());
    return transition_;
  }

  /// The error. When this holds an event, a `RecvError` whose `code` is `errc{}` (no error).
  [[nodiscard]] const RecvError& error() const noexcept { return error_; }

  /// The shared event (null when this holds an error): keep it beyond the receive loop.
  [[nodiscard]] const std::shared_ptr<const ChangeEvent>& event() const& noexcept { return event_; }

  /// The shared event, moved out (null when this holds an error).
  [[nodiscard]] std::shared_ptr<const ChangeEvent> event() && noexcept { return std::move(event_); }

 private:
  static constexpr Transition natural_transition(OperationType op) noexcept {
    return op == OperationType::Insert   ? Transition::enter
           : op == OperationType::Delete ? Transition::leave
                                         : Transition::change;
  }

  std::shared_ptr<const ChangeEvent> event_;
  RecvError error_{errc::empty};
  Transition transition_ = Transition::enter;
};

}  // namespace aurora
