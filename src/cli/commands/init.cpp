// `init`: create or upgrade the output tables and indexes (idempotent).
#include <cstdio>

#include "cli/commands/commands.h"
#include "cli/commands/common.h"
#include "cli/exit_status.h"

namespace lens::cli {

int cmd_init(const Flags& flags, const RawConfig& config) {
  const auto settings = make_settings(config, {.dimensions = flags.dimensions.has_value()});
  if (!settings) return report(settings.error());
  StoreOptions so;
  // A SQLite file that does not exist is made only when asked: a typo in --db must not
  // leave an empty database behind.
  so.access = flags.create ? store::AccessMode::create : store::AccessMode::read_write;
  so.source_objects = true;  // only `init` creates what the pending query needs on messages
  so.hnsw_index = flags.index.has_value();
  // pgvector columns have a fixed size: only when the user names the size (or the model or
  // provider) on the command line does init make one; otherwise real[] (PostgreSQL) or BLOB
  // (SQLite), which take any size.
  if (flags.dimensions || flags.model || flags.provider) so.vector_dimensions = settings->dimensions;
  auto store = open_migrated(*settings, so);
  if (!store) return report(store.error());
  std::printf("initialized %s\n", mask_database_url(settings->database).c_str());
  return k_exit_ok;
}

}  // namespace lens::cli
