// Claims with leases, so several `run` processes split the work (docs/POSTGRES.md,
// "Several workers"): claiming a window's pending ids, taking over the claims of a dead
// worker (its session gone: at once; its lease expired: a stuck worker), giving claims
// back, and the heartbeat that keeps this worker alive in the database's eyes (an
// advisory lock held by its session) and renews its leases.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "store/postgres/connection.h"
#include "store/postgres/pending.h"
#include "store/source_sql.h"
#include "store/store.h"

namespace lens::store::postgres {

class Heartbeat;

// Liveness: a claim row carries its worker's key (worker_key), and the worker's heartbeat
// session holds the session-level advisory lock of that key. When the session ends (the
// process was killed, the machine rebooted: the server notices through TCP keepalives set
// on that session), the lock is gone from pg_locks and any other worker takes the claim
// over at once, without waiting for the lease. A claim committed after the statement that
// looks at it started is never judged dead (its worker may have taken its lock after the
// statement read pg_locks).
//
// The claims of one worker (`worker` names it in embedding_claims). Statements run on the
// caller's connection, one attempt each; only the heartbeat has a connection of its own.
// Not thread-safe: the Store that owns it is used by one thread at a time.
class Claims {
 public:
  // `source`: the mapping the exchanges are read with (its key type types the ids); it must
  // outlive this object and be complete (catalog adopted) before the first claim.
  // `session_setup`: what every session of the store runs first ([output] schema's
  // search_path), for the heartbeat's connection.
  Claims(std::string conninfo, std::string worker, std::chrono::seconds lease, const SourceSql& source,
         std::string session_setup = {});
  Claims(const Claims&) = delete;
  Claims& operator=(const Claims&) = delete;
  ~Claims();  // stops the heartbeat; does not release (see release())

  [[nodiscard]] const std::string& worker() const { return worker_; }
  // This worker's advisory lock key (random, positive), stored in its claims.
  [[nodiscard]] std::int64_t key() const { return key_; }

  // Before the first claim: connects the heartbeat session and takes the advisory lock
  // (on this thread, so no claim of ours is ever written before the lock is held), then
  // starts the heartbeat thread, which renews this worker's leases every lease/3 (and
  // takes the lock again after a reconnect) until this object is destroyed. Does nothing
  // when it runs already.
  // On failure: the connection's error (transient when the server is away), or internal
  // when the key is held by another session; the caller may call again.
  [[nodiscard]] util::Status start_heartbeat();
  // Stops the heartbeat thread (joins it); leases then run out unless released.
  void stop_heartbeat();

  // Claims those of `candidates` that no other live worker holds (a live lease and a live
  // session), then reads
  // the claimed ones that still need work with a fresh snapshot into `out` (a worker that
  // wrote one and dropped its claim before our claim has committed its row by then, so
  // nothing is embedded twice) and drops the claims of the others at once.
  // On failure: the statement's error; claims already taken stay until written, released
  // or expired.
  [[nodiscard]] util::Status claim_and_read(Connection& conn, const WorkScope& scope,
                                            const std::string& since, const IdList& candidates,
                                            std::vector<core::Exchange>& out);

  // The end of the keyset. Claims of other workers whose session is gone or whose lease
  // expired are taken over (FOR UPDATE SKIP LOCKED: two survivors never take the same
  // ones) and read into the page. When none are, but live ones remain, SLEEPS until the
  // first lease may end (50 ms to 1 s) and returns an empty, not exhausted page, so the
  // caller asks again; a log line every 10 s says what it waits for. When no other worker
  // holds claims: an empty, exhausted page.
  [[nodiscard]] util::Result<PendingPage> takeover_page(Connection& conn, const WorkScope& scope,
                                                        const std::string& since, std::size_t max_items);

  // Deletes this worker's claims on `ids` (rows written, or found done). Empty: no-op.
  [[nodiscard]] util::Status drop(Connection& conn, const std::string& provider, const std::string& model,
                                  const IdList& ids);

  // Gives back every claim of this worker by expiring it (not deleting it): workers whose
  // cursor is past those exchanges take expired claims over at the end of their keyset,
  // so a worker that stops early (--limit, SIGTERM) loses nothing for the others.
  [[nodiscard]] util::Status release(Connection& conn);

 private:
  [[nodiscard]] util::Status read_claimed(Connection& conn, const WorkScope& scope, const std::string& since,
                                          const IdList& ids, std::vector<core::Exchange>& out);

  std::string conninfo_;
  std::string session_setup_;
  const SourceSql& source_;
  std::string worker_;
  std::chrono::seconds lease_;
  std::int64_t key_;
  std::unique_ptr<Heartbeat> heartbeat_;
  std::chrono::steady_clock::time_point last_wait_log_{};
};

// Keeps `worker` alive in the database's eyes while it lives, on a connection of its own,
// whatever the pipeline's cadence: its session holds the advisory lock of `key`, and its
// leases are renewed, so a writer that commits every 20 s, or a reader blocked on a full
// queue, does not lose its claims to a 6 s lease (others would then embed them a second
// time). Only a dead process stops renewing, which is what leases are for; a dead
// session frees the lock at once.
// Its thread loops on its own: every lease/3 (at least 200 ms) it reconnects if needed
// (one attempt), takes the lock again on a new session, and renews; a failed beat is
// logged and tried again at the next tick. This is the one loop of the store that calls
// the database again by itself; it is not a store call, so the pipeline's retries cannot
// cover it.
class Heartbeat {
 public:
  // Connects and takes the lock on the caller's thread; the thread starts only then.
  // On failure: as Claims::start_heartbeat.
  [[nodiscard]] static util::Result<std::unique_ptr<Heartbeat>> start(std::string conninfo,
                                                                      std::string worker, std::int64_t key,
                                                                      std::chrono::seconds lease,
                                                                      const std::string& session_setup = {});
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;
  ~Heartbeat();  // stops and joins the thread; closing its session frees the lock

  struct State;

 private:
  explicit Heartbeat(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// SQL, the keys of the advisory locks held in this database (pg_locks, read once per
// statement): an array of bigint, for `key = ANY (...)`.
[[nodiscard]] std::string held_worker_keys();

// SQL, true when claim `alias` belongs to a worker whose session is gone: it has a key,
// no session holds that key's advisory lock (pg_locks of this database, read once per
// statement), and it was committed before this statement started.
[[nodiscard]] std::string claim_is_orphaned(std::string_view alias);

}  // namespace lens::store::postgres
