// `status`: counts of every (provider, model) in the database (or the ones named), their
// freshness, the last 24 hours' tokens and cost, the last failed run, the live workers
// (PostgreSQL) and the recent runs. Read-only: no DDL, no file created, no writer lock.
#include <algorithm>
#include <cstdio>
#include <map>
#include <optional>

#include "cli/commands/commands.h"
#include "cli/commands/common.h"
#include "cli/exit_status.h"
#include "cli/output.h"
#include "core/input_definition.h"
#include "core/model_table.h"
#include "store/batch_ledger.h"

namespace lens::cli {
namespace {

// The price per million tokens of `model` as `run` would use it: the model table's, with
// the configuration's [models."NAME"] applied. nullopt when nothing sets one (a model the
// table does not know and no usd_per_million_tokens configured) or when that
// configuration is unusable for this model: status still reports the tokens.
std::optional<double> usd_per_million_tokens(const RawConfig& config, const std::string& model) {
  RawConfig as_run = config;
  as_run.model.value = model;
  auto settings = make_settings(as_run, {});
  if (!settings) return std::nullopt;
  const auto o = config.models.find(model);
  const bool configured = o != config.models.end() && o->second.usd_per_million_tokens.is_set();
  const std::string& asked =
      o != config.models.end() && o->second.model.is_set() ? o->second.model.value : model;
  if (!configured && !core::builtin_model(asked)) return std::nullopt;
  return settings->model_spec.usd_per_million_tokens;
}

}  // namespace

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
  std::erase_if(status->workers, [&](const store::WorkerStatus& w) { return other(w.provider, w.model); });
  std::map<std::string, std::optional<double>> prices;
  const std::string definition = core::input_definition_fingerprint(settings->mapping);
  for (auto& m : status->models) {
    prices.emplace(m.model, usd_per_million_tokens(config, m.model));
    auto recorded = (*store)->input_definition(m.provider, m.model);
    if (!recorded) return report(recorded.error());
    m.input_definition = recorded->empty()         ? "not_recorded"
                         : *recorded == definition ? "unchanged"
                                                   : "changed";
  }
  print_status(*status, prices, flags.json);
  // Issue 13: exchanges held by unfinished Batch API batches (run --batch-api collects them).
  if (auto* ledger = (*store)->batch_ledger(); ledger && !flags.json) {
    if (auto held = ledger->held_items(provider, model); held && *held > 0)
      std::printf("in batches: %lld items (run --batch-api again to collect them)\n",
                  static_cast<long long>(*held));
  }
  return k_exit_ok;
}

}  // namespace lens::cli
