// What the aurora::sqlite tests share: temporary directories, event builders, a recording load
// visitor, a change-log replay checker and small POSIX helpers for the multi-process tests.
#pragma once

#include <aurora/change_event.hpp>
#include <aurora/sqlite/storage.hpp>
#include <aurora/value.hpp>

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace aurora_sqlite_test {

using event_ptr = std::shared_ptr<const aurora::ChangeEvent>;

// A fresh directory under the system's temporary directory, removed with everything in it.
class temp_dir {
 public:
  temp_dir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "aurora-sqlite-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  [[nodiscard]] std::string file(std::string_view name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// An event as BasicDatabase's commit seam makes it: stamped with sequence, commit and timestamp.
inline std::shared_ptr<aurora::ChangeEvent> make_event(std::uint64_t sequence, aurora::OperationType op,
                                                       std::string collection, std::string id,
                                                       std::optional<aurora::Document> doc = {},
                                                       std::optional<aurora::Document> old = {}) {
  auto ev = std::make_shared<aurora::ChangeEvent>();
  ev->sequence = sequence;
  ev->commit = sequence;
  ev->operation = op;
  ev->collection = std::move(collection);
  ev->document_id = std::move(id);
  if (doc) ev->document = std::make_shared<const aurora::Document>(std::move(*doc));
  if (old) ev->old_document = std::make_shared<const aurora::Document>(std::move(*old));
  ev->timestamp = std::chrono::system_clock::time_point(std::chrono::microseconds(1'700'000'000'000'000LL) +
                                                        std::chrono::microseconds(sequence));
  return ev;
}

using doc_key = std::pair<std::string, std::string>;  // collection, id

// The stored state as load() hands it over.
struct loaded_state {
  std::vector<std::string> collections;
  std::map<doc_key, aurora::Document> documents;
  std::vector<doc_key> order;  // as handed over

  void collection(std::string_view name) { collections.emplace_back(name); }
  void document(std::string_view collection, std::string_view id, aurora::Document&& doc) {
    order.emplace_back(collection, id);
    documents.emplace(doc_key{collection, id}, std::move(doc));
  }
};

// Every event of the change log (read in pages of `page` events).
inline std::vector<event_ptr> read_all(aurora::sqlite::Storage& storage, std::uint64_t after = 0,
                                       std::size_t page = 1000) {
  std::vector<event_ptr> out;
  for (;;) {
    const std::size_t n = storage.read_log(after, page, [&](event_ptr ev) { out.push_back(std::move(ev)); });
    if (n == 0) break;
    after = out.back()->sequence;
  }
  return out;
}

// What a crash or fault test checks after reopening: the change log is exactly 1..N (N =
// last_sequence), N >= the last acknowledged sequence, replaying the log reproduces the stored
// documents and collections (and every Update/Delete's old_document is the replayed state), and
// `PRAGMA integrity_check` says ok. Returns "" when all hold, else what failed.
struct check_result {
  std::string failure;
  std::uint64_t last_sequence = 0;
  [[nodiscard]] bool ok() const { return failure.empty(); }
};

inline check_result check_database(const std::string& path, std::uint64_t last_acknowledged) {
  check_result result;
  aurora::sqlite::Storage storage(path, aurora::Durability::full, UINT64_MAX / 2);
  const std::uint64_t n = storage.last_sequence();
  result.last_sequence = n;
  auto fail = [&](std::string why) {
    result.failure = std::move(why);
    return result;
  };
  if (n < last_acknowledged) {
    return fail("lost acknowledged commits: the file ends at sequence " + std::to_string(n) + ", but sequence " +
                std::to_string(last_acknowledged) + " was acknowledged");
  }
  const std::vector<event_ptr> log = read_all(storage);
  if (log.size() != n) {
    return fail("the change log holds " + std::to_string(log.size()) + " events, last_sequence is " +
                std::to_string(n));
  }
  std::map<doc_key, aurora::Document> replayed;
  std::set<std::string> collections;
  for (std::size_t i = 0; i < log.size(); ++i) {
    const aurora::ChangeEvent& ev = *log[i];
    if (ev.sequence != i + 1) return fail("gap in the change log at position " + std::to_string(i + 1));
    const doc_key key{ev.collection, ev.document_id};
    const auto it = replayed.find(key);
    switch (ev.operation) {
      case aurora::OperationType::Insert:
        if (it != replayed.end()) return fail("event " + std::to_string(ev.sequence) + " inserts an existing id");
        if (!ev.document) return fail("event " + std::to_string(ev.sequence) + ": Insert without document");
        replayed.emplace(key, *ev.document);
        collections.insert(ev.collection);
        break;
      case aurora::OperationType::Update:
        if (it == replayed.end() || !ev.old_document || *ev.old_document != it->second || !ev.document) {
          return fail("event " + std::to_string(ev.sequence) + ": Update does not follow the replayed state");
        }
        it->second = *ev.document;
        break;
      case aurora::OperationType::Delete:
        if (it == replayed.end() || !ev.old_document || *ev.old_document != it->second) {
          return fail("event " + std::to_string(ev.sequence) + ": Delete does not follow the replayed state");
        }
        replayed.erase(it);
        break;
    }
  }
  loaded_state state;
  storage.load(state);
  if (state.documents != replayed) return fail("the stored documents differ from the change log replayed");
  if (std::set<std::string>(state.collections.begin(), state.collections.end()) != collections) {
    return fail("the stored collections differ from the change log replayed");
  }
  const std::string integrity = storage.integrity_check();
  if (integrity != "ok") return fail("PRAGMA integrity_check: " + integrity);
  return result;
}

// write(2) all of `size` bytes, retrying on EINTR; false on any other failure.
inline bool write_all(int fd, const void* data, std::size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

// read(2) exactly `size` bytes; false at end of file or on an error.
inline bool read_all(int fd, void* data, std::size_t size) {
  char* p = static_cast<char*>(data);
  while (size > 0) {
    const ssize_t n = ::read(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace aurora_sqlite_test
