// PostgreSQL for tests (see pg.h).
#include "support/pg.h"

#include <libpq-fe.h>
#include <unistd.h>

#include <fmt/core.h>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include "support/paths.h"
#include "support/process.h"

namespace lens::test {
namespace {

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'')
      q += "'\\''";
    else
      q += c;
  }
  return q + "'";
}

std::string state_value(const std::string& state, const std::string& key) {
  const auto at = state.find(key + "=");
  if (at == std::string::npos) return {};
  const auto end = state.find('\n', at);
  return state.substr(at + key.size() + 1, end - at - key.size() - 1);
}

bool is_url(const std::string& s) {
  return s.starts_with("postgres://") || s.starts_with("postgresql://");
}

std::string script(const std::string& args) {
  return shell_quote(pg_test_server_script()) + " " + args;
}

// Runs one statement on `url`; "" or the error.
std::string admin_exec(const std::string& url, const std::string& sql) {
  PGconn* c = PQconnectdb(url.c_str());
  std::string error;
  if (PQstatus(c) != CONNECTION_OK) {
    error = PQerrorMessage(c);
  } else {
    PQsetNoticeProcessor(
        c, [](void*, const char*) {}, nullptr);
    PGresult* r = PQexec(c, sql.c_str());
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
      error = PQresultErrorMessage(r);
    PQclear(r);
  }
  PQfinish(c);
  return error;
}

}  // namespace

std::string with_pg_option(const std::string& base, const std::string& key, const std::string& value) {
  if (is_url(base)) {
    std::string encoded;
    for (unsigned char c : value) {
      if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~')
        encoded += static_cast<char>(c);
      else
        encoded += fmt::format("%{:02X}", c);
    }
    return base + (base.find('?') == std::string::npos ? "?" : "&") + key + "=" + encoded;
  }
  if (!value.empty() && value.find_first_of(" '\\") == std::string::npos)
    return base + " " + key + "=" + value;
  std::string quoted;
  for (char c : value) {
    if (c == '\'' || c == '\\') quoted += '\\';
    quoted += c;
  }
  return base + " " + key + "='" + quoted + "'";
}

// ---------------------------------------------------------------- servers

std::unique_ptr<PgServer> PgServer::start(const std::string& state_file, bool durable) {
  auto s = std::unique_ptr<PgServer>(new PgServer);
  s->state_file_ = state_file;
  const std::string cmd =
      script("start " + shell_quote(state_file) + (durable ? " --durable" : "")) + " >/dev/null";
  if (std::system(cmd.c_str()) != 0) {
    s->error_ = "cannot start PostgreSQL with scripts/pg-test-server.sh (is postgresql-15 installed?)";
    return s;
  }
  s->owned_ = true;
  s->read_state();
  return s;
}

PgServer& PgServer::shared() {
  static std::unique_ptr<PgServer> server = [] {
    if (const char* url = std::getenv("LENS_TEST_PG_URL"); url && *url) {
      auto s = std::unique_ptr<PgServer>(new PgServer);
      s->url_ = url;
      return s;
    }
    const char* state = std::getenv("LENS_TEST_PG_STATE");
    if (state && *state && std::filesystem::exists(state)) {
      auto s = std::unique_ptr<PgServer>(new PgServer);
      s->state_file_ = state;
      s->read_state();
      return s;
    }
    const char* tmp = std::getenv("TMPDIR");
    return start(fmt::format("{}/lens-pg-{}.env", tmp && *tmp ? tmp : "/tmp", ::getpid()));
  }();
  return *server;
}

void PgServer::read_state() {
  const std::string state = slurp(state_file_);
  url_ = state_value(state, "PGTEST_URL");
  dir_ = state_value(state, "PGTEST_DIR");
  const std::string port = state_value(state, "PGTEST_PORT");
  port_ = port.empty() ? 0 : std::stoi(port);
  if (url_.empty()) error_ = "no PGTEST_URL in " + state_file_;
}

PgServer::~PgServer() {
  if (!owned_) return;
  const std::string cmd = script("stop " + shell_quote(state_file_)) + " >/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "tests/support: stopping PostgreSQL failed\n");
}

bool PgServer::restart(int down_seconds) {
  if (state_file_.empty()) return false;
  const std::string cmd =
      script("restart " + shell_quote(state_file_) + " " + std::to_string(down_seconds)) + " >/dev/null";
  return std::system(cmd.c_str()) == 0;
}

bool PgServer::require_passwords() {
  if (dir_.empty()) return false;
  // Local socket stays trusted (the tests' own superuser), TCP needs a password.
  std::ofstream(dir_ + "/data/pg_hba.conf", std::ios::trunc)
      << "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n";
  const std::string cmd = "chown postgres " + shell_quote(dir_ + "/data/pg_hba.conf") + " 2>/dev/null; " +
                          (::getuid() == 0 ? std::string("runuser -u postgres -- ") : std::string()) +
                          "/usr/lib/postgresql/15/bin/pg_ctl -D " + shell_quote(dir_ + "/data") +
                          " reload >/dev/null";
  return std::system(cmd.c_str()) == 0;
}

// ---------------------------------------------------------------- scratch schemas

PgScratch::PgScratch(const PgServer& server, const std::string& prefix, Kind kind)
    : server_url_(server.url()), kind_(kind) {
  static std::atomic<int> counter{0};
  // pid and counter keep this process's names apart; the random part keeps them apart
  // from another machine's on a shared LENS_TEST_PG_URL server.
  name_ = fmt::format("{}_{}_{}_{:x}", prefix, ::getpid(), counter++, std::random_device{}() & 0xFFFFF);
  if (!server.ok()) {
    error_ = "no PostgreSQL: " + server.error();
    return;
  }
  if (kind_ == Kind::schema) {
    error_ = admin_exec(server_url_, "CREATE SCHEMA " + name_);
    url_ = with_pg_option(server_url_, "options", "-csearch_path=" + name_);
  } else {
    error_ = admin_exec(server_url_, "CREATE DATABASE " + name_);
    url_ = with_pg_option(server_url_, "dbname", name_);
  }
}

PgScratch::~PgScratch() {
  if (!error_.empty()) return;
  // FORCE: a SIGKILLed lens-embed may leave a session the server has not reaped yet.
  (void)admin_exec(server_url_, kind_ == Kind::schema ? "DROP SCHEMA IF EXISTS " + name_ + " CASCADE"
                                                      : "DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
}

}  // namespace lens::test
