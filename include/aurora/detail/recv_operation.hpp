// recv_operation: a pending receive, type-erased, that keeps its handler's own executor type;
// recv_service: the receives parked on one execution context; wake_round: the receives one
// thread hands back in one go, one hand-off per io_context.
#pragma once

#include <aurora/recv_result.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/defer.hpp>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <boost/asio/system_executor.hpp>
#include <boost/system/error_code.hpp>

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

namespace aurora::detail {

using recv_signature = void(boost::system::error_code, RecvResult);

class recv_operation;
class wake_round;

struct recv_operation_deleter {
  void operator()(recv_operation* op) const noexcept;
};
// Owns a receive that has not completed: destroying it frees the handler without invoking it.
using recv_operation_ptr = std::unique_ptr<recv_operation, recv_operation_deleter>;

// What a receive's posted work runs on: the subscription it belongs to. resume() and deliver()
// are called on the receive's executor, abandon() on whichever thread destroys the receive.
class recv_target {
 public:
  recv_target() = default;
  recv_target(const recv_target&) = delete;
  recv_target& operator=(const recv_target&) = delete;
  // Goes on with receive `op`: completes it with the next matching event, or parks it.
  virtual void resume(recv_operation_ptr op) = 0;
  // Completes receive `op` with this outcome.
  virtual void deliver(recv_operation_ptr op, boost::system::error_code ec, RecvResult r) = 0;
  // Its receive in flight is being destroyed without completing (its context went away): the
  // next receive may start.
  virtual void abandon() noexcept = 0;

 protected:
  ~recv_target() = default;
};

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
// freed memory.
//
// A thread other than the context's that hands a parked receive back to the context (a writer's
// wake-up, an unsubscribe, the Database going away) does so between begin_post() and end_post(),
// with the receive taken off the list under its owner's lock: shutdown() waits for those posts,
// and after it began, begin_post() refuses, so nothing is ever posted to a context that is gone.
// Nothing here holds a lock while posting or while calling an owner, so a post that destroys
// the receive at once (a strand whose service already shut down) may re-enter freely.
// Lock order: owner, then service.
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
    remove_locked(raw);
  }

  // Takes `raw` off the list and, unless the context is shutting down, holds the shutdown back
  // until end_post(). False: the context is going away; destroy the receive instead of posting.
  [[nodiscard]] bool begin_post(parked_owner* raw) noexcept {
    const std::lock_guard lock(mutex_);
    remove_locked(raw);
    if (shut_down_.load(std::memory_order_relaxed)) return false;
    posting_.fetch_add(1, std::memory_order_seq_cst);
    return true;
  }

  void end_post() noexcept {
    if (posting_.fetch_sub(1, std::memory_order_seq_cst) == 1 && shut_down_.load(std::memory_order_seq_cst)) {
      const std::lock_guard lock(mutex_);  // shutdown() waits under it
      posted_.notify_all();
    }
  }

  // The one deferred hand-off a wake_round may queue on this context at a time (see there).
  // True: the caller now holds it and must give it back once that hand-off ran or was
  // destroyed. The queued hand-off is destroyed before this service is, at shutdown.
  [[nodiscard]] bool take_deferral() noexcept {
    return !deferral_held_.load(std::memory_order_relaxed) && !deferral_held_.exchange(true, std::memory_order_acquire);
  }
  void give_back_deferral() noexcept { deferral_held_.store(false, std::memory_order_release); }

 private:
  void remove_locked(parked_owner* raw) noexcept {
    const std::size_t i = raw->parked_index_;
    if (i >= owners_.size() || owners_[i].raw != raw) return;  // taken by shutdown()
    if (i + 1 != owners_.size()) {
      owners_[i] = std::move(owners_.back());
      owners_[i].raw->parked_index_ = i;
    }
    owners_.pop_back();
  }

  struct entry {
    parked_owner* raw;
    std::weak_ptr<parked_owner> owner;
  };

  void shutdown() override {
    {
      std::unique_lock lock(mutex_);
      shut_down_.store(true, std::memory_order_seq_cst);
      posted_.wait(lock, [this] { return posting_.load(std::memory_order_seq_cst) == 0; });
    }
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
  std::condition_variable posted_;
  std::vector<entry> owners_;
  std::atomic<std::size_t> posting_{0};  // posts in progress (begin_post .. end_post)
  std::atomic<bool> shut_down_{false};
  std::atomic<bool> deferral_held_{false};
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
//
// Named operations; the post_* ones take the operation into work queued on the handler's
// executor (never run inside the call). If queuing fails (out of memory) they throw; on an
// io_context executor the operation has then been destroyed unrun (its target told through
// abandon()), since Asio moves the handler into its own wrapper before it allocates. A strand
// may throw after queuing it: the operation then waits in the strand, which stays locked.
class recv_operation {
 public:
  // Invokes the handler now (the caller is on the handler's executor) and frees the operation.
  static void complete(recv_operation_ptr op, boost::system::error_code ec, RecvResult r) {
    op.release()->invoke(ec, std::move(r));
  }

  // Queues `target->resume(op)`.
  static void post_resume(recv_operation_ptr op, std::shared_ptr<recv_target> target) {
    recv_operation* raw = op.get();
    raw->post(posted(std::move(target), std::move(op), std::nullopt));
  }

  // Queues `target->deliver(op, ec, r)`; with no target, completes the handler directly.
  static void post_deliver(recv_operation_ptr op, std::shared_ptr<recv_target> target, boost::system::error_code ec,
                           RecvResult r) {
    recv_operation* raw = op.get();
    raw->post(posted(std::move(target), std::move(op), outcome{ec, std::move(r)}));
  }

  // The handler's cancellation slot (may be unconnected).
  virtual boost::asio::cancellation_slot cancellation_slot() noexcept = 0;

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

  // The io_context whose plain executor (io_context::executor_type, itself or inside an
  // any_io_executor, with no property changed) the handler is associated with, else nullptr.
  // Only such receives are resumed together by a wake_round: work posted to any thread running
  // that context runs on their executor. Strands and other executors keep their own post.
  boost::asio::io_context* plain_context() noexcept {
    if (!context_known_) {
      context_ = find_plain_context();
      context_known_ = true;
    }
    return context_;
  }

 protected:
  struct outcome {
    boost::system::error_code ec;
    RecvResult result;
  };

  // The work queued on the handler's executor: owns the operation until it runs.
  struct posted {
    std::shared_ptr<recv_target> target;
    recv_operation_ptr op;
    std::optional<outcome> done;  // deliver this; empty: resume
    posted(std::shared_ptr<recv_target> t, recv_operation_ptr o, std::optional<outcome> d) noexcept
        : target(std::move(t)), op(std::move(o)), done(std::move(d)) {}
    posted(posted&&) noexcept = default;
    posted(const posted&) = delete;
    posted& operator=(const posted&) = delete;
    posted& operator=(posted&&) = delete;
    ~posted() {
      if (op && target) target->abandon();  // destroyed unrun
    }
    void operator()() {
      if (!done) {
        target->resume(std::move(op));
      } else if (target) {
        target->deliver(std::move(op), done->ec, std::move(done->result));
      } else {
        complete(std::move(op), done->ec, std::move(done->result));
      }
    }
  };

  recv_operation() = default;
  ~recv_operation() = default;

 private:
  friend struct recv_operation_deleter;
  friend class wake_round;

  virtual void invoke(boost::system::error_code ec, RecvResult r) = 0;
  // Queues `task`, which owns this operation, on the handler's executor.
  virtual void post(posted task) = 0;
  virtual void destroy() noexcept = 0;
  virtual recv_service* find_service() = 0;
  virtual boost::asio::io_context* find_plain_context() noexcept = 0;

  recv_service* service_ = nullptr;
  boost::asio::io_context* context_ = nullptr;
  bool service_known_ = false;
  bool context_known_ = false;
  // While it waits in a wake_round's hand-off: the next receive of that hand-off and what
  // resumes it.
  recv_operation* round_next_ = nullptr;
  std::shared_ptr<recv_target> round_target_;
};

inline void recv_operation_deleter::operator()(recv_operation* op) const noexcept { op->destroy(); }

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

  boost::asio::cancellation_slot cancellation_slot() noexcept override {
    return boost::asio::get_associated_cancellation_slot(handler_);
  }

 private:
  static allocator_type allocator_of(const Handler& handler) noexcept {
    return allocator_type(boost::asio::get_associated_allocator(handler, boost::asio::recycling_allocator<void>()));
  }

  void invoke(boost::system::error_code ec, RecvResult r) override {
    auto slot = boost::asio::get_associated_cancellation_slot(handler_);
    if (slot.is_connected()) slot.clear();
    allocator_type alloc = allocator_of(handler_);
    Handler handler(std::move(handler_));
    auto work(std::move(work_));
    free_self(alloc);
    std::move(handler)(ec, std::move(r));
  }

  void post(posted task) override {
    auto ex = work_.get_executor();  // a copy: a failed post destroys this operation
    boost::asio::post(ex, std::move(task));
  }

  void destroy() noexcept override { free_self(allocator_of(handler_)); }

  recv_service* find_service() override { return recv_service_for(work_.get_executor()); }

  boost::asio::io_context* find_plain_context() noexcept override {
    using plain = boost::asio::io_context::executor_type;
    if constexpr (std::is_same_v<executor_type, plain>) {
      return &work_.get_executor().context();
    } else if constexpr (std::is_same_v<executor_type, boost::asio::any_io_executor>) {
      const executor_type ex = work_.get_executor();
      const auto* target = ex.template target<plain>();
      return target != nullptr ? &target->context() : nullptr;
    } else {
      return nullptr;
    }
  }

  void free_self(allocator_type alloc) noexcept {
    std::allocator_traits<allocator_type>::destroy(alloc, this);
    std::allocator_traits<allocator_type>::deallocate(alloc, this, 1);
  }

  Handler handler_;
  boost::asio::executor_work_guard<executor_type> work_;
};

// A wake-up round on one thread (a writer waking the readers of what it published): while it is
// open, the parked receives that thread hands back to resume are collected per io_context
// instead of posted one by one, and leaving the round posts ONE piece of work per io_context
// that resumes them in turn. The writer then pays one post (one scheduler lock, at most one
// thread woken) per context and publish instead of one per receive.
//
// Only receives whose handler runs on a plain io_context executor join (see
// recv_operation::plain_context()): for them, any thread running that context is their executor,
// so each still completes on its own executor and never inside the writer. The round is exact
// about the contexts' shutdown: each receive arrives with its recv_service's begin_post() done,
// and the round calls end_post() once per receive only after the hand-off is queued.
//
// When the writer is itself a handler running on that io_context and wakes a single receive
// there, that hand-off is deferred instead of posted, as tokio's LIFO slot does: it runs after
// the writer's handler returns, usually on the same thread, with no other thread woken (a
// cross-thread wake-up is what made the p99 latency of a single parked receive 15 us instead
// of 2). Two or more receives are posted: another thread of the context runs them meanwhile.
// (Deferring them all halved hub_bench's fan-out to 4 and 16 readers, the writer's thread
// running every reader while the other slept; deferring one of them and posting the rest, as
// tokio does, still cost 5-11 % at 4.) Only one deferred hand-off per context is outstanding;
// while it waits, later ones are posted, so a writer that keeps publishing without returning
// to run() holds back that one receive only. Rounds nest (the inner one collects until it
// ends); a full round lets the caller post the receive itself.
class wake_round {
 public:
  wake_round() noexcept : outer_(this_thread_round) { this_thread_round = this; }
  wake_round(const wake_round&) = delete;
  wake_round& operator=(const wake_round&) = delete;
  ~wake_round() {
    this_thread_round = outer_;
    flush();
  }

  // The round open on this thread, or nullptr.
  [[nodiscard]] static wake_round* current() noexcept { return this_thread_round; }

  // Takes `op` (taken off its parking place, begin_post() done on `service`) to be resumed by
  // `target` when the round ends. False, leaving `op` with the caller: its executor is not a
  // plain io_context one, or the round is full.
  [[nodiscard]] bool add(recv_operation_ptr& op, std::shared_ptr<recv_target>& target, recv_service* service) noexcept {
    boost::asio::io_context* ctx = op->plain_context();
    if (ctx == nullptr) return false;
    group* g = nullptr;
    for (std::size_t i = 0; i < used_; ++i) {
      if (groups_[i].ctx == ctx) g = &groups_[i];
    }
    if (g == nullptr) {
      if (used_ == groups_.size()) return false;
      g = &groups_[used_++];
      *g = group{ctx, service, nullptr, nullptr, 0};
    }
    if (g->service != service) return false;  // cannot happen: one recv_service per context
    recv_operation* raw = op.release();
    raw->round_target_ = std::move(target);
    raw->round_next_ = nullptr;
    (g->tail != nullptr ? g->tail->round_next_ : g->head) = raw;
    g->tail = raw;
    ++g->count;
    return true;
  }

 private:
  // The work queued on a context: resumes its receives in turn. Destroyed unrun (the context
  // shut down), it destroys them, as Asio destroys the work of a context that shut down.
  class resume_list {
   public:
    resume_list(boost::asio::io_context* ctx, recv_operation* head) noexcept : ctx_(ctx), head_(head) {}
    resume_list(resume_list&& other) noexcept
        : ctx_(other.ctx_),
          head_(std::exchange(other.head_, nullptr)),
          deferral_(std::exchange(other.deferral_, nullptr)) {}
    resume_list(const resume_list&) = delete;
    resume_list& operator=(const resume_list&) = delete;
    resume_list& operator=(resume_list&&) = delete;
    ~resume_list() {
      give_back_deferral();
      while (head_ != nullptr) pop().second->abandon();  // destroyed unrun
    }

    // It is the context's deferred hand-off: gives `service`'s deferral back when it runs.
    void hold_deferral(recv_service* service) noexcept { deferral_ = service; }

    void operator()() {
      give_back_deferral();
      while (head_ != nullptr) {
        auto [op, target] = pop();
        try {
          target->resume(std::move(op));
        } catch (...) {
          // A handler threw out of run(): the receives after it go on in a fresh hand-off.
          if (head_ != nullptr)
            boost::asio::post(ctx_->get_executor(), resume_list(ctx_, std::exchange(head_, nullptr)));
          throw;
        }
      }
    }

   private:
    void give_back_deferral() noexcept {
      if (deferral_ != nullptr) std::exchange(deferral_, nullptr)->give_back_deferral();
    }

    std::pair<recv_operation_ptr, std::shared_ptr<recv_target>> pop() noexcept {
      recv_operation* op = std::exchange(head_, head_->round_next_);
      op->round_next_ = nullptr;
      return {recv_operation_ptr(op), std::move(op->round_target_)};
    }

    boost::asio::io_context* ctx_;
    recv_operation* head_;
    recv_service* deferral_ = nullptr;
  };

  struct group {
    boost::asio::io_context* ctx;
    recv_service* service;
    recv_operation* head;
    recv_operation* tail;
    std::size_t count;
  };

  void flush() noexcept {
    for (std::size_t i = 0; i < used_; ++i) {
      group& g = groups_[i];
      const auto ex = g.ctx->get_executor();
      resume_list work(g.ctx, g.head);
      const bool deferred =
          g.count == 1 && g.service != nullptr && ex.running_in_this_thread() && g.service->take_deferral();
      if (deferred) work.hold_deferral(g.service);
      queue(ex, std::move(work), deferred);
      if (g.service != nullptr) {
        for (std::size_t n = 0; n < g.count; ++n) g.service->end_post();
      }
    }
    used_ = 0;
  }

  static void queue(const boost::asio::io_context::executor_type& ex, resume_list work, bool deferred) noexcept {
    try {
      if (deferred) {
        boost::asio::defer(ex, std::move(work));
      } else {
        boost::asio::post(ex, std::move(work));
      }
    } catch (...) {  // not queued (out of memory): `work` destroys its receives
    }
  }

  static inline thread_local wake_round* this_thread_round = nullptr;
  wake_round* outer_;
  std::array<group, 4> groups_{};
  std::size_t used_ = 0;
};

}  // namespace aurora::detail
