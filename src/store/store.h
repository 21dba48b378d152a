// The Store interface: where exchanges come from and embeddings, failures and runs go.
// Implementations: sqlite/ (embedded default) and postgres/, opened by
// open_sqlite_store / open_postgres_store, which hand the caller a Store it owns. The
// contract of both is below the value types.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "core/types.h"
#include "store/verify_types.h"
#include "util/result.h"

namespace lens::store {

class BatchLedger;  // batch_ledger.h

// How a command opens the database (store/sqlite/sqlite_store.h, postgres_store.h).
enum class AccessMode {
  // status, failures, search, verify, doctor: no DDL, no file created, no writer lock.
  // A database without lens-embed's tables (or with an older schema version) is
  // configuration: "... run `lens-embed init`".
  read_only,
  // run, init: migrate() may create or upgrade lens-embed's own tables, but a SQLite file
  // that does not exist is configuration naming `lens-embed init --create`.
  read_write,
  // init --create: as read_write, and a missing SQLite file is created.
  create,
};

// Which rows a run works on.
struct WorkScope {
  std::string provider;
  std::string model;
  bool force = false;  // also exchanges that already have an up-to-date row
  // `failures --retry`: exactly the exchanges with a recorded failure for (provider,
  // model), of both classes, due or not, whatever their row; nothing else.
  bool only_failures = false;
  // Also read exchanges whose row looks up to date, so that the caller hashes their input
  // and re-embeds only those whose hash differs (a source without updated_at, a changed
  // template, `run --rehash`). Unlike force, nothing is re-embedded for being read.
  // Last, so that {provider, model, force, only_failures} initialisers keep their meaning.
  bool rehash = false;
  // Change tracking is installed (Store::change_tracking): also read, to hash, the exchanges
  // the change queue names (an edited, deleted or added message, or its conversation).
  bool changes = false;
  // With changes, after a committed pass over the whole keyset (--follow): read only the
  // exchanges the queue names and those with a failure now due, not the keyset, so that a
  // wake-up costs what changed. What the queue cannot name (a row deleted from
  // message_embeddings by hand, items a cancelled batch released) waits for the next pass
  // without it (RunOptions::follow_sweep).
  bool changes_only = false;
};

// init --track-changes (PostgreSQL): statement triggers on the source table feed a change
// queue in lens-embed's schema.
struct ChangeTracking {
  bool installed = false;
  std::int64_t queued = 0;  // entries waiting for a run
};
// Why SQLite cannot track changes, and what to do instead (exit 2 of init --track-changes).
inline constexpr const char* k_no_change_tracking =
    "init --track-changes / --untrack-changes: change tracking needs PostgreSQL (statement triggers "
    "with transition tables); on SQLite map [source] updated_at so that a run reads only what changed, "
    "or leave updated_at = \"\" and every run hashes every input (as `run --rehash`)";

// Keyset position over user messages ordered by (created_at, id). Never OFFSET.
struct PendingCursor {
  bool started = false;
  std::string created_at;
  std::string id;
};

struct PendingPage {
  std::vector<core::Exchange> items;
  bool exhausted = false;  // no user message after the cursor
};

struct RunRecord {
  std::string provider;
  std::string model;
  std::string arguments;  // JSON of the effective arguments, secrets masked
  std::string worker;     // host:pid of the process
};

// Everything one batch commits, in one transaction: the cursor of a run only ever moves
// past what is in here once this returned success.
struct WriteBatch {
  std::int64_t run_id = 0;
  std::string provider;
  std::string model;
  std::vector<core::EmbeddingRow> rows;  // upserted: inserted, or updated in place
  std::vector<core::RowTouch> touches;   // unchanged input: refresh markers only
  std::vector<core::Failure> failures;   // upserted, attempts += 1
  core::RunStats progress;               // cumulative counters of the run so far
};

// What write_batch did with a batch besides writing it: the items it refused as late
// writes (see "Fencing" in the Store contract). They are neither written nor recorded as
// failures; the exchange is left to whoever holds it or wrote the newer version.
struct WriteReport {
  std::int64_t fenced_rows = 0;
  std::int64_t fenced_touches = 0;
  std::int64_t fenced_failures = 0;

  [[nodiscard]] std::int64_t fenced() const { return fenced_rows + fenced_touches + fenced_failures; }
  WriteReport& operator+=(const WriteReport& o) {
    fenced_rows += o.fenced_rows;
    fenced_touches += o.fenced_touches;
    fenced_failures += o.fenced_failures;
    return *this;
  }
};

struct FailureRecord {
  std::string provider;
  std::string model;
  std::string user_message_id;
  core::FailureReason reason = core::FailureReason::provider_rejected;  // its class: core::failure_class
  std::string detail;
  std::int64_t attempts = 0;
  std::string first_failed_at;
  std::string last_failed_at;
  // Transient reasons: when the default scope offers it again (last_failed_at +
  // core::transient_retry_delay(attempts)). Empty for permanent reasons.
  std::string next_attempt_at;
};

struct RunSummary {
  std::int64_t id = 0;
  std::string provider;
  std::string model;
  std::string started_at;
  std::string finished_at;  // empty while running
  core::RunStatus status = core::RunStatus::running;
  core::RunStats stats;
  double duration_seconds = 0;
  std::string error;  // the cause given to finish_run ("" when none)
};

struct ModelStatus {
  std::string provider;
  std::string model;
  std::int64_t embedded = 0;
  std::int64_t pending = 0;           // eligible exchanges with neither a row nor a failure
  std::int64_t stale = 0;             // rows whose source changed since they were written
  std::int64_t failed_permanent = 0;  // stay until the message is edited or `failures --retry`
  std::int64_t failed_transient = 0;  // retried by later runs once due
  std::int64_t transient_due = 0;     // of failed_transient: due now, so the next run retries them
  std::int64_t failed = 0;            // failed_permanent + failed_transient
  std::vector<std::pair<std::string, std::int64_t>> failures_by_reason;
  // Freshness: the oldest user message counted in `pending` (first in keyset order, through
  // the source mapping: its filter, roles and blank rule), its created_at as the database
  // gives it back, and its age by the database's clock. Empty and nullopt when nothing is
  // pending; the age alone is nullopt when the database cannot read the time (SQLite: not
  // a julianday() text).
  std::string oldest_pending_at;
  std::optional<double> oldest_pending_age_seconds;
  // Spending of the last 24 hours (by the database's clock) from embedding_runs, which
  // keeps one token total per run: a run counts when its span (started_at to finished_at,
  // or to its last progress update while it runs) reaches into the window; one that
  // started before the window counts for the share of its span inside it, as if it spent
  // at an even pace (prorated_runs says how many did). The price is not stored: the cli
  // applies the model table's.
  std::int64_t runs_24h = 0;
  std::int64_t tokens_24h = 0;
  std::int64_t prorated_runs_24h = 0;
  // The newest run of this pair that ended `failed`, with its cause (RunSummary::error).
  // Interrupted runs (a stop signal) are not failures and are not looked at.
  std::optional<RunSummary> last_failed_run;
  // Filled by the cli, which knows the [source] mapping in effect: whether the input texts'
  // definition (core::input_definition_fingerprint: template, reply rule, filter, roles)
  // differs from the one recorded at the pair's last complete run, which makes rows stale
  // by content_sha256 without any updated_at moving. "unchanged", "changed",
  // "not_recorded" (no complete run recorded one yet), or "" when not looked at.
  std::string input_definition;
};

// A live worker of a store that splits work between processes (PostgreSQL claims): its
// session holds its advisory lock (store/postgres/claims.h), and it holds claims.
struct WorkerStatus {
  std::string worker;  // as it names itself in its claims: "host:pid" for `run`
  std::string provider;
  std::string model;
  std::int64_t claims = 0;       // exchanges it holds for this pair
  std::string lease_expires_at;  // the latest expiry among them (its heartbeat renews them)
  bool lease_expired = false;    // all expired: it stopped renewing, others may take them over
};

// An index the pending query needs on the source relation (a table; a view has none), named
// as `init --source-indexes` creates it, with the statement that does.
struct SourceIndex {
  std::string name;
  bool present = false;  // an index of that name exists beside the relation
  // PostgreSQL: CREATE INDEX CONCURRENTLY (run it outside a transaction: a live table keeps
  // taking writes meanwhile); SQLite: CREATE INDEX.
  std::string create_sql;
};

// The mapped source as the database's catalog describes it, for `doctor`.
struct SourceDescription {
  bool is_table = false;                                     // else a view
  std::vector<std::pair<std::string, std::string>> columns;  // name, declared type, catalog order
  std::string key_type;                                      // the type of lens-embed's message id columns
  bool foreign_key = false;  // lens-embed's rows reference the source (deletes follow)
};

// One (provider, model) present in the output tables (message_embeddings or
// embedding_failures), for the commands' defaults, `search`'s choice, the dimension check
// and the exit status.
struct PairSummary {
  std::string provider;
  std::string model;
  std::int64_t rows = 0;  // in message_embeddings
  std::int64_t failed_permanent = 0;
  std::int64_t failed_transient = 0;
  std::int64_t transient_due = 0;        // of failed_transient: next_attempt_at <= now
  std::vector<std::int64_t> dimensions;  // distinct dimensions of its rows, ascending
};

struct StatusReport {
  std::int64_t eligible = 0;  // user messages with non-blank content
  std::vector<ModelStatus> models;
  std::vector<RunSummary> recent_runs;
  // Stores with claims (PostgreSQL): true, the live workers with their claims (a worker
  // without claims, e.g. an idle --follow, is not seen), and the claims left by workers
  // whose session is gone (released at their end, or killed): the next worker takes those
  // over at once. Stores without (SQLite: one writer): false, empty, 0.
  bool has_claims = false;
  std::vector<WorkerStatus> workers;
  std::int64_t orphaned_claims = 0;
};

struct SearchHit {
  std::string user_message_id;
  std::optional<std::string> assistant_message_id;
  std::string conversation_id;
  std::string created_at;
  std::string snippet;  // beginning of the user message
  double score = 0;     // cosine similarity
};

// What `search` found and how it ranked: `method` is "exact scan" (every row scored), or
// the approximate index that answered, e.g. "HNSW index message_embeddings_hnsw
// (approximate)", for the user to know a nearer row may have been missed.
struct SearchResult {
  std::vector<SearchHit> hits;
  std::string method;
};

// The contract every implementation keeps, so the pipeline and the cli never ask which
// backend they talk to (the conformance suite in tests/store/ runs on both):
//
// Threads: a Store object is one connection. It may be used by one thread at a time (any
// thread, not concurrently); open one per thread. The PostgreSQL store also runs a
// heartbeat thread of its own for claims (store/postgres/claims.h).
//
// Errors: every call returns a classified util::Error; nothing throws.
//   transient      means call again: a lost connection, a busy or locked database, a
//                  deadlock, a server starting up or shutting down, a commit whose outcome
//                  is unknown. The store never retries by itself: each call makes one
//                  attempt (the PostgreSQL store reconnects once when its session turns
//                  out lost at the start of a call, and no more). Callers that must
//                  survive a database restart retry; the pipeline does
//                  (with_store_retries).
//   configuration  the setup is wrong: credentials, no such database, missing privilege,
//                  a schema newer than this binary, an undefined table or column, a
//                  missing source table or column (the message names it), a SQLite file
//                  that does not exist (read_only, read_write), lens-embed's tables
//                  missing or older in read_only mode (the message says to run
//                  `lens-embed init`). No call will succeed until someone fixes it.
//   bad_input      the database refused one row (PostgreSQL SQLSTATE class 22 or 23; SQLite
//                  SQLITE_CONSTRAINT, SQLITE_MISMATCH, SQLITE_TOOBIG): see "Refused rows".
//                  write_batch isolates these itself; any other error is about the
//                  schema, not the row, and is returned as classified.
//   not_found      the SQLite file cannot be opened.
//   permanent      the same call fails again the same way.
//   internal       the database holds something this binary does not understand.
//
// Refused rows: when the database refuses a row of a batch (bad_input: a CHECK, a
// constraint trigger, a vector the column cannot store), both stores isolate it, record it
// as a failure with reason store_rejected and commit the rest of the batch
// (write_isolation.h).
//
// Fencing: a worker that was paused or cut off (SIGSTOP, a VM migration, a network
// partition) may write results it read long ago, after its claims were taken over and the
// messages edited. write_batch refuses such late writes item by item, in the statements
// that write them (so the check and the write see the same row):
//   rows      are not written over a stored row of a newer source_version, nor over a
//             failure recorded for a newer source_version; and (PostgreSQL claims) not
//             while another worker's claim is on the exchange, unless the stored row
//             has the same input hash (the write is then provably harmless: same input).
//   touches   apply only while the stored row still has the touch's input hash and is
//             not of a newer source_version.
//   failures  are not recorded over a row or a failure of a newer source_version, nor
//             (PostgreSQL claims) while another worker's claim is on the exchange.
// An exchange without any claim (never claimed, or written and its claim dropped) is
// fenced by source_version and hash alone. A stored row whose reply is gone from the
// source (deleted or filtered out) fences no row write by its version: that version went
// with the reply, and the exchange read without it is legitimately older. The same
// write twice is harmless. Versions compare as instants; a missing version never fences.
// Refused items are counted in the WriteReport and in the run's stored progress as not
// written (batch.progress counts every item of the batch as written: the store subtracts
// the refused ones).
//
// Source tables: the stores read the relation of the source mapping (core::SourceMapping,
// `messages` by default), checked against the catalog when they open, and never create it,
// nor anything on it, outside `init` with its source-index options. Without a foreign key
// to follow deletes (a view) or with a filter, migrate() deletes the rows and failures of
// user messages that are gone or filtered out.
//
// Secrets: the run's arguments are passed through util::redact before they are stored;
// error messages never carry a password.
class Store {
 public:
  // Closes the connection. The PostgreSQL store first stops its heartbeat and gives back
  // the claims it holds (best effort, as release_claims()).
  virtual ~Store() = default;

  // Creates or upgrades lens-embed's own tables (idempotent, versioned; a current schema
  // runs no DDL, so a role without CREATE may call it after `init`). Never creates the
  // source tables. In read_only mode it runs no DDL: it only checks that the schema is
  // current.
  // On success: the schema is current. On failure: nothing of it is applied; a schema
  // newer than this binary, a missing source table or column, and (read_only) a missing
  // or older schema are configuration.
  [[nodiscard]] virtual util::Status migrate() = 0;

  // Up to `max_items` exchanges after `cursor` that `scope` needs work on: no row yet,
  // a row whose source changed (assistant reply or updated_at differs), or every row
  // with scope.force. Blank user content is never returned. An exchange with a recorded
  // failure (of the same source version) is skipped while the failure is permanent, or
  // transient and not yet due (next_attempt_at > now); edited since, it is pending again.
  // With scope.only_failures: exactly the exchanges with a recorded failure, nothing else.
  // On success: the page, in keyset order, and `cursor` advanced past everything it
  // looked at (a page may be empty and not exhausted: call again). With PostgreSQL
  // claims, the items are claimed by this worker, and at the end of the keyset the call
  // may sleep up to 1 s while other workers hold claims. On failure: `cursor` unchanged.
  [[nodiscard]] virtual util::Result<PendingPage> next_pending(const WorkScope& scope, PendingCursor& cursor,
                                                               std::size_t max_items) = 0;

  // Commits `batch` in one transaction: rows upserted, touches applied, failures upserted
  // (attempts += 1), the failures of written or touched items cleared, the run's progress
  // stored. Rows the database refuses are isolated and recorded as store_rejected
  // failures (see above); the rest still commits. Late writes are refused (see "Fencing").
  // On success: every item is written, recorded or fenced; the report counts the fenced
  // ones. On failure: what was not committed is not visible; an error whose outcome is
  // unknown is transient, and redoing the whole batch is always safe (every write is an
  // upsert, and a row or touch already written is written again, not fenced).
  [[nodiscard]] virtual util::Result<WriteReport> write_batch(const WriteBatch& batch) = 0;

  // Records a run as running, with `run.arguments` redacted. On success: its id (> 0),
  // for WriteBatch::run_id and finish_run.
  [[nodiscard]] virtual util::Result<std::int64_t> begin_run(const RunRecord& run) = 0;

  // Records the end of run `run_id`: its status, final counters, finish time and `cause`
  // (embedding_runs.error; "" stores NULL). `cause` says why a failed or interrupted run
  // stopped, e.g. "provider unavailable: connection refused (check --base-url)"; it goes
  // through util::redact.
  [[nodiscard]] virtual util::Status finish_run(std::int64_t run_id, core::RunStatus status,
                                                const core::RunStats& stats, const std::string& cause) = 0;

  // An estimate of the work a run of `scope` will find, for progress totals: exchanges
  // without a row (all eligible ones with force) and without a failure that is not due;
  // with only_failures, the recorded failures. Cheap; stale rows are not counted.
  [[nodiscard]] virtual util::Result<std::int64_t> count_pending(const WorkScope& scope) = 0;

  // Eligible exchanges, per (provider, model) the rows, pending, stale and failed counts
  // (by class), freshness, the last 24 hours' runs and tokens and the last failed run,
  // the `recent_runs` newest runs, and the live workers with their claims. One pass over
  // the messages: for reports, not for the per-page path. Reads only: no write, no DDL,
  // no lock (not the SQLite writer lock either).
  [[nodiscard]] virtual util::Result<StatusReport> status(std::size_t recent_runs) = 0;

  // Every (provider, model) with rows or failures, ordered by provider and model. Does not
  // read the source tables, and finds the distinct dimensions through an index (one seek
  // per distinct value), so it is cheap enough for the start of every run.
  [[nodiscard]] virtual util::Result<std::vector<PairSummary>> pairs() = 0;

  // The indexes the pending query needs on the source (none on a view) and whether each is
  // there. Reads the catalog only.
  [[nodiscard]] virtual util::Result<std::vector<SourceIndex>> source_indexes() = 0;
  // The source relation as found when the store opened. On failure: the configuration error
  // that the mapping met (a missing relation or column).
  [[nodiscard]] virtual util::Result<SourceDescription> describe_source() = 0;

  // What the connected role (PostgreSQL) or the process (SQLite) lacks for `run`: the fix of
  // each gap, e.g. `GRANT SELECT, INSERT ON "message_embeddings" TO "lens";` or "make lens.db
  // writable ...". Empty when nothing is missing. For `doctor`.
  [[nodiscard]] virtual util::Result<std::vector<std::string>> missing_privileges() = 0;

  // The input definition (core::input_definition_fingerprint) recorded for (provider,
  // model) by the last run that read every input to the end and committed what it found;
  // "" when none was recorded. Read by `run` before it starts.
  [[nodiscard]] virtual util::Result<std::string> input_definition(const std::string& provider,
                                                                   const std::string& model) = 0;
  // Records `fingerprint` as the pair's input definition (replacing the previous one). Call
  // only once a pass over every input under that definition is committed: a run that stops
  // before must find the old value and hash every input again.
  [[nodiscard]] virtual util::Status record_input_definition(const std::string& provider,
                                                             const std::string& model,
                                                             const std::string& fingerprint) = 0;

  // The recorded failures of `provider` and `model` ("" matches any). On failure:
  // internal when a stored reason is not one this binary knows.
  [[nodiscard]] virtual util::Result<std::vector<FailureRecord>> failures(const std::string& provider,
                                                                          const std::string& model) = 0;

  // Top `k` rows of (provider, model) by cosine similarity to `query`, best first; rows
  // of another dimension are skipped. `query` is only read during the call. Exact, except
  // on PostgreSQL when a pgvector HNSW or IVFFlat cosine index covers the column: that
  // index answers, and the result's method says so.
  [[nodiscard]] virtual util::Result<SearchResult> search(const std::string& provider,
                                                          const std::string& model,
                                                          std::span<const float> query, std::size_t k) = 0;

  // --- verify: reads only; none of them writes, claims or takes a lock ---

  // Up to `max_items` eligible exchanges after `cursor` (keyset order, as next_pending),
  // each with its stored row's hash and whether a failure is recorded, for `provider` and
  // `model`. Every eligible exchange is returned, whatever its row or failure. On success:
  // `cursor` advanced past the last item. On failure: `cursor` unchanged.
  [[nodiscard]] virtual util::Result<VerifyPage> verify_page(const std::string& provider,
                                                             const std::string& model, PendingCursor& cursor,
                                                             std::size_t max_items) = 0;

  // The orphans of (provider, model), counted, with the first `max_ids` ids of each. One pass
  // over lens-embed's rows and failures of the pair, one key lookup each.
  [[nodiscard]] virtual util::Result<Orphans> orphans(const std::string& provider, const std::string& model,
                                                      std::size_t max_ids) = 0;

  // Rows of (provider, model) whose dimensions column, or whose stored vector's length,
  // differs from `dimensions`; counted, with the first `max_ids` ids. One pass over the rows.
  [[nodiscard]] virtual util::Result<IdSample> wrong_dimensions(const std::string& provider,
                                                                const std::string& model,
                                                                std::int64_t dimensions,
                                                                std::size_t max_ids) = 0;

  // The stored vector of one row; nullopt when there is no such row.
  [[nodiscard]] virtual util::Result<std::optional<std::vector<float>>> read_vector(
      const std::string& provider, const std::string& model, const std::string& user_message_id) = 0;

  // Stores that split work between processes (PostgreSQL claims): gives back every
  // exchange this worker claimed and has not written, so others need not wait for the
  // lease to expire. Call once when a run ends, however it ends. Others: no-op.
  // On failure: the claims expire with their lease anyway.
  [[nodiscard]] virtual util::Status release_claims() { return {}; }

  // The Batch API ledger of this store (batch_ledger.h), or nullptr when the backend has
  // none yet. Owned by the store; shares its connection (same thread rules).
  [[nodiscard]] virtual BatchLedger* batch_ledger() { return nullptr; }
  // Change tracking (PostgreSQL only; SQLite reports none and refuses to install it).
  [[nodiscard]] virtual util::Result<ChangeTracking> change_tracking() { return ChangeTracking{}; }
  // Installs (idempotent) or removes the triggers, their function and the queue. On failure:
  // configuration for a store or source (a view) that cannot have them, naming the fix.
  [[nodiscard]] virtual util::Status set_change_tracking(bool on) = 0;
  // A pass takes every queued entry (marks it `pass`) before it reads, and drops the ones it
  // took once everything it read is committed: a crash in between leaves them queued for the
  // next run, and entries committed meanwhile wait for the next pass.
  [[nodiscard]] virtual util::Status take_changes(const std::string& /*pass*/) { return {}; }
  [[nodiscard]] virtual util::Status drop_changes(const std::string& /*pass*/) { return {}; }

  // --follow: blocks until the source tables may have changed (a change notification
  // arrived: true) or `timeout` passed (false). A store without notifications just
  // sleeps, which makes the caller poll. After either, the caller starts a new pass
  // over the keyset (a fresh PendingCursor): edited old messages sort before the cursor.
  // PostgreSQL: a connection that cannot be re-established sleeps out the timeout and
  // reports false; a new session reports true once (notifications may have been
  // missed). On failure (LISTEN refused, poll failed): call again.
  [[nodiscard]] virtual util::Result<bool> wait_for_changes(std::chrono::milliseconds timeout) {
    std::this_thread::sleep_for(timeout);
    return false;
  }
};

}  // namespace lens::store
