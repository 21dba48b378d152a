// `config`: the effective configuration, every value with its source, secrets masked.
#include "cli/commands/commands.h"
#include "cli/exit_status.h"
#include "cli/output.h"

namespace lens::cli {

int cmd_config(const Flags& flags, const RawConfig& config) {
  print_config(describe(config), flags.json);
  return k_exit_ok;
}

}  // namespace lens::cli
