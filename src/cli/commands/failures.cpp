// `failures`: the recorded failures of every (provider, model), or with --retry a run per
// pair that embeds exactly them again, each with its own provider and model.
#include <fmt/core.h>
#include <algorithm>

#include "cli/commands/commands.h"
#include "cli/commands/common.h"
#include "cli/exit_status.h"
#include "cli/output.h"

namespace lens::cli {
namespace {

// Exit statuses combined: the worst one wins (2 over 1 over 0).
int worst(int a, int b) {
  return std::max(a, b);
}

}  // namespace

int cmd_failures(const Flags& flags, const RawConfig& config, const DotenvOrigins& dotenv) {
  const auto settings = make_settings(config, {});
  if (!settings) return report(settings.error());
  const std::string provider = flags.provider ? settings->provider : "";
  const std::string model = flags.model ? settings->model : "";
  std::vector<store::PairSummary> targets;
  {
    auto store = open_read_only(*settings);
    if (!store) return report(store.error());
    if (!flags.retry) {
      const auto list = (*store)->failures(provider, model);
      if (!list) return report(list.error());
      print_failures(*list, flags.json);
      return k_exit_ok;
    }
    auto pairs = (*store)->pairs();
    if (!pairs) return report(pairs.error());
    for (const auto& p : matching(*pairs, provider, model)) {
      if (p.failed_permanent + p.failed_transient > 0) targets.push_back(p);
    }
  }  // closed: each retry opens the database to write
  if (targets.empty()) {
    if (!flags.json) std::puts("no failures recorded: nothing to retry");
    return k_exit_ok;
  }
  int status = k_exit_ok;
  for (const auto& pair : targets) {
    if (!flags.json) {
      std::printf("retrying %lld failure(s) of %s\n",
                  static_cast<long long>(pair.failed_permanent + pair.failed_transient),
                  pair_name(pair.provider, pair.model).c_str());
      std::fflush(stdout);
    }
    Flags for_pair = flags;
    auto raw = config_for_pair(for_pair, pair, dotenv);  // its own provider and model
    if (!raw) {
      status = worst(status, report(raw.error()));
      continue;
    }
    status = worst(status, run_once(for_pair, *raw, true));
    if (stop_flag().load() > 0) break;  // a signal stops the retries of the other pairs too
  }
  return status;
}

}  // namespace lens::cli
