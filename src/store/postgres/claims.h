// Claims with leases, so several `run` processes split the work (docs/POSTGRES.md,
// "Several workers"): claiming a window's pending ids, taking over the expired claims of
// a dead worker, giving claims back, and the heartbeat that keeps this worker's leases
// alive.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "store/postgres/connection.h"
#include "store/postgres/pending.h"
#include "store/store.h"

namespace lens::store::postgres {

class Heartbeat;

// The claims of one worker (`worker` names it in embedding_claims). Statements run on the
// caller's connection, one attempt each; only the heartbeat has a connection of its own.
// Not thread-safe: the Store that owns it is used by one thread at a time.
class Claims {
 public:
  Claims(std::string conninfo, std::string worker, std::chrono::seconds lease);
  Claims(const Claims&) = delete;
  Claims& operator=(const Claims&) = delete;
  ~Claims();  // stops the heartbeat; does not release (see release())

  [[nodiscard]] const std::string& worker() const { return worker_; }

  // Starts the heartbeat thread if it is not running: from then on this worker's leases
  // are renewed every lease/3 until this object is destroyed.
  void start_heartbeat();
  // Stops the heartbeat thread (joins it); leases then run out unless released.
  void stop_heartbeat();

  // Claims those of `candidates` that no live lease of another worker holds, then reads
  // the claimed ones that still need work with a fresh snapshot into `out` (a worker that
  // wrote one and dropped its claim before our claim has committed its row by then, so
  // nothing is embedded twice) and drops the claims of the others at once.
  // On failure: the statement's error; claims already taken stay until written, released
  // or expired.
  [[nodiscard]] util::Status claim_and_read(Connection& conn, const WorkScope& scope,
                                            const std::string& since, const IdList& candidates,
                                            std::vector<core::Exchange>& out);

  // The end of the keyset. Expired claims of other workers (a dead worker) are taken over
  // (FOR UPDATE SKIP LOCKED: two survivors never take the same ones) and read into the
  // page. When none are expired but live ones remain, SLEEPS until the first lease may
  // end (50 ms to 1 s) and returns an empty, not exhausted page, so the caller asks
  // again; a log line every 10 s says what it waits for. When no other worker holds
  // claims: an empty, exhausted page.
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
  std::string worker_;
  std::chrono::seconds lease_;
  std::unique_ptr<Heartbeat> heartbeat_;
  std::chrono::steady_clock::time_point last_wait_log_{};
};

// Keeps `worker`'s leases alive while it lives, on a connection of its own, whatever the
// pipeline's cadence: a writer that commits every 20 s, or a reader blocked on a full
// queue, must not lose its claims to a 6 s lease (others would then embed them a second
// time). Only a dead process stops renewing, which is what leases are for.
// Its thread loops on its own: every lease/3 (at least 200 ms) it reconnects if needed
// (one attempt) and renews; a failed beat is logged and tried again at the next tick.
// This is the one loop of the store that calls the database again by itself; it is not
// a store call, so the pipeline's retries cannot cover it.
class Heartbeat {
 public:
  Heartbeat(std::string conninfo, std::string worker, std::chrono::seconds lease);
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;
  ~Heartbeat();  // stops and joins the thread

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace lens::store::postgres
