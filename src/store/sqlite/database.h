// The sqlite3 side of the SQLite store: one connection with its settings, prepared
// statements, and the one place that turns SQLite result codes into util::ErrorCode.
// Only database.cpp includes sqlite3.h; everything else in store/sqlite/ goes through
// this header.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

#include "util/result.h"

struct sqlite3;       // sqlite3.h's connection
struct sqlite3_stmt;  // sqlite3.h's prepared statement

namespace lens::store::sqlite {

// SQLITE_BUSY, SQLITE_LOCKED, SQLITE_IOERR, SQLITE_FULL: transient (calling again may
// succeed); SQLITE_CONSTRAINT, SQLITE_MISMATCH, SQLITE_TOOBIG: bad_input (the database
// refuses this one row: isolate it); SQLITE_READONLY, SQLITE_PERM, SQLITE_AUTH,
// SQLITE_NOTADB, and an error whose `message` says "no such table", "no such column" or
// "has no column named":
// configuration (the file or its schema is not what it must be); SQLITE_CANTOPEN:
// not_found; everything else: permanent.
[[nodiscard]] util::ErrorCode classify(int rc, std::string_view message = {});

class Database;

// One prepared statement. Parameters are numbered from 1, columns from 0; accessors
// read the current row. Not thread-safe (like its Database).
class Statement {
 public:
  Statement() = default;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  // On failure: the statement stays unprepared, and step(), one_row() and run() report
  // the same error.
  [[nodiscard]] util::Status prepare(const Database& db, const std::string& sql);
  [[nodiscard]] bool prepared() const { return stmt_ != nullptr; }

  // Back to the start, bindings cleared.
  void reset();
  void bind(int i, std::string_view text);
  void bind(int i, const std::optional<std::string>& text);  // NULL when empty
  void bind(int i, std::int64_t v);
  // The bytes must stay valid until the statement is reset or stepped to its end.
  void bind_blob(int i, const void* data, std::size_t size);

  // One step: true when a row is ready, false when the statement is done. On failure:
  // the classified error "sqlite PATH: WHAT: message".
  [[nodiscard]] util::Result<bool> step(std::string_view what);
  // One step that must produce a row (a count, a scalar). On failure, or when there is
  // no row: the classified error.
  [[nodiscard]] util::Status one_row(std::string_view what);
  // Steps to the end of a statement that returns no rows, then resets it (bindings
  // kept). On failure: as step().
  [[nodiscard]] util::Status run(std::string_view what);

  [[nodiscard]] bool is_null(int col) const;
  [[nodiscard]] std::string text(int col) const;
  [[nodiscard]] std::optional<std::string> optional_text(int col) const;
  [[nodiscard]] std::int64_t integer(int col) const;
  [[nodiscard]] double real(int col) const;
  // Valid until the next step or reset.
  [[nodiscard]] std::span<const std::uint8_t> blob(int col) const;

 private:
  const Database* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
  std::optional<util::Error> prepare_error_;
};

// One SQLite connection (sqlite3_open_v2 NOMUTEX): used by one thread at a time.
class Database {
 public:
  enum class Mode { read_only, read_write, create };

  // read_only: never writes (query_only), never creates the file, and leaves no -wal or
  // -shm file behind when it closes last. read_write: the file must exist;
  // create: creates it when missing. Both set the store's pragmas (WAL,
  // synchronous=NORMAL, foreign keys, bounded cache). Every mode waits up to 30 s on a
  // locked database. On failure: the classified error, with the path and SQLite's message.
  [[nodiscard]] static util::Result<std::unique_ptr<Database>> open(const std::string& path, Mode mode);
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;
  ~Database();  // finalizes the cached statements, closes

  [[nodiscard]] const std::string& path() const { return path_; }

  // Runs one or more statements without parameters. On failure: "sqlite PATH: message".
  [[nodiscard]] util::Status exec(const std::string& sql);

  // The statement prepared once under `key` for this connection's lifetime, reset by
  // the caller before use. A prepare failure (a missing table) shows at its first step,
  // and the next cached() call prepares it again.
  [[nodiscard]] Statement& cached(const std::string& key, const std::string& sql);

  // The first column of the first row of `sql` (no parameters).
  [[nodiscard]] util::Result<std::int64_t> scalar_int(const std::string& sql);

  [[nodiscard]] std::int64_t last_insert_rowid() const;

  // `rc` and the connection's last message as "sqlite PATH: WHAT: message".
  [[nodiscard]] util::Error error(std::string_view what, int rc) const;

 private:
  friend class Statement;
  Database(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}

  sqlite3* db_;
  std::string path_;
  std::unordered_map<std::string, std::unique_ptr<Statement>> statements_;
};

}  // namespace lens::store::sqlite
