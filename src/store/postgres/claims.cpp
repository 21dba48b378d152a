// Claims, takeover and the lease heartbeat of the PostgreSQL store; see claims.h.
#include "store/postgres/claims.h"

#include <fmt/core.h>
#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_set>

#include "util/log.h"

namespace lens::store::postgres {
namespace {

using util::Result;
using util::Status;
using Clock = std::chrono::steady_clock;

// Expiring rather than deleting: see Claims::release.
constexpr const char* k_release_sql =
    "UPDATE embedding_claims SET expires_at = now() - interval '1 second' WHERE worker = $1";

// The server drops the heartbeat session of a machine that vanished (reboot, cable) after
// about 30 + 3 x 10 s of silence, which frees its lock; the lease covers the rest. Set on
// the server side of the session: the client's keepalives only protect the client.
constexpr const char* k_heartbeat_session =
    "SET tcp_keepalives_idle = 30; SET tcp_keepalives_interval = 10; SET tcp_keepalives_count = 3";

// A positive 62-bit key: collisions between workers are negligible, and the pg_locks
// arithmetic of claim_is_orphaned stays in bigint.
std::int64_t random_key() {
  std::random_device rd;
  const std::uint64_t v = (std::uint64_t{rd()} << 32) ^ rd() ^ (std::uint64_t{rd()} << 17);
  return static_cast<std::int64_t>((v & ((std::uint64_t{1} << 62) - 1)) | 1);
}

// Takes the lock of `key` on `conn`'s session. pg_try_advisory_lock: a session of ours
// that the server has not yet noticed is gone may still hold it after a reconnect; the
// next beat tries again instead of blocking the thread.
Status take_lock(Connection& conn, std::int64_t key) {
  auto r =
      conn.exec("taking the worker lock", "SELECT pg_try_advisory_lock($1::bigint)", Params().integer(key));
  if (!r) return std::unexpected(r.error());
  if (!r->boolean(0, 0)) {
    return util::fail(util::ErrorCode::internal,
                      fmt::format("postgres: the worker lock {} is held by another session", key));
  }
  return {};
}

}  // namespace

std::string held_worker_keys() {
  return "ARRAY(SELECT (l.classid::bigint << 32) | l.objid::bigint FROM pg_locks l "
         "  WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted "
         "  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()))";
}

std::string claim_is_orphaned(std::string_view c) {
  return fmt::format(
      "({0}.worker_key IS NOT NULL AND {0}.claimed_at < statement_timestamp() AND NOT ({0}.worker_key = ANY "
      "({1})))",
      c, held_worker_keys());
}

// ---- Heartbeat ---------------------------------------------------------------------------

struct Heartbeat::State {
  State(std::string info, std::string w, std::int64_t k, std::chrono::seconds l, const std::string& setup)
      : conn(std::move(info), setup.empty() ? std::string(k_heartbeat_session)
                                            : std::string(k_heartbeat_session) + "; " + setup),
        worker(std::move(w)),
        key(k),
        lease(l) {}

  Connection conn;  // the caller's thread until the thread starts, then the thread's
  std::string worker;
  std::int64_t key;
  std::chrono::seconds lease;
  std::uint64_t locked_generation = 0;  // the session that holds the lock
  std::mutex mutex;
  std::condition_variable wake;
  bool stop = false;
  std::thread thread;

  Status ensure_locked() {
    if (auto s = conn.ensure(); !s) return s;
    if (locked_generation == conn.generation()) return {};
    if (auto s = take_lock(conn, key); !s) return s;
    locked_generation = conn.generation();
    return {};
  }

  void loop() {
    const auto period = std::max<std::chrono::milliseconds>(std::chrono::milliseconds(200), lease / 3);
    std::unique_lock lock(mutex);
    while (!wake.wait_for(lock, period, [this] { return stop; })) {
      lock.unlock();
      if (auto s = ensure_locked(); !s) {
        util::log_warn("postgres: worker heartbeat: {}", s.error().message);
      } else {
        auto r =
            conn.exec("renewing claims",
                      "UPDATE embedding_claims SET expires_at = now() + $2::bigint * interval '1 second' "
                      "WHERE worker = $1",
                      Params().text(worker).integer(lease.count()));
        if (!r) util::log_warn("postgres: renewing claims failed: {}", r.error().message);
      }
      lock.lock();
    }
  }
};

util::Result<std::unique_ptr<Heartbeat>> Heartbeat::start(std::string conninfo, std::string worker,
                                                          std::int64_t key, std::chrono::seconds lease,
                                                          const std::string& session_setup) {
  auto state = std::make_unique<State>(std::move(conninfo), std::move(worker), key, lease, session_setup);
  if (auto s = state->ensure_locked(); !s) return std::unexpected(s.error());
  state->thread = std::thread([s = state.get()] { s->loop(); });
  return std::unique_ptr<Heartbeat>(new Heartbeat(std::move(state)));
}

Heartbeat::Heartbeat(std::unique_ptr<State> state) : state_(std::move(state)) {}

Heartbeat::~Heartbeat() {
  {
    std::lock_guard lock(state_->mutex);
    state_->stop = true;
  }
  state_->wake.notify_all();
  state_->thread.join();
}

// ---- Claims ------------------------------------------------------------------------------

Claims::Claims(std::string conninfo, std::string worker, std::chrono::seconds lease, const SourceSql& source,
               std::string session_setup)
    : conninfo_(std::move(conninfo)),
      session_setup_(std::move(session_setup)),
      source_(source),
      worker_(std::move(worker)),
      lease_(lease),
      key_(random_key()) {}

Claims::~Claims() = default;

Status Claims::start_heartbeat() {
  if (heartbeat_) return {};
  auto h = Heartbeat::start(conninfo_, worker_, key_, lease_, session_setup_);
  if (!h) return std::unexpected(h.error());
  heartbeat_ = std::move(*h);
  return {};
}

void Claims::stop_heartbeat() {
  heartbeat_.reset();
}

Status Claims::claim_and_read(Connection& conn, const WorkScope& scope, const std::string& since,
                              const IdList& candidates, std::vector<core::Exchange>& out) {
  auto claimed = conn.exec(
      "claiming work",
      fmt::format("INSERT INTO embedding_claims AS c (provider, model, user_message_id, worker, expires_at, "
                  "  worker_key) "
                  "SELECT $1, $2, id, $4, now() + $5::bigint * interval '1 second', $6::bigint "
                  "FROM unnest($3::{}[]) WITH ORDINALITY AS t(id, ord) ORDER BY ord "
                  "ON CONFLICT (provider, model, user_message_id) DO UPDATE SET worker = excluded.worker, "
                  "  expires_at = excluded.expires_at, claimed_at = now(), worker_key = excluded.worker_key "
                  "WHERE c.expires_at < now() OR c.worker = excluded.worker OR {} "
                  "RETURNING user_message_id::text",
                  source_.key_type(), claim_is_orphaned("c")),
      Params()
          .text(scope.provider)
          .text(scope.model)
          .text(array_literal(candidates))
          .text(worker_)
          .integer(lease_.count())
          .integer(key_));
  if (!claimed) return std::unexpected(claimed.error());
  IdList ids;
  for (int i = 0; i < claimed->size(); ++i)
    ids.emplace_back(claimed->text(i, 0));
  if (ids.empty()) return {};
  return read_claimed(conn, scope, since, ids, out);
}

Status Claims::read_claimed(Connection& conn, const WorkScope& scope, const std::string& since,
                            const IdList& ids, std::vector<core::Exchange>& out) {
  const std::size_t before = out.size();
  if (auto s = read_exchanges_by_id(conn, source_, scope, since, ids, out); !s) return s;
  if (out.size() - before == ids.size()) return {};
  std::unordered_set<std::string> wanted;
  for (std::size_t i = before; i < out.size(); ++i)
    wanted.insert(out[i].user_message_id);
  IdList done;
  for (const auto& id : ids)
    if (!wanted.contains(*id)) done.push_back(id);
  return drop(conn, scope.provider, scope.model, done);
}

Status Claims::drop(Connection& conn, const std::string& provider, const std::string& model,
                    const IdList& ids) {
  if (ids.empty()) return {};
  auto r = conn.exec("dropping claims",
                     fmt::format("DELETE FROM embedding_claims WHERE provider = $1 AND model = $2 "
                                 "AND user_message_id = ANY($3::{}[]) AND worker = $4",
                                 source_.key_type()),
                     Params().text(provider).text(model).text(array_literal(ids)).text(worker_));
  if (!r) return std::unexpected(r.error());
  return {};
}

Status Claims::release(Connection& conn) {
  auto r = conn.exec("releasing claims", k_release_sql, Params().text(worker_));
  if (!r) return std::unexpected(r.error());
  return {};
}

Result<PendingPage> Claims::takeover_page(Connection& conn, const WorkScope& scope, const std::string& since,
                                          std::size_t max_items) {
  PendingPage page;
  auto taken = conn.exec(
      "taking over claims",
      // MATERIALIZED: without fresh statistics (after a crash-restart) the planner re-ran
      // the locking subquery once per outer row (9-15 s per call at 4,500 expired claims);
      // the CTE runs it exactly once.
      fmt::format(
          "WITH x AS MATERIALIZED (SELECT user_message_id FROM embedding_claims e "
          "  WHERE provider = $1 AND model = $2 AND worker <> $3 AND (expires_at < now() OR {}) "
          "  ORDER BY expires_at LIMIT $5 FOR UPDATE SKIP LOCKED) "
          "UPDATE embedding_claims c SET worker = $3, claimed_at = now(), "
          "  expires_at = now() + $4::bigint * interval '1 second', worker_key = $6::bigint "
          "WHERE c.provider = $1 AND c.model = $2 AND c.user_message_id IN (SELECT user_message_id FROM x) "
          "RETURNING c.user_message_id::text",
          claim_is_orphaned("e")),
      Params()
          .text(scope.provider)
          .text(scope.model)
          .text(worker_)
          .integer(lease_.count())
          .integer(static_cast<std::int64_t>(max_items))
          .integer(key_));
  if (!taken) return std::unexpected(taken.error());
  if (taken->size() > 0) {
    IdList ids;
    for (int i = 0; i < taken->size(); ++i)
      ids.emplace_back(taken->text(i, 0));
    util::log_info(
        "postgres: took over {} exchanges of a worker that stopped (session gone or lease expired)",
        ids.size());
    if (auto s = read_claimed(conn, scope, since, ids, page.items); !s) return std::unexpected(s.error());
    return page;
  }
  auto live = conn.exec("reading claims",
                        "SELECT count(*), coalesce(extract(epoch FROM min(expires_at) - now()), 0) "
                        "FROM embedding_claims WHERE provider = $1 AND model = $2 AND worker <> $3",
                        Params().text(scope.provider).text(scope.model).text(worker_));
  if (!live) return std::unexpected(live.error());
  const auto held = live->integer(0, 0);
  if (held == 0) {
    page.exhausted = true;
    return page;
  }
  const double until_expiry = live->real(0, 1);
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

}  // namespace lens::store::postgres
