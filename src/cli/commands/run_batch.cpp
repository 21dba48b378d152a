// `run --batch-api` (or [providers.NAME] batch = true): what the cli checks before a batch
// run, the Batch API client, the driver (batch/batch_run.h), its summary and exit status.
#include "cli/commands/run_batch.h"

#include <fmt/core.h>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "batch/batch_run.h"
#include "cli/backends.h"
#include "cli/commands/common.h"
#include "cli/exit_status.h"
#include "provider/openai/batch_client.h"
#include "store/batch_ledger.h"

namespace lens::cli {
namespace {

using util::ErrorCode;

util::Error usage(std::string message) {
  return {ErrorCode::invalid_argument, std::move(message)};
}

}  // namespace

bool batch_api_requested(const Flags& flags, const RawConfig& config) {
  return flags.batch_api || config.provider_section.batch.value == "true";
}

util::Status check_batch_mode(const Flags& flags, const RawConfig& config, const Settings& s,
                              bool only_failures) {
  const std::string origin = flags.batch_api
                                 ? "--batch-api"
                                 : fmt::format("batch = true ({})", config.provider_section.batch.source);
  if (only_failures) return {};  // failures --retry is synchronous: it embeds a handful
  if (s.provider_settings->kind != ProviderKind::openai) {
    return std::unexpected(usage(fmt::format("{}: provider {} has no Batch API; run without --batch-api",
                                             origin, s.provider_settings->name)));
  }
  if (s.run->long_input == pipeline::LongInput::chunk) {
    return std::unexpected(
        usage(fmt::format("{} with --long-input chunk is not supported yet; use --long-input truncate or run "
                          "without --batch-api",
                          origin)));
  }
  const auto& q = config.provider_section.batch_queue_tokens;
  if (q.is_set()) {
    const auto n = parse_whole_number(q.value);
    if (!n || *n < 1) {
      return std::unexpected(usage(fmt::format(
          "batch_queue_tokens {} ({}): must be a whole number of tokens >= 1", q.value, q.source)));
    }
  }
  return {};
}

std::int64_t default_queue_tokens(const std::string& model) {
  // OpenAI's tier-1 enqueued-token limit of text-embedding-3-large (3M): the smallest of
  // the embedding models' at tier 1, so a safe default for every model (higher tiers
  // allow far more: configure [providers.NAME] batch_queue_tokens or --batch-queue-tokens).
  (void)model;
  return 3'000'000;
}

util::Result<std::unique_ptr<provider::openai::BatchClient>> make_batch_client(const Settings& s) {
  const ProviderSettings& p = *s.provider_settings;
  provider::OpenAiOptions o;
  o.base_url = p.base_url;
  o.api_key = p.api_key;
  o.model = p.model.empty() ? s.model : p.model;
  o.encoding_format = p.encoding_format;
  o.request_timeout = p.timeout;
  o.verify_tls = p.verify_tls;
  o.ca_cert = p.ca_cert;
  if (p.kind != ProviderKind::openai) {
    return std::unexpected(
        usage(fmt::format("provider {} has no Batch API; run without --batch-api", p.name)));
  }
  if (o.base_url.empty() || o.api_key.empty()) {
    return std::unexpected(usage(fmt::format(
        "provider {} needs a base URL and an API key ({}) for the Batch API", p.name, p.api_key_env)));
  }
  auto client = provider::openai::make_batch_client(o);
  if (!client) return std::unexpected(client.error().error);
  return std::move(*client);
}

int run_batch(const Flags& flags, const RawConfig& config, const Settings& s,
              const pipeline::RunOptions& options, store::Store& store, const tokenizer::Tokenizer& tokenizer,
              const std::string& arguments, const std::string& worker) {
  store::BatchLedger* ledger = store.batch_ledger();
  if (!ledger) {
    return usage_error("--batch-api: this database has no batch ledger; run without --batch-api");
  }
  const ProviderSettings& p = *s.provider_settings;
  auto client = make_batch_client(s);
  if (!client) return report(client.error());
  const std::string model = p.model.empty() ? s.model : p.model;

  batch::BatchRunOptions bo;
  bo.run = options;
  bo.run.model.name = model;  // the name the provider is asked for (an alias's model)
  bo.encoding_format = p.encoding_format;
  const auto& q = config.provider_section.batch_queue_tokens;
  bo.queue_tokens = q.is_set() ? *parse_whole_number(q.value) : default_queue_tokens(model);
  if (flags.batch_queue_tokens) bo.queue_tokens = *flags.batch_queue_tokens;
  // Input files are written beside a SQLite file, else in the temporary directory.
  std::error_code ec;
  if (auto tmp = std::filesystem::temp_directory_path(ec); !ec) bo.work_dir.assign(tmp.native());
  if (const auto target = parse_database_url(s.database); target && target->kind == DatabaseKind::sqlite) {
    const auto dir = std::filesystem::path(target->location).parent_path();
    if (!dir.empty()) bo.work_dir = dir.string();
  }
  install_signal_handlers();
  batch::BatchRunDeps deps{store, *ledger, **client, tokenizer, &stop_flag(), arguments, worker};
  const auto out = batch::run_batch_api(bo, deps);

  const auto& st = out.stats;
  if (flags.json) {
    nlohmann::json j{{"run_id", out.run_id},
                     {"embedded", st.embedded},
                     {"unchanged", st.unchanged},
                     {"failed", st.failed},
                     {"fenced", st.fenced},
                     {"tokens_submitted", st.tokens},
                     {"batches_submitted", out.batches_submitted},
                     {"items_submitted", out.items_submitted},
                     {"batches_collected", out.batches_collected},
                     {"batches_adopted", out.batches_adopted},
                     {"items_released", out.items_released},
                     {"items_discarded", out.items_discarded},
                     {"batches_in_flight", out.batches_in_flight},
                     {"items_in_flight", out.items_in_flight},
                     {"pending", out.pending_left}};
    std::puts(j.dump().c_str());
  } else {
    std::printf(
        "batch run %lld: submitted %lld items in %lld batches (%lld tokens); collected %lld batches: %lld "
        "embedded, "
        "%lld unchanged, %lld failed, %lld discarded (edited since), %lld released to be submitted again\n",
        static_cast<long long>(out.run_id), static_cast<long long>(out.items_submitted),
        static_cast<long long>(out.batches_submitted), static_cast<long long>(st.tokens),
        static_cast<long long>(out.batches_collected), static_cast<long long>(st.embedded),
        static_cast<long long>(st.unchanged), static_cast<long long>(st.failed),
        static_cast<long long>(out.items_discarded), static_cast<long long>(out.items_released));
  }
  if (out.fatal) return report(*out.fatal);
  if (out.items_in_flight > 0) {
    std::int64_t oldest = 0;
    if (auto open = ledger->list_batches(s.provider, s.model, true); open) {
      for (const auto& b : *open)
        oldest = std::max(oldest, batch_age_seconds(b.created_at));
    }
    std::fprintf(
        stderr,
        "lens-embed: %lld items are in flight in %lld unfinished batches (the oldest submitted %s "
        "ago); rerun `lens-embed run --batch-api` (or run it with --follow) to collect their results\n",
        static_cast<long long>(out.items_in_flight), static_cast<long long>(out.batches_in_flight),
        batch_age_text(oldest).c_str());
    return k_exit_stopped;
  }
  if (out.interrupted) return k_exit_stopped;
  // As a synchronous run: transient failures left (a 500 in the error file) are work undone.
  if (auto pairs = store.pairs(); pairs) {
    const auto mine = matching(*pairs, s.provider, s.model);
    if (!mine.empty() && mine[0].failed_transient > 0) {
      std::fprintf(stderr, "lens-embed: %lld transient failures left; a later run retries them\n",
                   static_cast<long long>(mine[0].failed_transient));
      return k_exit_stopped;
    }
  }
  if (out.pending_left > 0) {
    std::fprintf(stderr,
                 "lens-embed: %lld exchanges are still pending (queue limit, --limit or transient failures); "
                 "rerun to submit them\n",
                 static_cast<long long>(out.pending_left));
    return k_exit_stopped;
  }
  return k_exit_ok;
}

}  // namespace lens::cli
