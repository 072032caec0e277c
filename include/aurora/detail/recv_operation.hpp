// recv_operation: a pending receive, type-erased, that keeps its handler's own executor type.
#pragma once

#include <aurora/recv_result.hpp>

#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <boost/asio/system_executor.hpp>
#include <boost/system/error_code.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace aurora::detail {

using recv_signature = void(boost::system::error_code, RecvResult);

class recv_service;

// Something that can hold a receive parked on an execution context (a subscriber).
class parked_owner {
 public:
  parked_owner() = default;
  parked_owner(const parked_owner&) = delete;
  parked_owner& operator=(const parked_owner&) = delete;
  // Destroys, without invoking its handler, the receive parked on `svc`'s context, if any.
  virtual void drop_parked(const recv_service& svc) noexcept = 0;

 protected:
  ~parked_owner() = default;

 private:
  friend class recv_service;
  std::size_t parked_index_ = 0;  // its place in its recv_service's list; guarded by that mutex
};

// One per execution context: the owners that hold a receive parked on it. A parked receive keeps
// work, a handler and (for co_await) a coroutine frame on the context. When the context shuts
// down (io_context destroyed), shutdown() destroys them, as Asio's own services destroy their
// pending operations; otherwise they would outlive the context and a later wake-up would post to
// freed memory. Owners add and remove themselves with their own lock held; shutdown() never
// holds this mutex while calling an owner, so the lock order is owner, then service.
class recv_service final : public boost::asio::execution_context::service {
 public:
  static inline boost::asio::execution_context::id id;

  explicit recv_service(boost::asio::execution_context& ctx) : boost::asio::execution_context::service(ctx) {}

  void add(parked_owner* raw, std::weak_ptr<parked_owner> owner) {
    const std::lock_guard lock(mutex_);
    owners_.push_back({raw, std::move(owner)});
    raw->parked_index_ = owners_.size() - 1;
  }

  void remove(parked_owner* raw) noexcept {
    const std::lock_guard lock(mutex_);
    const std::size_t i = raw->parked_index_;
    if (i >= owners_.size() || owners_[i].raw != raw) return;  // taken by shutdown()
    if (i + 1 != owners_.size()) {
      owners_[i] = std::move(owners_.back());
      owners_[i].raw->parked_index_ = i;
    }
    owners_.pop_back();
  }

 private:
  struct entry {
    parked_owner* raw;
    std::weak_ptr<parked_owner> owner;
  };

  void shutdown() override {
    for (;;) {
      std::vector<entry> owners;
      {
        const std::lock_guard lock(mutex_);
        owners.swap(owners_);
      }
      if (owners.empty()) return;
      for (const entry& e : owners) {
        if (auto owner = e.owner.lock()) owner->drop_parked(*this);
      }
    }
  }

  std::mutex mutex_;
  std::vector<entry> owners_;
};

// The recv_service of `ex`'s execution context, or nullptr for an executor that does not tell
// its context.
template <class Executor>
recv_service* recv_service_for(const Executor& ex) {
  if constexpr (boost::asio::can_query<const Executor&, boost::asio::execution::context_t>::value) {
    boost::asio::execution_context& ctx = boost::asio::query(ex, boost::asio::execution::context);
    return &boost::asio::use_service<recv_service>(ctx);
  } else if constexpr (requires { ex.context(); }) {
    boost::asio::execution_context& ctx = ex.context();
    return &boost::asio::use_service<recv_service>(ctx);
  } else {
    return nullptr;
  }
}

// One receive in flight. Unlike asio::any_completion_handler (whose executor cannot be posted
// to in Boost 1.81), it keeps the handler's associated executor with its real type, so it can
// post, and holds outstanding work on it while parked so that run() does not return early.
// Its memory comes from the handler's associated allocator (Asio's recycling allocator by
// default) and is freed before the handler is invoked, as Asio requires.
class recv_operation {
 public:
  // Invokes the handler now (the caller is on the handler's executor) and frees this.
  virtual void complete(boost::system::error_code ec, RecvResult r) = 0;
  // Posts `fn(op)` to the handler's executor, handing this operation's ownership to fn. If it
  // throws, the caller still owns this operation.
  virtual void post(void (*fn)(void* ctx, recv_operation* op), std::shared_ptr<void> ctx) = 0;
  // The handler's cancellation slot (may be unconnected).
  virtual boost::asio::cancellation_slot cancellation_slot() noexcept = 0;
  // Frees this without invoking the handler.
  virtual void destroy() noexcept = 0;

  // The recv_service of its executor's context, where it parks (null for an executor that does
  // not tell its context). Looked up when first asked, that is when the receive first parks:
  // a receive that never parks does not pay for use_service's registry lock.
  recv_service* service() {
    if (!service_known_) {
      service_ = find_service();
      service_known_ = true;
    }
    return service_;
  }

  std::uint64_t id = 0;                  // which receive of its subscription this is
  boost::system::error_code pending_ec;  // the outcome to deliver after a post
  RecvResult pending_result;

 protected:
  recv_operation() = default;
  ~recv_operation() = default;

 private:
  virtual recv_service* find_service() = 0;

  recv_service* service_ = nullptr;
  bool service_known_ = false;
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
    allocator_type alloc = allocator_of(handler);
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
    allocator_type alloc = allocator_of(handler_);
    Handler handler(std::move(handler_));
    auto work(std::move(work_));
    free_self(alloc);
    std::move(handler)(ec, std::move(r));
  }

  void post(void (*fn)(void*, recv_operation*), std::shared_ptr<void> ctx) override {
    auto ex = work_.get_executor();
    posted task{fn, std::move(ctx), recv_operation_ptr(this)};
    try {
      boost::asio::post(ex, std::move(task));
    } catch (...) {
      (void)task.op.release();  // not taken over: ownership stays with the caller
      throw;
    }
  }

  boost::asio::cancellation_slot cancellation_slot() noexcept override {
    return boost::asio::get_associated_cancellation_slot(handler_);
  }

  void destroy() noexcept override { free_self(allocator_of(handler_)); }

 private:
  static allocator_type allocator_of(const Handler& handler) noexcept {
    return allocator_type(boost::asio::get_associated_allocator(handler, boost::asio::recycling_allocator<void>()));
  }

  recv_service* find_service() override { return recv_service_for(work_.get_executor()); }

  void free_self(allocator_type alloc) noexcept {
    std::allocator_traits<allocator_type>::destroy(alloc, this);
    std::allocator_traits<allocator_type>::deallocate(alloc, this, 1);
  }

  struct posted {
    void (*fn)(void*, recv_operation*);
    std::shared_ptr<void> ctx;
    recv_operation_ptr op;
    void operator()() { fn(ctx.get(), op.release()); }
  };

  Handler handler_;
  boost::asio::executor_work_guard<executor_type> work_;
};

}  // namespace aurora::detail
