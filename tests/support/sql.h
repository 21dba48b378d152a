// A small SQL client for tests, over SQLite or PostgreSQL: statements, queries with text
// results, and loading Lens messages. Independent of lens-embed's own store code, so a
// test reads what is really in the database.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace lens::test {

class Db {
 public:
  // sqlite:PATH, a path, a libpq URL (postgres:// or postgresql://) or a libpq
  // key=value string (anything with '='). nullptr when a SQLite file cannot be opened; a
  // PostgreSQL client connects on first use and again after a lost connection.
  static std::unique_ptr<Db> open(const std::string& target);
  virtual ~Db() = default;
  [[nodiscard]] virtual bool is_postgres() const = 0;

  // Empty on success, else the error (PostgreSQL: with its SQLSTATE first).
  virtual std::string exec(const std::string& sql) = 0;

  using Value = std::optional<std::string>;  // nullopt: SQL NULL
  using Row = std::vector<Value>;
  // Every row, every column as text (a SQLite blob as its bytes, a PostgreSQL value in
  // its text form); nullopt on error, with the error in last_error(). A read that meets a
  // PostgreSQL connection lost since its last use is sent again on a new one.
  virtual std::optional<std::vector<Row>> query(const std::string& sql) = 0;
  [[nodiscard]] const std::string& last_error() const { return last_error_; }

  // First column of the first row ("" for NULL); nullopt on error or when there is no row.
  std::optional<std::string> scalar(const std::string& sql);
  // Every value of every row, each followed by '\n' (for secret scans); "<error>" on error.
  std::string dump(const std::string& sql);

  struct Message {
    std::string id, conversation_id, role, created_at;
    std::optional<std::string> content;
  };
  // Inserts the conversations (ids taken from the messages) and the messages in one go.
  virtual std::string insert(const std::vector<Message>& messages) = 0;
  // Inserts one message (and its conversation, if new) through a parameterised statement,
  // its content bound as text whatever the bytes; "" or the error.
  virtual std::string insert_one(const Message& m) = 0;

 protected:
  std::string last_error_;
};

}  // namespace lens::test
