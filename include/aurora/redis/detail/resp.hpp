// RESP without I/O: commands encoded by hiredis's redisFormatCommandArgv, replies decoded by its
// redisReader into an owned reply value. Testable without a socket or an io_context.
#pragma once

#include <aurora/errc.hpp>
#include <aurora/redis/error.hpp>

#include <hiredis/hiredis.h>

#include <boost/system/system_error.hpp>

#include <climits>
#include <cstddef>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace aurora::redis::detail {

// What a reply is, as RESP 2 has it.
enum class reply_kind { nil, integer, status, error, string, array };

// One reply, owned: no hiredis object outlives the reader that made it.
struct reply {
  reply_kind kind = reply_kind::nil;
  long long integer = 0;        // integer
  std::string text;             // status, error, string (bulk)
  std::vector<reply> elements;  // array

  [[nodiscard]] bool is_error() const noexcept { return kind == reply_kind::error; }
};

// A short description of `r` for error messages: `error "ERR ..."`, `array of 3`, ...
inline std::string describe(const reply& r) {
  constexpr std::size_t shown = 120;
  auto quoted = [&](const std::string& s) { return "\"" + (s.size() > shown ? s.substr(0, shown) + "..." : s) + "\""; };
  switch (r.kind) {
    case reply_kind::nil: return "nil";
    case reply_kind::integer: return "integer " + std::to_string(r.integer);
    case reply_kind::status: return "status " + quoted(r.text);
    case reply_kind::error: return "error " + quoted(r.text);
    case reply_kind::string: return "string " + quoted(r.text);
    case reply_kind::array: return "array of " + std::to_string(r.elements.size());
  }
  return "unknown reply";
}

// One command: its arguments, the name first ({"XADD", "key", "0-1", "f", "v"}).
using command = std::vector<std::string>;

// Appends `cmd`, encoded as RESP, to `out`. Throws aurora::error(errc::invalid_argument) for an
// empty command or one too large for hiredis (2 GiB), std::bad_alloc when hiredis runs out of memory.
inline void append_command(std::string& out, const command& cmd) {
  if (cmd.empty()) throw aurora::error(errc::invalid_argument, "aurora::redis: an empty command");
  std::size_t total = 0;
  std::vector<const char*> argv;
  std::vector<std::size_t> lengths;
  argv.reserve(cmd.size());
  lengths.reserve(cmd.size());
  for (const std::string& arg : cmd) {
    total += arg.size() + 32;  // with its RESP header
    argv.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  // hiredis 0.14 counts the encoded length in an int.
  if (cmd.size() > static_cast<std::size_t>(INT_MAX) || total > static_cast<std::size_t>(INT_MAX)) {
    throw aurora::error(errc::invalid_argument, "aurora::redis: command " + cmd.front() + " is larger than 2 GiB");
  }
  char* raw = nullptr;
  const int n = redisFormatCommandArgv(&raw, static_cast<int>(cmd.size()), argv.data(), lengths.data());
  const std::unique_ptr<char, void (*)(char*)> owned(raw, &redisFreeCommand);
  if (n < 0 || raw == nullptr) throw std::bad_alloc();
  out.append(raw, static_cast<std::size_t>(n));
}

// Decodes replies from the bytes fed to it, with hiredis's redisReader building `reply` values
// directly (no redisReply is made). A reply that takes more than `max_reply_bytes` on the wire is
// an error, found as soon as that many bytes of it arrived, so a hostile or broken server cannot
// make it buffer without bound. After an error the reader is unusable until reset() (hiredis's
// errors are sticky).
class reply_reader {
 public:
  explicit reply_reader(std::size_t max_reply_bytes) : max_reply_bytes_(max_reply_bytes) { reset(); }

  reply_reader(const reply_reader&) = delete;
  reply_reader& operator=(const reply_reader&) = delete;

  // Forgets everything fed so far.
  void reset() {
    redisReader* r = redisReaderCreateWithFunctions(&functions);
    if (r == nullptr) throw std::bad_alloc();
    reader_.reset(r);
    partial_ = 0;
    problem_.clear();
    last_error_.clear();
  }

  // Hands `n` received bytes to the reader. Throws std::bad_alloc, or system_error with
  // connection_error::protocol_error after an earlier error.
  void feed(const char* data, std::size_t n) {
    if (n == 0) return;
    reader_->privdata = this;
    if (redisReaderFeed(reader_.get(), data, n) != REDIS_OK) fail();
    partial_ += n;
  }

  // The next complete reply, or nothing when more bytes are needed. Throws system_error with
  // connection_error::protocol_error for bytes that are not RESP (or nested deeper than hiredis's
  // 7 levels), or connection_error::reply_too_large when the reply in progress is too large.
  std::optional<reply> next() {
    reader_->privdata = this;
    void* raw = nullptr;
    if (redisReaderGetReply(reader_.get(), &raw) != REDIS_OK) fail();
    if (raw == nullptr) {
      if (partial_ > max_reply_bytes_) too_large();
      return std::nullopt;
    }
    const std::unique_ptr<reply> owned(static_cast<reply*>(raw));
    // What is left belongs to the replies after this one.
    const std::size_t after = reader_->len - reader_->pos;
    const std::size_t size = partial_ - after;
    partial_ = after;
    if (size > max_reply_bytes_) too_large();
    return std::move(*owned);
  }

  // Bytes received for the reply in progress (and any after it).
  [[nodiscard]] std::size_t buffered() const noexcept { return partial_; }

  // What the last exception of feed() or next() was about, without the category's message.
  [[nodiscard]] const std::string& last_error() const noexcept { return last_error_; }

 private:
  struct reader_deleter {
    void operator()(redisReader* r) const noexcept { redisReaderFree(r); }
  };

  [[noreturn]] void too_large() {
    last_error_ = "a reply takes more than " + std::to_string(max_reply_bytes_) + " bytes (max_reply_bytes)";
    throw boost::system::system_error(connection_error::reply_too_large, last_error_);
  }

  [[noreturn]] void fail() {
    last_error_ = problem_.empty() ? std::string(reader_->errstr) : problem_;
    throw boost::system::system_error(connection_error::protocol_error, last_error_);
  }

  // hiredis's object functions, building `reply` values. A task's `obj` is the reply it made:
  // the root is allocated on its own; an element is placed in its parent's `elements` and is
  // pointed to there. Pointers hiredis keeps stay valid: it keeps only the chain of unfinished
  // arrays from the root, and an array gets elements appended only while it is the innermost
  // unfinished one, so no array on that chain grows (and moves its elements) while a pointer into
  // it is kept. hiredis frees only the root, through free_object.
  static void* place(const redisReadTask* task, reply&& value) noexcept {
    try {
      if (task->parent == nullptr) return new reply(std::move(value));
      auto* parent = static_cast<reply*>(task->parent->obj);
      parent->elements.push_back(std::move(value));
      return &parent->elements.back();
    } catch (...) {
      return nullptr;  // hiredis reports "Out of memory"
    }
  }

  static void* create_string(const redisReadTask* task, char* str, std::size_t len) {
    reply r;
    r.kind = task->type == REDIS_REPLY_ERROR    ? reply_kind::error
             : task->type == REDIS_REPLY_STATUS ? reply_kind::status
                                                : reply_kind::string;
    try {
      r.text.assign(str, len);
    } catch (...) {
      return nullptr;
    }
    return place(task, std::move(r));
  }

  static void* create_array(const redisReadTask* task, int elements) {
    if (elements < 0) {
      // hiredis turns "*-1" into nil, and 0.14 refuses counts below -1 or above INT_MAX itself;
      // this guards a version that would pass one on.
      if (auto* self = static_cast<reply_reader*>(task->privdata)) {
        self->problem_ = "an array reply with a negative element count (" + std::to_string(elements) + ")";
      }
      return nullptr;
    }
    reply r;
    r.kind = reply_kind::array;
    try {
      // Grown as the elements arrive: a huge announced count costs nothing until its bytes do,
      // and those are bounded by max_reply_bytes.
      r.elements.reserve(static_cast<std::size_t>(elements < 64 ? elements : 64));
    } catch (...) {
      return nullptr;
    }
    return place(task, std::move(r));
  }

  static void* create_integer(const redisReadTask* task, long long value) {
    reply r;
    r.kind = reply_kind::integer;
    r.integer = value;
    return place(task, std::move(r));
  }

  static void* create_nil(const redisReadTask* task) { return place(task, reply{}); }

  static void free_object(void* obj) { delete static_cast<reply*>(obj); }

  static inline redisReplyObjectFunctions functions{&create_string, &create_array, &create_integer, &create_nil,
                                                    &free_object};

  std::unique_ptr<redisReader, reader_deleter> reader_;
  std::size_t max_reply_bytes_;
  std::size_t partial_ = 0;  // bytes fed since the last complete reply ended
  std::string problem_;      // set by the object functions when they refuse a reply
  std::string last_error_;
};

}  // namespace aurora::redis::detail
