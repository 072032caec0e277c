// aurora/sqlite.hpp: the durable database (CMake target aurora::sqlite, links SQLite 3).
#pragma once

#include <aurora/aurora.hpp>
#include <aurora/database.hpp>
#include <aurora/sqlite/durable_storage.hpp>
#include <aurora/sqlite/storage.hpp>

#include <chrono>

namespace aurora {

/// A database whose documents, collections and change log live in one SQLite file:
/// `aurora::DurableDatabase db{"/var/lib/app/aurora.db", options};`. It has every member of
/// `aurora::Database`, plus `id()`; `options.durability`, `options.history` and
/// `options.max_change_bytes` apply.
///
/// - Reopening the file restores every collection and document; sequences continue after the
///   last one and `id()` stays the same. The constructor throws `storage_error` when the file
///   cannot be opened (locked by another process, not an Aurora database, corrupt, ...).
/// - A write returns, and is published, only after its commit is durable. Concurrent writers
///   share one SQLite transaction and one fsync (group commit led by the writing threads).
/// - A write whose document holds a string that is not UTF-8, or whose change is more than
///   `options.max_change_bytes` of text, throws `invalid_document` before its commit: nothing
///   changes, and later writes go on.
/// - A storage failure throws `storage_error` from the write (and from the writes grouped with
///   it): memory is as it was, nothing is published, and every later write throws
///   `storage_error` until the file is reopened.
/// - Reads are served from memory and may see a write while its commit is being made durable
///   (before the write returns); `snapshot`, `watch` and `last_sequence` only show durable,
///   published commits.
/// - `Start::after(s)` reads the change log for events older than the in-memory history, then
///   goes on live without gap or duplicate.
using DurableDatabase = BasicDatabase<std::chrono::system_clock, sqlite::DurableStorage>;

}  // namespace aurora
