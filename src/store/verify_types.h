// The value types of the Store's verify reads (store.h: verify_page, orphans,
// wrong_dimensions), apart so that store.h keeps to the interface and its run-side types.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/types.h"

namespace lens::store {

// `verify`: one eligible exchange (a user message of the mapped, filtered source with
// non-blank content, its reply found by the mapping's rule) with what is stored for it.
struct StoredExchange {
  // As next_pending reads it; stored_sha256 is the row's content_sha256 when there is a row.
  core::Exchange exchange;
  bool has_row = false;
  bool has_failure = false;  // a failure is recorded for it (any class, any version)
};

struct VerifyPage {
  std::vector<StoredExchange> items;
  bool exhausted = false;  // no eligible user message after the cursor
};

// Rows (or failures) found by a check: how many, and the user_message_ids of the first few.
struct IdSample {
  std::int64_t count = 0;
  std::vector<std::string> ids;
};

// Rows and failures of user messages that are gone from the source, are no longer user
// messages, or fail the mapping's filter.
struct Orphans {
  IdSample rows;
  IdSample failures;
  // What deletes them: "" when every `run` does (it prunes them when it starts: a view, or
  // a filter); otherwise the SQL statements to run (a foreign key that should have deleted
  // them was not enforced by whoever deleted the message: SQLite's default).
  std::string repair_sql;
};

}  // namespace lens::store
