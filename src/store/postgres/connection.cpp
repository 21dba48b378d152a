// libpq behind connection.h: sessions, statements, COPY, single-row streams, LISTEN waits,
// and the classification of every failure they report.
#include "store/postgres/connection.h"

#include <libpq-fe.h>
#include <poll.h>

#include <fmt/core.h>
#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "util/log.h"
#include "util/redact.h"

namespace lens::store::postgres {
namespace {

using util::ErrorCode;
using util::fail;
using util::Result;
using util::Status;
using Clock = std::chrono::steady_clock;

constexpr std::uint32_t k_float4_oid = 700;

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

std::uint32_t get_u32(const char* p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return std::byteswap(v);
}

std::string trim_message(const char* m) {
  std::string s = m ? m : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
    s.pop_back();
  for (auto& c : s)
    if (c == '\n') c = ' ';
  return s;
}

void ignore_notice(void*, const char*) {}

}  // namespace

// ---- classification -----------------------------------------------------------------

// Class 08 (connection), 40001 (serialization), 40P01 (deadlock), 57P01-03 (shutdown,
// crash, cannot connect now), 53 (insufficient resources), 55P03 (lock not available),
// 57014 (canceled): redoing the same work may succeed. 22 (data exception) and 23
// (integrity constraint): the database refuses the row, not the statement. 28 (auth),
// 3D000 (no such database), 42501 (privilege), 42P01/42703 (undefined table/column):
// nothing will work until someone changes the setup.
ErrorCode classify_sqlstate(std::string_view sqlstate, bool connection_ok) {
  if (!connection_ok || sqlstate.empty()) return connection_ok ? ErrorCode::permanent : ErrorCode::transient;
  if (starts_with(sqlstate, "08") || starts_with(sqlstate, "53") || sqlstate == "40001" ||
      sqlstate == "40P01" || sqlstate == "57P01" || sqlstate == "57P02" || sqlstate == "57P03" ||
      sqlstate == "55P03" || sqlstate == "57014")
    return ErrorCode::transient;
  if (starts_with(sqlstate, "22") || starts_with(sqlstate, "23")) return ErrorCode::bad_input;
  if (starts_with(sqlstate, "28") || sqlstate == "3D000" || sqlstate == "42501" || sqlstate == "42P01" ||
      sqlstate == "42703")
    return ErrorCode::configuration;
  return ErrorCode::permanent;
}

// Only what calling again cannot fix is configuration; anything else (refused, reset,
// "the database system is starting up", a server closing the socket mid-restart) may
// pass. Words, because libpq reports a failed connection attempt without a SQLSTATE.
ErrorCode classify_connect_failure(std::string_view message) {
  for (std::string_view word :
       {"authentication", "password", "does not exist", "pg_hba.conf", "permission denied", "invalid"}) {
    if (message.find(word) != std::string_view::npos) return ErrorCode::configuration;
  }
  return ErrorCode::transient;
}

// ---- parameters and codecs ------------------------------------------------------------

Params& Params::text(std::string_view v) {
  values_.emplace_back(std::string(v));
  formats_.push_back(0);
  return *this;
}
Params& Params::optional(const std::optional<std::string>& v) {
  if (v) return text(std::string_view(*v));
  return null();
}
Params& Params::integer(std::int64_t v) {
  return text(std::to_string(v));
}
Params& Params::boolean(bool v) {
  return text(v ? "true" : "false");
}
Params& Params::null() {
  values_.emplace_back(std::nullopt);
  formats_.push_back(0);
  return *this;
}
Params& Params::binary(std::string bytes) {
  values_.emplace_back(std::move(bytes));
  formats_.push_back(1);
  return *this;
}

void Params::pointers(std::vector<const char*>& values, std::vector<int>& lengths) const {
  values.clear();
  lengths.clear();
  for (const auto& v : values_) {
    values.push_back(v ? v->data() : nullptr);
    lengths.push_back(v ? static_cast<int>(v->size()) : 0);
  }
}

std::string array_literal(const std::vector<std::optional<std::string>>& items) {
  std::string out = "{";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) out += ',';
    if (!items[i]) {
      out += "NULL";
      continue;
    }
    out += '"';
    for (char c : *items[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  out += '}';
  return out;
}

void put_u16(std::string& out, std::uint16_t v) {
  v = std::byteswap(v);
  out.append(reinterpret_cast<const char*>(&v), 2);
}
void put_u32(std::string& out, std::uint32_t v) {
  v = std::byteswap(v);
  out.append(reinterpret_cast<const char*>(&v), 4);
}

// ndim, has-null, element oid, size, lower bound, then (length, value) per element.
void put_float_array(std::string& out, std::span<const float> v) {
  put_u32(out, 1);
  put_u32(out, 0);
  put_u32(out, k_float4_oid);
  put_u32(out, static_cast<std::uint32_t>(v.size()));
  put_u32(out, 1);
  // One resize, then 8 bytes per element written in place: two appends per element were
  // the COPY writer's largest cost (issue 14's profile, 3072 dimensions).
  const std::size_t at = out.size();
  out.resize(at + v.size() * 8);
  char* dst = out.data() + at;
  const std::uint32_t length = std::byteswap(std::uint32_t{4});
  for (std::size_t i = 0; i < v.size(); ++i, dst += 8) {
    const std::uint32_t value = std::byteswap(std::bit_cast<std::uint32_t>(v[i]));
    std::memcpy(dst, &length, 4);
    std::memcpy(dst + 4, &value, 4);
  }
}

bool get_float_array(std::string_view bytes, std::vector<float>& out) {
  const char* p = bytes.data();
  const std::size_t length = bytes.size();
  if (length < 12) return false;
  const std::uint32_t ndim = get_u32(p);
  out.clear();
  if (ndim == 0) return true;
  if (ndim != 1 || get_u32(p + 4) != 0 || length < 20) return false;
  const std::uint32_t n = get_u32(p + 12);
  if (length != 20 + std::size_t{n} * 8) return false;
  out.resize(n);
  const char* q = p + 20;
  for (std::uint32_t i = 0; i < n; ++i, q += 8) {
    if (get_u32(q) != 4) return false;
    out[i] = std::bit_cast<float>(get_u32(q + 4));
  }
  return true;
}

// ---- results ----------------------------------------------------------------------------

void Rows::Clear::operator()(pg_result* r) const {
  PQclear(r);
}
Rows::Rows(pg_result* r) : r_(r) {}
Rows::~Rows() = default;

int Rows::size() const {
  return r_ ? PQntuples(r_.get()) : 0;
}
bool Rows::is_null(int row, int col) const {
  return PQgetisnull(r_.get(), row, col) != 0;
}
std::string_view Rows::bytes(int row, int col) const {
  return {PQgetvalue(r_.get(), row, col), static_cast<std::size_t>(PQgetlength(r_.get(), row, col))};
}
std::string Rows::text(int row, int col) const {
  return std::string(bytes(row, col));
}
std::optional<std::string> Rows::optional_text(int row, int col) const {
  if (is_null(row, col)) return std::nullopt;
  return text(row, col);
}
std::int64_t Rows::integer(int row, int col) const {
  return is_null(row, col) ? 0 : std::strtoll(PQgetvalue(r_.get(), row, col), nullptr, 10);
}
double Rows::real(int row, int col) const {
  return is_null(row, col) ? 0 : std::strtod(PQgetvalue(r_.get(), row, col), nullptr);
}
bool Rows::boolean(int row, int col) const {
  return !is_null(row, col) && PQgetvalue(r_.get(), row, col)[0] == 't';
}

// ---- the connection ---------------------------------------------------------------------

Connection::Connection(std::string conninfo, std::string session_setup)
    : conninfo_(std::move(conninfo)), session_setup_(std::move(session_setup)) {}

Connection::~Connection() {
  if (conn_) PQfinish(conn_);
}

Status Connection::connect() {
  if (conn_) PQfinish(conn_);
  // Our defaults first: expand_dbname lets the user's conninfo override them.
  const char* keys[] = {"application_name", "connect_timeout", "keepalives_idle", "keepalives_interval",
                        "keepalives_count", "dbname",          "client_encoding", nullptr};
  const char* values[] = {"lens-embed", "10", "30", "10", "3", conninfo_.c_str(), "UTF8", nullptr};
  conn_ = PQconnectdbParams(keys, values, 1);
  if (!conn_) return fail(ErrorCode::transient, "postgres: out of memory");
  if (PQstatus(conn_) != CONNECTION_OK) {
    const std::string message = trim_message(PQerrorMessage(conn_));
    PQfinish(conn_);
    conn_ = nullptr;
    return fail(classify_connect_failure(message),
                util::redact(fmt::format("postgres: cannot connect: {}", message)));
  }
  PQsetNoticeProcessor(conn_, ignore_notice, nullptr);
  ++generation_;
  // Fixed session settings: timestamps render and parse the same way everywhere.
  // jit off and no parallel workers: our statements are short index walks whose
  // estimated cost still crosses jit_above_cost and the parallel thresholds at 10^5+
  // rows; compiling took ~300 ms and starting two workers ~85 ms of a ~13 ms page
  // (EXPLAIN ANALYZE at 10^6, docs/POSTGRES.md).
  auto s = exec_simple("session setup",
                       "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET client_min_messages = warning; "
                       "SET jit = off; SET max_parallel_workers_per_gather = 0");
  if (s && !session_setup_.empty()) s = exec_simple("session setup", session_setup_);
  if (!s) {
    // No half-prepared session: the next ensure() starts over.
    PQfinish(conn_);
    conn_ = nullptr;
  }
  return s;
}

Status Connection::ensure() {
  if (alive()) return {};
  if (auto s = connect(); !s) return s;
  if (generation_ > 1) util::log_info("postgres: reconnected");
  return {};
}

bool Connection::alive() const {
  return conn_ && PQstatus(conn_) == CONNECTION_OK;
}

util::Error Connection::error_from(std::string_view what, const pg_result* r) const {
  const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  const std::string message = trim_message(r ? PQresultErrorMessage(r) : PQerrorMessage(conn_));
  return util::Error{
      classify_sqlstate(state ? state : "", alive()),
      util::redact(fmt::format("postgres: {}: {}", what,
                               message.empty() ? trim_message(PQerrorMessage(conn_)) : message))};
}

Result<Rows> Connection::exec(std::string_view what, const std::string& sql, const Params& params,
                              bool binary_results) {
  std::vector<const char*> values;
  std::vector<int> lengths;
  params.pointers(values, lengths);
  Rows rows(PQexecParams(conn_, sql.c_str(), params.size(), nullptr, values.data(), lengths.data(),
                         params.formats(), binary_results ? 1 : 0));
  const auto st = rows.r_ ? PQresultStatus(rows.r_.get()) : PGRES_FATAL_ERROR;
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
    return std::unexpected(error_from(what, rows.r_.get()));
  ++completed_;
  return rows;
}

Status Connection::exec_simple(std::string_view what, const std::string& sql) {
  Rows rows(PQexec(conn_, sql.c_str()));
  const auto st = rows.r_ ? PQresultStatus(rows.r_.get()) : PGRES_FATAL_ERROR;
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
    return std::unexpected(error_from(what, rows.r_.get()));
  ++completed_;
  return {};
}

void Connection::rollback() {
  if (alive()) Rows(PQexec(conn_, "ROLLBACK"));
}

Status Connection::copy_in(std::string_view what, const std::string& sql,
                           const std::function<bool(std::string&)>& produce) {
  Rows start(PQexec(conn_, sql.c_str()));
  if (!start.r_ || PQresultStatus(start.r_.get()) != PGRES_COPY_IN)
    return std::unexpected(error_from(fmt::format("starting {}", what), start.r_.get()));
  std::string buf;
  buf.reserve(1 << 21);
  bool ok = true;
  bool more = true;
  while (more && ok) {
    more = produce(buf);
    if (buf.size() >= (1u << 20) || (!more && !buf.empty())) {
      ok = PQputCopyData(conn_, buf.data(), static_cast<int>(buf.size())) == 1;
      buf.clear();
    }
  }
  if (PQputCopyEnd(conn_, ok ? nullptr : "client error") != 1) ok = false;
  Status result;
  while (PGresult* raw = PQgetResult(conn_)) {
    Rows r(raw);
    if (PQresultStatus(raw) != PGRES_COMMAND_OK && result) result = std::unexpected(error_from(what, raw));
  }
  if (result && !ok)
    return fail(ErrorCode::transient,
                util::redact(fmt::format("postgres: {}: {}", what, trim_message(PQerrorMessage(conn_)))));
  if (result) ++completed_;
  return result;
}

Status Connection::for_each_row(std::string_view what, const std::string& sql, const Params& params,
                                const std::function<void(const Rows&)>& row) {
  std::vector<const char*> values;
  std::vector<int> lengths;
  params.pointers(values, lengths);
  if (PQsendQueryParams(conn_, sql.c_str(), params.size(), nullptr, values.data(), lengths.data(),
                        params.formats(), 1) != 1)
    return std::unexpected(error_from(what, nullptr));
  PQsetSingleRowMode(conn_);
  Status status;
  while (PGresult* raw = PQgetResult(conn_)) {
    Rows r(raw);
    const auto st = PQresultStatus(raw);
    if (st == PGRES_SINGLE_TUPLE) {
      row(r);
    } else if (st != PGRES_TUPLES_OK && status) {
      status = std::unexpected(error_from(what, raw));
    }
  }
  if (status) ++completed_;
  return status;
}

Result<bool> Connection::wait_for_notification(Clock::time_point deadline) {
  for (;;) {
    if (PQconsumeInput(conn_) == 0) {
      util::log_warn("postgres: connection lost while waiting for changes; reconnecting");
      return true;  // the next pass rescans; the next call reconnects and listens again
    }
    bool notified = false;
    while (PGnotify* n = PQnotifies(conn_)) {
      notified = true;
      PQfreemem(n);
    }
    if (notified) return true;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    pollfd pfd{PQsocket(conn_), POLLIN, 0};
    const int rc = poll(&pfd, 1, static_cast<int>(std::min<std::int64_t>(left.count(), 1000)));
    if (rc < 0 && errno != EINTR)
      return fail(ErrorCode::transient, "postgres: poll failed while waiting for changes");
  }
}

}  // namespace lens::store::postgres
