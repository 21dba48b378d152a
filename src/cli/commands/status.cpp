// `status`: counts per (provider, model) and the recent runs.
#include "cli/commands/commands.h"
#include "cli/commands/common.h"
#include "cli/exit_status.h"
#include "cli/output.h"

namespace lens::cli {

int cmd_status(const Flags& flags, const RawConfig& config) {
  const auto settings = make_settings(config, {});
  if (!settings) return report(settings.error());
  auto store = open_migrated(*settings);
  if (!store) return report(store.error());
  const auto status = (*store)->status(10);
  if (!status) return report(status.error());
  print_status(*status, flags.json);
  return k_exit_ok;
}

}  // namespace lens::cli
