// Helpers shared by the commands.
#include "cli/commands/common.h"

#include <fmt/core.h>

namespace lens::cli {

util::Result<std::unique_ptr<store::Store>> open_migrated(const Settings& settings, StoreOptions options) {
  if (options.access == store::AccessMode::read_only) options.access = store::AccessMode::read_write;
  options.mapping = settings.mapping;
  auto store = open_store(settings.database, options);
  if (!store) return std::unexpected(store.error());
  if (auto s = (*store)->migrate(); !s) return std::unexpected(s.error());
  return store;
}

util::Result<std::unique_ptr<store::Store>> open_read_only(const Settings& settings) {
  StoreOptions options;
  options.access = store::AccessMode::read_only;
  options.mapping = settings.mapping;
  return open_store(settings.database, options);
}

util::Result<RawConfig> config_for_pair(Flags& flags, const store::PairSummary& pair,
                                        const DotenvOrigins& dotenv) {
  flags.provider = pair.provider;
  flags.model = pair.model;
  auto raw = resolve_config(flags, dotenv);
  if (!raw || flags.dimensions || pair.dimensions.size() != 1) return raw;
  auto s = make_settings(*raw, {});
  if (s && s->dimensions_known && s->dimensions != pair.dimensions[0]) {
    flags.dimensions = pair.dimensions[0];
    raw = resolve_config(flags, dotenv);
  }
  return raw;
}

std::string pair_name(const std::string& provider, const std::string& model) {
  return provider + " / " + model;
}

std::vector<store::PairSummary> matching(const std::vector<store::PairSummary>& pairs,
                                         const std::string& provider, const std::string& model) {
  std::vector<store::PairSummary> out;
  for (const auto& p : pairs) {
    if ((provider.empty() || p.provider == provider) && (model.empty() || p.model == model)) out.push_back(p);
  }
  return out;
}

util::Result<std::shared_ptr<const tokenizer::Tokenizer>> load_tokenizer(const core::ModelSpec& spec) {
  auto encoding = tokenizer::parse_encoding(spec.encoding);
  if (!encoding) {
    return util::fail(util::ErrorCode::invalid_argument,
                      fmt::format("model {}: {}", spec.name, encoding.error().message));
  }
  return tokenizer::Tokenizer::load(*encoding);
}

}  // namespace lens::cli
