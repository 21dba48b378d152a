// `batches`: the Batch API batches recorded in the database (status, progress, age,
// tokens, cost at the batch price), and `--cancel ID` / `--cancel-all` to cancel
// unfinished ones at the provider. A cancelled batch's items are released (pending
// again) by the next `run --batch-api`, which also writes what the batch finished.
#include <fmt/core.h>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

#include "cli/commands/commands.h"
#include "cli/commands/common.h"
#include "cli/commands/run_batch.h"
#include "cli/exit_status.h"
#include "cli/output.h"
#include "core/model_table.h"
#include "store/batch_ledger.h"
#include "util/redact.h"

namespace lens::cli {

std::string batch_age_text(std::int64_t s) {
  if (s < 120) return fmt::format("{}s", s);
  if (s < 7200) return fmt::format("{}m", s / 60);
  return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
}

std::int64_t batch_age_seconds(const std::string& iso) {
  std::tm tm{};
  if (!strptime(iso.c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) return 0;
  return std::max<std::int64_t>(0, static_cast<std::int64_t>(std::time(nullptr) - timegm(&tm)));
}

namespace {

// The batch price of `tokens` of `model` (half the model table's), nullopt when unknown.
std::optional<double> batch_usd(const std::string& model, std::int64_t tokens) {
  const auto spec = core::builtin_model(model);
  if (!spec || spec->usd_per_million_tokens <= 0) return std::nullopt;
  return static_cast<double>(tokens) / 1e6 * spec->usd_per_million_tokens * k_batch_price_factor;
}

void print_batches(const std::vector<store::BatchRecord>& list, bool json) {
  if (json) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& b : list) {
      const auto usd = batch_usd(b.model, b.tokens);
      a.push_back({{"key", b.key},
                   {"id", b.remote_id},
                   {"provider", b.provider},
                   {"model", b.model},
                   {"status", b.status},
                   {"done", b.done},
                   {"items", b.items},
                   {"requests", b.requests},
                   {"completed", b.completed},
                   {"failed", b.failed},
                   {"tokens", b.tokens},
                   {"usd", usd ? nlohmann::json(*usd) : nlohmann::json()},
                   {"age_seconds", batch_age_seconds(b.created_at)},
                   {"error", util::redact(b.error)}});
    }
    std::puts(a.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return;
  }
  if (list.empty()) {
    std::puts("no batches recorded (lens-embed run --batch-api submits them)");
    return;
  }
  std::printf("%-22s %-28s %-11s %-15s %6s %9s %10s %5s\n", "batch", "id", "status", "progress", "items",
              "tokens", "cost", "age");
  std::int64_t open_items = 0;
  for (const auto& b : list) {
    const auto usd = batch_usd(b.model, b.tokens);
    const std::string progress = fmt::format("{}/{}{}", b.completed + b.failed, b.requests,
                                             b.failed > 0 ? fmt::format(" ({} failed)", b.failed) : "");
    std::printf("%-22s %-28s %-11s %-15s %6lld %9lld %10s %5s%s\n", b.key.c_str(),
                b.remote_id.empty() ? "-" : b.remote_id.c_str(), b.status.c_str(), progress.c_str(),
                static_cast<long long>(b.items), static_cast<long long>(b.tokens),
                usd ? fmt::format("${:.4f}", *usd).c_str() : "?",
                batch_age_text(batch_age_seconds(b.created_at)).c_str(), b.done ? "" : "  (unfinished)");
    if (!b.done) open_items += b.items;
  }
  if (open_items > 0)
    std::printf("%lld items in unfinished batches; lens-embed run --batch-api collects them\n",
                static_cast<long long>(open_items));
}

}  // namespace

int cmd_batches(const Flags& flags, const RawConfig& config) {
  const bool cancel = flags.cancel_batch.has_value() || flags.cancel_all;
  const auto settings = make_settings(config, {.provider = cancel});
  if (!settings) return report(settings.error());
  const std::string provider = flags.provider ? settings->provider : "";
  const std::string model = flags.model ? settings->model : "";
  StoreOptions so;
  so.access = store::AccessMode::read_write;
  so.wait_for_writer = true;
  so.mapping = settings->mapping;
  auto store = cancel ? open_migrated(*settings, so) : open_read_only(*settings);
  if (!store) return report(store.error());
  store::BatchLedger* ledger = (*store)->batch_ledger();
  if (!ledger) return usage_error("this database has no batch ledger");
  auto list = ledger->list_batches(provider, model, cancel);
  if (!list) return report(list.error());
  if (!cancel) {
    print_batches(*list, flags.json);
    return k_exit_ok;
  }
  std::vector<store::BatchRecord> targets;
  for (auto& b : *list) {
    if (flags.cancel_all || b.key == *flags.cancel_batch || b.remote_id == *flags.cancel_batch)
      targets.push_back(b);
  }
  if (flags.cancel_batch && targets.empty()) {
    return usage_error(
        fmt::format("--cancel {}: no unfinished batch has this key or id (lens-embed batches lists them)",
                    *flags.cancel_batch));
  }
  auto client = make_batch_client(*settings);
  if (!client) return report(client.error());
  int status = k_exit_ok;
  for (auto& b : targets) {
    if (b.remote_id.empty()) {
      std::printf("%s: not created yet (the next run --batch-api releases it)\n", b.key.c_str());
      continue;
    }
    auto r = (*client)->cancel_batch(b.remote_id);
    if (!r) {
      std::fprintf(stderr, "lens-embed: cancelling %s (%s): %s\n", b.key.c_str(), b.remote_id.c_str(),
                   util::redact(r.error().error.message).c_str());
      status = std::max(status, r.error().error.code == util::ErrorCode::configuration ? 2 : 1);
      continue;
    }
    b.status = std::string(provider::openai::to_string(r->status));
    if (auto s = ledger->update_batch(b); !s) return report(s.error());
    std::printf("%s (%s): %s; the next run --batch-api writes what it finished and releases the rest\n",
                b.key.c_str(), b.remote_id.c_str(), b.status.c_str());
  }
  if (targets.empty()) std::puts("no unfinished batches: nothing to cancel");
  return status;
}

}  // namespace lens::cli
