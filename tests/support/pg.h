// PostgreSQL for tests: throwaway servers of scripts/pg-test-server.sh, the one server a
// ctest run shares, and a schema or database of a test's own on it.
#pragma once

#include <memory>
#include <string>

namespace lens::test {

// `base` (a libpq URL or key=value string) with one more connection parameter; the
// value is percent-encoded in a URL and quoted in a key=value string. A parameter given
// twice takes the later value, so this also overrides (dbname, options).
std::string with_pg_option(const std::string& base, const std::string& key, const std::string& value);

// A PostgreSQL server: one this object started (and stops when it goes), or one that
// was running already (left alone).
class PgServer {
 public:
  // Starts a throwaway server with scripts/pg-test-server.sh, its state in `state_file`.
  // durable: synchronous_commit on, so a crash-restart keeps every acknowledged commit
  // (the default is off, for speed). ok() says whether it started.
  static std::unique_ptr<PgServer> start(const std::string& state_file, bool durable = false);
  // The server of this ctest run (its state file in LENS_TEST_PG_STATE, or a URL in
  // LENS_TEST_PG_URL); without either, one started for this process and stopped at its
  // exit. Never skipped: check ok().
  static PgServer& shared();

  ~PgServer();
  PgServer(const PgServer&) = delete;
  PgServer& operator=(const PgServer&) = delete;

  [[nodiscard]] bool ok() const { return !url_.empty(); }
  [[nodiscard]] const std::string& error() const { return error_; }
  // A libpq URL as superuser postgres (scripts/pg-test-server.sh's), or LENS_TEST_PG_URL.
  [[nodiscard]] const std::string& url() const { return url_; }
  [[nodiscard]] int port() const { return port_; }
  // The server's folder (data/ inside), "" when not ours.
  [[nodiscard]] const std::string& dir() const { return dir_; }

  // Crash-stops the server (immediate), keeps it down `down_seconds`, starts it again.
  bool restart(int down_seconds);
  // Switches 127.0.0.1 to scram-sha-256 password authentication and reloads.
  bool require_passwords();

 private:
  PgServer() = default;
  void read_state();

  std::string state_file_, url_, dir_, error_;
  int port_ = 0;
  bool owned_ = false;
};

// A schema (kind "schema") or database (kind "database") of a test's own, dropped with
// everything in it when this goes. A schema is cheap; a database also separates what is
// per database (LISTEN/NOTIFY channels).
class PgScratch {
 public:
  enum class Kind { schema, database };
  PgScratch(const PgServer& server, const std::string& prefix, Kind kind = Kind::schema);
  ~PgScratch();
  PgScratch(const PgScratch&) = delete;
  PgScratch& operator=(const PgScratch&) = delete;

  [[nodiscard]] bool ok() const { return error_.empty(); }
  [[nodiscard]] const std::string& error() const { return error_; }
  [[nodiscard]] const std::string& name() const { return name_; }
  // The server's URL made to land in this schema (search_path) or database.
  [[nodiscard]] const std::string& url() const { return url_; }

 private:
  std::string server_url_, name_, url_, error_;
  Kind kind_;
};

}  // namespace lens::test
