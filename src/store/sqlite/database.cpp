// sqlite3 behind database.h: the connection, its settings, statements and errors.
#include "store/sqlite/database.h"

#include <sqlite3.h>

#include <fmt/core.h>

namespace lens::store::sqlite {

using util::ErrorCode;
using util::fail;
using util::Result;
using util::Status;

// Busy, locked and I/O hiccups are worth calling again; a refused row is the row's fault;
// a file or schema that is not what it must be needs someone to fix the setup; the rest
// will fail again.
ErrorCode classify(int rc, std::string_view message) {
  switch (rc & 0xFF) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_FULL:
      return ErrorCode::transient;
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_TOOBIG:
      return ErrorCode::bad_input;
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
    case SQLITE_NOTADB:
      return ErrorCode::configuration;
    case SQLITE_CANTOPEN:
      return ErrorCode::not_found;
    case SQLITE_ERROR:
      // SQLite has no finer code for these: its words decide, as for libpq's connect errors.
      if (message.find("no such table") != std::string_view::npos ||
          message.find("no such column") != std::string_view::npos ||
          message.find("has no column named") != std::string_view::npos)
        return ErrorCode::configuration;
      return ErrorCode::permanent;
    default:
      return ErrorCode::permanent;
  }
}

// ---- Statement ---------------------------------------------------------------------------

Statement::~Statement() {
  sqlite3_finalize(stmt_);
}

Status Statement::prepare(const Database& db, const std::string& sql) {
  sqlite3_finalize(stmt_);
  stmt_ = nullptr;
  db_ = &db;
  const int rc = sqlite3_prepare_v3(db.db_, sql.c_str(), static_cast<int>(sql.size()),
                                    SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr);
  if (rc != SQLITE_OK) {
    const std::string message = sqlite3_errmsg(db.db_);
    prepare_error_ = util::Error{classify(rc, message),
                                 fmt::format("sqlite {}: cannot prepare statement: {}", db.path_, message)};
    return std::unexpected(*prepare_error_);
  }
  prepare_error_.reset();
  return {};
}

void Statement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}
void Statement::bind(int i, std::string_view text) {
  sqlite3_bind_text(stmt_, i, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
}
void Statement::bind(int i, const std::optional<std::string>& text) {
  if (text)
    bind(i, std::string_view(*text));
  else
    sqlite3_bind_null(stmt_, i);
}
void Statement::bind(int i, std::int64_t v) {
  sqlite3_bind_int64(stmt_, i, v);
}
void Statement::bind_blob(int i, const void* data, std::size_t size) {
  sqlite3_bind_blob64(stmt_, i, data, size, SQLITE_STATIC);
}

Result<bool> Statement::step(std::string_view what) {
  if (!stmt_ && prepare_error_) return std::unexpected(*prepare_error_);
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return std::unexpected(db_->error(what, rc));
}

Status Statement::one_row(std::string_view what) {
  if (!stmt_ && prepare_error_) return std::unexpected(*prepare_error_);
  const int rc = sqlite3_step(stmt_);
  if (rc != SQLITE_ROW) return std::unexpected(db_->error(what, rc));
  return {};
}

Status Statement::run(std::string_view what) {
  if (!stmt_ && prepare_error_) return std::unexpected(*prepare_error_);
  const int rc = sqlite3_step(stmt_);
  sqlite3_reset(stmt_);
  if (rc != SQLITE_DONE) return std::unexpected(db_->error(what, rc));
  return {};
}

bool Statement::is_null(int col) const {
  return sqlite3_column_type(stmt_, col) == SQLITE_NULL;
}
std::string Statement::text(int col) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
  return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col))) : std::string();
}
std::optional<std::string> Statement::optional_text(int col) const {
  if (is_null(col)) return std::nullopt;
  return text(col);
}
std::int64_t Statement::integer(int col) const {
  return sqlite3_column_int64(stmt_, col);
}
double Statement::real(int col) const {
  return sqlite3_column_double(stmt_, col);
}
std::span<const std::uint8_t> Statement::blob(int col) const {
  const auto* p = static_cast<const std::uint8_t*>(sqlite3_column_blob(stmt_, col));
  return {p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col))};
}

// ---- Database ----------------------------------------------------------------------------

Result<std::unique_ptr<Database>> Database::open(const std::string& path, Mode mode) {
  sqlite3* db = nullptr;
  int flags = SQLITE_OPEN_NOMUTEX;
  switch (mode) {
    // Opened for writing but query_only: a read-only connection to a WAL file would leave
    // -wal and -shm files behind that were not there before; this one, when it closes
    // last, removes them. A write-protected file is opened read-only by SQLite anyway.
    case Mode::read_only:
    case Mode::read_write:
      flags |= SQLITE_OPEN_READWRITE;
      break;
    case Mode::create:
      flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
      break;
  }
  const int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close_v2(db);
    return fail(classify(rc, message), fmt::format("sqlite: cannot open {}: {}", path, message));
  }
  // Before the pragmas: journal_mode=WAL meets the lock of a closing writer's checkpoint.
  sqlite3_busy_timeout(db, 30'000);
  std::unique_ptr<Database> out(new Database(db, path));
  if (mode == Mode::read_only) {
    if (auto s = out->exec("PRAGMA query_only = ON"); !s) return std::unexpected(s.error());
  } else {
    // WAL: readers and the writer do not block each other. synchronous=NORMAL keeps
    // every commit safe against a process crash (kill -9); only an OS crash may lose
    // the last commits, which the idempotent redo then restores.
    for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL",
                               "PRAGMA foreign_keys=ON", "PRAGMA temp_store=MEMORY",
                               // A bounded 64 MiB page cache and checkpoints every ~40 MiB
                               // of WAL. No mmap: mapped pages would count in RSS and grow
                               // with the database.
                               "PRAGMA cache_size=-65536", "PRAGMA wal_autocheckpoint=10000"}) {
      if (auto s = out->exec(pragma); !s) return std::unexpected(s.error());
    }
  }
  return out;
}

Database::~Database() {
  statements_.clear();
  sqlite3_close_v2(db_);
}

Status Database::exec(const std::string& sql) {
  char* err = nullptr;
  const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
  if (rc == SQLITE_OK) return {};
  std::string message = err ? err : sqlite3_errmsg(db_);
  sqlite3_free(err);
  return fail(classify(rc, message), fmt::format("sqlite {}: {}", path_, message));
}

Statement& Database::cached(const std::string& key, const std::string& sql) {
  auto& slot = statements_[key];
  if (!slot) slot = std::make_unique<Statement>();
  // A failed prepare is reported by the statement's first step (see prepare()).
  if (!slot->prepared()) (void)slot->prepare(*this, sql);
  return *slot;
}

Result<std::int64_t> Database::scalar_int(const std::string& sql) {
  Statement q;
  if (auto s = q.prepare(*this, sql); !s) return std::unexpected(s.error());
  if (auto s = q.one_row("query"); !s) return std::unexpected(s.error());
  return q.integer(0);
}

std::int64_t Database::last_insert_rowid() const {
  return sqlite3_last_insert_rowid(db_);
}

util::Error Database::error(std::string_view what, int rc) const {
  const std::string message = sqlite3_errmsg(db_);
  return util::Error{classify(rc, message), fmt::format("sqlite {}: {}: {}", path_, what, message)};
}

}  // namespace lens::store::sqlite
