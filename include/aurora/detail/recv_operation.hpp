// recv_operation: a pending receive, type-erased, that keeps its handler's own executor type.
#pragma once

#include <aurora/recv_result.hpp>

#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <boost/asio/system_executor.hpp>
#include <boost/system/error_code.hpp>

#include <cstdint>
#include <memory>
#include <utility>

namespace aurora::detail {

using recv_signature = void(boost::system::error_code, RecvResult);

// One receive in flight. Unlike asio::any_completion_handler (whose executor cannot be posted
// to in Boost 1.81), it keeps the handler's associated executor with its real type, so it can
// post, and holds outstanding work on it while parked so that run() does not return early.
// Its memory comes from the handler's associated allocator (Asio's recycling allocator by
// default) and is freed before the handler is invoked, as Asio requires.
class recv_operation {
 public:
  // Invokes the handler now (the caller is on the handler's executor) and frees this.
  virtual void complete(boost::system::error_code ec, RecvResult r) = 0;
  // Posts `fn(op)` to the handler's executor, handing this operation's ownership to fn.
  virtual void post(void (*fn)(void* ctx, recv_operation* op), std::shared_ptr<void> ctx) = 0;
  // The handler's cancellation slot (may be unconnected).
  virtual boost::asio::cancellation_slot cancellation_slot() noexcept = 0;
  // Frees this without invoking the handler.
  virtual void destroy() noexcept = 0;

  std::uint64_t id = 0;                  // which receive of its subscription this is
  boost::system::error_code pending_ec;  // the outcome to deliver after a post
  RecvResult pending_result;

 protected:
  recv_operation() = default;
  ~recv_operation() = default;
};

struct recv_operation_deleter {
  void operator()(recv_operation* op) const noexcept { op->destroy(); }
};
using recv_operation_ptr = std::unique_ptr<recv_operation, recv_operation_deleter>;

template <class Handler>
class recv_operation_impl final : public recv_operation {
 public:
  using executor_type = boost::asio::associated_executor_t<Handler, boost::asio::system_executor>;
  using allocator_type = typename std::allocator_traits<boost::asio::associated_allocator_t<
      Handler, boost::asio::recycling_allocator<void>>>::template rebind_alloc<recv_operation_impl>;

  static recv_operation_ptr create(Handler&& handler) {
    allocator_type alloc(boost::asio::get_associated_allocator(handler, boost::asio::recycling_allocator<void>()));
    recv_operation_impl* p = std::allocator_traits<allocator_type>::allocate(alloc, 1);
    try {
      std::allocator_traits<allocator_type>::construct(alloc, p, std::move(handler));
    } catch (...) {
      std::allocator_traits<allocator_type>::deallocate(alloc, p, 1);
      throw;
    }
    return recv_operation_ptr(p);
  }

  explicit recv_operation_impl(Handler&& handler)
      : handler_(std::move(handler)),
        work_(boost::asio::make_work_guard(
            boost::asio::get_associated_executor(handler_, boost::asio::system_executor()))) {}

  void complete(boost::system::error_code ec, RecvResult r) override {
    auto slot = boost::asio::get_associated_cancellation_slot(handler_);
    if (slot.is_connected()) slot.clear();
    allocator_type alloc(boost::asio::get_associated_allocator(handler_, boost::asio::recycling_allocator<void>()));
    Handler handler(std::move(handler_));
    auto work(std::move(work_));
    free_self(alloc);
    std::move(handler)(ec, std::move(r));
  }

  void post(void (*fn)(void*, recv_operation*), std::shared_ptr<void> ctx) override {
    auto ex = work_.get_executor();
    boost::asio::post(
        ex, [fn, ctx = std::move(ctx), op = recv_operation_ptr(this)]() mutable { fn(ctx.get(), op.release()); });
  }

  boost::asio::cancellation_slot cancellation_slot() noexcept override {
    return boost::asio::get_associated_cancellation_slot(handler_);
  }

  void destroy() noexcept override {
    free_self(
        allocator_type(boost::asio::get_associated_allocator(handler_, boost::asio::recycling_allocator<void>())));
  }

 private:
  void free_self(allocator_type alloc) noexcept {
    std::allocator_traits<allocator_type>::destroy(alloc, this);
    std::allocator_traits<allocator_type>::deallocate(alloc, this, 1);
  }

  Handler handler_;
  boost::asio::executor_work_guard<executor_type> work_;
};

}  // namespace aurora::detail
