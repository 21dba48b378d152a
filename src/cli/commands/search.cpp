// `search`: find the (provider, model) to search (the only one with rows, or the one
// named), embed the query with that provider and model at the size of its rows, then rank
// the stored vectors by cosine similarity. Read-only.
#include <fmt/core.h>
#include <chrono>

#include "cli/commands/commands.h"
#include "cli/commands/common.h"
#include "cli/exit_status.h"
#include "cli/output.h"
#include "pipeline/embed_one.h"
#include "provider/local_hash.h"

namespace lens::cli {
namespace {

std::string list_pairs(const std::vector<store::PairSummary>& pairs) {
  std::string text;
  for (const auto& p : pairs)
    text += fmt::format("\n  --provider {} --model {}   ({} rows)", p.provider, p.model, p.rows);
  return text;
}

// Whether the configuration (not a built-in default) names the provider or model.
bool named(const Sourced& value) {
  return !value.source.starts_with("default") && value.source != "built in";
}

// The pair to search: filtered by the flags, then by what the configuration names.
util::Result<store::PairSummary> choose(const std::vector<store::PairSummary>& all, const Flags& flags,
                                        const RawConfig& config) {
  std::vector<store::PairSummary> with_rows;
  for (const auto& p : all) {
    if (p.rows > 0) with_rows.push_back(p);
  }
  if (with_rows.empty())
    return util::fail(util::ErrorCode::invalid_argument,
                      "search: nothing is embedded in this database yet: run `lens-embed run` first");
  const auto candidates =
      matching(with_rows, flags.provider ? *flags.provider : "", flags.model ? *flags.model : "");
  if (candidates.empty()) {
    return util::fail(util::ErrorCode::invalid_argument,
                      fmt::format("search: no embeddings for {}{}; the database has:{}",
                                  flags.provider ? "--provider " + *flags.provider : "",
                                  flags.model ? " --model " + *flags.model : "", list_pairs(with_rows)));
  }
  if (candidates.size() == 1) return candidates[0];
  // Several: the configuration's own choice (LENS_PROVIDER, [defaults], ...) may settle it.
  const auto configured = matching(candidates, named(config.provider) ? config.provider.value : "",
                                   named(config.model) ? config.model.value : "");
  if (configured.size() == 1 && (named(config.provider) || named(config.model))) return configured[0];
  return util::fail(util::ErrorCode::invalid_argument,
                    fmt::format("search: the database has embeddings of {} providers and models; say which "
                                "to search:{}",
                                candidates.size(), list_pairs(candidates)));
}

}  // namespace

int cmd_search(const Flags& flags, const RawConfig& config, const DotenvOrigins& dotenv) {
  if (flags.query.empty())
    return usage_error("search: give a QUERY, e.g. lens-embed search \"photosynthesis\"");
  const auto base = make_settings(config, {});
  if (!base) return report(base.error());
  auto store = open_read_only(*base);
  if (!store) return report(store.error());
  auto pairs = (*store)->pairs();
  if (!pairs) return report(pairs.error());
  const auto pair = choose(*pairs, flags, config);
  if (!pair) return report(pair.error());

  // The configuration of that pair, asked for vectors of the size of its rows.
  Flags for_pair = flags;
  auto raw = config_for_pair(for_pair, *pair, dotenv);
  if (!raw) return report(raw.error());
  const auto settings = make_settings(*raw, {.provider = true});
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
  auto tok = load_tokenizer(s.model_spec);
  if (!tok) return report(tok.error());
  auto provider = make_provider(s);
  if (!provider) return report(provider.error());
  auto vector = pipeline::embed_one(**provider, **tok, s.model_spec, s.provider_settings->dimensions,
                                    flags.query, std::chrono::seconds(60));
  if (!vector) return report(vector.error());
  const auto k = static_cast<std::size_t>(flags.k.value_or(10));
  const auto found = (*store)->search(s.provider, s.model, *vector, k);
  if (!found) return report(found.error());
  print_search(*found, flags.query, flags.json);
  return k_exit_ok;
}

}  // namespace lens::cli
