// The tests' SQL client over SQLite and PostgreSQL (see sql.h).
#include "support/sql.h"

#include <libpq-fe.h>
#include <sqlite3.h>

#include <set>

#include "support/pg.h"

namespace lens::test {

std::optional<std::string> Db::scalar(const std::string& sql) {
  auto rows = query(sql);
  if (!rows || rows->empty() || rows->front().empty()) return std::nullopt;
  return rows->front().front().value_or("");
}

std::string Db::dump(const std::string& sql) {
  auto rows = query(sql);
  if (!rows) return "<error>";
  std::string all;
  for (const auto& row : *rows) {
    for (const auto& v : row)
      all += v.value_or("") + "\n";
  }
  return all;
}

namespace {

class SqliteDb final : public Db {
 public:
  explicit SqliteDb(sqlite3* db) : db_(db) { sqlite3_busy_timeout(db_, 30'000); }
  ~SqliteDb() override {
    sqlite3_finalize(insert_);
    sqlite3_close(db_);
  }
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  bool is_postgres() const override { return false; }

  std::string exec(const std::string& sql) override {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) == SQLITE_OK) return {};
    std::string e = err ? err : "error";
    sqlite3_free(err);
    return e;
  }

  std::optional<std::vector<Row>> query(const std::string& sql) override {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) {
      last_error_ = sqlite3_errmsg(db_);
      return std::nullopt;
    }
    std::vector<Row> rows;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      Row row;
      for (int i = 0; i < sqlite3_column_count(s); ++i) {
        if (sqlite3_column_type(s, i) == SQLITE_NULL) {
          row.emplace_back(std::nullopt);
          continue;
        }
        // As bytes: text that is not valid UTF-8 and blobs (vectors) come back exactly.
        const auto* p = static_cast<const char*>(sqlite3_column_blob(s, i));
        row.emplace_back(p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(s, i))) : "");
      }
      rows.push_back(std::move(row));
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) {
      last_error_ = sqlite3_errmsg(db_);
      return std::nullopt;
    }
    return rows;
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
};

class PostgresDb final : public Db {
 public:
  explicit PostgresDb(std::string url) : url_(with_pg_option(url, "connect_timeout", "5")) {}
  ~PostgresDb() override {
    if (conn_) PQfinish(conn_);
  }
  PostgresDb(const PostgresDb&) = delete;
  PostgresDb& operator=(const PostgresDb&) = delete;

  bool is_postgres() const override { return true; }

  std::string exec(const std::string& sql) override {
    if (!connect()) return last_error_;
    PGresult* r = PQexec(conn_, sql.c_str());
    const auto st = PQresultStatus(r);
    std::string e = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? "" : error_of(r);
    PQclear(r);
    return e;
  }

  std::optional<std::vector<Row>> query(const std::string& sql) override {
    if (!connect()) return std::nullopt;
    PGresult* r = PQexec(conn_, sql.c_str());
    if (PQresultStatus(r) != PGRES_TUPLES_OK && PQstatus(conn_) == CONNECTION_BAD) {
      // The connection died since its last use (the server restarted): a read is safe
      // to send again on a new one.
      PQclear(r);
      if (!connect()) return std::nullopt;
      r = PQexec(conn_, sql.c_str());
    }
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
      last_error_ = error_of(r);
      PQclear(r);
      return std::nullopt;
    }
    std::vector<Row> rows;
    for (int i = 0; i < PQntuples(r); ++i) {
      Row row;
      for (int c = 0; c < PQnfields(r); ++c) {
        row.emplace_back(PQgetisnull(r, i, c) ? Value() : Value(PQgetvalue(r, i, c)));
      }
      rows.push_back(std::move(row));
    }
    PQclear(r);
    return rows;
  }

  std::string insert(const std::vector<Message>& messages) override {
    if (!connect()) return last_error_;
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
    if (!connect()) return last_error_;
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
    std::string e = PQresultStatus(r) == PGRES_COMMAND_OK ? "" : error_of(r);
    PQclear(r);
    return e;
  }

 private:
  // Connects on first use and after a lost connection (a test may restart the server).
  bool connect() {
    if (conn_ && PQstatus(conn_) == CONNECTION_OK) return true;
    if (conn_) PQfinish(conn_);
    conn_ = PQconnectdb(url_.c_str());
    if (PQstatus(conn_) != CONNECTION_OK) {
      last_error_ = PQerrorMessage(conn_);
      return false;
    }
    PQsetNoticeProcessor(
        conn_, [](void*, const char*) {}, nullptr);
    return true;
  }

  static std::string error_of(const PGresult* r) {
    const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    return std::string(state ? state : "?????") + " " + PQresultErrorMessage(r);
  }

  std::string copy(const char* sql, const std::string& data) {
    PGresult* r = PQexec(conn_, sql);
    if (PQresultStatus(r) != PGRES_COPY_IN) {
      std::string e = error_of(r);
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
      if (PQresultStatus(r) != PGRES_COMMAND_OK) e = error_of(r);
      PQclear(r);
    }
    return e;
  }

  std::string url_;
  PGconn* conn_ = nullptr;
};

}  // namespace

std::unique_ptr<Db> Db::open(const std::string& target) {
  if (target.starts_with("postgres://") || target.starts_with("postgresql://") ||
      (!target.starts_with("sqlite:") && target.find('=') != std::string::npos)) {
    return std::make_unique<PostgresDb>(target);
  }
  const std::string path = target.starts_with("sqlite:") ? target.substr(7) : target;
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) {
    sqlite3_close(db);
    return nullptr;
  }
  return std::make_unique<SqliteDb>(db);
}

}  // namespace lens::test
