// `doctor`: what the database needs for the mapping in effect, read-only. Prints the mapping
// and where each value came from, the source relation with the types of the mapped columns,
// counts, the input text of one sample exchange, the time of one pending page, the indexes
// the pending query needs (with the statement for each missing one), how changes are
// detected, and whether the input definition changed since the last complete run.
// Exit 0: everything needed is there; 1: a recommendation is not met (each with its fix);
// 2: a configuration error (a bad mapping, a missing relation or column, no database).
#include <fmt/core.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "cli/backends.h"
#include "cli/commands/commands.h"
#include "cli/commands/common.h"
#include "cli/exit_status.h"
#include "core/input_definition.h"
#include "core/input_text.h"

namespace lens::cli {
namespace {

// Findings that want something done, each with the fix; printed together at the end.
struct Findings {
  std::vector<std::string> todo;
  void add(std::string what) { todo.push_back(std::move(what)); }
};

void print_mapping(const core::SourceMapping& m) {
  std::puts("mapping ([source], [output]):");
  for (const auto& line : m.describe())
    std::printf("  %-24s = %s  (%s)\n", line.key.c_str(), line.value.c_str(), line.source.c_str());
}

// The mapped keys with their column's declared type, from the catalog.
void print_source(const core::SourceMapping& m, const store::SourceDescription& d) {
  std::printf("source: %s `%s`, key type %s, %s\n", d.is_table ? "table" : "view",
              core::config_spelling(m.messages().value).c_str(), d.key_type.c_str(),
              d.foreign_key ? "lens-embed's rows follow deletes through a foreign key"
                            : "deleted or filtered-out messages are pruned when a run starts");
  const auto type_of = [&](const std::string& column) -> std::string {
    for (const auto& [name, type] : d.columns)
      if (name == column) return type.empty() ? "(no declared type)" : type;
    return "(missing)";
  };
  const std::pair<const char*, const std::string*> keys[] = {{"id", &m.id().value},
                                                             {"conversation_id", &m.conversation_id().value},
                                                             {"role", &m.role().value},
                                                             {"content", &m.content().value},
                                                             {"created_at", &m.created_at().value},
                                                             {"updated_at", &m.updated_at().value}};
  for (const auto& [key, column] : keys) {
    if (column->empty()) continue;
    std::printf("  %-16s %-24s %s\n", key, core::config_spelling(*column).c_str(), type_of(*column).c_str());
  }
  for (const auto& column : m.user_columns())
    std::printf("  %-16s %-24s %s\n", "{user.*}", core::config_spelling(column).c_str(),
                type_of(column).c_str());
  for (const auto& column : m.assistant_columns())
    std::printf("  %-16s %-24s %s\n", "{assistant.*}", core::config_spelling(column).c_str(),
                type_of(column).c_str());
  if (m.reply().value.kind == core::ReplyKind::column) {
    const auto& column = m.reply().value.column;
    std::printf("  %-16s %-24s %s\n", "reply", core::config_spelling(column).c_str(),
                type_of(column).c_str());
  }
}

// One pending page of the configured pair, timed, and the input text of its first exchange
// (or of the first eligible exchange when nothing is pending).
util::Status print_sample(store::Store& store, const Settings& s) {
  store::WorkScope scope{s.provider, s.model};
  scope.rehash = !s.mapping.has_updated_at();
  store::PendingCursor cursor;
  const auto started = std::chrono::steady_clock::now();
  auto page = store.next_pending(scope, cursor, 1000);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  if (!page) return std::unexpected(page.error());
  std::printf("one pending page (up to 1000 exchanges of %s): %zu read in %.1f ms\n",
              pair_name(s.provider, s.model).c_str(), page->items.size(), ms);
  if (page->items.empty()) {
    store::WorkScope all{s.provider, s.model, true};
    store::PendingCursor first;
    page = store.next_pending(all, first, 1);
    if (!page) return std::unexpected(page.error());
  }
  if (page->items.empty()) {
    std::puts("sample: no eligible exchange");
    return {};
  }
  const auto& ex = page->items.front();
  std::printf("sample exchange: user message %s, reply %s; input text:\n", ex.user_message_id.c_str(),
              ex.assistant_message_id ? ex.assistant_message_id->c_str() : "(none)");
  const std::string text = core::build_input_text(ex, s.mapping);
  std::string indented = "  | ";
  for (char c : text)
    indented += c == '\n' ? std::string("\n  | ") : std::string(1, c);
  std::puts(indented.c_str());
  return {};
}

void check_indexes(store::Store& store, const store::SourceDescription& d, Findings& findings) {
  if (!d.is_table) {
    std::puts(
        "indexes: the source is a view; index the tables under it on the columns the view maps to "
        "created_at and id (user rows) and to the reply lookup");
    return;
  }
  auto indexes = store.source_indexes();
  if (!indexes) {
    std::printf("indexes: cannot read them (%s)\n", indexes.error().message.c_str());
    return;
  }
  for (const auto& index : *indexes) {
    std::printf("index %s: %s\n", index.name.c_str(), index.present ? "present" : "MISSING");
    if (!index.present) {
      findings.add(
          fmt::format("the pending query needs index {} (without it each page scans the table); "
                      "create it with:\n      {}\n    or run `lens-embed init --source-indexes`",
                      index.name, index.create_sql));
    }
  }
}

void check_privileges(store::Store& store, Findings& findings) {
  auto missing = store.missing_privileges();
  if (!missing) {
    std::printf("privileges: cannot check them (%s)\n", missing.error().message.c_str());
    return;
  }
  std::printf("privileges: %s\n", missing->empty() ? "everything a run reads and writes" : "MISSING some");
  for (const auto& fix : *missing)
    findings.add("a run needs a privilege: " + fix);
}

void check_change_detection(store::Store& store, const Settings& s, bool postgres) {
  auto tracking = store.change_tracking();
  const bool tracked = tracking && tracking->installed;
  if (!tracking) {
    std::printf("change tracking: cannot read it (%s)\n", tracking.error().message.c_str());
  } else if (tracked) {
    std::printf(
        "change tracking: installed (init --track-changes): triggers on the source queue the keys of "
        "changed rows, %lld queued now; runs hash only the exchanges they name\n",
        static_cast<long long>(tracking->queued));
  } else {
    std::printf(
        "change tracking: not installed%s\n",
        postgres ? " (`lens-embed init --track-changes` installs it on a table)" : " (PostgreSQL only)");
  }
  if (s.mapping.has_updated_at()) {
    std::printf(
        "changes: by %s (runs read only exchanges changed since their row); edits that leave it "
        "alone are caught by `run --rehash`\n",
        core::config_spelling(s.mapping.updated_at().value).c_str());
  } else if (tracked) {
    std::puts(
        "changes: no updated_at mapped; the change queue names what changed (`run --rehash` hashes "
        "every input)");
  } else {
    std::puts(
        "changes: no updated_at mapped, so every run reads and hashes every eligible input (a read, "
        "never a provider call for an unchanged one); map a column the application sets on every "
        "edit to make runs proportional to the changes");
  }
  auto pairs = store.pairs();
  if (!pairs) return;
  const std::string now = core::input_definition_fingerprint(s.mapping);
  for (const auto& pair : *pairs) {
    auto stored = store.input_definition(pair.provider, pair.model);
    if (!stored) continue;
    const char* state = stored->empty()  ? "not recorded yet: the next run hashes every input once"
                        : *stored == now ? "unchanged since the last complete run"
                                         : "CHANGED since the last complete run: the next run hashes every "
                                           "input and re-embeds those whose text changed";
    std::printf("input definition of %s: %s\n", pair_name(pair.provider, pair.model).c_str(), state);
  }
}

}  // namespace

int cmd_doctor(const Flags& /*flags*/, const RawConfig& config) {
  const auto settings = make_settings(config, {});
  if (!settings) return report(settings.error());
  const Settings& s = *settings;
  std::printf("database: %s\n", mask_database_url(s.database).c_str());
  print_mapping(s.mapping);

  Findings findings;
  auto store = open_read_only(s);
  if (!store) {
    // lens-embed's own tables missing or older: something `init` fixes, not a bad mapping.
    const auto& e = store.error();
    if (e.code == util::ErrorCode::configuration &&
        e.message.find("run `lens-embed init`") != std::string::npos) {
      // Both stores inspect the source before their own tables, so the mapping got this far.
      std::puts("source: the mapped relation and every mapped column are there");
      std::printf("lens-embed's tables: %s\n", e.message.c_str());
      std::puts(
          "\n1 recommendation:\n  - create or upgrade lens-embed's tables (then run doctor again for counts, "
          "a sample input, the pending page's time and the indexes): lens-embed init");
      return k_exit_stopped;
    }
    return report(e);
  }
  auto description = (*store)->describe_source();
  if (!description) return report(description.error());
  print_source(s.mapping, *description);

  // A read that fails here (a missing privilege, most often) is a finding, not the end: the
  // checks below say what to grant.
  if (auto status = (*store)->status(0); status) {
    std::printf("eligible user messages (passing the filter, content not blank): %lld\n",
                static_cast<long long>(status->eligible));
  } else {
    findings.add("counting eligible messages failed: " + status.error().message);
  }
  if (auto sample = print_sample(**store, s); !sample)
    findings.add("reading one pending page failed: " + sample.error().message);
  check_indexes(**store, *description, findings);
  check_privileges(**store, findings);
  const auto target = parse_database_url(s.database);
  check_change_detection(**store, s, target && target->kind == DatabaseKind::postgres);

  if (findings.todo.empty()) {
    std::puts("\nall that the mapping needs is there");
    return k_exit_ok;
  }
  std::printf("\n%zu recommendation%s:\n", findings.todo.size(), findings.todo.size() == 1 ? "" : "s");
  for (const auto& f : findings.todo)
    std::printf("  - %s\n", f.c_str());
  return k_exit_stopped;
}

}  // namespace lens::cli
