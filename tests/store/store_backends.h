// Test backends for the Store conformance suite: SQLite files, PostgreSQL schemas (or
// databases) on the ctest run's server (tests/support/pg.h), and PGlite (pgvector) when
// configured. The SQL of the tests themselves goes through tests/support/sql.h.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "store/postgres/postgres_store.h"
#include "store/store.h"

namespace lens::store::test {

// What a test may vary when it opens a store on the backend's database.
struct OpenOptions {
  AccessMode access = AccessMode::read_write;
  bool wait_for_writer = true;  // SQLite
  bool source_indexes = false;  // init's source indexes
  bool notify_trigger = true;   // PostgreSQL: init's NOTIFY trigger (the --follow tests use it)
  std::string worker_id = "test-worker";
  std::chrono::seconds lease{300};
  bool use_claims = false;
  bool hnsw_index = false;
  int vector_dimensions = 0;  // 0: the backend's default (4 on PGlite, where pgvector is the point)
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual bool is_postgres() const = 0;
  // A new Store on this test's database (a new connection each time).
  virtual util::Result<std::unique_ptr<Store>> open(const OpenOptions& options) = 0;
  // Runs SQL on a separate admin connection; fails the test on error.
  virtual void exec(const std::string& sql) = 0;
  // First column of the first row as text ("" for NULL or no row).
  virtual std::string scalar(const std::string& sql) = 0;
  // The stored vector of one row, read back exactly.
  virtual std::vector<float> read_embedding(const std::string& provider, const std::string& model,
                                            const std::string& user_message_id) = 0;
  // A conninfo for this test's database (PostgreSQL only).
  virtual std::string conninfo() const { return {}; }
  // The SQLite file (SQLite only).
  virtual std::string path() const { return {}; }
};

// An id in uuid form from a number (any text id works in SQLite; PostgreSQL wants uuids).
std::string uid(int n);
// Fixed-width ISO-8601 UTC with microseconds: sorts as text (SQLite) and as time (PostgreSQL).
std::string at(int seconds, int micros = 0);

// A test on the backend named by its parameter: backend_ on a database of its own, and
// store_ opened there and migrated.
class BackendTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override;
  // A new Store on the test's database; fails the test (and is null) when it cannot open.
  std::unique_ptr<Store> open(const OpenOptions& o = {});

  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Store> store_;
};

// name: "sqlite", "postgres" or "pglite". own_database: on PostgreSQL, a database of the
// test's own instead of a schema (what is per database, LISTEN/NOTIFY channels, is then
// the test's alone). source_schema: the Lens source tables (tests/support/source_schema.h)
// are created first, as a Lens database has them; false: an empty database (SQLite: no
// file at all).
std::unique_ptr<Backend> make_backend(const std::string& name, bool own_database = false,
                                      bool source_schema = true);

// Backends this run can use: sqlite and postgres always (postgres fails loudly when no
// server can be started); pglite when LENS_TEST_PGLITE_PORT_FILE names a running one.
std::vector<std::string> available_backends(bool include_sqlite, bool include_postgres, bool include_pglite);

}  // namespace lens::store::test
