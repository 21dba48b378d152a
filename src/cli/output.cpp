// Rendering. nlohmann::json stays inside this file.
#include "cli/output.h"

#include <fmt/core.h>

#include <cstdio>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/settings.h"
#include "util/redact.h"
#include "util/utf8.h"

namespace lens::cli {
namespace {

using nlohmann::json;

json stats_json(const core::RunStats& s) {
  return json{{"embedded", s.embedded}, {"unchanged", s.unchanged},
              {"failed", s.failed},     {"truncated", s.truncated},
              {"tokens", s.tokens},     {"requests", s.requests},
              {"retries", s.retries},   {"rate_limited", s.rate_limited},
              {"fenced", s.fenced}};
}

std::string duration_text(double seconds) {
  if (seconds < 0 || seconds > 1e7) return "?";
  const auto total = static_cast<long long>(seconds + 0.5);
  if (total >= 3600) return fmt::format("{}h{:02}m", total / 3600, (total % 3600) / 60);
  if (total >= 60) return fmt::format("{}m{:02}s", total / 60, total % 60);
  return fmt::format("{}s", total);
}

std::string si(double v) {
  if (v >= 1e6) return fmt::format("{:.2f}M", v / 1e6);
  if (v >= 1e4) return fmt::format("{:.1f}k", v / 1e3);
  return fmt::format("{:.0f}", v);
}

// Provider messages and stored text may hold invalid UTF-8: replace, never throw.
std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

void out(const std::string& text) {
  std::fputs(util::redact(text).c_str(), stdout);
  std::fflush(stdout);
}

}  // namespace

void ProgressPrinter::on_progress(const pipeline::ProgressSnapshot& s) {
  if (style_.quiet) return;
  const double secs = s.elapsed.count();
  const double rate = secs > 0 ? static_cast<double>(s.handled) / secs : 0;
  const double eta = (s.total > 0 && rate > 0) ? static_cast<double>(s.total - s.handled) / rate : -1;
  if (style_.tty) {
    std::string total = s.total >= 0 ? fmt::format("/{}", s.total) : "";
    std::string pct =
        s.total > 0
            ? fmt::format(" {:5.1f}%", 100.0 * static_cast<double>(s.handled) / static_cast<double>(s.total))
            : "";
    // The last ten seconds' rate beside the limit in force, and where that limit came from.
    std::string tpm = s.tpm_limit > 0 ? fmt::format("{}/{} TPM{}", si(s.tokens_per_minute), si(s.tpm_limit),
                                                    s.tpm_limit_from_server ? " (server's)" : "")
                                      : fmt::format("{} TPM", si(s.tokens_per_minute));
    std::string line = fmt::format(
        "\r\033[2K{}{}{} | {:.0f} rows/s | {} | ETA {} | ${:.4f} | retries {} | failed {}", s.handled, total,
        pct, rate, tpm, eta >= 0 ? duration_text(eta) : "-", s.usd_spent, s.stats.retries, s.stats.failed);
    if (s.final) line += "\n";
    std::fputs(line.c_str(), stderr);
    std::fflush(stderr);
    line_open_ = !s.final;
    return;
  }
  if (style_.format == LogFormat::json) {
    json j{{"event", s.final ? "done" : "progress"},
           {"handled", s.handled},
           {"total", s.total},
           {"rows_per_second", rate},
           {"tokens_per_minute", s.tokens_per_minute},
           {"tpm_limit", s.tpm_limit},
           {"tpm_limit_source", s.tpm_limit_from_server ? "server" : "configured"},
           {"eta_seconds", eta},
           {"usd", s.usd_spent},
           {"in_flight", s.in_flight},
           {"stats", stats_json(s.stats)}};
    std::fputs((dump(j) + "\n").c_str(), stderr);
  } else {
    std::fputs(
        fmt::format(
            "event={} handled={} total={} rows_per_s={:.1f} tpm={:.0f} tpm_limit={:.0f} "
            "tpm_limit_source={} eta_s={:.0f} usd={:.6f} embedded={} unchanged={} failed={} retries={} "
            "rate_limited={} in_flight={}\n",
            s.final ? "done" : "progress", s.handled, s.total, rate, s.tokens_per_minute, s.tpm_limit,
            s.tpm_limit_from_server ? "server" : "configured", eta, s.usd_spent, s.stats.embedded,
            s.stats.unchanged, s.stats.failed, s.stats.retries, s.stats.rate_limited, s.in_flight)
            .c_str(),
        stderr);
  }
  std::fflush(stderr);
}

void print_run_summary(const pipeline::RunOutcome& o, const RunContext& ctx, const RunAftermath& left,
                       bool as_json) {
  const char* status = o.fatal ? "failed" : o.interrupted ? "interrupted" : "completed";
  if (as_json) {
    json j{{"status", o.dry_run ? "dry_run" : status},
           {"provider", ctx.provider},
           {"model", ctx.model},
           {"database", ctx.database},
           {"run_id", o.run_id},
           {"seconds", o.seconds},
           {"stats", stats_json(o.stats)}};
    if (o.fatal) j["error"] = util::redact(o.fatal->message);
    if (!o.dry_run) {
      j["transient_failures_left"] = left.transient_left;
      if (!left.next_retry_at.empty()) j["next_retry_at"] = left.next_retry_at;
    }
    if (o.dry_run) {
      const auto& d = *o.dry_run;
      j["dry_run"] = json{{"exchanges", d.exchanges}, {"new", d.new_rows},    {"stale", d.stale_rows},
                          {"unchanged", d.unchanged}, {"blank", d.blank},     {"tokens", d.tokens},
                          {"truncated", d.truncated}, {"chunked", d.chunked}, {"usd", d.usd}};
      if (ctx.batch_api) j["dry_run"]["batch_usd"] = d.usd * k_batch_price_factor;
    }
    out(dump(j) + "\n");
    return;
  }
  if (o.dry_run) {
    const auto& d = *o.dry_run;
    out(
        fmt::format("dry run ({} / {}): {} exchanges would be embedded ({} new, {} stale), {} unchanged, "
                    "{} blank\n  tokens: {}  estimated cost: ${:.4f}\n  over the model's limit: {} "
                    "(truncated), {} (chunked)\n",
                    ctx.provider, ctx.model, d.exchanges, d.new_rows, d.stale_rows, d.unchanged, d.blank,
                    d.tokens, d.usd, d.truncated, d.chunked));
    if (ctx.batch_api) {
      out(
          fmt::format("  by batch (--batch-api): estimated cost ${:.4f} beside ${:.4f} synchronously (the "
                      "Batch API bills half; results within 24 hours)\n",
                      d.usd * k_batch_price_factor, d.usd));
    }
    return;
  }
  const auto& s = o.stats;
  out(
      fmt::format("run {} {} in {}: embedded {}, unchanged {}, failed {}, truncated {}, tokens {}, "
                  "requests {}, retries {}, rate-limited {} ({} / {})\n",
                  o.run_id, status, duration_text(o.seconds), s.embedded, s.unchanged, s.failed, s.truncated,
                  s.tokens, s.requests, s.retries, s.rate_limited, ctx.provider, ctx.model));
  if (s.fenced > 0) {
    out(
        fmt::format("{} late write(s) fenced: another worker took those exchanges over or stored a newer "
                    "version; they are left to it\n",
                    s.fenced));
  }
  // The error itself goes to stderr (the caller reports it): stdout is the summary only.
  if (left.transient_left > 0) {
    out(
        fmt::format("{} transient failure(s) left ({} / {}): later runs retry them on their own{}, or now: "
                    "lens-embed failures --retry\n",
                    left.transient_left, ctx.provider, ctx.model,
                    left.next_retry_at.empty() ? "" : fmt::format(" from {}", left.next_retry_at)));
  } else if (s.failed > 0) {
    out("see the failures with: lens-embed failures\n");
  }
}

namespace {

json run_json(const store::RunSummary& run) {
  json j{{"id", run.id},
         {"provider", run.provider},
         {"model", run.model},
         {"started_at", run.started_at},
         {"finished_at", run.finished_at},
         {"status", core::to_string(run.status)},
         {"duration_seconds", run.duration_seconds},
         {"stats", stats_json(run.stats)}};
  if (!run.error.empty()) j["error"] = run.error;
  return j;
}

using Prices = std::map<std::string, std::optional<double>>;

std::optional<double> price_of(const Prices& usd_per_million, const std::string& model) {
  const auto it = usd_per_million.find(model);
  return it == usd_per_million.end() ? std::nullopt : it->second;
}

std::string usd_text(double usd) {
  return usd >= 0.01 || usd == 0 ? fmt::format("${:.2f}", usd) : fmt::format("${:.6f}", usd);
}

// "host:pid" (how `run` names itself in claims) as host and pid; pid 0 for another form.
std::pair<std::string, long long> host_and_pid(const std::string& worker) {
  const auto colon = worker.rfind(':');
  if (colon == std::string::npos || colon + 1 == worker.size()) return {worker, 0};
  const auto pid = parse_whole_number(std::string_view(worker).substr(colon + 1));
  if (!pid || *pid <= 0) return {worker, 0};
  return {worker.substr(0, colon), *pid};
}

json status_json(const store::StatusReport& r, const Prices& usd_per_million) {
  json models = json::array();
  for (const auto& m : r.models) {
    json reasons = json::object();
    for (const auto& [reason, n] : m.failures_by_reason)
      reasons[reason] = n;
    const auto price = price_of(usd_per_million, m.model);
    models.push_back(
        {{"provider", m.provider},
         {"model", m.model},
         {"embedded", m.embedded},
         {"pending", m.pending},
         {"stale", m.stale},
         {"input_definition", m.input_definition.empty() ? json(nullptr) : json(m.input_definition)},
         {"failed", m.failed},
         {"failed_permanent", m.failed_permanent},
         {"failed_transient", m.failed_transient},
         {"transient_due", m.transient_due},
         {"failures_by_reason", reasons},
         {"oldest_pending_at", m.oldest_pending_at.empty() ? json(nullptr) : json(m.oldest_pending_at)},
         {"oldest_pending_age_seconds",
          m.oldest_pending_age_seconds ? json(*m.oldest_pending_age_seconds) : json(nullptr)},
         {"last_24h",
          {{"runs", m.runs_24h},
           {"tokens", m.tokens_24h},
           {"usd", price ? json(static_cast<double>(m.tokens_24h) * *price / 1e6) : json(nullptr)},
           {"usd_per_million_tokens", price ? json(*price) : json(nullptr)},
           {"prorated_runs", m.prorated_runs_24h}}},
         {"last_failed_run", m.last_failed_run ? run_json(*m.last_failed_run) : json(nullptr)}});
  }
  json runs = json::array();
  for (const auto& run : r.recent_runs)
    runs.push_back(run_json(run));
  json j{{"eligible", r.eligible}, {"models", models}, {"recent_runs", runs}};
  if (!r.has_claims) {
    j["workers"] = nullptr;  // no claims: SQLite has one writer
    j["orphaned_claims"] = nullptr;
    return j;
  }
  json workers = json::array();
  for (const auto& w : r.workers) {
    const auto [host, pid] = host_and_pid(w.worker);
    workers.push_back({{"worker", w.worker},
                       {"host", host},
                       {"pid", pid > 0 ? json(pid) : json(nullptr)},
                       {"provider", w.provider},
                       {"model", w.model},
                       {"claims", w.claims},
                       {"lease_expires_at", w.lease_expires_at},
                       {"lease_expired", w.lease_expired}});
  }
  j["workers"] = workers;
  j["orphaned_claims"] = r.orphaned_claims;
  return j;
}

std::string model_text(const store::ModelStatus& m, std::optional<double> price) {
  std::string text = fmt::format("{} / {}: embedded {}, pending {}, stale {}, failed {}", m.provider, m.model,
                                 m.embedded, m.pending, m.stale, m.failed);
  if (m.failed > 0) {
    text += fmt::format(" (permanent {}, transient {}", m.failed_permanent, m.failed_transient);
    if (m.failed_transient > 0) text += fmt::format(": {} due for the next run", m.transient_due);
    text += ")";
  }
  text += "\n";
  for (const auto& [reason, n] : m.failures_by_reason) {
    const auto parsed = core::parse_failure_reason(reason);
    text += fmt::format("    {}: {}{}\n", reason, n,
                        parsed ? fmt::format(" ({})", core::to_string(core::failure_class(*parsed))) : "");
  }
  if (m.stale > 0)
    text +=
        fmt::format("    stale: {} row(s) whose message or reply changed after it was embedded\n", m.stale);
  if (m.input_definition == "changed")
    text +=
        "    input texts: the [source] mapping (template, reply, filter or roles) changed since the last "
        "complete run, so any row may be stale by its text: the next run hashes every input and re-embeds "
        "those whose text changed (`lens-embed verify` counts them now)\n";
  if (m.oldest_pending_at.empty()) {
    text += "    freshness: up to date (nothing pending)\n";
  } else {
    text += fmt::format("    freshness: the oldest pending message is from {}{}\n", m.oldest_pending_at,
                        m.oldest_pending_age_seconds
                            ? fmt::format(", {} ago", duration_text(*m.oldest_pending_age_seconds))
                            : "");
  }
  text += fmt::format("    last 24 h: {} run(s), {} tokens", m.runs_24h, m.tokens_24h);
  if (price && *price > 0)
    text += fmt::format(", {} (at the model table's ${} per million tokens; runs store tokens, not cost)",
                        usd_text(static_cast<double>(m.tokens_24h) * *price / 1e6), *price);
  else if (price)
    text += ", $0 (its price is 0)";
  else
    text += fmt::format(", USD unknown (no price for {}: [models.\"{}\"] usd_per_million_tokens sets one)",
                        m.model, m.model);
  if (m.prorated_runs_24h > 0)
    text += fmt::format("; {} run(s) begun before the window counted in part", m.prorated_runs_24h);
  text += "\n";
  if (m.last_failed_run) {
    const auto& f = *m.last_failed_run;
    text += fmt::format("    last failed run: #{} ended {}: {}\n", f.id,
                        f.finished_at.empty() ? "?" : f.finished_at,
                        f.error.empty() ? "(no cause recorded)" : f.error);
  }
  return text;
}

std::string workers_text(const store::StatusReport& r) {
  if (!r.has_claims) return "";
  std::string text = "workers (claims on PostgreSQL):\n";
  if (r.workers.empty()) text += "  no live worker holds claims\n";
  for (const auto& w : r.workers) {
    const auto [host, pid] = host_and_pid(w.worker);
    text += fmt::format("  {}{}: {} / {}, {} claim(s), lease until {}{}\n", w.worker,
                        pid > 0 ? fmt::format(" (pid {} on {})", pid, host) : "", w.provider, w.model,
                        w.claims, w.lease_expires_at,
                        w.lease_expired ? " (expired: it stopped renewing; others may take them over)" : "");
  }
  if (r.orphaned_claims > 0) {
    text += fmt::format(
        "  {} claim(s) left by workers that are gone (released at their end, or killed): the next worker "
        "takes them over at once\n",
        r.orphaned_claims);
  }
  return text;
}

}  // namespace

void print_status(const store::StatusReport& r, const Prices& usd_per_million, bool as_json) {
  if (as_json) {
    out(dump(status_json(r, usd_per_million)) + "\n");
    return;
  }
  std::string text = fmt::format("eligible user messages: {}\n", r.eligible);
  if (r.models.empty()) text += "no embeddings yet: run `lens-embed run`\n";
  for (const auto& m : r.models)
    text += model_text(m, price_of(usd_per_million, m.model));
  text += workers_text(r);
  if (!r.recent_runs.empty()) text += "recent runs:\n";
  for (const auto& run : r.recent_runs) {
    text += fmt::format("  #{} {} {} / {} started {} took {}: embedded {}, failed {}, tokens {}", run.id,
                        core::to_string(run.status), run.provider, run.model, run.started_at,
                        duration_text(run.duration_seconds), run.stats.embedded, run.stats.failed,
                        run.stats.tokens);
    if (run.stats.fenced > 0) text += fmt::format(", fenced {}", run.stats.fenced);
    text += "\n";
    if (!run.error.empty()) text += fmt::format("      {}\n", run.error);
  }
  out(text);
}

void print_failures(const std::vector<store::FailureRecord>& failures, bool as_json) {
  if (as_json) {
    json arr = json::array();
    for (const auto& f : failures) {
      arr.push_back({{"provider", f.provider},
                     {"model", f.model},
                     {"user_message_id", f.user_message_id},
                     {"reason", core::to_string(f.reason)},
                     {"class", core::to_string(core::failure_class(f.reason))},
                     {"next_attempt_at", f.next_attempt_at.empty() ? json(nullptr) : json(f.next_attempt_at)},
                     {"detail", f.detail},
                     {"attempts", f.attempts},
                     {"first_failed_at", f.first_failed_at},
                     {"last_failed_at", f.last_failed_at}});
    }
    out(dump(arr) + "\n");
    return;
  }
  if (failures.empty()) {
    out("no failures recorded\n");
    return;
  }
  std::string text;
  std::size_t transient = 0;
  for (const auto& f : failures) {
    const bool is_transient = core::failure_class(f.reason) == core::FailureClass::transient;
    transient += is_transient ? 1 : 0;
    text += fmt::format(
        "{} {} / {}  {} ({})  attempts {}  last {}{}\n    {}\n", f.user_message_id, f.provider, f.model,
        core::to_string(f.reason), core::to_string(core::failure_class(f.reason)), f.attempts,
        f.last_failed_at,
        is_transient && !f.next_attempt_at.empty() ? "  retried from " + f.next_attempt_at : "", f.detail);
  }
  text += fmt::format(
      "{} failure(s), {} transient (later runs retry them on their own) and {} permanent (kept until the "
      "message is edited); retry them all now with: lens-embed failures --retry\n",
      failures.size(), transient, failures.size() - transient);
  out(text);
}

void print_search(const store::SearchResult& found, const std::string& query, bool as_json) {
  const auto& hits = found.hits;
  if (as_json) {
    json arr = json::array();
    for (const auto& h : hits) {
      arr.push_back(
          {{"score", h.score},
           {"user_message_id", h.user_message_id},
           {"assistant_message_id", h.assistant_message_id ? json(*h.assistant_message_id) : json(nullptr)},
           {"conversation_id", h.conversation_id},
           {"created_at", h.created_at},
           {"snippet", h.snippet}});
    }
    out(dump(json{{"query", query}, {"method", found.method}, {"hits", arr}}) + "\n");
    return;
  }
  std::fputs(util::redact(fmt::format("search: ranked by {}\n", found.method)).c_str(), stderr);
  if (hits.empty()) {
    out("no results: nothing embedded yet for this provider and model?\n");
    return;
  }
  std::string text;
  for (std::size_t i = 0; i < hits.size(); ++i) {
    const auto& h = hits[i];
    std::string snippet = h.snippet.substr(0, util::utf8_floor(h.snippet, 160));
    for (char& c : snippet) {
      if (c == '\n' || c == '\r' || c == '\t') c = ' ';
    }
    text += fmt::format("{:2}. {:.4f}  conversation {}  {}\n    {}\n", i + 1, h.score, h.conversation_id,
                        h.created_at, snippet);
  }
  out(text);
}

void print_tokens(const core::ModelSpec& spec, const std::vector<std::uint32_t>& ids, bool with_ids,
                  bool as_json) {
  if (as_json) {
    json j{{"model", spec.name},
           {"encoding", spec.encoding},
           {"tokens", ids.size()},
           {"max_input_tokens", spec.max_input_tokens}};
    if (with_ids) j["ids"] = ids;
    out(dump(j) + "\n");
    return;
  }
  std::string text = fmt::format("{}\n", ids.size());
  if (with_ids) {
    for (std::size_t i = 0; i < ids.size(); ++i)
      fmt::format_to(std::back_inserter(text), "{}{}", i ? " " : "", ids[i]);
    text += "\n";
  }
  out(text);
}

void print_config(const std::vector<std::pair<std::string, Sourced>>& settings, bool as_json) {
  if (as_json) {
    json j = json::object();
    for (const auto& [key, v] : settings)
      j[key] = {{"value", v.value}, {"source", v.source}};
    out(dump(j) + "\n");
    return;
  }
  std::string text;
  for (const auto& [key, v] : settings)
    text += fmt::format("{:<20} = {:<40} ({})\n", key, v.value, v.source);
  out(text);
}

std::string run_arguments_json(const RawConfig& c, const Flags& f) {
  json j{{"database", mask_database_url(c.database.value)},
         {"provider", c.provider.value},
         {"model", c.model.value},
         {"batch_size", c.batch_size.value},
         {"concurrency", c.concurrency.value},
         {"rpm", c.rpm.value},
         {"tpm", c.tpm.value},
         {"force", f.force},
         {"rehash", f.rehash},
         {"dry_run", f.dry_run},
         {"follow", f.follow},
         {"long_input", c.long_input.value}};
  if (f.limit) j["limit"] = *f.limit;
  if (c.dimensions.is_set()) j["dimensions"] = c.dimensions.value;
  if (c.provider_section.base_url.is_set()) j["base_url"] = util::redact(c.provider_section.base_url.value);
  return util::redact(dump(j));
}

}  // namespace lens::cli
