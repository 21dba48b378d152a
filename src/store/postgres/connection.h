// The libpq side of the PostgreSQL store: one connection (reconnected once on demand),
// query parameters and the binary float4[] codec, result sets, and the one place that
// turns SQLSTATEs and connection failures into util::ErrorCode. Only connection.cpp
// includes libpq-fe.h; everything else in store/postgres/ goes through this header.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

struct pg_conn;    // libpq's PGconn
struct pg_result;  // libpq's PGresult

namespace lens::store::postgres {

// ---- classification -----------------------------------------------------------------

// The error code of a failed statement, from its SQLSTATE and whether the connection
// survived it:
//   transient      lost connection (no SQLSTATE), class 08, 40001, 40P01, 57P01-03,
//                  class 53, 55P03, 57014: the same call may succeed when made again;
//   bad_input      class 22 (data exception) and 23 (integrity constraint): the
//                  database refuses a row (store.h's "Refused rows");
//   configuration  class 28 (authentication), 3D000 (no such database), 42501
//                  (privilege), 42P01 and 42703 (undefined table or column): nothing will
//                  work until the setup changes;
//   permanent      everything else (a bad statement, an exception raised by a trigger).
[[nodiscard]] util::ErrorCode classify_sqlstate(std::string_view sqlstate, bool connection_ok);

// The error code of a connection attempt that failed with libpq's `message`. libpq gives
// no SQLSTATE before the session exists, so its words decide: authentication, password,
// pg_hba.conf, a database or role that does not exist, permission denied or an invalid
// option are configuration; anything else (refused, reset, "the database system is
// starting up") is transient.
[[nodiscard]] util::ErrorCode classify_connect_failure(std::string_view message);

// ---- parameters and codecs ------------------------------------------------------------

// Query parameters, $1 upwards in the order added: text by default, binary where noted.
class Params {
 public:
  Params& text(std::string_view v);
  Params& optional(const std::optional<std::string>& v);  // NULL when empty
  Params& integer(std::int64_t v);
  Params& boolean(bool v);
  Params& null();
  Params& binary(std::string bytes);  // bytea, or a binary float4[] (put_float_array)

  [[nodiscard]] int size() const { return static_cast<int>(values_.size()); }
  // Fills `values`/`lengths` with pointers into this object: valid while it lives and
  // is not modified.
  void pointers(std::vector<const char*>& values, std::vector<int>& lengths) const;
  [[nodiscard]] const int* formats() const { return formats_.data(); }

 private:
  std::vector<std::optional<std::string>> values_;
  std::vector<int> formats_;
};

// A PostgreSQL array literal of text values ('{"a","b",NULL}'), quoted so any string
// (failure details included) survives.
[[nodiscard]] std::string array_literal(const std::vector<std::optional<std::string>>& items);

// Big-endian writers for the binary COPY and binary parameter formats.
void put_u16(std::string& out, std::uint16_t v);
void put_u32(std::string& out, std::uint32_t v);

// Appends `v` as float4[] in PostgreSQL's binary array format.
void put_float_array(std::string& out, std::span<const float> v);
// Bytes put_float_array appends for `n` elements.
[[nodiscard]] constexpr std::size_t float_array_bytes(std::size_t n) {
  return 20 + n * 8;
}

// Reads a binary float4[]; false (and `out` unspecified) when it is not a
// one-dimensional, null-free float4 array.
[[nodiscard]] bool get_float_array(std::string_view bytes, std::vector<float>& out);

// ---- results ----------------------------------------------------------------------------

// One result set, owned. Accessors take a row and a column index that must exist.
class Rows {
 public:
  Rows() = default;
  explicit Rows(pg_result* r);
  Rows(Rows&&) noexcept = default;
  Rows& operator=(Rows&&) noexcept = default;
  ~Rows();

  [[nodiscard]] int size() const;
  [[nodiscard]] bool is_null(int row, int col) const;
  [[nodiscard]] std::string_view bytes(int row, int col) const;  // raw value ("" for NULL)
  [[nodiscard]] std::string text(int row, int col) const;        // "" for NULL
  [[nodiscard]] std::optional<std::string> optional_text(int row, int col) const;
  [[nodiscard]] std::int64_t integer(int row, int col) const;  // 0 for NULL
  [[nodiscard]] double real(int row, int col) const;           // 0 for NULL
  [[nodiscard]] bool boolean(int row, int col) const;          // false for NULL

 private:
  friend class Connection;
  struct Clear {
    void operator()(pg_result* r) const;
  };
  std::unique_ptr<pg_result, Clear> r_;
};

// ---- the connection ---------------------------------------------------------------------

// One libpq connection and its session settings (UTC, ISO dates, jit and parallel
// workers off). Not thread-safe: one thread at a time. Every call makes one attempt;
// nothing here sleeps or retries. Every error message goes through util::redact.
class Connection {
 public:
  // `session_setup`: statements run on every new session after the fixed settings (a
  // read-only session, an advisory lock, keepalive settings).
  explicit Connection(std::string conninfo, std::string session_setup = {});
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  // Opens a new session (closing any old one) and applies the session settings. One
  // attempt. On failure: the classify_connect_failure code (or the setup statement's),
  // and no session.
  [[nodiscard]] util::Status connect();

  // Connected: nothing to do when libpq believes the session alive; otherwise one
  // connect(), logging "postgres: reconnected" when a session existed before.
  [[nodiscard]] util::Status ensure();

  [[nodiscard]] bool alive() const;

  // Increases with every new session: per-session state (a temp table, LISTEN) must be
  // set up again when it changed.
  [[nodiscard]] std::uint64_t generation() const { return generation_; }

  // Statements that succeeded on this object so far. A call whose first statement failed
  // on a dead connection sees it unchanged (see PostgresStore::call).
  [[nodiscard]] std::uint64_t completed() const { return completed_; }

  // Runs one statement (`what` names it in errors). Text results unless `binary_results`.
  // On failure: a classified, redacted error; the transaction, if any, is aborted.
  [[nodiscard]] util::Result<Rows> exec(std::string_view what, const std::string& sql,
                                        const Params& params = {}, bool binary_results = false);

  // Runs one or more statements without parameters (DDL, BEGIN, COMMIT, SET).
  [[nodiscard]] util::Status exec_simple(std::string_view what, const std::string& sql);

  // Ends a failed transaction; a lost connection has ended it already.
  void rollback();

  // Runs `sql` (a COPY ... FROM STDIN) and streams what `produce` appends to its buffer,
  // in pieces of about 1 MiB. `produce` is called until it returns false. On failure the
  // COPY is aborted (the transaction with it).
  [[nodiscard]] util::Status copy_in(std::string_view what, const std::string& sql,
                                     const std::function<bool(std::string&)>& produce);

  // Runs `sql` in single-row mode and hands `row` each row (a Rows of size 1, binary
  // results), so memory stays flat whatever the result's size. On failure: the first
  // error; rows already handed out stay handed out.
  [[nodiscard]] util::Status for_each_row(std::string_view what, const std::string& sql, const Params& params,
                                          const std::function<void(const Rows&)>& row);

  // Waits until a notification arrives (true, every pending one consumed), or `deadline`
  // passes (false). REQUIRES: a LISTEN on this session. A connection lost while waiting
  // reports true (the caller rescans; the next call reconnects). On poll failure:
  // transient.
  [[nodiscard]] util::Result<bool> wait_for_notification(std::chrono::steady_clock::time_point deadline);

 private:
  [[nodiscard]] util::Error error_from(std::string_view what, const pg_result* r) const;

  std::string conninfo_;
  std::string session_setup_;
  pg_conn* conn_ = nullptr;
  std::uint64_t generation_ = 0;
  std::uint64_t completed_ = 0;
};

}  // namespace lens::store::postgres
