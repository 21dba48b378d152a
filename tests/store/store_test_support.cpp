// Test backends: SQLite temp files, one PostgreSQL schema per test (server from the ctest
// fixture, or started here with scripts/pg-test-server.sh), PGlite for pgvector.
#include "store_test_support.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <unistd.h>

#include <fmt/core.h>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>

#include "../fixtures/lens_source_schema.h"
#include "store/sqlite/sqlite_store.h"

namespace lens::store::test {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string unique_suffix() {
  static std::atomic<int> counter{0};
  std::random_device rd;
  return fmt::format("{}_{}_{:x}", getpid(), counter++, rd() & 0xFFFFF);
}

// ---- SQLite -------------------------------------------------------------------------

class SqliteBackend final : public Backend {
 public:
  explicit SqliteBackend(bool source_schema) {
    path_ = (std::filesystem::temp_directory_path() / fmt::format("lens_store_test_{}.db", unique_suffix()))
                .string();
    if (source_schema) exec(test_fixtures::k_sqlite_source_schema);
  }
  ~SqliteBackend() override {
    if (db_) sqlite3_close_v2(db_);
    for (const char* ext : {"", "-wal", "-shm", ".lens-embed.lock"})
      std::remove((path_ + ext).c_str());
  }
  std::string name() const override { return "sqlite"; }
  bool is_postgres() const override { return false; }
  std::string path() const override { return path_; }
  util::Result<std::unique_ptr<Store>> open(const OpenOptions& o) override {
    SqliteOptions options;
    options.path = path_;
    options.access = o.access;
    options.wait_for_writer = o.wait_for_writer;
    options.source_indexes = o.source_indexes;
    return open_sqlite_store(options);
  }
  void exec(const std::string& sql) override {
    ensure_db();
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      ADD_FAILURE() << "sqlite exec failed: " << (err ? err : "?") << "\n" << sql;
      sqlite3_free(err);
    }
  }
  std::string scalar(const std::string& sql) override {
    ensure_db();
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << "sqlite prepare failed: " << sqlite3_errmsg(db_) << "\n" << sql;
      return {};
    }
    std::string out;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
      out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return out;
  }
  std::vector<float> read_embedding(const std::string& provider, const std::string& model,
                                    const std::string& id) override {
    ensure_db();
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db_,
                       "SELECT embedding FROM message_embeddings WHERE provider = ?1 AND model = ?2 AND "
                       "user_message_id = ?3",
                       -1, &st, nullptr);
    sqlite3_bind_text(st, 1, provider.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, model.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, id.c_str(), -1, SQLITE_TRANSIENT);
    std::vector<float> out;
    if (sqlite3_step(st) == SQLITE_ROW) {
      const auto n = static_cast<std::size_t>(sqlite3_column_bytes(st, 0));
      out.resize(n / sizeof(float));
      std::memcpy(out.data(), sqlite3_column_blob(st, 0), out.size() * sizeof(float));
    }
    sqlite3_finalize(st);
    return out;
  }

 private:
  void ensure_db() {
    if (!db_) {
      sqlite3_open_v2(path_.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
      sqlite3_busy_timeout(db_, 10'000);
      sqlite3_exec(db_, "PRAGMA foreign_keys=ON", nullptr, nullptr, nullptr);
    }
  }
  std::string path_;
  sqlite3* db_ = nullptr;
};

// ---- PostgreSQL ---------------------------------------------------------------------

// The server: from the ctest fixture (LENS_TEST_PG_STATE or LENS_TEST_PG_URL), else one
// started for this process and stopped at exit. Never skipped: no server is a failure.
class PgServer {
 public:
  static PgServer& instance() {
    static PgServer server;
    return server;
  }
  // key=value conninfo without dbname-specific options, or an error message.
  const std::string& base() {
    std::lock_guard lock(mutex_);
    if (!base_.empty() || !error_.empty()) return base_;
    if (const char* url = std::getenv("LENS_TEST_PG_URL"); url && *url) {
      base_ = url;
      return base_;
    }
    std::string state = std::getenv("LENS_TEST_PG_STATE") ? std::getenv("LENS_TEST_PG_STATE") : "";
    if (state.empty() || !std::filesystem::exists(state)) {
      own_state_ =
          (std::filesystem::temp_directory_path() / fmt::format("lens-pg-{}.env", getpid())).string();
      const std::string cmd =
          fmt::format("{}/scripts/pg-test-server.sh start {} >/dev/null", LENS_SOURCE_DIR, own_state_);
      if (std::system(cmd.c_str()) != 0) {
        error_ = "cannot start PostgreSQL with scripts/pg-test-server.sh (is postgresql-15 installed?)";
        return base_;
      }
      state = own_state_;
    }
    const std::string text = read_file(state);
    const auto at = text.find("PGTEST_PORT=");
    if (at == std::string::npos) {
      error_ = "no PGTEST_PORT in " + state;
      return base_;
    }
    const std::string port = text.substr(at + 12, text.find('\n', at) - at - 12);
    base_ = fmt::format("host=127.0.0.1 port={} user=postgres dbname=postgres", port);
    return base_;
  }
  const std::string& error() const { return error_; }
  ~PgServer() {
    if (!own_state_.empty()) {
      const std::string cmd =
          fmt::format("{}/scripts/pg-test-server.sh stop {} >/dev/null 2>&1", LENS_SOURCE_DIR, own_state_);
      (void)std::system(cmd.c_str());
    }
  }

 private:
  std::mutex mutex_;
  std::string base_, error_, own_state_;
};

class PgConn {
 public:
  explicit PgConn(const std::string& conninfo) : conn_(PQconnectdb(conninfo.c_str())) {
    PQsetNoticeProcessor(
        conn_, [](void*, const char*) {}, nullptr);
  }
  ~PgConn() { PQfinish(conn_); }
  bool ok() const { return PQstatus(conn_) == CONNECTION_OK; }
  std::string error() const { return PQerrorMessage(conn_); }
  PGconn* get() const { return conn_; }

 private:
  PGconn* conn_;
};

class PostgresBackend : public Backend {
 public:
  // pglite: one shared backend; isolation by dropping our tables instead of a schema.
  PostgresBackend(std::string base, bool pglite, bool source_schema) : pglite_(pglite) {
    app_ = fmt::format("lens_test_{}", unique_suffix());
    if (pglite_) {
      conninfo_ = base + " sslmode=disable";
      admin_ = std::make_unique<PgConn>(conninfo_);
      if (!admin_->ok()) {
        ADD_FAILURE() << "cannot connect to PGlite: " << admin_->error();
        return;
      }
      exec(
          "DROP TABLE IF EXISTS message_embeddings, embedding_failures, embedding_runs, embedding_claims, "
          "messages, conversations, lens_embed_schema_migrations CASCADE");
    } else {
      schema_ = "t_" + app_.substr(10);
      PgConn boot(base);
      if (!boot.ok()) {
        ADD_FAILURE() << "cannot connect to the test PostgreSQL: " << boot.error();
        return;
      }
      PQclear(PQexec(boot.get(), fmt::format("CREATE SCHEMA {}", schema_).c_str()));
      conninfo_ = fmt::format("{} options='-csearch_path={}'", base, schema_);
      admin_ = std::make_unique<PgConn>(conninfo_);
    }
    if (source_schema && admin_ && admin_->ok()) exec(test_fixtures::k_postgres_source_schema);
  }
  ~PostgresBackend() override {
    if (!pglite_ && admin_ && admin_->ok()) {
      PQclear(PQexec(admin_->get(), fmt::format("DROP SCHEMA {} CASCADE", schema_).c_str()));
    }
  }
  std::string name() const override { return pglite_ ? "pglite" : "postgres"; }
  bool is_postgres() const override { return true; }
  std::string conninfo() const override { return conninfo_ + " application_name=" + app_; }
  const std::string& application_name() const { return app_; }

  util::Result<std::unique_ptr<Store>> open(const OpenOptions& o) override {
    PostgresOptions options;
    options.conninfo = conninfo();
    options.worker_id = o.worker_id;
    options.lease = o.lease;
    options.use_claims = o.use_claims;
    options.hnsw_index = o.hnsw_index;
    options.use_copy = !pglite_;  // PGlite hangs on COPY FROM STDIN
    options.vector_dimensions = o.vector_dimensions ? o.vector_dimensions : (pglite_ ? 4 : 0);
    options.access = o.access;
    options.notify_trigger = o.notify_trigger;
    options.source_indexes = o.source_indexes;
    return open_postgres_store(options);
  }
  void exec(const std::string& sql) override {
    PGresult* r = PQexec(admin_->get(), sql.c_str());
    const auto st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
      ADD_FAILURE() << "postgres: " << PQresultErrorMessage(r) << "\n" << sql;
    PQclear(r);
  }
  std::string scalar(const std::string& sql) override {
    PGresult* r = PQexec(admin_->get(), sql.c_str());
    std::string out;
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
      ADD_FAILURE() << "postgres: " << PQresultErrorMessage(r) << "\n" << sql;
    else if (PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
      out = PQgetvalue(r, 0, 0);
    PQclear(r);
    return out;
  }
  std::vector<float> read_embedding(const std::string& provider, const std::string& model,
                                    const std::string& id) override {
    // ::real[] text output is shortest-exact (extra_float_digits >= 1), so strtof gives
    // back the very float that was written; pgvector types print the same way.
    std::string text = scalar(fmt::format(
        "SELECT embedding::real[]::text FROM message_embeddings WHERE provider = '{}' AND model = '{}' AND "
        "user_message_id = '{}'",
        provider, model, id));
    std::vector<float> out;
    if (text.size() < 2) return out;
    text = text.substr(1, text.size() - 2);
    std::stringstream ss(text);
    std::string item;
    while (std::getline(ss, item, ','))
      out.push_back(std::strtof(item.c_str(), nullptr));
    return out;
  }

 private:
  bool pglite_;
  std::string schema_, conninfo_, app_;
  std::unique_ptr<PgConn> admin_;
};

std::string pglite_base() {
  const char* file = std::getenv("LENS_TEST_PGLITE_PORT_FILE");
  if (!file || !*file) return {};
  std::string port = read_file(file);
  while (!port.empty() && (port.back() == '\n' || port.back() == ' '))
    port.pop_back();
  if (port.empty()) return {};
  return fmt::format("host=127.0.0.1 port={} user=postgres dbname=postgres", port);
}

}  // namespace

std::unique_ptr<Backend> make_backend(const std::string& name, bool source_schema) {
  if (name == "sqlite") return std::make_unique<SqliteBackend>(source_schema);
  if (name == "pglite") {
    if (pglite_base().empty()) {
      ADD_FAILURE()
          << "PGlite: no port in $LENS_TEST_PGLITE_PORT_FILE (tests/store/pglite/start.sh start FILE)";
      return nullptr;
    }
    return std::make_unique<PostgresBackend>(pglite_base(), true, source_schema);
  }
  auto& server = PgServer::instance();
  const std::string base = server.base();
  if (base.empty()) {
    ADD_FAILURE() << "PostgreSQL: " << server.error();
    return nullptr;
  }
  return std::make_unique<PostgresBackend>(base, false, source_schema);
}

std::vector<std::string> available_backends(bool include_sqlite, bool include_postgres, bool include_pglite) {
  std::vector<std::string> out;
  if (include_sqlite) out.push_back("sqlite");
  if (include_postgres) out.push_back("postgres");
  // Asked for (the variable is set) but not running: still listed, so the tests fail
  // loudly instead of a filter that matches nothing passing silently.
  const char* pglite = std::getenv("LENS_TEST_PGLITE_PORT_FILE");
  if (include_pglite && pglite && *pglite) out.push_back("pglite");
  return out;
}

}  // namespace lens::store::test
