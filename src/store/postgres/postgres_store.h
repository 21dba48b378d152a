// PostgreSQL implementation of Store (libpq): versioned migrations, keyset pending pages,
// binary-COPY upserts, claims with leases for several workers, LISTEN/NOTIFY for --follow.
// The sections live beside it in store/postgres/ (docs/POSTGRES.md names them).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "core/source_mapping.h"
#include "store/store.h"

namespace lens::store {

struct PostgresOptions {
  // A libpq URI (postgres://, postgresql://) or key=value string. May hold a password:
  // every message built from it goes through util::redact.
  std::string conninfo;

  // read_only: the session is read-only (default_transaction_read_only), migrate() only
  // checks, and the open fails with configuration unless the source table and a current
  // lens-embed schema are there. read_write and create are the same here (no file).
  AccessMode access = AccessMode::read_write;

  // Claims: several `run` processes split the work. Every exchange handed out by
  // next_pending is claimed under `worker_id` for `lease`; a claim is dropped when its
  // row, touch or failure commits (or by release_claims()). A claim is taken over by
  // another worker at once when its worker's session is gone (the session-level advisory
  // lock of its heartbeat connection is no longer held: kill -9, OOM, reboot), or when its
  // lease expired (a worker alive but stuck). Reader and writer Store objects of one
  // process must use the same worker_id.
  bool use_claims = true;
  std::string worker_id;            // empty: "<hostname>:<pid>"
  std::chrono::seconds lease{300};  // $LENS_CLAIM_LEASE_SECONDS overrides

  // Stage rows with binary COPY (fast). false: multi-row INSERT instead, for servers that
  // do not support COPY FROM STDIN (PGlite hangs on it).
  bool use_copy = true;

  // --- used by migrate() only ---
  // When > 0 and the pgvector extension is installed (or can be created), a new
  // message_embeddings table gets `embedding vector(N)` (halfvec(N) when N > 2000)
  // instead of real[]. An existing table keeps its column type.
  int vector_dimensions = 0;
  bool prefer_pgvector = true;
  // `init --index hnsw`: an HNSW cosine index on the pgvector column (ignored for real[]).
  bool hnsw_index = false;
  // `init` only (never `run`): a statement-level trigger on messages that NOTIFYs
  // lens_embed_changes, so --follow wakes up within milliseconds instead of polling...
  bool notify_trigger = false;
  // ... and the two indexes the pending query needs on messages, when missing.
  bool source_indexes = false;

  // [source]: which relation and columns hold the messages. Checked against the catalog
  // when the store connects (a missing one is configuration naming it); the key's type
  // types lens-embed's id columns; init's indexes and trigger go on tables only.
  core::SourceMapping mapping;
};

// Connects (one attempt) and prepares the session. Does not migrate: call migrate().
// On success: a Store the caller owns, following store.h's contract (one thread at a
// time; one attempt per call, reconnecting once when the session turns out lost; a lost
// connection is transient). With use_claims, it also owns a heartbeat thread started by
// the first next_pending; destroying the Store stops it and gives back unwritten claims.
// On failure: transient (server unreachable, starting up), configuration
// (authentication, no such database, permission; read_only: no source table or no
// current lens-embed schema) or invalid_argument (a lease that is not positive), with the
// password redacted from the message.
[[nodiscard]] util::Result<std::unique_ptr<Store>> open_postgres_store(const PostgresOptions& options);

// True for strings the cli should route to open_postgres_store: postgres:// and
// postgresql:// URIs and libpq key=value strings (contain '=').
[[nodiscard]] bool looks_like_postgres_conninfo(const std::string& url);

}  // namespace lens::store
