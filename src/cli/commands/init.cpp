// `init`: create or upgrade the output tables and indexes (idempotent).
#include <cstdio>

#include "cli/commands/commands.h"
#include "cli/commands/common.h"
#include "cli/exit_status.h"

namespace lens::cli {

int cmd_init(const Flags& flags, const RawConfig& config) {
  const auto settings = make_settings(config, {});
  if (!settings) return report(settings.error());
  StoreOptions so;
  so.source_objects = true;  // only `init` creates what the pending query needs on messages
  so.hnsw_index = flags.index.has_value();
  // pgvector columns have a fixed size: only when the user names the size (or the model or
  // provider) on the command line does init make one; otherwise real[] (PostgreSQL) or BLOB
  // (SQLite), which take any size.
  if (flags.dimensions)
    so.vector_dimensions = static_cast<int>(*flags.dimensions);
  else if (flags.model || flags.provider)
    so.vector_dimensions = settings->model_spec.default_dimensions;
  auto store = open_migrated(*settings, so);
  if (!store) return report(store.error());
  std::printf("initialized %s\n", mask_database_url(settings->database).c_str());
  return k_exit_ok;
}

}  // namespace lens::cli
