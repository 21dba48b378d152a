// `config`: the effective configuration, every value with its source, secrets masked.
#include <fmt/core.h>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands/commands.h"
#include "cli/exit_status.h"
#include "util/redact.h"

namespace lens::cli {

int cmd_config(const Flags& flags, const RawConfig& config) {
  if (flags.json) {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [key, v] : describe(config))
      j[key] = {{"value", v.value}, {"source", v.source}};
    std::printf("%s\n", util::redact(j.dump()).c_str());
    return k_exit_ok;
  }
  for (const auto& [key, v] : describe(config)) {
    std::printf("%s\n", util::redact(fmt::format("{:<20} = {:<40} ({})", key, v.value, v.source)).c_str());
  }
  return k_exit_ok;
}

}  // namespace lens::cli
