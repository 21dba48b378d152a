// `verify`: checks the stored embeddings of one (provider, model) against the source as it
// is now, read-only. Each eligible exchange's input text is recomputed by pipeline::prepare,
// the function `run` hashes with, so "stale" means exactly what `run --rehash` re-embeds.
// Memory stays flat: the exchanges are read one keyset page at a time, only counts and the
// first few ids of each finding are kept, and --sample draws its rows by reservoir sampling.
#include <fmt/core.h>
#include <fmt/format.h>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "cli/commands/commands.h"
#include "cli/commands/common.h"
#include "cli/exit_status.h"
#include "pipeline/embed_one.h"
#include "pipeline/prepare.h"

namespace lens::cli {
namespace {

constexpr std::size_t k_page_size = 500;
constexpr std::size_t k_max_ids = 10;  // ids listed per finding
// --sample: a fresh embedding of a stored input matches its stored vector when their cosine
// similarity is at least this. local-hash is deterministic (cosine 1); a real model answers
// the same input with vectors whose cosine is above 0.9999; another model, or a vector
// altered in place, falls far below.
constexpr double k_min_cosine = 0.999;

struct Finding {
  std::string kind;  // stale, orphan_rows, orphan_failures, missing, wrong_dimension, sample_mismatch
  std::string what;  // one line for people
  store::IdSample ids;
  std::string repair;      // the lens-embed command that repairs it, or "" when ...
  std::string repair_sql;  // ... SQL statements do (orphans a foreign key should have deleted)
};

struct Report {
  std::string provider, model;
  std::int64_t dimensions = 0;
  std::int64_t eligible = 0, rows = 0, failed = 0;
  std::int64_t sample_requested = 0, sample_compared = 0, sample_matched = 0, sample_skipped_chunked = 0;
  std::vector<Finding> findings;
  std::vector<std::string> other_pairs;  // in the database, not verified by this call
};

// A stored row whose hash matched, kept for --sample: its id and the input text as sent.
struct Candidate {
  std::string id;
  std::string text;
};

void note(store::IdSample& sample, const std::string& id) {
  ++sample.count;
  if (sample.ids.size() < k_max_ids) sample.ids.push_back(id);
}

// " --provider P --model M ..." as the command line gave them, so that the printed repair acts
// on the pair this call verified (--db is left to the user: it may hold a password).
std::string pair_flags(const Flags& flags) {
  std::string out;
  if (flags.config_path) out += " --config " + *flags.config_path;
  if (flags.provider) out += " --provider " + *flags.provider;
  if (flags.model) out += " --model " + *flags.model;
  if (flags.dimensions) out += fmt::format(" --dimensions {}", *flags.dimensions);
  return out;
}

// The size the pair's rows must have: the configuration's when it is a fact, else the one
// size of the rows already stored, else the configuration's guess.
std::int64_t expected_dimensions(const Settings& s, const std::vector<store::PairSummary>& mine) {
  if (s.dimensions_known || mine.empty() || mine[0].dimensions.size() != 1) return s.dimensions;
  return mine[0].dimensions[0];
}

double cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double dot = 0, na = 0, nb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    dot += static_cast<double>(a[i]) * b[i];
    na += static_cast<double>(a[i]) * a[i];
    nb += static_cast<double>(b[i]) * b[i];
  }
  if (na == 0 || nb == 0) return a == b ? 1.0 : 0.0;
  return dot / (std::sqrt(na) * std::sqrt(nb));
}

// Walks every eligible exchange: stale rows, missing exchanges, and the reservoir of
// up-to-date rows for --sample. On failure: the store's error.
util::Status scan(store::Store& store, const Settings& s, const tokenizer::Tokenizer& tok, Report& report,
                  Finding& stale, Finding& missing, std::vector<Candidate>& reservoir, std::size_t sample) {
  pipeline::RunOptions options;  // what prepare reads, as `run` sets it
  options.mapping = s.mapping;
  options.model = s.model_spec;
  options.long_input = s.run->long_input;
  pipeline::RunOptions other = options;  // the other --long-input
  std::mt19937_64 random(std::random_device{}());
  std::int64_t seen = 0;  // up-to-date rows offered to the reservoir
  store::PendingCursor cursor;
  for (;;) {
    auto page = store.verify_page(s.provider, s.model, cursor, k_page_size);
    if (!page) return std::unexpected(page.error());
    for (auto& item : page->items) {
      ++report.eligible;
      if (!item.has_row) {
        if (!item.has_failure) note(missing.ids, item.exchange.user_message_id);
        continue;
      }
      const auto stored = item.exchange.stored_sha256;
      auto input = pipeline::prepare(item.exchange, options, tok);
      if (stored && *stored != input.sha256 && (input.truncated || input.chunked)) {
        // An input over the model's limit hashes differently truncated and chunked: a row
        // written by `run --long-input` of the other kind is not stale for that.
        other.long_input = input.truncated ? pipeline::LongInput::chunk : pipeline::LongInput::truncate;
        if (auto alt = pipeline::prepare(std::move(item.exchange), other, tok); alt.sha256 == *stored)
          input = std::move(alt);
      }
      if (input.route == pipeline::Route::empty_input || !stored || *stored != input.sha256) {
        note(stale.ids, input.user_message_id);
        continue;
      }
      if (sample == 0) continue;
      if (input.chunked) {  // its vector combines several requests: not comparable to one
        ++report.sample_skipped_chunked;
        continue;
      }
      ++seen;
      if (reservoir.size() < sample) {
        reservoir.push_back({input.user_message_id, std::move(input.text)});
      } else if (const auto j = std::uniform_int_distribution<std::int64_t>(0, seen - 1)(random);
                 j < static_cast<std::int64_t>(sample)) {
        reservoir[static_cast<std::size_t>(j)] = {input.user_message_id, std::move(input.text)};
      }
    }
    if (page->exhausted) return {};
  }
}

// --sample: embeds each candidate again and compares it with its stored vector.
util::Status compare_sample(store::Store& store, const Settings& s, const tokenizer::Tokenizer& tok,
                            const std::vector<Candidate>& reservoir, Report& report, Finding& mismatch) {
  auto provider = make_provider(s);
  if (!provider) return std::unexpected(provider.error());
  for (const auto& c : reservoir) {
    auto fresh = pipeline::embed_one(**provider, tok, s.model_spec, s.provider_settings->dimensions, c.text,
                                     std::chrono::seconds(60));
    if (!fresh) return std::unexpected(fresh.error());
    auto stored = store.read_vector(s.provider, s.model, c.id);
    if (!stored) return std::unexpected(stored.error());
    if (!*stored) continue;  // deleted since the scan
    ++report.sample_compared;
    if ((*stored)->size() == fresh->size() && cosine(**stored, *fresh) >= k_min_cosine) {
      ++report.sample_matched;
    } else {
      note(mismatch.ids, c.id);
    }
  }
  return {};
}

std::string id_list(const store::IdSample& ids) {
  std::string out = fmt::format("{}", fmt::join(ids.ids, ", "));
  if (ids.count > static_cast<std::int64_t>(ids.ids.size()))
    out += fmt::format(", ... ({} more)", ids.count - static_cast<std::int64_t>(ids.ids.size()));
  return out;
}

void print_text(const Report& r, const std::string& database) {
  std::printf("verify %s / %s (%s), %lld dimensions\n", r.provider.c_str(), r.model.c_str(), database.c_str(),
              static_cast<long long>(r.dimensions));
  std::printf("  %lld eligible exchanges, %lld rows, %lld failures recorded\n",
              static_cast<long long>(r.eligible), static_cast<long long>(r.rows),
              static_cast<long long>(r.failed));
  if (r.sample_requested > 0) {
    std::printf("  sample: %lld of %lld stored vectors compared match a fresh embedding (cosine >= %g)%s\n",
                static_cast<long long>(r.sample_matched), static_cast<long long>(r.sample_compared),
                k_min_cosine,
                r.sample_skipped_chunked > 0
                    ? fmt::format("; {} chunked inputs not sampled", r.sample_skipped_chunked).c_str()
                    : "");
  }
  for (const auto& f : r.findings) {
    std::printf("%s: %lld %s: %s\n", f.kind.c_str(), static_cast<long long>(f.ids.count), f.what.c_str(),
                id_list(f.ids).c_str());
    if (!f.repair.empty())
      std::printf("  repair: %s\n", f.repair.c_str());
    else
      std::printf("  repair: run these statements on the database (lens-embed only reads it here):\n    %s\n",
                  f.repair_sql.c_str());
  }
  for (const auto& p : r.other_pairs)
    std::printf("not verified (another provider/model in this database): %s\n", p.c_str());
  if (r.findings.empty())
    std::puts("clean: every eligible exchange has an up-to-date row or a recorded failure");
  else
    std::printf("%zu finding(s)\n", r.findings.size());
}

void print_json(const Report& r) {
  nlohmann::json findings = nlohmann::json::array();
  for (const auto& f : r.findings) {
    nlohmann::json one{{"kind", f.kind}, {"description", f.what}, {"count", f.ids.count}, {"ids", f.ids.ids}};
    if (!f.repair.empty()) one["repair"] = f.repair;
    if (!f.repair_sql.empty()) one["repair_sql"] = f.repair_sql;
    findings.push_back(std::move(one));
  }
  nlohmann::json j{{"provider", r.provider},      {"model", r.model},     {"dimensions", r.dimensions},
                   {"eligible", r.eligible},      {"rows", r.rows},       {"failures", r.failed},
                   {"clean", r.findings.empty()}, {"findings", findings}, {"other_pairs", r.other_pairs}};
  if (r.sample_requested > 0) {
    j["sample"] = {{"requested", r.sample_requested},
                   {"compared", r.sample_compared},
                   {"matched", r.sample_matched},
                   {"skipped_chunked", r.sample_skipped_chunked},
                   {"min_cosine", k_min_cosine}};
  }
  std::puts(j.dump(2).c_str());
}

}  // namespace

int cmd_verify(const Flags& flags, const RawConfig& config) {
  const std::size_t sample = flags.sample ? static_cast<std::size_t>(*flags.sample) : 0;
  const auto settings = make_settings(config, {.provider = sample > 0, .run = true});
  if (!settings) return report(settings.error());
  const Settings& s = *settings;
  auto opened = open_read_only(s);  // no DDL, no file created, no writer lock
  if (!opened) return report(opened.error());
  store::Store& store = **opened;
  auto tok = load_tokenizer(s.model_spec);
  if (!tok) return report(tok.error());
  auto pairs = store.pairs();
  if (!pairs) return report(pairs.error());
  const auto mine = matching(*pairs, s.provider, s.model);

  Report r;
  r.provider = s.provider;
  r.model = s.model;
  r.dimensions = expected_dimensions(s, mine);
  r.sample_requested = static_cast<std::int64_t>(sample);
  if (!mine.empty()) {
    r.rows = mine[0].rows;
    r.failed = mine[0].failed_permanent + mine[0].failed_transient;
  }
  for (const auto& p : *pairs) {
    if (p.provider != s.provider || p.model != s.model)
      r.other_pairs.push_back(pair_name(p.provider, p.model));
  }
  const std::string flags_text = pair_flags(flags);
  Finding stale{"stale",
                "rows whose input text changed since they were embedded",
                {},
                "lens-embed run --rehash" + flags_text,
                ""};
  Finding missing{"missing",
                  "eligible exchanges with neither a row nor a recorded failure",
                  {},
                  "lens-embed run" + flags_text,
                  ""};
  Finding mismatch{
      "sample_mismatch",
      fmt::format("sampled rows whose stored vector differs from a fresh embedding (cosine < {})",
                  k_min_cosine),
      {},
      "lens-embed run --force" + flags_text,
      ""};

  std::vector<Candidate> reservoir;
  if (auto ok = scan(store, s, **tok, r, stale, missing, reservoir, sample); !ok) return report(ok.error());
  auto orphans = store.orphans(s.provider, s.model, k_max_ids);
  if (!orphans) return report(orphans.error());
  // Without statements to run, every `run` deletes them when it starts (a view, a filter).
  const std::string prune_run = orphans->repair_sql.empty() ? "lens-embed run" + flags_text : "";
  const char* gone = orphans->repair_sql.empty() ? "" : " (a foreign key should have deleted them)";
  Finding orphan_rows{
      "orphan_rows",
      fmt::format("rows of user messages that are gone, no longer user messages or filtered out{}", gone),
      orphans->rows, prune_run, orphans->repair_sql};
  Finding orphan_failures{
      "orphan_failures",
      fmt::format("failures of user messages that are gone, no longer user messages or filtered out{}", gone),
      orphans->failures, prune_run, orphans->repair_sql};
  auto wrong = store.wrong_dimensions(s.provider, s.model, r.dimensions, k_max_ids);
  if (!wrong) return report(wrong.error());
  Finding wrong_size{"wrong_dimension",
                     fmt::format("rows whose vector is not of {} dimensions", r.dimensions), *wrong,
                     "lens-embed run --force" + flags_text, ""};
  if (sample > 0) {
    if (auto ok = compare_sample(store, s, **tok, reservoir, r, mismatch); !ok) return report(ok.error());
  }
  // Rows of another size first: until they are gone, every `run` but `run --force` stops
  // with exit 2 (one provider and model keep one size), and --force repairs the rest too.
  for (auto* f : {&wrong_size, &mismatch, &orphan_rows, &orphan_failures, &stale, &missing}) {
    if (f->ids.count > 0) r.findings.push_back(std::move(*f));
  }
  if (flags.json)
    print_json(r);
  else
    print_text(r, mask_database_url(s.database));
  return r.findings.empty() ? k_exit_ok : k_exit_stopped;
}

}  // namespace lens::cli
