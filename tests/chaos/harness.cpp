// Test harness shared by the chaos, hostile-input and secrets tests (see harness.h).
#include "harness.h"

#include <fcntl.h>
#include <libpq-fe.h>
#include <spawn.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/core.h>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

extern char** environ;

namespace lens::harness {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> child_environment(const std::map<std::string, std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    const std::string_view v = *e;
    const std::string_view name = v.substr(0, v.find('='));
    if (name.starts_with("LENS_") || name.starts_with("POSTGRES_") || name == "DATABASE_URL" ||
        name.ends_with("_API_KEY") || name.ends_with("_BASE_URL") || name.starts_with("PG")) {
      continue;
    }
    if (extra.contains(std::string(name))) continue;
    env.emplace_back(v);
  }
  for (const auto& [k, v] : extra)
    env.push_back(k + "=" + v);
  return env;
}

pid_t spawn(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
            const std::string& out_path, const std::string& err_path, const std::string& cwd) {
  std::vector<std::string> args = argv, envs = child_environment(env);
  std::vector<char*> a, e;
  for (auto& s : args)
    a.push_back(s.data());
  a.push_back(nullptr);
  for (auto& s : envs)
    e.push_back(s.data());
  e.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (!cwd.empty()) posix_spawn_file_actions_addchdir_np(&fa, cwd.c_str());
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, a[0], &fa, nullptr, a.data(), e.data());
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

static int decode_status(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int wait_exit(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return decode_status(status);
}

std::optional<int> try_wait(pid_t pid) {
  int status = 0;
  const pid_t r = ::waitpid(pid, &status, WNOHANG);
  if (r == 0) return std::nullopt;
  if (r < 0) return -1;
  return decode_status(status);
}

Output run(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
           const std::string& dir) {
  static int counter = 0;
  const std::string out = fmt::format("{}/run{}.out", dir, counter),
                    err = fmt::format("{}/run{}.err", dir, counter);
  ++counter;
  Output o;
  const pid_t pid = spawn(argv, env, out, err, dir);
  if (pid < 0) return o;
  o.exit_code = wait_exit(pid);
  o.out = slurp(out);
  o.err = slurp(err);
  return o;
}

// ------------------------------------------------------------------ PostgreSQL server

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
}  // namespace

PgServer::PgServer(std::string script, std::string state_file)
    : script_(std::move(script)), state_file_(std::move(state_file)) {
  const std::string cmd = shell_quote(script_) + " start " + shell_quote(state_file_) + " >/dev/null";
  if (std::system(cmd.c_str()) != 0) return;
  const std::string state = slurp(state_file_);
  url_ = state_value(state, "PGTEST_URL");
  dir_ = state_value(state, "PGTEST_DIR");
  const std::string port = state_value(state, "PGTEST_PORT");
  port_ = port.empty() ? 0 : std::stoi(port);
}

PgServer::~PgServer() {
  if (url_.empty()) return;
  const std::string cmd = shell_quote(script_) + " stop " + shell_quote(state_file_) + " >/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "harness: stopping PostgreSQL failed\n");
}

bool PgServer::restart(int down_seconds) {
  const std::string cmd = shell_quote(script_) + " restart " + shell_quote(state_file_) + " " +
                          std::to_string(down_seconds) + " >/dev/null";
  return std::system(cmd.c_str()) == 0;
}

bool PgServer::require_passwords() {
  // Local socket stays trusted (the harness's own superuser), TCP needs a password.
  std::ofstream(dir_ + "/data/pg_hba.conf", std::ios::trunc)
      << "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n";
  const std::string cmd = "chown postgres " + shell_quote(dir_ + "/data/pg_hba.conf") + " 2>/dev/null; " +
                          (::getuid() == 0 ? std::string("runuser -u postgres -- ") : std::string()) +
                          "/usr/lib/postgresql/15/bin/pg_ctl -D " + shell_quote(dir_ + "/data") +
                          " reload >/dev/null";
  return std::system(cmd.c_str()) == 0;
}

// ------------------------------------------------------------------ SQL clients

namespace {

class SqliteDb final : public Db {
 public:
  explicit SqliteDb(sqlite3* db) : db_(db) { sqlite3_busy_timeout(db_, 30'000); }
  ~SqliteDb() override {
    sqlite3_finalize(insert_);
    sqlite3_close(db_);
  }
  bool is_postgres() const override { return false; }
  std::string exec(const std::string& sql) override {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) == SQLITE_OK) return {};
    std::string e = err ? err : "error";
    sqlite3_free(err);
    return e;
  }
  std::optional<std::string> scalar(const std::string& sql) override {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) return std::nullopt;
    std::optional<std::string> v;
    if (sqlite3_step(s) == SQLITE_ROW) {
      const auto* p = sqlite3_column_text(s, 0);
      v = p ? std::string(reinterpret_cast<const char*>(p),
                          static_cast<std::size_t>(sqlite3_column_bytes(s, 0)))
            : "";
    }
    sqlite3_finalize(s);
    return v;
  }
  std::string dump(const std::string& sql) override {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) return "<error>";
    std::string all;
    while (sqlite3_step(s) == SQLITE_ROW) {
      for (int i = 0; i < sqlite3_column_count(s); ++i) {
        if (const auto* p = sqlite3_column_blob(s, i))
          all.append(static_cast<const char*>(p), static_cast<std::size_t>(sqlite3_column_bytes(s, i)));
        all += '\n';
      }
    }
    sqlite3_finalize(s);
    return all;
  }
  std::string insert(const std::vector<Message>& messages) override {
    if (auto e = exec("BEGIN"); !e.empty()) return e;
    std::set<std::string> conversations;
    for (const auto& m : messages)
      conversations.insert(m.conversation_id);
    sqlite3_stmt* c = nullptr;
    sqlite3_prepare_v2(db_,
                       "INSERT OR IGNORE INTO conversations (id, user_id, created_at) VALUES (?1, 'u', "
                       "'2024-01-01T00:00:00.000Z')",
                       -1, &c, nullptr);
    for (const auto& id : conversations) {
      sqlite3_bind_text(c, 1, id.data(), static_cast<int>(id.size()), SQLITE_TRANSIENT);
      sqlite3_step(c);
      sqlite3_reset(c);
    }
    sqlite3_finalize(c);
    for (const auto& m : messages) {
      if (auto e = insert_one(m); !e.empty()) {
        (void)exec("ROLLBACK");
        return e;
      }
    }
    return exec("COMMIT");
  }
  std::string insert_one(const Message& m) override {
    if (!insert_) {
      if (sqlite3_prepare_v2(db_,
                             "INSERT INTO messages (id, conversation_id, role, content, created_at) VALUES "
                             "(?1, ?2, ?3, ?4, ?5)",
                             -1, &insert_, nullptr) != SQLITE_OK) {
        return sqlite3_errmsg(db_);
      }
    }
    (void)exec("INSERT OR IGNORE INTO conversations (id, user_id) VALUES ('" + m.conversation_id + "', 'u')");
    sqlite3_bind_text(insert_, 1, m.id.data(), static_cast<int>(m.id.size()), SQLITE_TRANSIENT);
    sqlite3_bind_text(insert_, 2, m.conversation_id.data(), static_cast<int>(m.conversation_id.size()),
                      SQLITE_TRANSIENT);
    sqlite3_bind_text(insert_, 3, m.role.data(), static_cast<int>(m.role.size()), SQLITE_TRANSIENT);
    // Bound as text whatever the bytes: SQLite stores invalid UTF-8 as it comes, which is
    // how lone surrogates (CESU-8/WTF-8) reach a Lens database written by other programs.
    if (m.content) {
      sqlite3_bind_text(insert_, 4, m.content->data(), static_cast<int>(m.content->size()), SQLITE_TRANSIENT);
    } else {
      sqlite3_bind_null(insert_, 4);
    }
    sqlite3_bind_text(insert_, 5, m.created_at.data(), static_cast<int>(m.created_at.size()),
                      SQLITE_TRANSIENT);
    const int rc = sqlite3_step(insert_);
    sqlite3_reset(insert_);
    sqlite3_clear_bindings(insert_);
    return rc == SQLITE_DONE ? std::string() : std::string(sqlite3_errmsg(db_));
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* insert_ = nullptr;

 public:
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;
};

class PostgresDb final : public Db {
 public:
  explicit PostgresDb(std::string url) : url_(std::move(url)) { connect(); }
  ~PostgresDb() override {
    if (conn_) PQfinish(conn_);
  }
  PostgresDb(const PostgresDb&) = delete;
  PostgresDb& operator=(const PostgresDb&) = delete;
  bool is_postgres() const override { return true; }
  bool connect() {
    if (conn_ && PQstatus(conn_) == CONNECTION_OK) return true;
    if (conn_) PQfinish(conn_);
    conn_ =
        PQconnectdb((url_ + (url_.find('?') == std::string::npos ? "?" : "&") + "connect_timeout=5").c_str());
    if (PQstatus(conn_) != CONNECTION_OK) return false;
    PQclear(PQexec(conn_, "SET client_min_messages = warning"));
    return true;
  }
  std::string exec(const std::string& sql) override {
    if (!connect()) return PQerrorMessage(conn_);
    PGresult* r = PQexec(conn_, sql.c_str());
    const auto st = PQresultStatus(r);
    std::string e = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? "" : PQresultErrorMessage(r);
    PQclear(r);
    return e;
  }
  std::optional<std::string> scalar(const std::string& sql) override {
    if (!connect()) return std::nullopt;
    PGresult* r = PQexec(conn_, sql.c_str());
    std::optional<std::string> v;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0) v = PQgetvalue(r, 0, 0);
    PQclear(r);
    return v;
  }
  std::string dump(const std::string& sql) override {
    if (!connect()) return "<error>";
    PGresult* r = PQexec(conn_, sql.c_str());
    std::string all;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) all = "<error>";
    for (int i = 0; i < PQntuples(r); ++i) {
      for (int c = 0; c < PQnfields(r); ++c)
        all += std::string(PQgetvalue(r, i, c)) + "\n";
    }
    PQclear(r);
    return all;
  }
  std::string insert(const std::vector<Message>& messages) override {
    if (!connect()) return PQerrorMessage(conn_);
    std::set<std::string> conversations;
    for (const auto& m : messages)
      conversations.insert(m.conversation_id);
    std::string data;
    for (const auto& c : conversations)
      data += c + "\t00000000-0000-4000-8000-000000000000\t2024-01-01T00:00:00Z\n";
    if (auto e = copy("COPY conversations (id, user_id, created_at) FROM STDIN", data); !e.empty()) return e;
    data.clear();
    for (const auto& m : messages) {
      data += m.id + "\t" + m.conversation_id + "\t" + m.role + "\t";
      if (!m.content) {
        data += "\\N";
      } else {
        for (char c : *m.content) {
          switch (c) {
            case '\\':
              data += "\\\\";
              break;
            case '\t':
              data += "\\t";
              break;
            case '\n':
              data += "\\n";
              break;
            case '\r':
              data += "\\r";
              break;
            default:
              data += c;
          }
        }
      }
      data += "\t" + m.created_at + "\n";
    }
    return copy("COPY messages (id, conversation_id, role, content, created_at) FROM STDIN", data);
  }
  std::string insert_one(const Message& m) override {
    if (!connect()) return PQerrorMessage(conn_);
    (void)exec("INSERT INTO conversations (id, user_id) VALUES ('" + m.conversation_id +
               "', '00000000-0000-4000-8000-000000000000') ON CONFLICT DO NOTHING");
    const char* values[5] = {m.id.c_str(), m.conversation_id.c_str(), m.role.c_str(),
                             m.content ? m.content->c_str() : nullptr, m.created_at.c_str()};
    int lengths[5] = {static_cast<int>(m.id.size()), static_cast<int>(m.conversation_id.size()),
                      static_cast<int>(m.role.size()), m.content ? static_cast<int>(m.content->size()) : 0,
                      static_cast<int>(m.created_at.size())};
    PGresult* r = PQexecParams(conn_,
                               "INSERT INTO messages (id, conversation_id, role, content, created_at) "
                               "VALUES ($1, $2, $3, $4, $5)",
                               5, nullptr, values, lengths, nullptr, 0);
    std::string e;
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
      const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
      e = std::string(state ? state : "?????") + " " + PQresultErrorMessage(r);
    }
    PQclear(r);
    return e;
  }

 private:
  std::string copy(const char* sql, const std::string& data) {
    PGresult* r = PQexec(conn_, sql);
    if (PQresultStatus(r) != PGRES_COPY_IN) {
      std::string e = PQresultErrorMessage(r);
      PQclear(r);
      return e;
    }
    PQclear(r);
    if (PQputCopyData(conn_, data.data(), static_cast<int>(data.size())) != 1 ||
        PQputCopyEnd(conn_, nullptr) != 1) {
      return PQerrorMessage(conn_);
    }
    std::string e;
    while ((r = PQgetResult(conn_)) != nullptr) {
      if (PQresultStatus(r) != PGRES_COMMAND_OK) e = PQresultErrorMessage(r);
      PQclear(r);
    }
    return e;
  }
  std::string url_;
  PGconn* conn_ = nullptr;
};

}  // namespace

std::unique_ptr<Db> Db::open(const std::string& url) {
  if (url.starts_with("postgres://") || url.starts_with("postgresql://"))
    return std::make_unique<PostgresDb>(url);
  std::string path = url.starts_with("sqlite:") ? url.substr(7) : url;
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) {
    sqlite3_close(db);
    return nullptr;
  }
  return std::make_unique<SqliteDb>(db);
}

// ------------------------------------------------------------------ corpus

std::string uuid_from(std::uint64_t n) {
  // splitmix64's finaliser is a bijection: distinct counters give distinct ids, and the
  // counter in the last group keeps them unique even if it were not.
  std::uint64_t z = n + 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return fmt::format("{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}", z >> 32, (z >> 16) & 0xFFFF, (z >> 4) & 0xFFF,
                     (n >> 48) & 0xFFF, n & 0xFFFFFFFFFFFFULL);
}

Corpus make_corpus(const CorpusOptions& o) {
  static const char* const k_words[] = {"enzyme",     "photosynthesis",
                                        "revolution", "quadratic",
                                        "tensor",     "kernel",
                                        "latency",    "mitochondria",
                                        "Napoléon",   "über",
                                        "naïve",      "日本語",
                                        "данные",     "🙂",
                                        "SELECT",     "null",
                                        "\"quoted\"", "back\\slash",
                                        "tab\there",  "line\nbreak",
                                        "garçon",     "→",
                                        "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",    "ﷺ",
                                        "a",          "the",
                                        "of",         "why",
                                        "how",        "42"};
  constexpr std::size_t k_word_count = sizeof k_words / sizeof k_words[0];
  std::mt19937_64 rng(o.seed);
  std::uniform_real_distribution<double> u(0, 1);
  auto words = [&](int lo, int hi) {
    std::string s;
    const int n = std::uniform_int_distribution<int>(lo, hi)(rng);
    for (int i = 0; i < n; ++i) {
      if (i) s += ' ';
      s += k_words[rng() % k_word_count];
    }
    return s;
  };
  auto timestamp = [](std::int64_t seconds) {
    const std::int64_t day = seconds / 86400, rem = seconds % 86400;
    return fmt::format("2024-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}.000Z", 1 + day / 28 % 12, 1 + day % 28,
                       rem / 3600, rem / 60 % 60, rem % 60);
  };
  Corpus c;
  std::uint64_t next_id = o.seed << 40;
  std::uint64_t conv_no = 0;
  while (c.eligible < o.exchanges) {
    const std::string conv = uuid_from(0xC000000000000ULL + (o.seed << 32) + conv_no++);
    // Conversations interleave in time, so the keyset order jumps between them.
    std::int64_t t = static_cast<std::int64_t>(rng() % (86400ULL * 300));
    auto add = [&](const std::string& role, std::optional<std::string> content) {
      // One message in 20 shares its predecessor's timestamp: then id order decides.
      if (u(rng) >= 0.05) t += 1 + static_cast<std::int64_t>(rng() % 5);
      Db::Message m{uuid_from(next_id++), conv, role, timestamp(t), std::move(content)};
      c.messages.push_back(m);
      return m.id;
    };
    if (u(rng) < 0.2) add("system", "You are a helpful assistant. " + words(3, 10));
    const int turns = std::uniform_int_distribution<int>(1, 6)(rng);
    for (int k = 0; k < turns && c.eligible < o.exchanges; ++k) {
      const double r = u(rng);
      if (r < 0.01) {
        ++c.ineligible_users;
        const double kind = u(rng);
        add("user", kind < 0.34 ? std::nullopt : std::optional<std::string>(kind < 0.67 ? "" : " \t\n "));
      } else {
        std::string content = words(4, 60);
        bool poisoned = false;
        if (u(rng) < o.p_long) {
          ++c.long_inputs;
          content += ' ';
          while (content.size() < 60'000)
            content += words(50, 50) + ' ';
        } else if (u(rng) < o.p_poison) {
          content += std::string(" ") + k_poison_marker;
          poisoned = true;
        }
        const std::string id = add("user", content);
        ++c.eligible;
        if (poisoned) c.poisoned.insert(id);
      }
      if (u(rng) < 0.1) add("tool", "{\"result\": \"" + words(2, 8) + "\"}");
      const double a = u(rng);
      if (a < 0.85)
        add("assistant", words(5, 80));
      else if (a < 0.88)
        add("assistant", std::nullopt);  // an answer without content still answers
    }
  }
  return c;
}

}  // namespace lens::harness
