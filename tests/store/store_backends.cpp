// Test backends: SQLite temp files, one PostgreSQL schema (or database) per test on the
// ctest run's server, PGlite for pgvector. Servers, scratch schemas and the SQL client
// are tests/support's.
#include "store_backends.h"

#include <gtest/gtest.h>

#include <fmt/core.h>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "store/sqlite/sqlite_store.h"
#include "support/pg.h"
#include "support/process.h"
#include "support/source_schema.h"
#include "support/sql.h"

namespace lens::store::test {
namespace {

// The admin connection's SQL: failures fail the test.
class AdminSql {
 public:
  explicit AdminSql(const std::string& target) : db_(lens::test::Db::open(target)) {}
  void exec(const std::string& sql) {
    if (!db_) {
      ADD_FAILURE() << "no database connection\n" << sql;
      return;
    }
    if (const std::string e = db_->exec(sql); !e.empty()) ADD_FAILURE() << e << "\n" << sql;
  }
  std::string scalar(const std::string& sql) {
    auto rows = db_ ? db_->query(sql) : std::nullopt;
    if (!rows) {
      ADD_FAILURE() << (db_ ? db_->last_error() : "no database connection") << "\n" << sql;
      return {};
    }
    return rows->empty() || rows->front().empty() ? "" : rows->front().front().value_or("");
  }
  lens::test::Db* db() { return db_.get(); }

 private:
  std::unique_ptr<lens::test::Db> db_;
};

// ---- SQLite -------------------------------------------------------------------------

// The admin connection opens the file lazily: a backend without the source schema has no
// file until a test (or a store in create mode) makes one.
class SqliteBackend final : public Backend {
 public:
  explicit SqliteBackend(bool source_schema) : path_(dir_ / "store.db") {
    if (source_schema) exec(lens::test::k_sqlite_source_schema);
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
  void exec(const std::string& sql) override { admin().exec(sql); }
  std::string scalar(const std::string& sql) override { return admin().scalar(sql); }
  std::vector<float> read_embedding(const std::string& provider, const std::string& model,
                                    const std::string& id) override {
    // The stored bytes: the float32 values exactly as written.
    const std::string blob = scalar(
        fmt::format("SELECT embedding FROM message_embeddings WHERE provider = '{}' AND model = '{}' AND "
                    "user_message_id = '{}'",
                    provider, model, id));
    std::vector<float> out(blob.size() / sizeof(float));
    // No row: empty (memcpy from an empty vector's null data() is undefined, even for 0 bytes).
    if (!out.empty()) std::memcpy(out.data(), blob.data(), out.size() * sizeof(float));
    return out;
  }

 private:
  AdminSql& admin() {
    if (!sql_) {
      sql_ = std::make_unique<AdminSql>("sqlite:" + path_);
      sql_->exec("PRAGMA foreign_keys=ON");
    }
    return *sql_;
  }
  lens::test::TempDir dir_{"store_test"};
  std::string path_;
  std::unique_ptr<AdminSql> sql_;
};

// ---- PostgreSQL ---------------------------------------------------------------------

std::string unique_app_name() {
  static std::atomic<int> counter{0};
  return fmt::format("lens_test_{}_{}", ::getpid(), counter++);
}

class PostgresBackend : public Backend {
 public:
  // The ctest run's server: a schema (or database) of this test's own.
  PostgresBackend(bool own_database, bool source_schema)
      : scratch_(std::make_unique<lens::test::PgScratch>(
            lens::test::PgServer::shared(), "t",
            own_database ? lens::test::PgScratch::Kind::database : lens::test::PgScratch::Kind::schema)) {
    if (!scratch_->ok()) {
      ADD_FAILURE() << "PostgreSQL: " << scratch_->error();
      return;
    }
    conninfo_ = scratch_->url();
    sql_ = std::make_unique<AdminSql>(conninfo_);
    if (source_schema) exec(lens::test::k_postgres_source_schema);
  }
  // PGlite: one shared database; isolation by dropping our tables first.
  PostgresBackend(const std::string& pglite, bool source_schema) : pglite_(true) {
    conninfo_ = lens::test::with_pg_option(pglite, "sslmode", "disable");
    sql_ = std::make_unique<AdminSql>(conninfo_);
    exec(
        "DROP TABLE IF EXISTS message_embeddings, embedding_failures, embedding_runs, embedding_claims, "
        "messages, conversations, lens_embed_schema_migrations, lens_embed_input_definitions CASCADE");
    if (source_schema) exec(lens::test::k_postgres_source_schema);
  }
  ~PostgresBackend() override { sql_.reset(); }

  std::string name() const override { return pglite_ ? "pglite" : "postgres"; }
  bool is_postgres() const override { return true; }
  // Ends in application_name=NAME: the tests find their sessions by it.
  std::string conninfo() const override {
    return lens::test::with_pg_option(conninfo_, "application_name", app_);
  }

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
    if (sql_) sql_->exec(sql);
  }
  std::string scalar(const std::string& sql) override { return sql_ ? sql_->scalar(sql) : std::string(); }
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
  bool pglite_ = false;
  std::unique_ptr<lens::test::PgScratch> scratch_;
  std::string conninfo_;
  std::string app_ = unique_app_name();
  std::unique_ptr<AdminSql> sql_;
};

std::string pglite_base() {
  const char* file = std::getenv("LENS_TEST_PGLITE_PORT_FILE");
  if (!file || !*file) return {};
  std::string port = lens::test::slurp(file);
  while (!port.empty() && (port.back() == '\n' || port.back() == ' '))
    port.pop_back();
  if (port.empty()) return {};
  return fmt::format("host=127.0.0.1 port={} user=postgres dbname=postgres", port);
}

}  // namespace

std::string uid(int n) {
  return fmt::format("00000000-0000-4000-8000-{:012d}", n);
}

std::string at(int seconds, int micros) {
  return fmt::format("2024-01-01T{:02}:{:02}:{:02}.{:06}Z", seconds / 3600, (seconds / 60) % 60, seconds % 60,
                     micros);
}

void BackendTest::SetUp() {
  backend_ = make_backend(GetParam());
  ASSERT_TRUE(backend_);
  store_ = open();
  ASSERT_TRUE(store_);
  auto m = store_->migrate();
  ASSERT_TRUE(m) << m.error().message;
}

std::unique_ptr<Store> BackendTest::open(const OpenOptions& o) {
  auto s = backend_->open(o);
  EXPECT_TRUE(s) << (s ? "" : s.error().message);
  return s ? std::move(*s) : nullptr;
}

std::unique_ptr<Backend> make_backend(const std::string& name, bool own_database, bool source_schema) {
  if (name == "sqlite") return std::make_unique<SqliteBackend>(source_schema);
  if (name == "pglite") {
    if (pglite_base().empty()) {
      ADD_FAILURE()
          << "PGlite: no port in $LENS_TEST_PGLITE_PORT_FILE (tests/store/pglite/start.sh start FILE)";
      return nullptr;
    }
    return std::make_unique<PostgresBackend>(pglite_base(), source_schema);
  }
  auto& server = lens::test::PgServer::shared();
  if (!server.ok()) {
    ADD_FAILURE() << "PostgreSQL: " << server.error();
    return nullptr;
  }
  return std::make_unique<PostgresBackend>(own_database, source_schema);
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
