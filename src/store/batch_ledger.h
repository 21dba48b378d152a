// The Batch API ledger: lens-embed's record of the batches it submits and of the items in
// each, kept in its own tables (schema version 5) so that no crash can leave a paid batch
// unknown, and so that an item in an unfinished batch is held: the pending query leaves
// it out for every run of the pair, the way a claim does (store.h, next_pending).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/types.h"
#include "util/result.h"
#include "util/sha256.h"

namespace lens::store {

// One batch as recorded. `status` is "recorded" (items written, file not yet uploaded),
// "uploaded" (input_file_id known, batch not yet created), then the provider's status
// word ("validating", "in_progress", ..., "completed", "expired", "failed", "cancelled"),
// or "released" (given up before it was created: nothing was paid).
struct BatchRecord {
  std::string key;  // local key: in the file name and in the batch's metadata
  std::string provider;
  std::string model;
  std::optional<int> dimensions;
  std::string remote_id;  // "" until the batch is created
  std::string input_file_id;
  std::string output_file_id;
  std::string error_file_id;
  std::string status;
  bool done = false;  // results applied (or released): its items are no longer held
  std::int64_t items = 0;
  std::int64_t requests = 0;
  std::int64_t tokens = 0;
  std::int64_t completed = 0;  // the provider's request_counts
  std::int64_t failed = 0;
  std::string error;  // why it failed or was released; "" when none
  std::string created_at;
  std::string updated_at;
};

// One exchange in a batch: which input of which request it is, and the hash of the input
// text that was sent (a result is written only while the message still has that text).
struct BatchItem {
  std::string user_message_id;
  util::Sha256 content_sha256{};
  std::string custom_id;
  std::int64_t input_index = 0;  // position in its request's input list
  std::int64_t tokens = 0;
};

// An exchange of a batch as the source holds it now (for the hash check of its result).
struct BatchExchange {
  std::string custom_id;
  std::int64_t input_index = 0;
  util::Sha256 content_sha256{};          // as recorded when it was submitted
  std::optional<core::Exchange> current;  // nullopt: the message is gone
};

// Every call is one transaction, makes one attempt and returns a classified error, as the
// Store's calls do (store.h). Not thread-safe: the Store's connection.
class BatchLedger {
 public:
  virtual ~BatchLedger() = default;

  // Records `batch` (status "recorded", not done) and all its items in one transaction,
  // durably, before anything is uploaded. From its commit on, its items are held.
  // On failure: nothing recorded. A key already used: bad_input.
  [[nodiscard]] virtual util::Status record_batch(const BatchRecord& batch,
                                                  const std::vector<BatchItem>& items) = 0;

  // Updates the remote side of batch `key`: every field of `batch` except key, provider,
  // model, dimensions, items, requests, tokens and created_at (done and error included).
  // Setting done releases its items. On failure: nothing changed.
  [[nodiscard]] virtual util::Status update_batch(const BatchRecord& batch) = 0;

  // Batches of (provider, model) ("" matches any), newest first; only the unfinished ones
  // (done = 0) when `open_only`.
  [[nodiscard]] virtual util::Result<std::vector<BatchRecord>> list_batches(const std::string& provider,
                                                                            const std::string& model,
                                                                            bool open_only) = 0;

  // The items of batch `key` in (custom_id, input_index) order, each with its exchange as
  // the source holds it now (read with the store's source mapping), nullopt when its user
  // message is gone.
  [[nodiscard]] virtual util::Result<std::vector<BatchExchange>> batch_exchanges(const std::string& key) = 0;

  // Items held by unfinished batches of (provider, model): the "in flight" count.
  [[nodiscard]] virtual util::Result<std::int64_t> held_items(const std::string& provider,
                                                              const std::string& model) = 0;
};

}  // namespace lens::store
