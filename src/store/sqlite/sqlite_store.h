// SQLite implementation of Store: the embedded default (`sqlite:PATH`, `lens.db`).
#pragma once

#include <memory>
#include <string>

#include "core/source_mapping.h"
#include "store/store.h"

namespace lens::store {

struct SqliteOptions {
  std::string path;
  AccessMode access = AccessMode::read_write;
  // read_write and create hold the file's writer lock (`<path>.lens-embed.lock`,
  // store/sqlite/writer_lock.h) while the store lives. When another process holds it:
  // true waits for it (one log line names the holder), false fails at once (--no-wait).
  bool wait_for_writer = true;
  // `init`: migrate() also creates the two indexes the pending query needs on `messages`
  // when they are missing. Never for `run`.
  bool source_indexes = false;
  // [source] and [output]: which relation and columns hold the messages (checked against the
  // catalog when the store opens: a missing one is configuration naming it). SQLite keeps
  // lens-embed's tables in the main database ([output] schema "" or "main").
  core::SourceMapping mapping;
};

// Opens the SQLite database at `options.path` in WAL mode (read_only: as it is).
// read_only: creates no file, takes no lock, runs no DDL, and checks at once that the
// source table and a current lens-embed schema are there. read_write: the file must exist.
// create: a missing file is created.
// On failure: configuration when the file does not exist (read_only, read_write: the
// message names `lens-embed init --create`), when (read_only) the source table or
// lens-embed's tables are missing or not current, or when the lock file cannot be
// created; transient when another run holds the writer lock and wait_for_writer is false
// (naming its pid and host); otherwise the classified error with the path and SQLite's
// message.
[[nodiscard]] util::Result<std::unique_ptr<Store>> open_sqlite_store(const SqliteOptions& options);

// open_sqlite_store with `path`, `access` and the other options at their defaults.
[[nodiscard]] util::Result<std::unique_ptr<Store>> open_sqlite_store(const std::string& path,
                                                                     AccessMode access);

}  // namespace lens::store
