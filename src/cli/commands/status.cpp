// `status`: counts of every (provider, model) in the database (or the ones named) and the
// recent runs. Read-only: no DDL, no file created.
#include <algorithm>
#include <cstdio>

#include "cli/commands/commands.h"
#include "cli/commands/common.h"
#include "cli/exit_status.h"
#include "cli/output.h"
#include "store/batch_ledger.h"

namespace lens::cli {

int cmd_status(const Flags& flags, const RawConfig& config) {
  const auto settings = make_settings(config, {});
  if (!settings) return report(settings.error());
  auto store = open_read_only(*settings);
  if (!store) return report(store.error());
  auto status = (*store)->status(10);
  if (!status) return report(status.error());
  // What is in the database, not what the configuration would embed: filtered only by
  // what the command line names.
  const std::string provider = flags.provider ? *flags.provider : "";
  const std::string model = flags.model ? *flags.model : "";
  auto other = [&](const std::string& p, const std::string& m) {
    return (!provider.empty() && p != provider) || (!model.empty() && m != model);
  };
  std::erase_if(status->models, [&](const store::ModelStatus& m) { return other(m.provider, m.model); });
  std::erase_if(status->recent_runs, [&](const store::RunSummary& r) { return other(r.provider, r.model); });
  print_status(*status, flags.json);
  // Issue 13: exchanges held by unfinished Batch API batches (run --batch-api collects them).
  if (auto* ledger = (*store)->batch_ledger(); ledger && !flags.json) {
    if (auto held = ledger->held_items(provider, model); held && *held > 0)
      std::printf("in batches: %lld items (run --batch-api again to collect them)\n",
                  static_cast<long long>(*held));
  }
  return k_exit_ok;
}

}  // namespace lens::cli
