// `tokens`: exact token count (and ids) of a file or stdin with the model's tokenizer.
#include <fmt/core.h>
#include <fstream>
#include <iostream>
#include <iterator>

#include "cli/commands/commands.h"
#include "cli/commands/common.h"
#include "cli/exit_status.h"
#include "cli/output.h"

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
  print_tokens(spec, (*tok)->encode(text), flags.ids, flags.json);
  return k_exit_ok;
}

}  // namespace lens::cli
