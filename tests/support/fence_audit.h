// An audit of fencing for tests with several PostgreSQL workers: a trigger on
// message_embeddings records every update of a row to an older source_version (what the
// fenced write path must make impossible) in a table fence_audit.
#pragma once

#include <cstdint>
#include <string>

#include "support/sql.h"

namespace lens::test {

// Creates fence_audit and its trigger (after `lens-embed init`). Empty, or the error.
std::string install_fence_audit(Db& db);
// How many rows were moved back to an older text; -1 when it cannot be read.
std::int64_t older_overwrites(Db& db);

}  // namespace lens::test
