// aurora::sqlite::DurableStorage: the storage a DurableDatabase plugs into its commit seam: an
// sqlite::Storage (documents, collections, change log) and the group committer in front of it.
#pragma once

#include <aurora/change_event.hpp>
#include <aurora/detail/durable.hpp>
#include <aurora/errc.hpp>
#include <aurora/options.hpp>
#include <aurora/sqlite/detail/group_commit.hpp>
#include <aurora/sqlite/storage.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace aurora::sqlite {

/// The `Storage` parameter of `aurora::DurableDatabase` (`BasicDatabase<Clock, DurableStorage>`):
/// one `sqlite::Storage` file and a leader/follower group committer, so that the commits of
/// concurrent writers share one SQLite transaction and one fsync. It starts no thread: the
/// writing threads lead the groups in turn.
///
/// The database calls it as follows. Under its commit lock a write applies its changes, stamps
/// its events and calls `enqueue`; after releasing the lock it calls `wait(ticket)`. The leader
/// calls the database's `prepare` hook with the group's events in commit order (it allocates what
/// publishing them needs), writes them with `Storage::write`, then calls the `publish` hook with
/// them: they become visible to subscribers only now, after the durable commit, and it must not
/// fail, since the commit stands. If the prepare or the write fails, the `discard` hook gets the failed group and every
/// batch queued behind it (to undo them in memory) before any of their writers is woken with
/// `storage_error`, and every later `enqueue` throws `storage_error`.
///
/// Thread safety: every member function may be called from any thread; the hooks run on the
/// leading writer's thread, one group at a time, in commit order.
class DurableStorage {
 public:
  /// Marks a storage whose commits BasicDatabase must make durable before publishing.
  static constexpr bool durable = true;

  /// What the `discard` hook receives: the batches of a failed group and the batches behind it,
  /// in commit order.
  using hook = std::function<void(std::span<aurora::detail::commit_batch>)>;

  /// What the `prepare` and `publish` hooks receive: the events of one group, in commit order
  /// (`publish` may move them out).
  using events_hook = std::function<void(std::span<std::shared_ptr<const ChangeEvent>>)>;

  /// The most commits written in one group (one SQLite transaction).
  static constexpr std::size_t max_group = 1024;

  /// Opens (or creates) the database file `path` with `options.durability` and
  /// `options.history` (see sqlite::Storage). `prepare`, `publish` and `discard` are the
  /// database's hooks (`publish` and `discard` must not throw). Errors: as the sqlite::Storage
  /// constructor (storage_error).
  DurableStorage(const std::string& path, const Options& options, events_hook prepare, events_hook publish,
                 hook discard)
      : storage_(path, options.durability, options.history),
        prepare_(std::move(prepare)),
        publish_(std::move(publish)),
        discard_(std::move(discard)),
        row_limit_(storage_.max_change_bytes()),
        max_change_bytes_(std::min(options.max_change_bytes, row_limit_)),
        group_([this](std::span<aurora::detail::commit_batch> group) { write(group); },
               [this](std::span<aurora::detail::commit_batch> group) { publish_group(group); }, max_group,
               [this](std::span<aurora::detail::commit_batch> batches) { discard_batches(batches); }) {}

  DurableStorage(const DurableStorage&) = delete;
  DurableStorage& operator=(const DurableStorage&) = delete;

  /// The database id (a UUID made when the file was created).
  [[nodiscard]] const std::string& id() const noexcept { return storage_.id(); }

  /// The sequence of the last event made durable.
  [[nodiscard]] std::uint64_t last_sequence() const noexcept { return storage_.last_sequence(); }

  /// The oldest sequence still in the change log (`last_sequence() + 1` when it is empty).
  [[nodiscard]] std::uint64_t oldest_logged() const noexcept { return storage_.oldest_logged(); }

  /// The most bytes of text one change may store: `Options::max_change_bytes`, or less when the
  /// SQLite library allows less in one row.
  [[nodiscard]] std::size_t max_change_bytes() const noexcept { return max_change_bytes_; }

  /// Why `ev` cannot be stored, or an empty string: its document holds a string that is not
  /// valid UTF-8, or its text (see `Options::max_change_bytes`) is more than
  /// `max_change_bytes()`. A Delete, whose text is a document already stored, is held only to
  /// what SQLite can store: a database reopened with a lower limit can still remove what it
  /// holds. Call it before `enqueue`: a group whose write fails refuses every later write.
  /// Thread safety: any thread.
  [[nodiscard]] std::string unstorable(const ChangeEvent& ev) const {
    const bool remove = ev.operation == OperationType::Delete;
    const std::size_t limit = remove ? row_limit_ : max_change_bytes_;
    const std::size_t names = ev.collection.size() + ev.document_id.size();
    std::size_t bound = names;
    if (ev.document) {
      const aurora::detail::json_text_scan scan = aurora::detail::scan_json_text(*ev.document);
      if (!scan.utf8) {
        return "the document holds a string that is not valid UTF-8 (a durable database stores documents as JSON text)";
      }
      bound = aurora::detail::add_saturated(bound, scan.bound);
    }
    const bool before_image = ev.old_document && storage_.history() > 0;  // Storage::write logs it
    if (before_image) {  // the stored document: its strings were checked when it was written
      const std::size_t old_bound = aurora::detail::scan_json_text(*ev.old_document, /*check_utf8=*/false).bound;
      bound = aurora::detail::add_saturated(bound, old_bound);
    }
    if (bound <= limit) return {};
    // The bound counts every string byte as its longest escape: only a change that may be near
    // the limit is measured exactly.
    std::size_t exact = names;
    if (ev.document) exact += ev.document->dump().size();
    if (before_image) exact += ev.old_document->dump().size();
    if (exact <= limit) return {};
    std::string parts = ev.document ? "document, " : "";
    if (before_image) parts += "before-image, ";
    const bool options_limit = !remove && max_change_bytes_ < row_limit_;
    return "the change is " + std::to_string(exact) + " bytes of text (" + parts + "collection and id), more than " +
           (options_limit ? "Options::max_change_bytes (" : "SQLite's row limit allows (") + std::to_string(limit) +
           ")";
  }

  /// The underlying SQLite storage (for `pragmas()`, `integrity_check()`, ...). Do not write
  /// through it while the database is open.
  [[nodiscard]] Storage& storage() noexcept { return storage_; }

  /// As `Storage::load`.
  template <LoadVisitor Visitor>
  std::size_t load(Visitor&& visitor) {
    return storage_.load(visitor);
  }

  /// As `Storage::read_log`.
  template <class Sink>
  std::size_t read_log(std::uint64_t after, std::size_t limit, Sink&& sink) {
    return storage_.read_log(after, limit, sink);
  }

  /// Queues one commit (its events stamped with the next sequences); call it under the
  /// database's commit lock, so that commits queue in sequence order. Errors: storage_error
  /// after a failed commit (nothing queued).
  std::uint64_t enqueue(aurora::detail::commit_batch batch) { return group_.enqueue(std::move(batch)); }

  /// Returns once the commit of `ticket` is durable and published, leading groups while
  /// needed; call it without the commit lock. Errors: storage_error when its group (or an
  /// earlier one) failed; its changes are then undone in memory already.
  void wait(std::uint64_t ticket) { group_.wait(ticket); }

  /// Returns once every commit queued so far is durable and published (as `wait` on the last
  /// ticket); call it without the commit lock. Errors: as `wait`.
  void flush() { group_.flush(); }

 private:
  // The events of `group` in commit order: the one batch's own, or merged_ (made by write).
  std::span<std::shared_ptr<const ChangeEvent>> events_of(std::span<aurora::detail::commit_batch> group) noexcept {
    if (group.size() == 1) return group.front().events;
    return merged_;
  }

  // Prepares the group's events for publishing, then writes them in one SQLite transaction.
  void write(std::span<aurora::detail::commit_batch> group) {
    if (group.size() > 1) {
      std::size_t n = 0;
      for (const auto& batch : group) n += batch.events.size();
      merged_.clear();
      merged_.reserve(n);
      for (const auto& batch : group) merged_.insert(merged_.end(), batch.events.begin(), batch.events.end());
    }
    const auto events = events_of(group);
    prepare_(events);
    storage_.write(events);
  }

  void publish_group(std::span<aurora::detail::commit_batch> group) {
    publish_(events_of(group));
    release_merged();
  }

  void discard_batches(std::span<aurora::detail::commit_batch> batches) noexcept {
    release_merged();
    discard_(batches);
  }

  // Empties the merged list; a large one (a group of large transactions) is freed, not kept.
  void release_merged() noexcept {
    constexpr std::size_t kept = 4096;
    if (merged_.capacity() > kept) {
      std::vector<std::shared_ptr<const ChangeEvent>>().swap(merged_);
    } else {
      merged_.clear();
    }
  }

  Storage storage_;
  events_hook prepare_;
  events_hook publish_;
  hook discard_;
  std::size_t row_limit_;         // what SQLite stores in one change-log row (Storage::max_change_bytes)
  std::size_t max_change_bytes_;  // the lower of row_limit_ and Options::max_change_bytes
  std::vector<std::shared_ptr<const ChangeEvent>> merged_;  // a group's events, on the leader's thread only
  detail::group_commit<aurora::detail::commit_batch, hook, hook, hook> group_;
};

}  // namespace aurora::sqlite
