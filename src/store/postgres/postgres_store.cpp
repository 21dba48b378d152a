// PostgreSQL Store: the Store interface on the sections of store/postgres/ (connection,
// migrations, pending, claims, writes, reports). What lives here is the one rule every
// call follows: one attempt, after at most one reconnect when the session turns out lost.
#include "store/postgres/postgres_store.h"

#include <unistd.h>

#include <fmt/core.h>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "store/postgres/batch_ledger.h"
#include "store/postgres/change_tracking.h"
#include "store/postgres/claims.h"
#include "store/postgres/connection.h"
#include "store/postgres/migrations.h"
#include "store/postgres/pending.h"
#include "store/postgres/reports.h"
#include "store/postgres/verify_reads.h"
#include "store/postgres/writes.h"
#include "store/source_sql.h"
#include "store/write_isolation.h"

namespace lens::store {
namespace {

using postgres::Connection;
using util::ErrorCode;
using util::fail;
using util::Result;
using util::Status;
using Clock = std::chrono::steady_clock;

std::string default_worker_id() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "localhost");
  return fmt::format("{}:{}", host, getpid());
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

std::string join_setup(const std::string& a, const std::string& b) {
  return a.empty() ? b : b.empty() ? a : a + "; " + b;
}

class PostgresStore final : public Store {
 public:
  explicit PostgresStore(const PostgresOptions& options)
      : options_(with_worker(options)),
        source_(options_.mapping, SqlDialect::postgres),
        // A read-only command cannot write by mistake: the server refuses it. [output] schema
        // goes in front of every session's search_path (migrations.h, output_session_sql).
        conn_(options_.conninfo,
              join_setup(
                  options_.access == AccessMode::read_only ? "SET default_transaction_read_only = on" : "",
                  postgres::output_session_sql(options_.mapping))),
        claims_(options_.use_claims ? std::make_unique<postgres::Claims>(
                                          options_.conninfo, options_.worker_id, options_.lease, source_,
                                          postgres::output_session_sql(options_.mapping))
                                    : nullptr),
        writer_(options_.use_copy, claims_.get(), source_),
        ledger_(conn_, source_, options_.worker_id) {}

  // Claims not written by now are given back (best effort, no reconnect): the next run
  // or another worker need not wait for their lease. Reader and writer of one process
  // close together, at the end of a run; a SIGKILLed process leaves them to the lease.
  ~PostgresStore() override {
    if (!claims_) return;
    claims_->stop_heartbeat();
    if (conn_.alive()) (void)claims_->release(conn_);
  }

  Status open() {
    if (auto s = conn_.connect(); !s) return s;
    // Before any statement reads the source: a missing table or column is named here (read
    // only) or by migrate() and the reads, never met as an SQL error.
    source_ok_ = postgres::inspect_source(conn_, source_);
    if (!source_ok_ && options_.access == AccessMode::read_only) return source_ok_;
    if (options_.access == AccessMode::read_only) return postgres::check_current(conn_, source_);
    return {};
  }

  Status migrate() override {
    if (!source_ok_) return source_ok_;
    return call([&]() -> Status {
      if (options_.access == AccessMode::read_only) return postgres::check_current(conn_, source_);
      auto s = postgres::migrate(conn_, source_, options_);
      if (s) embedding_type_.reset();
      return s;
    });
  }

  Result<PendingPage> next_pending(const WorkScope& scope, PendingCursor& cursor,
                                   std::size_t max_items) override {
    if (!source_ok_) return std::unexpected(source_ok_.error());
    PendingCursor attempt;
    auto page = call([&] {
      attempt = cursor;
      return next_page(scope, attempt, max_items);
    });
    if (page) cursor = std::move(attempt);
    return page;
  }

  Result<WriteReport> write_batch(const WriteBatch& batch) override {
    return call([&]() -> Result<WriteReport> {
      auto type = batch.rows.empty() ? Result<std::string>(std::string()) : embedding_type();
      if (!type) return std::unexpected(type.error());
      return write_isolating_refused_rows(
          batch, "postgres", [&](const WriteBatch& b) { return writer_.write_once(conn_, b, *type); });
    });
  }

  Result<std::int64_t> begin_run(const RunRecord& run) override {
    return call([&] { return postgres::begin_run(conn_, run); });
  }

  Status finish_run(std::int64_t run_id, core::RunStatus status, const core::RunStats& stats,
                    const std::string& cause) override {
    return call([&] { return postgres::finish_run(conn_, run_id, status, stats, cause); });
  }

  Result<std::int64_t> count_pending(const WorkScope& scope) override {
    if (!source_ok_) return std::unexpected(source_ok_.error());
    return call([&] { return postgres::count_pending(conn_, source_, scope); });
  }

  Result<StatusReport> status(std::size_t recent_runs) override {
    if (!source_ok_) return std::unexpected(source_ok_.error());
    return call([&] { return postgres::read_status(conn_, source_, recent_runs); });
  }

  Result<std::vector<PairSummary>> pairs() override {
    return call([&] { return postgres::read_pairs(conn_); });
  }

  Result<std::vector<FailureRecord>> failures(const std::string& provider,
                                              const std::string& model) override {
    return call([&] { return postgres::read_failures(conn_, provider, model); });
  }

  Result<std::vector<SourceIndex>> source_indexes() override {
    if (!source_ok_) return std::unexpected(source_ok_.error());
    return call([&] { return postgres::read_source_indexes(conn_, source_); });
  }

  Result<SourceDescription> describe_source() override {
    if (!source_ok_) return std::unexpected(source_ok_.error());
    return describe(source_);
  }

  Result<std::vector<std::string>> missing_privileges() override {
    return call(
        [&]() -> Result<std::vector<std::string>> { return postgres::missing_privileges(conn_, source_); });
  }

  Result<ChangeTracking> change_tracking() override {
    if (!source_ok_) return std::unexpected(source_ok_.error());
    return call([&] { return postgres::read_change_tracking(conn_, source_); });
  }

  Status set_change_tracking(bool on) override {
    if (!source_ok_) return source_ok_;
    return call([&] { return postgres::set_change_tracking(conn_, source_, on); });
  }

  Status take_changes(const std::string& pass) override {
    return call([&] { return postgres::take_changes(conn_, pass); });
  }

  Status drop_changes(const std::string& pass) override {
    return call([&] { return postgres::drop_changes(conn_, pass); });
  }

  Result<std::string> input_definition(const std::string& provider, const std::string& model) override {
    return call([&]() -> Result<std::string> {
      auto r = conn_.exec(
          "reading the input definition",
          "SELECT fingerprint FROM lens_embed_input_definitions WHERE provider = $1 AND model = $2",
          postgres::Params().text(provider).text(model));
      if (!r) return std::unexpected(r.error());
      return r->size() > 0 ? r->text(0, 0) : std::string();
    });
  }

  Status record_input_definition(const std::string& provider, const std::string& model,
                                 const std::string& fingerprint) override {
    return call([&]() -> Status {
      auto r = conn_.exec(
          "recording the input definition",
          "INSERT INTO lens_embed_input_definitions (provider, model, fingerprint) VALUES ($1, $2, "
          "$3) ON CONFLICT (provider, model) DO UPDATE SET fingerprint = excluded.fingerprint, "
          "recorded_at = now()",
          postgres::Params().text(provider).text(model).text(fingerprint));
      if (!r) return std::unexpected(r.error());
      return {};
    });
  }

  Result<SearchResult> search(const std::string& provider, const std::string& model,
                              std::span<const float> query, std::size_t k) override {
    return call([&]() -> Result<SearchResult> {
      auto type = embedding_type();
      if (!type) return std::unexpected(type.error());
      return postgres::search(conn_, source_, *type, provider, model, query, k);
    });
  }

  Result<VerifyPage> verify_page(const std::string& provider, const std::string& model, PendingCursor& cursor,
                                 std::size_t max_items) override {
    if (!source_ok_) return std::unexpected(source_ok_.error());
    PendingCursor attempt;
    auto page = call([&] {
      attempt = cursor;
      return postgres::verify_page(conn_, source_, provider, model, attempt, max_items);
    });
    if (page) cursor = std::move(attempt);
    return page;
  }

  Result<Orphans> orphans(const std::string& provider, const std::string& model,
                          std::size_t max_ids) override {
    if (!source_ok_) return std::unexpected(source_ok_.error());
    return call([&] { return postgres::read_orphans(conn_, source_, provider, model, max_ids); });
  }

  Result<IdSample> wrong_dimensions(const std::string& provider, const std::string& model,
                                    std::int64_t dimensions, std::size_t max_ids) override {
    return call([&]() -> Result<IdSample> {
      auto type = embedding_type();
      if (!type) return std::unexpected(type.error());
      return postgres::wrong_dimensions(conn_, *type, provider, model, dimensions, max_ids);
    });
  }

  Result<std::optional<std::vector<float>>> read_vector(const std::string& provider, const std::string& model,
                                                        const std::string& user_message_id) override {
    return call([&] { return postgres::read_vector(conn_, source_, provider, model, user_message_id); });
  }

  BatchLedger* batch_ledger() override { return &ledger_; }

  Status release_claims() override {
    if (!claims_) return {};
    return call([&] { return claims_->release(conn_); });
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
    return conn_.wait_for_notification(deadline);
  }

 private:
  static PostgresOptions with_worker(PostgresOptions o) {
    if (o.worker_id.empty()) o.worker_id = default_worker_id();
    return o;
  }

  // The retry rule of this store (store.h): every call makes one attempt. libpq learns
  // that an idle session is gone (server restarted, backend terminated) only when it uses
  // it, so a call whose FIRST statement fails on a session that is then dead found it
  // lost at its start: it reconnects once and starts over. Anything else (the reconnect
  // fails, the session dies after a statement succeeded, any other error) is returned as
  // classified, transient included, and the caller decides whether to call again. No
  // sleeping, no backoff here: the pipeline owns retries. The redo is safe because every
  // first statement is a read, a BEGIN or an idempotent statement; the one exception,
  // begin_run's INSERT, may leave a second 'running' row if the server committed it just
  // before the session died, exactly as a caller's retry would.
  template <typename F>
  auto call(F&& body) -> decltype(body()) {
    const auto generation = conn_.generation();
    if (auto s = conn_.ensure(); !s) return std::unexpected(s.error());
    const bool reconnected = conn_.generation() != generation;
    const auto before = conn_.completed();
    auto result = body();
    if (result || reconnected || conn_.alive() || conn_.completed() != before) return result;
    if (auto s = conn_.ensure(); !s) return std::unexpected(s.error());
    return body();
  }

  Result<std::string> embedding_type() {
    if (!embedding_type_) {
      auto t = postgres::read_embedding_type(conn_);
      if (!t) return t;
      embedding_type_ = *t;
    }
    return *embedding_type_;
  }

  // The --force horizon: fixed at this store's first look, so rows written since (by
  // this or another worker) are not forced again.
  Result<std::string> force_since() {
    if (!force_since_) {
      auto now = postgres::server_now(conn_);
      if (!now) return now;
      force_since_ = *now;
    }
    return *force_since_;
  }

  // One page: the key window after `cursor` (of the keyset, or with scope.changes_only of
  // what the change queue names), then its exchanges that need work (claimed first when
  // several workers share the work). Moves `cursor` past the window.
  Result<PendingPage> next_page(const WorkScope& scope, PendingCursor& cursor, std::size_t max_items) {
    auto since = force_since();
    if (!since) return std::unexpected(since.error());
    if (claims_) {
      if (auto s = claims_->start_heartbeat(); !s) return std::unexpected(s.error());
    }
    const bool queued = scope.changes_only && scope.changes;
    postgres::QueuedKeys keys;
    if (queued) {
      auto read = postgres::read_queued_keys(conn_, source_, scope, cursor, max_items);
      if (!read) return std::unexpected(read.error());
      keys = std::move(*read);
    } else {
      auto window = postgres::read_key_window(conn_, source_, scope, cursor, max_items);
      if (!window) return std::unexpected(window.error());
      keys.window = std::move(*window);
    }
    const auto& window = keys.window;
    PendingPage page;
    if (window.scanned == 0) {
      if (claims_) return claims_->takeover_page(conn_, scope, *since, max_items);
      page.exhausted = true;
      return page;
    }
    if (!claims_) {
      auto s =
          queued ? postgres::read_exchanges_by_id(conn_, source_, scope, *since, keys.ids, page.items)
                 : postgres::read_window_exchanges(conn_, source_, scope, *since, cursor, window, page.items);
      if (!s) return std::unexpected(s.error());
    } else {
      auto candidates = queued ? postgres::read_ids_needing_work(conn_, source_, scope, *since, keys.ids)
                               : postgres::read_window_ids(conn_, source_, scope, *since, cursor, window);
      if (!candidates) return std::unexpected(candidates.error());
      if (!candidates->empty()) {
        if (auto s = claims_->claim_and_read(conn_, scope, *since, *candidates, page.items); !s)
          return std::unexpected(s.error());
      }
    }
    cursor.started = true;
    cursor.created_at = window.last_created_at;
    cursor.id = window.last_id;
    // A short window is the end of the keyset; with claims, work still held by other
    // workers is waited for (and taken over if their lease ends) before we say so.
    page.exhausted = window.scanned < max_items && !claims_;
    return page;
  }

  PostgresOptions options_;
  SourceSql source_;  // the mapping with the catalog's key type; claims_ and writer_ refer to it
  Status source_ok_;  // what the catalog said of the source when the store connected
  Connection conn_;
  std::unique_ptr<postgres::Claims> claims_;
  postgres::BatchWriter writer_;
  postgres::PostgresBatchLedger ledger_;  // on conn_ and source_
  std::optional<std::string> embedding_type_;
  std::optional<std::string> force_since_;
  std::uint64_t listen_generation_ = 0;
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
