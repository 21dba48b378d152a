// `init`: create or upgrade the output tables and indexes (idempotent).
#include <cstdio>

#include "cli/backends.h"
#include "cli/commands/commands.h"
#include "cli/commands/common.h"
#include "cli/exit_status.h"
#include "store/store.h"

namespace lens::cli {

namespace {

// The indexes the pending query needs that the source lacks, with the statements that make
// them: a run works without them, but each page then scans the table. Best effort: a
// catalog that cannot be read leaves the note out (init itself succeeded).
void print_missing_indexes(store::Store& store) {
  auto indexes = store.source_indexes();
  if (!indexes) return;
  std::string missing;
  for (const auto& index : *indexes)
    if (!index.present) missing += "  " + index.create_sql + "\n";
  if (missing.empty()) return;
  std::printf(
      "the source lacks indexes that keep each page of a run an index scan; create them (as the table's "
      "owner) with:\n%sor run `lens-embed init --source-indexes`\n",
      missing.c_str());
}

}  // namespace

int cmd_init(const Flags& flags, const RawConfig& config) {
  const auto settings = make_settings(config, {.dimensions = flags.dimensions.has_value()});
  if (!settings) return report(settings.error());
  StoreOptions so;
  // A SQLite file that does not exist is made only when asked: a typo in --db must not
  // leave an empty database behind.
  so.access = flags.create ? store::AccessMode::create : store::AccessMode::read_write;
  // lens-embed's own tables always; the source's indexes only when asked (they are the
  // application's table: its owner decides when to build them, see print_missing_indexes).
  so.source_indexes = flags.source_indexes;
  so.notify_trigger = true;
  so.hnsw_index = flags.index.has_value();
  // pgvector columns have a fixed size: only when the user names the size (or the model or
  // provider) on the command line does init make one; otherwise real[] (PostgreSQL) or BLOB
  // (SQLite), which take any size.
  if (flags.dimensions || flags.model || flags.provider) so.vector_dimensions = settings->dimensions;
  const bool tracking = flags.track_changes || flags.untrack_changes;
  // Refused before anything is created: SQLite has no statement triggers with transition tables.
  if (auto target = parse_database_url(settings->database);
      tracking && target && target->kind == DatabaseKind::sqlite)
    return report(util::Error{util::ErrorCode::configuration, store::k_no_change_tracking});
  auto store = open_migrated(*settings, so);
  if (!store) return report(store.error());
  std::printf("initialized %s\n", mask_database_url(settings->database).c_str());
  if (!flags.source_indexes) print_missing_indexes(**store);
  if (tracking) {
    if (auto s = (*store)->set_change_tracking(flags.track_changes); !s) return report(s.error());
    std::puts(flags.track_changes
                  ? "change tracking installed: triggers on the source queue changed keys; a run without "
                    "[source] updated_at hashes only the exchanges they name"
                  : "change tracking removed: without [source] updated_at every run hashes every input");
  }
  return k_exit_ok;
}

}  // namespace lens::cli
