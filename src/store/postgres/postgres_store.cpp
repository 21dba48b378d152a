// PostgreSQL Store on libpq: keyset pending pages, binary COPY + one upsert per batch,
// claims with leases for several workers, reconnect with backoff, LISTEN/NOTIFY.
#include "store/postgres/postgres_store.h"

#include <libpq-fe.h>
#include <poll.h>
#include <unistd.h>

#include <fmt/core.h>
#include <algorithm>
#include <bit>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "store/postgres/schema.sql.h"
#include "store/vector_math.h"
#include "util/backoff.h"
#include "util/log.h"
#include "util/redact.h"
#include "util/utf8.h"

namespace lens::store {
namespace {

using util::ErrorCode;
using util::fail;
using util::Result;
using util::Status;
using Clock = std::chrono::steady_clock;

constexpr int k_schema_version = 1;
constexpr std::uint32_t k_float4_oid = 700;

// Timestamps leave the server as ISO-8601 UTC with all six fractional digits, so a
// keyset cursor or source_version read back as ::timestamptz is exactly the same instant.
std::string ts(std::string_view expr) {
  return fmt::format("to_char(({}) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')", expr);
}

// ASCII white space, as the SQLite store's trim; Unicode-only blanks are caught later by
// util::is_blank in the pipeline and recorded as empty_input.
constexpr const char* k_non_blank_sql =
    "p.content IS NOT NULL AND btrim(p.content, ' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)) "
    "<> ''";

// The answer of p (CONTRACT §1) and the exchange's version: newest coalesce(updated_at,
// created_at) of the user message and its answer. The LATERAL walks
// messages_conversation_order from p onwards and stops at the first user/assistant row.
constexpr const char* k_answer_sql =
    "LEFT JOIN LATERAL (SELECT n.id, n.role, n.content, coalesce(n.updated_at, n.created_at) AS v "
    "  FROM messages n WHERE n.conversation_id = p.conversation_id AND n.role IN ('user','assistant') "
    "    AND (n.created_at, n.id) > (p.created_at, p.id) "
    "  ORDER BY n.created_at, n.id LIMIT 1) nx ON true "
    "CROSS JOIN LATERAL (SELECT CASE WHEN nx.role = 'assistant' THEN nx.id END AS aid, "
    "  CASE WHEN nx.role = 'assistant' THEN nx.content END AS acontent, "
    "  greatest(coalesce(p.updated_at, p.created_at), CASE WHEN nx.role = 'assistant' THEN nx.v END) AS sv) "
    "x ";

// Parameters shared by every pending query: $1 provider, $2 model, $3 force, $4 retry
// failures, $5 force_since (rows written since then count as done under --force, so a
// second worker or a --follow pass does not redo them).
std::string needs_work_sql() {
  return "($3::boolean AND e.updated_at < $5::timestamptz OR e.user_message_id IS NULL "
         "  OR e.assistant_message_id IS DISTINCT FROM x.aid OR e.source_version IS DISTINCT FROM x.sv) "
         "AND ($4::boolean OR NOT EXISTS (SELECT 1 FROM embedding_failures f WHERE f.provider = $1 "
         "  AND f.model = $2 AND f.user_message_id = p.id AND f.source_version IS NOT DISTINCT FROM x.sv))";
}

// The existing row is looked up by primary key per user message (a LATERAL with LIMIT 1,
// which the planner cannot turn into a hash join): a page then costs O(page) however
// large message_embeddings is. A plain LEFT JOIN was planned as a hash join over every
// row of (provider, model) once the table grew (see docs/POSTGRES.md).
enum class PendingColumns { ids, full };

// `where` restricts p to a key window or an id list (parameters from $6 on).
std::string pending_sql(PendingColumns columns, std::string_view where) {
  std::string select;
  switch (columns) {
    case PendingColumns::ids:
      select = "p.id::text";
      break;
    case PendingColumns::full:
      select = fmt::format(
          "p.id::text, p.conversation_id::text, {}, p.content, x.aid::text, x.acontent, {}, "
          "e.content_sha256",
          ts("p.created_at"), ts("x.sv"));
      break;
  }
  return fmt::format(
      "SELECT {} FROM messages p {}"
      "LEFT JOIN LATERAL (SELECT e.user_message_id, e.assistant_message_id, e.source_version, e.updated_at, "
      "  e.content_sha256 FROM message_embeddings e "
      "  WHERE e.provider = $1 AND e.model = $2 AND e.user_message_id = p.id LIMIT 1) e ON true "
      "WHERE p.role = 'user' AND {} AND {} AND {}{}",
      select, k_answer_sql, where, k_non_blank_sql, needs_work_sql(), " ORDER BY p.created_at, p.id");
}

constexpr const char* k_window_where =
    "($6::boolean IS NOT TRUE OR (p.created_at, p.id) > ($7::timestamptz, $8::uuid)) "
    "AND (p.created_at, p.id) <= ($9::timestamptz, $10::uuid)";
constexpr const char* k_ids_where = "p.id = ANY($6::uuid[])";

// ---------------------------------------------------------------------------------------
// libpq plumbing

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, ResultDeleter>;

// Query parameters: text by default, binary where noted (bytea, float4[]).
class Params {
 public:
  Params& text(std::string_view v) {
    values_.emplace_back(std::string(v));
    formats_.push_back(0);
    return *this;
  }
  Params& optional(const std::optional<std::string>& v) {
    if (v) return text(std::string_view(*v));
    return null();
  }
  Params& integer(std::int64_t v) { return text(std::to_string(v)); }
  Params& boolean(bool v) { return text(v ? "true" : "false"); }
  Params& null() {
    values_.emplace_back(std::nullopt);
    formats_.push_back(0);
    return *this;
  }
  Params& binary(std::string bytes) {
    values_.emplace_back(std::move(bytes));
    formats_.push_back(1);
    return *this;
  }
  int size() const { return static_cast<int>(values_.size()); }
  // Pointers stay valid while this object lives and is not modified.
  void pointers(std::vector<const char*>& values, std::vector<int>& lengths) const {
    values.clear();
    lengths.clear();
    for (const auto& v : values_) {
      values.push_back(v ? v->data() : nullptr);
      lengths.push_back(v ? static_cast<int>(v->size()) : 0);
    }
  }
  const int* formats() const { return formats_.data(); }

 private:
  std::vector<std::optional<std::string>> values_;
  std::vector<int> formats_;
};

// A PostgreSQL array literal of text values ('{"a","b",NULL}'), quoted so any string
// (failure details included) survives.
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

// Big-endian writers for the binary COPY and binary parameter formats.
void put_u16(std::string& out, std::uint16_t v) {
  v = std::byteswap(v);
  out.append(reinterpret_cast<const char*>(&v), 2);
}
void put_u32(std::string& out, std::uint32_t v) {
  v = std::byteswap(v);
  out.append(reinterpret_cast<const char*>(&v), 4);
}
std::uint32_t get_u32(const char* p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return std::byteswap(v);
}

// float4[] in PostgreSQL's binary array format: ndim, has-null, element oid, size, lower
// bound, then (length, value) per element.
void put_float_array(std::string& out, std::span<const float> v) {
  out.reserve(out.size() + 20 + v.size() * 8);
  put_u32(out, 1);
  put_u32(out, 0);
  put_u32(out, k_float4_oid);
  put_u32(out, static_cast<std::uint32_t>(v.size()));
  put_u32(out, 1);
  for (float f : v) {
    put_u32(out, 4);
    put_u32(out, std::bit_cast<std::uint32_t>(f));
  }
}

// Reads a binary float4[] back; false when it is not a one-dimensional, null-free array.
bool get_float_array(const char* p, int length, std::vector<float>& out) {
  if (length < 12) return false;
  const std::uint32_t ndim = get_u32(p);
  out.clear();
  if (ndim == 0) return true;
  if (ndim != 1 || get_u32(p + 4) != 0 || length < 20) return false;
  const std::uint32_t n = get_u32(p + 12);
  if (static_cast<std::size_t>(length) != 20 + std::size_t{n} * 8) return false;
  out.resize(n);
  const char* q = p + 20;
  for (std::uint32_t i = 0; i < n; ++i, q += 8) {
    if (get_u32(q) != 4) return false;
    out[i] = std::bit_cast<float>(get_u32(q + 4));
  }
  return true;
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// SQLSTATE -> our error codes, once for the whole backend. Class 08 (connection), 40001
// (serialization), 40P01 (deadlock), 57P01-03 (shutdown, crash, cannot connect now),
// 53 (insufficient resources), 55P03 (lock not available), 57014 (canceled): redoing
// the same work may succeed. 28 (auth) and 3D000 (no such database): nothing will work.
ErrorCode classify(std::string_view sqlstate, bool connection_ok) {
  if (!connection_ok || sqlstate.empty()) return connection_ok ? ErrorCode::permanent : ErrorCode::transient;
  if (starts_with(sqlstate, "08") || starts_with(sqlstate, "53") || sqlstate == "40001" ||
      sqlstate == "40P01" || sqlstate == "57P01" || sqlstate == "57P02" || sqlstate == "57P03" ||
      sqlstate == "55P03" || sqlstate == "57014")
    return ErrorCode::transient;
  if (starts_with(sqlstate, "28") || sqlstate == "3D000" || sqlstate == "42501")
    return ErrorCode::configuration;
  return ErrorCode::permanent;
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

// One libpq connection, re-established on demand after it was lost.
class Connection {
 public:
  Connection(std::string conninfo, std::chrono::seconds reconnect_budget)
      : conninfo_(std::move(conninfo)), budget_(reconnect_budget), rng_(std::random_device{}()) {}
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() {
    if (conn_) PQfinish(conn_);
  }

  // One attempt; used by open_postgres_store so a wrong URL fails fast.
  Status connect_once() {
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
      // Only what retrying cannot fix is fatal; anything else (refused, reset, "the
      // database system is starting up", a server closing the socket mid-restart) may
      // pass.
      const bool hopeless = message.find("authentication") != std::string::npos ||
                            message.find("password") != std::string::npos ||
                            message.find("does not exist") != std::string::npos ||
                            message.find("pg_hba.conf") != std::string::npos ||
                            message.find("permission denied") != std::string::npos ||
                            message.find("invalid") != std::string::npos;
      return fail(hopeless ? ErrorCode::configuration : ErrorCode::transient,
                  util::redact(fmt::format("postgres: cannot connect: {}", message)));
    }
    PQsetNoticeProcessor(conn_, ignore_notice, nullptr);
    ++generation_;
    // Fixed session settings: timestamps render and parse the same way everywhere.
    // jit off and no parallel workers: our statements are short index walks whose
    // estimated cost still crosses jit_above_cost and the parallel thresholds at 10^5+
    // rows; compiling took ~300 ms and starting two workers ~85 ms of a ~13 ms page
    // (EXPLAIN ANALYZE at 10^6, docs/POSTGRES.md).
    return exec_simple("session setup",
                       "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET client_min_messages = warning; "
                       "SET jit = off; SET max_parallel_workers_per_gather = 0");
  }

  // Connected, reconnecting with backoff within the budget if the connection was lost.
  Status ensure() {
    if (conn_ && PQstatus(conn_) == CONNECTION_OK) return {};
    const auto deadline = Clock::now() + budget_;
    util::BackoffPolicy policy{std::chrono::milliseconds(100), std::chrono::milliseconds(3000)};
    for (int attempt = 1;; ++attempt) {
      auto s = connect_once();
      if (s) {
        if (attempt > 1 || generation_ > 1) util::log_info("postgres: reconnected");
        return {};
      }
      if (s.error().code == ErrorCode::configuration || Clock::now() >= deadline) return s;
      const auto delay = std::max(std::chrono::milliseconds(50), util::full_jitter(policy, attempt, rng_));
      util::log_debug("postgres: reconnect attempt {} failed ({}); retrying in {} ms", attempt,
                      s.error().message, delay.count());
      std::this_thread::sleep_for(delay);
    }
  }

  PGconn* get() const { return conn_; }
  // Increases with every new connection: per-connection state (temp table, LISTEN)
  // must be set up again when it changed.
  std::uint64_t generation() const { return generation_; }
  bool alive() const { return conn_ && PQstatus(conn_) == CONNECTION_OK; }

  util::Error error_from(std::string_view what, const PGresult* r) const {
    const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
    const std::string message = trim_message(r ? PQresultErrorMessage(r) : PQerrorMessage(conn_));
    const bool ok = conn_ && PQstatus(conn_) == CONNECTION_OK;
    return util::Error{
        classify(state ? state : "", ok),
        util::redact(fmt::format("postgres: {}: {}", what,
                                 message.empty() ? trim_message(PQerrorMessage(conn_)) : message))};
  }

  // Runs one statement with parameters; expects tuples or command-ok.
  Result<PgResult> exec(std::string_view what, const std::string& sql, const Params& params = {},
                        int result_format = 0) {
    std::vector<const char*> values;
    std::vector<int> lengths;
    params.pointers(values, lengths);
    PgResult r(PQexecParams(conn_, sql.c_str(), params.size(), nullptr, values.data(), lengths.data(),
                            params.formats(), result_format));
    const auto st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) return std::unexpected(error_from(what, r.get()));
    return r;
  }

  Status exec_simple(std::string_view what, const std::string& sql) {
    PgResult r(PQexec(conn_, sql.c_str()));
    const auto st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) return std::unexpected(error_from(what, r.get()));
    return {};
  }

  // Ends a failed transaction; a lost connection has ended it already.
  void rollback() {
    if (alive()) PgResult(PQexec(conn_, "ROLLBACK"));
  }

 private:
  std::string conninfo_;
  std::chrono::seconds budget_;
  PGconn* conn_ = nullptr;
  std::uint64_t generation_ = 0;
  std::mt19937_64 rng_;
};

std::string value(const PGresult* r, int row, int col) {
  return std::string(PQgetvalue(r, row, col), static_cast<std::size_t>(PQgetlength(r, row, col)));
}
std::optional<std::string> optional_value(const PGresult* r, int row, int col) {
  if (PQgetisnull(r, row, col)) return std::nullopt;
  return value(r, row, col);
}
std::int64_t int_value(const PGresult* r, int row, int col) {
  return PQgetisnull(r, row, col) ? 0 : std::strtoll(PQgetvalue(r, row, col), nullptr, 10);
}
bool bool_value(const PGresult* r, int row, int col) {
  return !PQgetisnull(r, row, col) && PQgetvalue(r, row, col)[0] == 't';
}

// bytea in text output (hex format, "\x..."), as used for content_sha256.
std::optional<util::Sha256> sha_from_hex(std::string_view text) {
  if (text.size() != 66 || text[0] != '\\' || text[1] != 'x') return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  util::Sha256 d{};
  for (std::size_t i = 0; i < 32; ++i) {
    const int hi = nibble(text[2 + 2 * i]), lo = nibble(text[3 + 2 * i]);
    if (hi < 0 || lo < 0) return std::nullopt;
    d[i] = static_cast<std::uint8_t>(hi * 16 + lo);
  }
  return d;
}

std::string default_worker_id() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "localhost");
  return fmt::format("{}:{}", host, getpid());
}

// Keeps this worker's leases alive while the process lives, on a connection of its own,
// whatever the pipeline's cadence: a writer that commits every 20 s, or a reader blocked
// on a full queue, must not lose its claims to a 6 s lease (others would then embed them
// a second time). Only a dead process stops renewing, which is what leases are for.
class Heartbeat {
 public:
  Heartbeat(std::string conninfo, std::string worker, std::chrono::seconds lease)
      : conninfo_(std::move(conninfo)), worker_(std::move(worker)), lease_(lease) {
    thread_ = std::thread([this] { loop(); });
  }
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;
  ~Heartbeat() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }

 private:
  void loop() {
    // A short reconnect budget: a missed beat is retried at the next tick.
    Connection conn(conninfo_, std::chrono::seconds(1));
    const auto period = std::max<std::chrono::milliseconds>(std::chrono::milliseconds(200), lease_ / 3);
    std::unique_lock lock(mutex_);
    while (!wake_.wait_for(lock, period, [this] { return stop_; })) {
      lock.unlock();
      if (conn.ensure()) {
        auto r =
            conn.exec("renewing claims",
                      "UPDATE embedding_claims SET expires_at = now() + $2::bigint * interval '1 second' "
                      "WHERE worker = $1",
                      Params().text(worker_).integer(lease_.count()));
        if (!r) util::log_warn("postgres: renewing claims failed: {}", r.error().message);
      }
      lock.lock();
    }
  }

  std::string conninfo_, worker_;
  std::chrono::seconds lease_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

// Giving claims back expires them rather than deleting them: workers whose cursor is
// already past those exchanges take expired claims over at the end of their keyset, so a
// worker that stops early (--limit, SIGTERM) loses nothing for the others. A fresh run
// claims expired rows like unclaimed ones.
constexpr const char* k_release_claims_sql =
    "UPDATE embedding_claims SET expires_at = now() - interval '1 second' WHERE worker = $1";

// ---------------------------------------------------------------------------------------

class PostgresStore final : public Store {
 public:
  explicit PostgresStore(const PostgresOptions& options)
      : options_(options), conn_(options.conninfo, options.reconnect_budget) {
    if (options_.worker_id.empty()) options_.worker_id = default_worker_id();
  }

  // Claims not written by now are given back (best effort, no reconnect): the next run
  // or another worker need not wait for their lease. Reader and writer of one process
  // close together, at the end of a run; a SIGKILLed process leaves them to the lease.
  ~PostgresStore() override {
    heartbeat_.reset();
    if (options_.use_claims && conn_.alive()) {
      (void)conn_.exec("releasing claims", k_release_claims_sql, Params().text(options_.worker_id));
    }
  }

  Status open() { return conn_.connect_once(); }

  Status migrate() override {
    return with_retry("migrate", [&]() -> Status { return migrate_once(); });
  }

  Result<PendingPage> next_pending(const WorkScope& scope, PendingCursor& cursor,
                                   std::size_t max_items) override {
    // Reads and claims are safe to redo: retry transient errors (lost connection,
    // deadlock between two workers' claims) here rather than in every caller.
    PendingCursor attempt_cursor;
    auto page = with_retry("reading pending work", [&]() -> Result<PendingPage> {
      attempt_cursor = cursor;
      return next_pending_once(scope, attempt_cursor, max_items);
    });
    if (page) cursor = std::move(attempt_cursor);
    return page;
  }

  Status write_batch(const WriteBatch& batch) override {
    if (auto s = conn_.ensure(); !s) return s;
    auto s = write_batch_once(batch);
    if (s || s.error().code != ErrorCode::permanent) return s;
    // A permanent error (a row the table refuses, e.g. a vector of the wrong dimension
    // for a pgvector column) must not sink the batch forever: isolate the culprits.
    util::log_warn("postgres: batch of {} rows refused ({}); writing its items one by one", batch.rows.size(),
                   s.error().message);
    return write_isolated(batch);
  }

  Result<std::int64_t> begin_run(const RunRecord& run) override {
    return with_retry("starting run", [&]() -> Result<std::int64_t> {
      auto r = conn_.exec(
          "starting run",
          "INSERT INTO embedding_runs (provider, model, status, arguments, worker, heartbeat_at) "
          "VALUES ($1, $2, 'running', $3, $4, now()) RETURNING id",
          Params().text(run.provider).text(run.model).text(util::redact(run.arguments)).text(run.worker));
      if (!r) return std::unexpected(r.error());
      return int_value(r->get(), 0, 0);
    });
  }

  Status finish_run(std::int64_t run_id, core::RunStatus status, const core::RunStats& stats) override {
    return with_retry("finishing run", [&]() -> Status {
      auto p = progress_params(run_id, stats);
      p.text(core::to_string(status));
      auto r =
          conn_.exec("finishing run",
                     "UPDATE embedding_runs SET embedded = $2, unchanged = $3, skipped = $4, failed = $5, "
                     "truncated = $6, tokens = $7, requests = $8, retries = $9, rate_limited = $10, "
                     "heartbeat_at = now(), finished_at = now(), status = $11 WHERE id = $1",
                     p);
      if (!r) return std::unexpected(r.error());
      return {};
    });
  }

  Result<std::int64_t> count_pending(const WorkScope& scope) override {
    return with_retry("counting pending work", [&]() -> Result<std::int64_t> {
      // Cheap by design (it sizes the progress bar, like the SQLite store): exchanges
      // without a row (every eligible one with force), no answer lookups; stale rows
      // are not counted.
      auto r = conn_.exec(
          "counting pending work",
          fmt::format("SELECT count(*) FROM messages p WHERE p.role = 'user' AND {} AND "
                      "($3::boolean OR NOT EXISTS (SELECT 1 FROM message_embeddings e "
                      "  WHERE e.provider = $1 AND e.model = $2 AND e.user_message_id = p.id)) "
                      "AND ($4::boolean OR NOT EXISTS (SELECT 1 FROM embedding_failures f "
                      "  WHERE f.provider = $1 AND f.model = $2 AND f.user_message_id = p.id))",
                      k_non_blank_sql),
          Params().text(scope.provider).text(scope.model).boolean(scope.force).boolean(scope.retry_failures));
      if (!r) return std::unexpected(r.error());
      return int_value(r->get(), 0, 0);
    });
  }

  Result<StatusReport> status(std::size_t recent_runs) override {
    return with_retry("reading status", [&]() -> Result<StatusReport> { return status_once(recent_runs); });
  }

  Result<std::vector<FailureRecord>> failures(const std::string& provider,
                                              const std::string& model) override {
    return with_retry("reading failures", [&]() -> Result<std::vector<FailureRecord>> {
      auto r = conn_.exec(
          "reading failures",
          fmt::format("SELECT provider, model, user_message_id::text, reason, coalesce(detail, ''), "
                      "attempts, {}, {} FROM embedding_failures "
                      "WHERE ($1 = '' OR provider = $1) AND ($2 = '' OR model = $2) "
                      "ORDER BY provider, model, last_failed_at, user_message_id",
                      ts("first_failed_at"), ts("last_failed_at")),
          Params().text(provider).text(model));
      if (!r) return std::unexpected(r.error());
      std::vector<FailureRecord> out;
      for (int i = 0; i < PQntuples(r->get()); ++i) {
        FailureRecord f;
        f.provider = value(r->get(), i, 0);
        f.model = value(r->get(), i, 1);
        f.user_message_id = value(r->get(), i, 2);
        const std::string word = value(r->get(), i, 3);
        const auto reason = core::parse_failure_reason(word);
        if (!reason) {
          return fail(ErrorCode::internal,
                      fmt::format("postgres: unknown failure reason \"{}\" in embedding_failures", word));
        }
        f.reason = *reason;
        f.detail = value(r->get(), i, 4);
        f.attempts = int_value(r->get(), i, 5);
        f.first_failed_at = value(r->get(), i, 6);
        f.last_failed_at = value(r->get(), i, 7);
        out.push_back(std::move(f));
      }
      return out;
    });
  }

  Result<std::vector<SearchHit>> search(const std::string& provider, const std::string& model,
                                        std::span<const float> query, std::size_t k) override {
    return with_retry("searching", [&]() -> Result<std::vector<SearchHit>> {
      auto type = embedding_type();
      if (!type) return std::unexpected(type.error());
      if (is_pgvector(*type)) return search_pgvector(provider, model, query, k, *type);
      return search_scan(provider, model, query, k);
    });
  }

  Status release_claims() override {
    if (!options_.use_claims) return {};
    return with_retry("releasing claims", [&]() -> Status {
      auto r = conn_.exec("releasing claims", k_release_claims_sql, Params().text(options_.worker_id));
      if (!r) return std::unexpected(r.error());
      return {};
    });
  }

  Result<bool> wait_for_changes(std::chrono::milliseconds timeout) override {
    const auto deadline = Clock::now() + timeout;
    if (auto s = conn_.ensure(); !s) {
      std::this_thread::sleep_until(deadline);
      return false;
    }
    if (listen_generation_ != conn_.generation()) {
      // A new connection may have missed notifications: report a change once.
      if (auto s = conn_.exec_simple("listening", "LISTEN lens_embed_changes"); !s)
        return std::unexpected(s.error());
      const bool first = listen_generation_ == 0;
      listen_generation_ = conn_.generation();
      if (!first) return true;
    }
    for (;;) {
      if (PQconsumeInput(conn_.get()) == 0) {
        util::log_warn("postgres: connection lost while waiting for changes; reconnecting");
        return true;  // the next pass rescans; the next call reconnects and listens again
      }
      bool notified = false;
      while (PGnotify* n = PQnotifies(conn_.get())) {
        notified = true;
        PQfreemem(n);
      }
      if (notified) return true;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return false;
      pollfd pfd{PQsocket(conn_.get()), POLLIN, 0};
      const int rc = poll(&pfd, 1, static_cast<int>(std::min<std::int64_t>(left.count(), 1000)));
      if (rc < 0 && errno != EINTR)
        return fail(ErrorCode::transient, "postgres: poll failed while waiting for changes");
    }
  }

 private:
  // ---- retries --------------------------------------------------------------------

  template <typename F>
  auto with_retry(std::string_view what, F&& body) -> decltype(body()) {
    const auto deadline = Clock::now() + options_.reconnect_budget;
    util::BackoffPolicy policy{std::chrono::milliseconds(100), std::chrono::milliseconds(3000)};
    for (int attempt = 1;; ++attempt) {
      if (auto s = conn_.ensure(); !s) return std::unexpected(s.error());
      auto result = body();
      if (result || result.error().code != ErrorCode::transient || Clock::now() >= deadline) return result;
      const auto delay = util::full_jitter(policy, attempt, rng_);
      util::log_debug("postgres: {} failed ({}); retry {} in {} ms", what, result.error().message, attempt,
                      delay.count());
      std::this_thread::sleep_for(delay);
    }
  }

  // ---- migrations -----------------------------------------------------------------

  Status migrate_once() {
    // A schema that is already current needs no DDL, so a least-privilege role (no CREATE,
    // not the owner) can run `run` and `status` after the owner ran `init`.
    if (auto current = schema_is_current(); !current) {
      return std::unexpected(current.error());
    } else if (*current) {
      return {};
    }
    if (auto s = conn_.exec_simple("migrating", postgres_schema::k_migrations_table); !s) return s;
    if (auto s = conn_.exec_simple("migrating", "BEGIN"); !s) return s;
    auto s = migrate_in_transaction();
    if (!s) {
      conn_.rollback();
      return s;
    }
    if (auto c = conn_.exec_simple("migrating", "COMMIT"); !c) return c;
    embedding_type_.reset();
    return {};
  }

  Status migrate_in_transaction() {
    if (auto r = conn_.exec(
            "migrating", fmt::format("SELECT pg_advisory_xact_lock({})", postgres_schema::k_migration_lock));
        !r)
      return std::unexpected(r.error());
    auto version =
        conn_.exec("migrating", "SELECT coalesce(max(version), 0) FROM lens_embed_schema_migrations");
    if (!version) return std::unexpected(version.error());
    const auto current = int_value(version->get(), 0, 0);
    if (current > k_schema_version) {
      return fail(ErrorCode::configuration,
                  fmt::format("postgres: the database has lens-embed schema version {}, newer than this "
                              "lens-embed understands ({}); upgrade lens-embed",
                              current, k_schema_version));
    }
    if (current < 1) {
      auto type = choose_embedding_type();
      if (!type) return std::unexpected(type.error());
      std::string sql = postgres_schema::k_v1;
      const std::string placeholder = "{embedding_type}";
      sql.replace(sql.find(placeholder), placeholder.size(), *type);
      if (auto s = conn_.exec_simple("creating schema v1", sql); !s) return s;
      if (*type == "real[]") {
        if (auto s = conn_.exec_simple("creating schema v1", postgres_schema::k_real_array_storage); !s)
          return s;
      }
      if (auto r = conn_.exec("creating schema v1",
                              "INSERT INTO lens_embed_schema_migrations (version, note) VALUES (1, $1)",
                              Params().text("embedding " + *type));
          !r)
        return std::unexpected(r.error());
      util::log_info("postgres: created lens-embed schema v1 (embedding {})", *type);
    }
    if (options_.notify_trigger) {
      if (auto s = conn_.exec_simple("installing the change trigger", postgres_schema::k_notify_trigger); !s)
        return s;
    }
    if (options_.hnsw_index) {
      auto type = read_embedding_type();
      if (!type) return std::unexpected(type.error());
      if (!is_pgvector(*type)) {
        util::log_warn("postgres: --index hnsw needs a pgvector column; embedding is {}, no index created",
                       *type);
      } else {
        const char* ops = starts_with(*type, "halfvec") ? "halfvec_cosine_ops" : "vector_cosine_ops";
        if (auto s = conn_.exec_simple("creating the HNSW index",
                                       fmt::format("CREATE INDEX IF NOT EXISTS message_embeddings_hnsw ON "
                                                   "message_embeddings USING hnsw (embedding {})",
                                                   ops));
            !s)
          return s;
      }
    }
    return {};
  }

  // True when the schema is at this version and has everything the options ask for.
  Result<bool> schema_is_current() {
    auto r = conn_.exec("checking the schema",
                        "SELECT to_regclass('lens_embed_schema_migrations') IS NOT NULL, "
                        "EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'lens_embed_messages_changed'), "
                        "to_regclass('message_embeddings_hnsw') IS NOT NULL");
    if (!r) return std::unexpected(r.error());
    if (!bool_value(r->get(), 0, 0)) return false;
    if (options_.notify_trigger && !bool_value(r->get(), 0, 1)) return false;
    if (options_.hnsw_index && !bool_value(r->get(), 0, 2)) return false;
    auto version = conn_.exec("checking the schema",
                              "SELECT coalesce(max(version), 0) FROM lens_embed_schema_migrations");
    if (!version) return std::unexpected(version.error());
    return int_value(version->get(), 0, 0) == k_schema_version;
  }

  // real[] unless pgvector is there (or can be created) and the dimension is known.
  Result<std::string> choose_embedding_type() {
    if (!options_.prefer_pgvector || options_.vector_dimensions <= 0) return std::string("real[]");
    auto have = conn_.exec("detecting pgvector",
                           "SELECT (SELECT count(*) FROM pg_extension WHERE extname = 'vector'), "
                           "(SELECT count(*) FROM pg_available_extensions WHERE name = 'vector')");
    if (!have) return std::unexpected(have.error());
    if (int_value(have->get(), 0, 0) == 0) {
      if (int_value(have->get(), 0, 1) == 0) return std::string("real[]");
      // Available but not created: try, inside a savepoint so a missing privilege
      // only costs the fast path.
      if (auto s = conn_.exec_simple("detecting pgvector", "SAVEPOINT lens_pgvector"); !s)
        return std::unexpected(s.error());
      if (auto s = conn_.exec_simple("creating pgvector", "CREATE EXTENSION IF NOT EXISTS vector"); !s) {
        util::log_info("postgres: pgvector is available but cannot be created ({}); using real[]",
                       s.error().message);
        if (auto r = conn_.exec_simple("detecting pgvector", "ROLLBACK TO SAVEPOINT lens_pgvector"); !r)
          return std::unexpected(r.error());
        return std::string("real[]");
      }
    }
    // halfvec: vector's HNSW index stops at 2000 dimensions, halfvec's at 4000.
    return fmt::format("{}({})", options_.vector_dimensions > 2000 ? "halfvec" : "vector",
                       options_.vector_dimensions);
  }

  static bool is_pgvector(std::string_view type) {
    const auto dot = type.rfind('.');  // format_type may schema-qualify
    const auto bare = dot == std::string_view::npos ? type : type.substr(dot + 1);
    return starts_with(bare, "vector") || starts_with(bare, "halfvec");
  }

  Result<std::string> read_embedding_type() {
    auto r = conn_.exec("reading the schema",
                        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                        "WHERE attrelid = 'message_embeddings'::regclass AND attname = 'embedding'");
    if (!r) return std::unexpected(r.error());
    if (PQntuples(r->get()) != 1)
      return fail(ErrorCode::not_found, "postgres: message_embeddings has no embedding column");
    return value(r->get(), 0, 0);
  }

  Result<std::string> embedding_type() {
    if (!embedding_type_) {
      auto t = read_embedding_type();
      if (!t) return t;
      embedding_type_ = *t;
    }
    return *embedding_type_;
  }

  // ---- pending work ---------------------------------------------------------------

  // The --force horizon: fixed at this store's first look, so rows written since (by
  // this or another worker) are not forced again.
  Result<std::string> force_since() {
    if (!force_since_) {
      auto r = conn_.exec("reading the clock", fmt::format("SELECT {}", ts("now()")));
      if (!r) return std::unexpected(r.error());
      force_since_ = value(r->get(), 0, 0);
    }
    return *force_since_;
  }

  Params scope_params(const WorkScope& scope, const std::string& since) const {
    Params p;
    p.text(scope.provider).text(scope.model).boolean(scope.force).boolean(scope.retry_failures).text(since);
    return p;
  }

  // started, created_at, id: NULLs before the first page (an empty string would not
  // parse as a timestamp even where the condition never looks at it).
  static Params& cursor_params(Params&& p, const PendingCursor& cursor) { return cursor_params(p, cursor); }
  static Params& cursor_params(Params& p, const PendingCursor& cursor) {
    p.boolean(cursor.started);
    if (cursor.started)
      p.text(cursor.created_at).text(cursor.id);
    else
      p.null().null();
    return p;
  }

  Result<PendingPage> next_pending_once(const WorkScope& scope, PendingCursor& cursor,
                                        std::size_t max_items) {
    auto since = force_since();
    if (!since) return std::unexpected(since.error());
    if (options_.use_claims && !heartbeat_) {
      heartbeat_ = std::make_unique<Heartbeat>(options_.conninfo, options_.worker_id, options_.lease);
    }
    PendingPage page;
    // Step 1: the key window, from the partial index alone. Bounding the scan (not the
    // result) gives every page the same cost however much is already done.
    auto window = conn_.exec(
        "reading pending keys",
        fmt::format("SELECT {}, id::text, n FROM (SELECT created_at, id, count(*) OVER () AS n FROM "
                    "(SELECT created_at, id FROM messages WHERE role = 'user' AND "
                    "($1::boolean IS NOT TRUE OR (created_at, id) > ($2::timestamptz, $3::uuid)) "
                    "ORDER BY created_at, id LIMIT $4) w) w2 ORDER BY created_at DESC, id DESC LIMIT 1",
                    ts("created_at")),
        cursor_params(Params(), cursor).integer(static_cast<std::int64_t>(max_items)));
    if (!window) return std::unexpected(window.error());
    const std::size_t scanned =
        PQntuples(window->get()) ? static_cast<std::size_t>(int_value(window->get(), 0, 2)) : 0;
    if (scanned == 0) {
      if (options_.use_claims) return takeover_page(scope, *since, max_items);
      page.exhausted = true;
      return page;
    }
    const std::string last_created = value(window->get(), 0, 0);
    const std::string last_id = value(window->get(), 0, 1);

    // Step 2: the exchanges of that window that need work.
    Params p = scope_params(scope, *since);
    cursor_params(p, cursor).text(last_created).text(last_id);
    if (!options_.use_claims) {
      auto r = conn_.exec("reading pending exchanges", pending_sql(PendingColumns::full, k_window_where), p);
      if (!r) return std::unexpected(r.error());
      append_exchanges(r->get(), page.items);
    } else {
      auto r = conn_.exec("reading pending exchanges", pending_sql(PendingColumns::ids, k_window_where), p);
      if (!r) return std::unexpected(r.error());
      std::vector<std::optional<std::string>> candidates;
      for (int i = 0; i < PQntuples(r->get()); ++i)
        candidates.emplace_back(value(r->get(), i, 0));
      if (!candidates.empty()) {
        if (auto s = claim_and_read(scope, *since, candidates, page.items); !s)
          return std::unexpected(s.error());
      }
    }
    cursor.started = true;
    cursor.created_at = last_created;
    cursor.id = last_id;
    // A short window is the end of the keyset; with claims, work still held by other
    // workers is waited for (and taken over if their lease ends) before we say so.
    page.exhausted = scanned < max_items && !options_.use_claims;
    return page;
  }

  void append_exchanges(const PGresult* r, std::vector<core::Exchange>& out) {
    for (int i = 0; i < PQntuples(r); ++i) {
      core::Exchange ex;
      ex.user_message_id = value(r, i, 0);
      ex.user_content = value(r, i, 3);
      ex.assistant_message_id = optional_value(r, i, 4);
      if (ex.assistant_message_id) ex.assistant_content = value(r, i, 5);
      ex.source_version = value(r, i, 6);
      if (!PQgetisnull(r, i, 7)) ex.stored_sha256 = sha_from_hex(value(r, i, 7));
      out.push_back(std::move(ex));
    }
  }

  // Claims `candidates` (those not held by a live lease of another worker), then reads
  // the ones that still need work with a fresh snapshot: a worker that wrote one of
  // them and dropped its claim before our insert has committed its row by then, so we
  // never embed it twice. Claims on items that turned out done are dropped at once.
  Status claim_and_read(const WorkScope& scope, const std::string& since,
                        const std::vector<std::optional<std::string>>& candidates,
                        std::vector<core::Exchange>& out) {
    auto claimed =
        conn_.exec("claiming work",
                   "INSERT INTO embedding_claims AS c (provider, model, user_message_id, worker, expires_at) "
                   "SELECT $1, $2, id, $4, now() + $5::bigint * interval '1 second' "
                   "FROM unnest($3::uuid[]) WITH ORDINALITY AS t(id, ord) ORDER BY ord "
                   "ON CONFLICT (provider, model, user_message_id) DO UPDATE SET worker = excluded.worker, "
                   "  expires_at = excluded.expires_at, claimed_at = now() "
                   "WHERE c.expires_at < now() OR c.worker = excluded.worker "
                   "RETURNING user_message_id::text",
                   Params()
                       .text(scope.provider)
                       .text(scope.model)
                       .text(array_literal(candidates))
                       .text(options_.worker_id)
                       .integer(options_.lease.count()));
    if (!claimed) return std::unexpected(claimed.error());
    std::vector<std::optional<std::string>> ids;
    for (int i = 0; i < PQntuples(claimed->get()); ++i)
      ids.emplace_back(value(claimed->get(), i, 0));
    if (ids.empty()) return {};
    return read_claimed(scope, since, ids, out);
  }

  Status read_claimed(const WorkScope& scope, const std::string& since,
                      const std::vector<std::optional<std::string>>& ids, std::vector<core::Exchange>& out) {
    Params p = scope_params(scope, since);
    p.text(array_literal(ids));
    auto r = conn_.exec("reading claimed exchanges", pending_sql(PendingColumns::full, k_ids_where), p);
    if (!r) return std::unexpected(r.error());
    const std::size_t before = out.size();
    append_exchanges(r->get(), out);
    if (out.size() - before == ids.size()) return {};
    std::unordered_set<std::string> wanted;
    for (std::size_t i = before; i < out.size(); ++i)
      wanted.insert(out[i].user_message_id);
    std::vector<std::optional<std::string>> done;
    for (const auto& id : ids)
      if (!wanted.contains(*id)) done.push_back(id);
    return drop_claims(scope.provider, scope.model, done);
  }

  Status drop_claims(const std::string& provider, const std::string& model,
                     const std::vector<std::optional<std::string>>& ids) {
    if (ids.empty()) return {};
    auto r =
        conn_.exec("dropping claims",
                   "DELETE FROM embedding_claims WHERE provider = $1 AND model = $2 "
                   "AND user_message_id = ANY($3::uuid[]) AND worker = $4",
                   Params().text(provider).text(model).text(array_literal(ids)).text(options_.worker_id));
    if (!r) return std::unexpected(r.error());
    return {};
  }

  // The keyset is done. Claims of other workers whose lease ended (a dead worker) are
  // taken over with FOR UPDATE SKIP LOCKED, so two survivors never take the same ones;
  // while live claims remain we wait (a page with no items) instead of reporting the end.
  Result<PendingPage> takeover_page(const WorkScope& scope, const std::string& since, std::size_t max_items) {
    PendingPage page;
    auto taken = conn_.exec(
        "taking over expired claims",
        // MATERIALIZED: without fresh statistics (after a crash-restart) the
        // planner re-ran the locking subquery once per outer row (9-15 s per
        // call at 4,500 expired claims); the CTE runs it exactly once.
        "WITH x AS MATERIALIZED (SELECT user_message_id FROM embedding_claims "
        "  WHERE provider = $1 AND model = $2 AND expires_at < now() AND worker <> $3 "
        "  ORDER BY expires_at LIMIT $5 FOR UPDATE SKIP LOCKED) "
        "UPDATE embedding_claims c SET worker = $3, claimed_at = now(), "
        "  expires_at = now() + $4::bigint * interval '1 second' "
        "WHERE c.provider = $1 AND c.model = $2 AND c.user_message_id IN (SELECT user_message_id FROM x) "
        "RETURNING c.user_message_id::text",
        Params()
            .text(scope.provider)
            .text(scope.model)
            .text(options_.worker_id)
            .integer(options_.lease.count())
            .integer(static_cast<std::int64_t>(max_items)));
    if (!taken) return std::unexpected(taken.error());
    if (PQntuples(taken->get()) > 0) {
      std::vector<std::optional<std::string>> ids;
      for (int i = 0; i < PQntuples(taken->get()); ++i)
        ids.emplace_back(value(taken->get(), i, 0));
      util::log_info("postgres: took over {} exchanges whose worker's lease expired", ids.size());
      if (auto s = read_claimed(scope, since, ids, page.items); !s) return std::unexpected(s.error());
      return page;
    }
    auto live = conn_.exec("reading claims",
                           "SELECT count(*), coalesce(extract(epoch FROM min(expires_at) - now()), 0) "
                           "FROM embedding_claims WHERE provider = $1 AND model = $2 AND worker <> $3",
                           Params().text(scope.provider).text(scope.model).text(options_.worker_id));
    if (!live) return std::unexpected(live.error());
    const auto held = int_value(live->get(), 0, 0);
    if (held == 0) {
      page.exhausted = true;
      return page;
    }
    const double until_expiry = std::strtod(PQgetvalue(live->get(), 0, 1), nullptr);
    if (Clock::now() - last_wait_log_ > std::chrono::seconds(10)) {
      util::log_info(
          "postgres: waiting for {} exchanges claimed by other workers (first lease ends in {:.0f} s)", held,
          std::max(0.0, until_expiry));
      last_wait_log_ = Clock::now();
    }
    const double wait = std::clamp(until_expiry + 0.05, 0.05, 1.0);
    std::this_thread::sleep_for(std::chrono::duration<double>(wait));
    return page;
  }

  // ---- writes ---------------------------------------------------------------------

  Status ensure_stage() {
    if (stage_generation_ == conn_.generation()) return {};
    // ON COMMIT DELETE ROWS: every batch starts empty without a DELETE of ours.
    // STORAGE EXTERNAL: no pglz attempt on vectors that will not compress.
    auto s = conn_.exec_simple(
        "creating the staging table",
        "CREATE TEMP TABLE IF NOT EXISTS lens_stage (ord integer, user_message_id text, "
        "assistant_message_id text, content_sha256 bytea, token_count integer, truncated boolean, "
        "dimensions integer, embedding real[], source_version text) ON COMMIT DELETE ROWS; "
        "ALTER TABLE lens_stage ALTER COLUMN embedding SET STORAGE EXTERNAL");
    if (!s) return s;
    stage_generation_ = conn_.generation();
    return {};
  }

  Status write_batch_once(const WriteBatch& batch) {
    if (!batch.rows.empty()) {
      if (auto s = ensure_stage(); !s) return s;
    }
    auto type = batch.rows.empty() ? Result<std::string>(std::string()) : embedding_type();
    if (!type) return std::unexpected(type.error());
    if (auto s = conn_.exec_simple("writing a batch", "BEGIN"); !s) return s;
    auto s = write_in_transaction(batch, *type);
    if (!s) {
      conn_.rollback();
      return s;
    }
    // An error here leaves the outcome unknown; the connection is gone or the server
    // said no. Either way the redo is safe: every statement above is an upsert.
    return conn_.exec_simple("committing a batch", "COMMIT");
  }

  Status write_in_transaction(const WriteBatch& batch, const std::string& type) {
    std::vector<std::optional<std::string>> written;  // ids whose claims end with this batch
    if (!batch.rows.empty()) {
      auto staged = options_.use_copy ? stage_with_copy(batch.rows) : stage_with_insert(batch.rows);
      if (!staged) return staged;
      const std::string cast = is_pgvector(type) ? "::" + type : "";
      // DISTINCT ON: one row per id even if a caller repeated one (ON CONFLICT may not
      // touch a row twice). The join skips messages deleted since they were read, so
      // a foreign-key violation cannot sink the batch.
      auto r = conn_.exec(
          "writing embeddings",
          fmt::format(
              "INSERT INTO message_embeddings AS e (provider, model, user_message_id, "
              "  assistant_message_id, content_sha256, token_count, truncated, dimensions, embedding, "
              "  source_version) "
              "SELECT $1, $2, s.id, s.aid, s.content_sha256, s.token_count, s.truncated, s.dimensions, "
              "  s.embedding{}, s.sv FROM (SELECT DISTINCT ON (user_message_id) user_message_id::uuid AS id, "
              "  assistant_message_id::uuid AS aid, content_sha256, token_count, truncated, dimensions, "
              "  embedding, source_version::timestamptz AS sv FROM lens_stage "
              "  ORDER BY user_message_id, ord DESC) s JOIN messages m ON m.id = s.id "
              "ON CONFLICT (provider, model, user_message_id) DO UPDATE SET "
              "  assistant_message_id = excluded.assistant_message_id, "
              "  content_sha256 = excluded.content_sha256, token_count = excluded.token_count, "
              "  truncated = excluded.truncated, dimensions = excluded.dimensions, "
              "  embedding = excluded.embedding, source_version = excluded.source_version, "
              "  updated_at = now()",
              cast),
          Params().text(batch.provider).text(batch.model));
      if (!r) return std::unexpected(r.error());
      for (const auto& row : batch.rows)
        written.emplace_back(row.user_message_id);
    }
    if (!batch.touches.empty()) {
      std::vector<std::optional<std::string>> ids, aids, versions;
      for (const auto& t : batch.touches) {
        ids.emplace_back(t.user_message_id);
        aids.emplace_back(t.assistant_message_id);
        versions.emplace_back(t.source_version);
        written.emplace_back(t.user_message_id);
      }
      auto r =
          conn_.exec("refreshing rows",
                     "UPDATE message_embeddings e SET assistant_message_id = t.aid, source_version = t.sv, "
                     "  updated_at = now() "
                     "FROM unnest($3::uuid[], $4::uuid[], $5::timestamptz[]) AS t(id, aid, sv) "
                     "WHERE e.provider = $1 AND e.model = $2 AND e.user_message_id = t.id",
                     Params()
                         .text(batch.provider)
                         .text(batch.model)
                         .text(array_literal(ids))
                         .text(array_literal(aids))
                         .text(array_literal(versions)));
      if (!r) return std::unexpected(r.error());
    }
    if (!written.empty()) {
      auto r = conn_.exec("clearing failures",
                          "DELETE FROM embedding_failures WHERE provider = $1 AND model = $2 "
                          "AND user_message_id = ANY($3::uuid[])",
                          Params().text(batch.provider).text(batch.model).text(array_literal(written)));
      if (!r) return std::unexpected(r.error());
    }
    if (!batch.failures.empty()) {
      if (auto s = upsert_failures(batch.provider, batch.model, batch.failures); !s) return s;
      for (const auto& f : batch.failures)
        written.emplace_back(f.user_message_id);
    }
    if (options_.use_claims && !written.empty()) {
      if (auto s = drop_claims(batch.provider, batch.model, written); !s) return s;
    }
    if (batch.run_id > 0) {
      auto r =
          conn_.exec("updating run",
                     "UPDATE embedding_runs SET embedded = $2, unchanged = $3, skipped = $4, failed = $5, "
                     "truncated = $6, tokens = $7, requests = $8, retries = $9, rate_limited = $10, "
                     "heartbeat_at = now() WHERE id = $1",
                     progress_params(batch.run_id, batch.progress));
      if (!r) return std::unexpected(r.error());
    }
    return {};
  }

  Status upsert_failures(const std::string& provider, const std::string& model,
                         const std::vector<core::Failure>& failures) {
    // Last word per id: ON CONFLICT may not touch a row twice in one statement.
    std::vector<const core::Failure*> unique;
    std::unordered_set<std::string> seen;
    for (auto it = failures.rbegin(); it != failures.rend(); ++it)
      if (seen.insert(it->user_message_id).second) unique.push_back(&*it);
    std::vector<std::optional<std::string>> ids, reasons, details, versions;
    for (const auto* f : unique) {
      ids.emplace_back(f->user_message_id);
      reasons.emplace_back(std::string(core::to_string(f->reason)));
      details.emplace_back(util::repair_utf8(f->detail));
      versions.emplace_back(f->source_version.empty() ? std::nullopt
                                                      : std::optional<std::string>(f->source_version));
    }
    auto r = conn_.exec(
        "recording failures",
        "INSERT INTO embedding_failures AS f (provider, model, user_message_id, reason, detail, "
        "source_version) "
        "SELECT $1, $2, t.id, t.reason, t.detail, t.sv "
        "FROM unnest($3::uuid[], $4::text[], $5::text[], $6::timestamptz[]) AS t(id, reason, detail, sv) "
        "JOIN messages m ON m.id = t.id "
        "ON CONFLICT (provider, model, user_message_id) DO UPDATE SET reason = excluded.reason, "
        "  detail = excluded.detail, source_version = excluded.source_version, attempts = f.attempts + 1, "
        "  last_failed_at = now()",
        Params()
            .text(provider)
            .text(model)
            .text(array_literal(ids))
            .text(array_literal(reasons))
            .text(array_literal(details))
            .text(array_literal(versions)));
    if (!r) return std::unexpected(r.error());
    return {};
  }

  // Binary COPY into the staging table, streamed in ~1 MiB pieces.
  Status stage_with_copy(const std::vector<core::EmbeddingRow>& rows) {
    PgResult start(PQexec(conn_.get(), "COPY lens_stage FROM STDIN (FORMAT binary)"));
    if (!start || PQresultStatus(start.get()) != PGRES_COPY_IN)
      return std::unexpected(conn_.error_from("starting COPY", start.get()));
    std::string buf;
    buf.reserve(1 << 21);
    buf.append("PGCOPY\n\xff\r\n\0", 11);
    put_u32(buf, 0);  // flags
    put_u32(buf, 0);  // header extension length
    bool ok = true;
    for (std::size_t i = 0; i < rows.size() && ok; ++i) {
      append_stage_tuple(buf, static_cast<std::int32_t>(i), rows[i]);
      if (buf.size() >= (1u << 20)) {
        ok = PQputCopyData(conn_.get(), buf.data(), static_cast<int>(buf.size())) == 1;
        buf.clear();
      }
    }
    put_u16(buf, 0xFFFF);  // trailer
    if (ok) ok = PQputCopyData(conn_.get(), buf.data(), static_cast<int>(buf.size())) == 1;
    if (PQputCopyEnd(conn_.get(), ok ? nullptr : "client error") != 1) ok = false;
    Status result;
    while (PGresult* raw = PQgetResult(conn_.get())) {
      PgResult r(raw);
      if (PQresultStatus(raw) != PGRES_COMMAND_OK && result)
        result = std::unexpected(conn_.error_from("COPY", raw));
    }
    if (result && !ok)
      return fail(ErrorCode::transient,
                  util::redact(fmt::format("postgres: COPY: {}", trim_message(PQerrorMessage(conn_.get())))));
    return result;
  }

  static void put_text_field(std::string& buf, std::string_view s) {
    put_u32(buf, static_cast<std::uint32_t>(s.size()));
    buf.append(s);
  }

  static void append_stage_tuple(std::string& buf, std::int32_t ord, const core::EmbeddingRow& row) {
    put_u16(buf, 9);
    put_u32(buf, 4);
    put_u32(buf, static_cast<std::uint32_t>(ord));
    put_text_field(buf, row.user_message_id);
    if (row.assistant_message_id)
      put_text_field(buf, *row.assistant_message_id);
    else
      put_u32(buf, 0xFFFFFFFFu);
    put_u32(buf, 32);
    buf.append(reinterpret_cast<const char*>(row.content_sha256.data()), 32);
    put_u32(buf, 4);
    put_u32(buf, static_cast<std::uint32_t>(row.token_count));
    put_u32(buf, 1);
    buf.push_back(row.truncated ? 1 : 0);
    put_u32(buf, 4);
    put_u32(buf, static_cast<std::uint32_t>(row.embedding.size()));
    std::string array;
    put_float_array(array, row.embedding);
    put_u32(buf, static_cast<std::uint32_t>(array.size()));
    buf.append(array);
    if (row.source_version.empty())
      put_u32(buf, 0xFFFFFFFFu);
    else
      put_text_field(buf, row.source_version);
  }

  // For servers without COPY FROM STDIN: multi-row INSERTs with binary vectors.
  Status stage_with_insert(const std::vector<core::EmbeddingRow>& rows) {
    constexpr std::size_t k_rows_per_statement = 64;
    for (std::size_t start = 0; start < rows.size(); start += k_rows_per_statement) {
      const std::size_t end = std::min(rows.size(), start + k_rows_per_statement);
      std::string sql = "INSERT INTO lens_stage VALUES ";
      Params p;
      for (std::size_t i = start; i < end; ++i) {
        const int b = static_cast<int>((i - start) * 9);
        sql += fmt::format(
            "{}(${}::integer, ${}, ${}, ${}::bytea, ${}::integer, ${}::boolean, ${}::integer, "
            "${}::real[], ${})",
            i == start ? "" : ",", b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7, b + 8, b + 9);
        const auto& row = rows[i];
        std::string array;
        put_float_array(array, row.embedding);
        p.integer(static_cast<std::int64_t>(i))
            .text(row.user_message_id)
            .optional(row.assistant_message_id)
            .binary(std::string(reinterpret_cast<const char*>(row.content_sha256.data()), 32))
            .integer(row.token_count)
            .boolean(row.truncated)
            .integer(static_cast<std::int64_t>(row.embedding.size()))
            .binary(std::move(array));
        if (row.source_version.empty())
          p.null();
        else
          p.text(row.source_version);
      }
      if (auto r = conn_.exec("staging rows", sql, p); !r) return std::unexpected(r.error());
    }
    return {};
  }

  // After a permanent error: every row alone in its own transaction; a row the table
  // still refuses becomes a failure (store_rejected), committed on its own so a poison
  // item is recorded once and never handed out again (unless edited or retried).
  Status write_isolated(const WriteBatch& batch) {
    for (const auto& row : batch.rows) {
      WriteBatch one;
      one.provider = batch.provider;
      one.model = batch.model;
      one.rows.push_back(row);
      auto s = write_batch_once(one);
      if (s) continue;
      if (s.error().code != ErrorCode::permanent) return s;
      WriteBatch poison;
      poison.provider = batch.provider;
      poison.model = batch.model;
      poison.failures.push_back(core::Failure{row.user_message_id, core::FailureReason::store_rejected,
                                              s.error().message, row.source_version});
      if (auto f = write_batch_once(poison); !f) return f;
    }
    WriteBatch rest = batch;
    rest.rows.clear();
    return write_batch_once(rest);
  }

  static Params progress_params(std::int64_t run_id, const core::RunStats& s) {
    Params p;
    p.integer(run_id)
        .integer(s.embedded)
        .integer(s.unchanged)
        .integer(0)  // the skipped column predates empty_input failures
        .integer(s.failed)
        .integer(s.truncated)
        .integer(s.tokens)
        .integer(s.requests)
        .integer(s.retries)
        .integer(s.rate_limited);
    return p;
  }

  // ---- status and search ----------------------------------------------------------

  Result<StatusReport> status_once(std::size_t recent_runs) {
    StatusReport report;
    auto eligible = conn_.exec(
        "reading status",
        fmt::format("SELECT count(*) FROM messages p WHERE p.role = 'user' AND {}", k_non_blank_sql));
    if (!eligible) return std::unexpected(eligible.error());
    report.eligible = int_value(eligible->get(), 0, 0);
    auto models = conn_.exec("reading status",
                             "SELECT provider, model FROM message_embeddings GROUP BY provider, model "
                             "UNION SELECT provider, model FROM embedding_failures "
                             "UNION SELECT provider, model FROM embedding_runs ORDER BY 1, 2");
    if (!models) return std::unexpected(models.error());
    for (int i = 0; i < PQntuples(models->get()); ++i) {
      ModelStatus m;
      m.provider = value(models->get(), i, 0);
      m.model = value(models->get(), i, 1);
      auto counts = conn_.exec(
          "reading status",
          fmt::format(
              "SELECT (SELECT count(*) FROM message_embeddings WHERE provider = $1 AND model = $2), "
              "(SELECT count(*) FROM messages p WHERE p.role = 'user' AND {0} AND NOT EXISTS "
              "  (SELECT 1 FROM message_embeddings e WHERE e.provider = $1 AND e.model = $2 AND "
              "e.user_message_id = p.id) "
              "  AND NOT EXISTS (SELECT 1 FROM embedding_failures f WHERE f.provider = $1 AND f.model = $2 "
              "  AND f.user_message_id = p.id)), "
              "(SELECT count(*) FROM message_embeddings e JOIN messages p ON p.id = e.user_message_id {1}"
              "  WHERE e.provider = $1 AND e.model = $2 AND (e.assistant_message_id IS DISTINCT FROM x.aid "
              "  OR e.source_version IS DISTINCT FROM x.sv))",
              k_non_blank_sql, k_answer_sql),
          Params().text(m.provider).text(m.model));
      if (!counts) return std::unexpected(counts.error());
      m.embedded = int_value(counts->get(), 0, 0);
      m.pending = int_value(counts->get(), 0, 1);
      m.stale = int_value(counts->get(), 0, 2);
      auto reasons =
          conn_.exec("reading status",
                     "SELECT reason, count(*) FROM embedding_failures WHERE provider = $1 AND model = $2 "
                     "GROUP BY reason ORDER BY 2 DESC, 1",
                     Params().text(m.provider).text(m.model));
      if (!reasons) return std::unexpected(reasons.error());
      for (int j = 0; j < PQntuples(reasons->get()); ++j) {
        m.failures_by_reason.emplace_back(value(reasons->get(), j, 0), int_value(reasons->get(), j, 1));
        m.failed += int_value(reasons->get(), j, 1);
      }
      report.models.push_back(std::move(m));
    }
    auto runs = conn_.exec(
        "reading runs",
        fmt::format(
            "SELECT id, provider, model, {}, coalesce({}, ''), status, embedded, unchanged, skipped, failed, "
            "truncated, tokens, requests, retries, rate_limited, "
            "extract(epoch FROM coalesce(finished_at, heartbeat_at, started_at) - started_at) "
            "FROM embedding_runs ORDER BY id DESC LIMIT $1",
            ts("started_at"), ts("finished_at")),
        Params().integer(static_cast<std::int64_t>(recent_runs)));
    if (!runs) return std::unexpected(runs.error());
    const PGresult* r = runs->get();
    for (int i = 0; i < PQntuples(r); ++i) {
      RunSummary s;
      s.id = int_value(r, i, 0);
      s.provider = value(r, i, 1);
      s.model = value(r, i, 2);
      s.started_at = value(r, i, 3);
      s.finished_at = value(r, i, 4);
      s.status = core::parse_run_status(value(r, i, 5)).value_or(core::RunStatus::failed);
      s.stats.embedded = int_value(r, i, 6);
      s.stats.unchanged = int_value(r, i, 7);
      s.stats.failed = int_value(r, i, 9);
      s.stats.truncated = int_value(r, i, 10);
      s.stats.tokens = int_value(r, i, 11);
      s.stats.requests = int_value(r, i, 12);
      s.stats.retries = int_value(r, i, 13);
      s.stats.rate_limited = int_value(r, i, 14);
      s.duration_seconds = std::strtod(PQgetvalue(r, i, 15), nullptr);
      report.recent_runs.push_back(std::move(s));
    }
    return report;
  }

  Result<std::vector<SearchHit>> hits_for(const std::vector<std::pair<std::string, double>>& ranked) {
    std::vector<SearchHit> hits;
    if (ranked.empty()) return hits;
    std::vector<std::optional<std::string>> ids;
    for (const auto& [id, score] : ranked)
      ids.emplace_back(id);
    auto r = conn_.exec(
        "reading search hits",
        fmt::format("SELECT m.id::text, e.assistant_message_id::text, m.conversation_id::text, {}, "
                    "left(m.content, 400) FROM messages m LEFT JOIN message_embeddings e "
                    "ON e.user_message_id = m.id AND e.provider = $2 AND e.model = $3 "
                    "WHERE m.id = ANY($1::uuid[])",
                    ts("m.created_at")),
        Params().text(array_literal(ids)).text(search_provider_).text(search_model_));
    if (!r) return std::unexpected(r.error());
    std::unordered_map<std::string, int> row_of;
    for (int i = 0; i < PQntuples(r->get()); ++i)
      row_of[value(r->get(), i, 0)] = i;
    for (const auto& [id, score] : ranked) {
      auto it = row_of.find(id);
      if (it == row_of.end()) continue;  // deleted meanwhile
      SearchHit h;
      h.user_message_id = id;
      h.assistant_message_id = optional_value(r->get(), it->second, 1);
      h.conversation_id = value(r->get(), it->second, 2);
      h.created_at = value(r->get(), it->second, 3);
      h.snippet = util::repair_utf8(value(r->get(), it->second, 4));
      h.score = score;
      hits.push_back(std::move(h));
    }
    return hits;
  }

  // real[]: stream every vector of (provider, model) in binary, one row at a time, and
  // keep the top k (flat memory at any table size).
  Result<std::vector<SearchHit>> search_scan(const std::string& provider, const std::string& model,
                                             std::span<const float> query, std::size_t k) {
    search_provider_ = provider;
    search_model_ = model;
    Params p;
    p.text(provider).text(model).integer(static_cast<std::int64_t>(query.size()));
    std::vector<const char*> values;
    std::vector<int> lengths;
    p.pointers(values, lengths);
    if (PQsendQueryParams(conn_.get(),
                          "SELECT user_message_id::text, embedding FROM message_embeddings "
                          "WHERE provider = $1 AND model = $2 AND dimensions = $3::integer",
                          p.size(), nullptr, values.data(), lengths.data(), p.formats(), 1) != 1)
      return std::unexpected(conn_.error_from("scanning vectors", nullptr));
    PQsetSingleRowMode(conn_.get());
    const float query_norm = l2_norm(query);
    std::vector<std::string> ids;
    TopK top(k);
    std::vector<float> v;
    Status status;
    while (PGresult* raw = PQgetResult(conn_.get())) {
      PgResult r(raw);
      const auto st = PQresultStatus(raw);
      if (st == PGRES_SINGLE_TUPLE) {
        if (!get_float_array(PQgetvalue(raw, 0, 1), PQgetlength(raw, 0, 1), v) || v.size() != query.size())
          continue;
        const double score =
            cosine_from_bytes(query, query_norm, reinterpret_cast<const std::uint8_t*>(v.data()));
        ids.emplace_back(PQgetvalue(raw, 0, 0), static_cast<std::size_t>(PQgetlength(raw, 0, 0)));
        top.offer(static_cast<std::int64_t>(ids.size() - 1), score);
      } else if (st != PGRES_TUPLES_OK && status) {
        status = std::unexpected(conn_.error_from("scanning vectors", raw));
      }
    }
    if (!status) return std::unexpected(status.error());
    std::vector<std::pair<std::string, double>> ranked;
    for (const auto& [index, score] : top.sorted())
      ranked.emplace_back(ids[static_cast<std::size_t>(index)], score);
    return hits_for(ranked);
  }

  // pgvector: the server orders by cosine distance (<=>), through the HNSW index if any.
  Result<std::vector<SearchHit>> search_pgvector(const std::string& provider, const std::string& model,
                                                 std::span<const float> query, std::size_t k,
                                                 const std::string& type) {
    search_provider_ = provider;
    search_model_ = model;
    std::string literal = "[";
    for (std::size_t i = 0; i < query.size(); ++i)
      literal += fmt::format("{}{}", i ? "," : "", query[i]);
    literal += "]";
    auto r = conn_.exec(
        "searching",
        fmt::format("SELECT user_message_id::text, 1 - (embedding <=> $3::{0}) FROM message_embeddings "
                    "WHERE provider = $1 AND model = $2 ORDER BY embedding <=> $3::{0} LIMIT $4",
                    type),
        Params().text(provider).text(model).text(literal).integer(static_cast<std::int64_t>(k)));
    if (!r) return std::unexpected(r.error());
    std::vector<std::pair<std::string, double>> ranked;
    for (int i = 0; i < PQntuples(r->get()); ++i)
      ranked.emplace_back(value(r->get(), i, 0), std::strtod(PQgetvalue(r->get(), i, 1), nullptr));
    return hits_for(ranked);
  }

  PostgresOptions options_;
  Connection conn_;
  std::mt19937_64 rng_{std::random_device{}()};
  std::optional<std::string> embedding_type_;
  std::optional<std::string> force_since_;
  std::uint64_t stage_generation_ = 0;
  std::uint64_t listen_generation_ = 0;
  std::unique_ptr<Heartbeat> heartbeat_;
  Clock::time_point last_wait_log_{};
  std::string search_provider_, search_model_;
};

}  // namespace

bool looks_like_postgres_conninfo(const std::string& url) {
  return starts_with(url, "postgres://") || starts_with(url, "postgresql://") ||
         (url.find('=') != std::string::npos && !starts_with(url, "sqlite:"));
}

Result<std::unique_ptr<Store>> open_postgres_store(const PostgresOptions& given) {
  PostgresOptions options = given;
  // Operators (and the multi-worker tests) shorten the lease without a new flag.
  if (const char* lease = std::getenv("LENS_CLAIM_LEASE_SECONDS"); lease && *lease) {
    options.lease = std::chrono::seconds(std::strtoll(lease, nullptr, 10));
  }
  if (options.lease.count() <= 0)
    return fail(ErrorCode::invalid_argument, "postgres: the claim lease must be positive");
  auto store = std::make_unique<PostgresStore>(options);
  if (auto s = store->open(); !s) return std::unexpected(s.error());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace lens::store
