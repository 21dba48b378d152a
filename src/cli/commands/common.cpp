// Helpers shared by the commands.
#include "cli/commands/common.h"

#include <fmt/core.h>

namespace lens::cli {

util::Result<std::unique_ptr<store::Store>> open_migrated(const Settings& settings,
                                                          const StoreOptions& options) {
  auto store = open_store(settings.database, options);
  if (!store) return std::unexpected(store.error());
  if (auto s = (*store)->migrate(); !s) return std::unexpected(s.error());
  return store;
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
