// Domain values that travel between store, tokenizer, provider and pipeline.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/vocabulary.h"
#include "util/sha256.h"

namespace lens::core {

// A user message and the assistant message that answers it (CONTRACT §1), as read
// from the store.
struct Exchange {
  std::string user_message_id;
  std::string user_content;
  std::optional<std::string> assistant_message_id;
  std::string assistant_content;
  // The columns the input templates name besides the contents ({user.COLUMN},
  // {assistant.COLUMN}; SourceMapping::user_columns() / assistant_columns()), by name, NULL
  // as "". Empty with the default mapping.
  std::map<std::string, std::string> user_columns, assistant_columns;
  // Newest of the two messages' coalesce(updated_at, created_at): a cheap change marker.
  std::string source_version;
  // content_sha256 of the row already stored for this exchange, if there is one.
  std::optional<util::Sha256> stored_sha256;
};

// One output row (CONTRACT §3).
struct EmbeddingRow {
  std::string user_message_id;
  std::optional<std::string> assistant_message_id;
  util::Sha256 content_sha256{};
  std::int32_t token_count = 0;
  bool truncated = false;
  std::string source_version;
  std::vector<float> embedding;  // dimensions == embedding.size()
};

// An exchange whose input did not change since it was embedded: only its change
// markers are refreshed, no provider call is made.
struct RowTouch {
  std::string user_message_id;
  std::optional<std::string> assistant_message_id;
  std::string source_version;
  // The input hash the stored row was found to have: the touch applies only while the row
  // still holds it (a row rewritten since by another worker is not touched). Absent: no
  // such check.
  std::optional<util::Sha256> content_sha256 = std::nullopt;
};

struct Failure {
  std::string user_message_id;
  FailureReason reason = FailureReason::provider_rejected;
  std::string detail;          // provider message or our explanation, secrets redacted
  std::string source_version;  // of the exchange that failed: an edit makes it pending again
};

// Counters of one run; also what `--json` prints and the runs table stores.
struct RunStats {
  std::int64_t embedded = 0;      // rows written (new or updated)
  std::int64_t unchanged = 0;     // rows whose input hash matched: only markers refreshed
  std::int64_t failed = 0;        // failures recorded in this run
  std::int64_t truncated = 0;     // inputs cut to the model's limit
  std::int64_t tokens = 0;        // input tokens sent (exact count)
  std::int64_t requests = 0;      // provider requests that completed (any outcome)
  std::int64_t retries = 0;       // requests sent again after a retryable failure
  std::int64_t rate_limited = 0;  // 429 answers
  // Late writes the store refused (rows, touches, failures: Store::write_batch, "Fencing"):
  // another worker holds the exchange or a newer version of it is stored. Not counted in
  // embedded, unchanged or failed.
  std::int64_t fenced = 0;
};

}  // namespace lens::core
