// `failures`: the recorded failures, or with --retry a run that embeds them again.
#include "cli/commands/commands.h"
#include "cli/commands/common.h"
#include "cli/exit_status.h"
#include "cli/output.h"

namespace lens::cli {

int cmd_failures(const Flags& flags, const RawConfig& config) {
  if (flags.retry) return cmd_run(flags, config, true);
  const auto settings = make_settings(config, {});
  if (!settings) return report(settings.error());
  auto store = open_migrated(*settings);
  if (!store) return report(store.error());
  // Filtered only by what the command line names; otherwise every (provider, model).
  const auto list =
      (*store)->failures(flags.provider ? settings->provider : "", flags.model ? settings->model : "");
  if (!list) return report(list.error());
  print_failures(*list, flags.json);
  return k_exit_ok;
}

}  // namespace lens::cli
