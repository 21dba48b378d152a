// `tokens`: exact token count (and ids) of a file or stdin with the model's tokenizer.
#include <fmt/core.h>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "cli/commands/commands.h"
#include "cli/commands/common.h"
#include "cli/exit_status.h"

namespace lens::cli {

int cmd_tokens(const Flags& flags, const RawConfig& config) {
  const auto settings = make_settings(config, {});
  if (!settings) return report(settings.error());
  const core::ModelSpec& spec = settings->model_spec;
  auto tok = load_tokenizer(spec);
  if (!tok) return report(tok.error());
  std::string text;
  if (flags.file.empty() || flags.file == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else {
    std::ifstream in(flags.file, std::ios::binary);
    if (!in) return usage_error(fmt::format("tokens: cannot read {}", flags.file));
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const auto ids = (*tok)->encode(text);
  if (flags.json) {
    nlohmann::json j{{"model", spec.name},
                     {"encoding", spec.encoding},
                     {"tokens", ids.size()},
                     {"max_input_tokens", spec.max_input_tokens}};
    if (flags.ids) j["ids"] = ids;
    std::printf("%s\n", j.dump().c_str());
    return k_exit_ok;
  }
  std::printf("%zu\n", ids.size());
  if (flags.ids) {
    std::string line;
    for (std::size_t i = 0; i < ids.size(); ++i)
      line += (i ? " " : "") + std::to_string(ids[i]);
    std::printf("%s\n", line.c_str());
  }
  return k_exit_ok;
}

}  // namespace lens::cli
