// Claims, takeover and the lease heartbeat of the PostgreSQL store; see claims.h.
#include "store/postgres/claims.h"

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
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

}  // namespace

// ---- Heartbeat ---------------------------------------------------------------------------

struct Heartbeat::State {
  std::string conninfo, worker;
  std::chrono::seconds lease;
  std::mutex mutex;
  std::condition_variable wake;
  bool stop = false;
  std::thread thread;

  void loop() {
    Connection conn(conninfo);
    const auto period = std::max<std::chrono::milliseconds>(std::chrono::milliseconds(200), lease / 3);
    std::unique_lock lock(mutex);
    while (!wake.wait_for(lock, period, [this] { return stop; })) {
      lock.unlock();
      if (conn.ensure()) {
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

Heartbeat::Heartbeat(std::string conninfo, std::string worker, std::chrono::seconds lease)
    : state_(std::make_unique<State>()) {
  state_->conninfo = std::move(conninfo);
  state_->worker = std::move(worker);
  state_->lease = lease;
  state_->thread = std::thread([s = state_.get()] { s->loop(); });
}

Heartbeat::~Heartbeat() {
  {
    std::lock_guard lock(state_->mutex);
    state_->stop = true;
  }
  state_->wake.notify_all();
  state_->thread.join();
}

// ---- Claims ------------------------------------------------------------------------------

Claims::Claims(std::string conninfo, std::string worker, std::chrono::seconds lease)
    : conninfo_(std::move(conninfo)), worker_(std::move(worker)), lease_(lease) {}

Claims::~Claims() = default;

void Claims::start_heartbeat() {
  if (!heartbeat_) heartbeat_ = std::make_unique<Heartbeat>(conninfo_, worker_, lease_);
}

void Claims::stop_heartbeat() {
  heartbeat_.reset();
}

Status Claims::claim_and_read(Connection& conn, const WorkScope& scope, const std::string& since,
                              const IdList& candidates, std::vector<core::Exchange>& out) {
  auto claimed =
      conn.exec("claiming work",
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
                    .text(worker_)
                    .integer(lease_.count()));
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
  if (auto s = read_exchanges_by_id(conn, scope, since, ids, out); !s) return s;
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
                     "DELETE FROM embedding_claims WHERE provider = $1 AND model = $2 "
                     "AND user_message_id = ANY($3::uuid[]) AND worker = $4",
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
      "taking over expired claims",
      // MATERIALIZED: without fresh statistics (after a crash-restart) the planner re-ran
      // the locking subquery once per outer row (9-15 s per call at 4,500 expired claims);
      // the CTE runs it exactly once.
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
          .text(worker_)
          .integer(lease_.count())
          .integer(static_cast<std::int64_t>(max_items)));
  if (!taken) return std::unexpected(taken.error());
  if (taken->size() > 0) {
    IdList ids;
    for (int i = 0; i < taken->size(); ++i)
      ids.emplace_back(taken->text(i, 0));
    util::log_info("postgres: took over {} exchanges whose worker's lease expired", ids.size());
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
