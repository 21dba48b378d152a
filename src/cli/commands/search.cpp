// `search`: embed the query with the configured provider and model, then rank the stored
// vectors of that (provider, model) by cosine similarity.
#include <fmt/core.h>
#include <chrono>

#include "cli/commands/commands.h"
#include "cli/commands/common.h"
#include "cli/exit_status.h"
#include "cli/output.h"
#include "pipeline/embed_one.h"
#include "provider/local_hash.h"

namespace lens::cli {

int cmd_search(const Flags& flags, const RawConfig& config) {
  if (flags.query.empty())
    return usage_error("search: give a QUERY, e.g. lens-embed search \"photosynthesis\"");
  const auto settings = make_settings(config, {.provider = true});
  if (!settings) return report(settings.error());
  const Settings& s = *settings;
  if (s.provider_settings->kind == ProviderKind::local_hash &&
      !provider::local_hash_has_features(flags.query)) {
    // Its vector would be the text's own hash, close to nothing stored: say so instead.
    return usage_error(fmt::format(
        "search: the query \"{}\" has no letters or digits; local-hash matches words, so it can find "
        "nothing for it",
        flags.query));
  }
  auto store = open_migrated(s);
  if (!store) return report(store.error());
  auto tok = load_tokenizer(s.model_spec);
  if (!tok) return report(tok.error());
  auto provider = make_provider(s);
  if (!provider) return report(provider.error());
  auto vector = pipeline::embed_one(**provider, **tok, s.model_spec, s.provider_settings->dimensions,
                                    flags.query, std::chrono::seconds(60));
  if (!vector) return report(vector.error());
  const auto k = static_cast<std::size_t>(flags.k.value_or(10));
  const auto hits = (*store)->search(s.provider, s.model, *vector, k);
  if (!hits) return report(hits.error());
  print_search(*hits, flags.query, flags.json);
  return k_exit_ok;
}

}  // namespace lens::cli
