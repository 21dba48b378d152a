// Issue 12: a run notices that what defines the input texts changed (the template here)
// without `run --rehash`: it says so in one line, re-embeds exactly the exchanges whose text
// changed, and records the new definition only once that pass is committed; an unchanged
// configuration reruns without that line and without reading every input (0 unchanged
// touches). Through the binary with local-hash, on SQLite and PostgreSQL, for the default
// schema and (b) (both with updated_at: without it every run hashes every input anyway).
#include <fmt/core.h>
#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <regex>

#include "core/input_text.h"
#include "support/pg.h"
#include "support/process.h"
#include "support/source_schemas.h"
#include "support/sql.h"

namespace lens::test::schemas {
namespace {

constexpr const char* k_changed_line = "the input definition changed since the last complete run";

struct RunResult {
  long embedded = -1, unchanged = -1;
  std::string err;
};

class Scenario {
 public:
  explicit Scenario(Fixture f) : f_(f), dir_("input_definition") {
    if (f_.dialect == Dialect::sqlite) {
      url_ = "sqlite:" + (dir_ / "source.db");
    } else {
      schema_ = std::make_unique<PgScratch>(PgServer::shared(), "idef");
      if (!schema_->ok()) {
        error_ = schema_->error();
        return;
      }
      f_.source_schema = schema_->name();
      url_ = schema_->url();
    }
    db_ = Db::open(url_);
    if (!db_) error_ = "cannot open " + url_;
  }

  [[nodiscard]] const std::string& error() const { return error_; }
  [[nodiscard]] Db& db() { return *db_; }
  [[nodiscard]] const Fixture& fixture() const { return f_; }

  // lens-embed.toml: the fixture's [source], and `tmpl` as its template when not empty.
  void write_toml(const std::string& tmpl) {
    std::string toml = toml_snippet(f_);
    if (!tmpl.empty()) {
      toml = std::regex_replace(toml, std::regex("\ntemplate *=[^\n]*"), "");
      toml += "\ntemplate = " + core::toml_text(tmpl) + "\n";
    }
    std::ofstream(dir_ / "lens-embed.toml") << toml;
  }

  [[nodiscard]] Output lens(std::vector<std::string> args) const {
    args.insert(args.end(), {"--db", url_, "--config", dir_ / "lens-embed.toml"});
    return run_lens(args, dir_.path());
  }

  // `status --json`'s input_definition of local-hash's pair ("" when not found), and the
  // text form's output.
  [[nodiscard]] std::pair<std::string, std::string> status() const {
    const Output j = lens({"status", "--json"});
    EXPECT_EQ(j.exit_code, 0) << j.out << j.err;
    std::smatch m;
    std::string state;
    if (std::regex_search(j.out, m, std::regex("\"input_definition\": *\"([a-z_]+)\""))) state = m[1];
    const Output t = lens({"status"});
    EXPECT_EQ(t.exit_code, 0) << t.out << t.err;
    return {state, t.out};
  }

  [[nodiscard]] RunResult run(std::vector<std::string> extra = {}) const {
    std::vector<std::string> args{"run", "--provider", "local-hash", "--json", "--quiet"};
    args.insert(args.end(), extra.begin(), extra.end());
    const Output o = lens(args);
    EXPECT_EQ(o.exit_code, 0) << o.out << o.err;
    RunResult r;
    r.err = o.err;
    std::smatch m;
    if (std::regex_search(o.out, m, std::regex("\"embedded\":([0-9]+)"))) r.embedded = std::stol(m[1]);
    if (std::regex_search(o.out, m, std::regex("\"unchanged\":([0-9]+)"))) r.unchanged = std::stol(m[1]);
    return r;
  }

  // The fingerprint recorded for local-hash's pair; "" when none.
  [[nodiscard]] std::string recorded() {
    auto rows = db_->query("SELECT fingerprint FROM lens_embed_input_definitions");
    EXPECT_TRUE(rows) << db_->last_error();
    if (!rows || rows->empty()) return "";
    EXPECT_EQ(rows->size(), 1u);
    return (*rows)[0][0].value_or("");
  }

 private:
  Fixture f_;
  TempDir dir_;
  std::unique_ptr<PgScratch> schema_;
  std::string url_, error_;
  std::unique_ptr<Db> db_;
};

// The mapping of the fixture with `tmpl` as its template.
core::SourceMapping with_template(const Fixture& f, const std::string& tmpl) {
  auto entries = mapping_entries(f);
  std::erase_if(entries, [](const core::MappingEntry& e) { return e.key == "source.template"; });
  entries.push_back({"source.template", tmpl, "test"});
  auto m = core::make_source_mapping(entries);
  EXPECT_TRUE(m) << m.error().message;
  return m ? *m : core::SourceMapping();
}

// How many of `exchanges` have another input text under `b` than under `a`.
long differing(const std::vector<core::Exchange>& exchanges, const core::SourceMapping& a,
               const core::SourceMapping& b) {
  long n = 0;
  for (const auto& ex : exchanges)
    if (core::build_input_text(ex, a) != core::build_input_text(ex, b)) ++n;
  return n;
}

class InputDefinition : public ::testing::TestWithParam<std::tuple<Schema, Dialect>> {};

TEST_P(InputDefinition, TemplateChangeIsNoticedWithoutRehash) {
  Scenario s({std::get<0>(GetParam()), std::get<1>(GetParam())});
  ASSERT_EQ(s.error(), "");
  const Fixture& f = s.fixture();
  const Corpus corpus = make_corpus(f);
  ASSERT_EQ(load(s.db(), f, corpus.messages), "");
  const long total = static_cast<long>(corpus.expected.size());
  ASSERT_GT(total, 3);
  s.write_toml("");
  const Output init = s.lens({"init"});
  ASSERT_EQ(init.exit_code, 0) << init.err;

  EXPECT_EQ(s.status().first, "") << "no pair before the first run";
  // A first run stopped early (--limit, as a kill would): with no row yet nothing can be
  // stale, so the definition is recorded as it starts and the restart is not a rehash.
  RunResult r = s.run({"--limit", "1"});
  EXPECT_EQ(r.embedded, 1);
  EXPECT_EQ(s.recorded().size(), 16u);
  r = s.run();
  EXPECT_EQ(r.embedded, total - 1);
  EXPECT_EQ(r.unchanged, 0);
  EXPECT_EQ(r.err.find("input definition"), std::string::npos) << r.err;
  const std::string first = s.recorded();
  EXPECT_EQ(first.size(), 16u);
  EXPECT_EQ(s.status().first, "unchanged");

  // Unchanged configuration: nothing embedded, no line, and no input read for hashing (a
  // full read would touch every row as unchanged).
  r = s.run();
  EXPECT_EQ(r.embedded, 0);
  EXPECT_EQ(r.unchanged, 0);
  EXPECT_EQ(r.err.find("input definition"), std::string::npos) << r.err;

  // A template change, without --rehash: exactly the exchanges whose text changed.
  const std::string t1 = "Q: {user}\n--\nA: {assistant}";
  const core::SourceMapping m0 = mapping(f), m1 = with_template(f, t1);
  const long changed1 = differing(corpus.expected, m0, m1);
  ASSERT_GT(changed1, 0);
  s.write_toml(t1);
  // status says why rows may be stale although no updated_at moved.
  const auto [state, text] = s.status();
  EXPECT_EQ(state, "changed");
  EXPECT_NE(text.find("input texts: the [source] mapping"), std::string::npos) << text;
  // A dry run says so too, and records nothing.
  const Output dry = s.lens({"run", "--provider", "local-hash", "--dry-run", "--json"});
  EXPECT_EQ(dry.exit_code, 0) << dry.err;
  EXPECT_NE(dry.err.find(k_changed_line), std::string::npos) << dry.err;
  EXPECT_EQ(s.recorded(), first);
  r = s.run();
  EXPECT_EQ(r.embedded, changed1);
  EXPECT_EQ(r.unchanged, total - changed1);
  EXPECT_NE(r.err.find(k_changed_line), std::string::npos) << r.err;
  const std::string second = s.recorded();
  EXPECT_NE(second, first);
  // Recorded: the next run is the cheap one again.
  r = s.run();
  EXPECT_EQ(r.embedded, 0);
  EXPECT_EQ(r.unchanged, 0);
  EXPECT_EQ(r.err.find("input definition"), std::string::npos) << r.err;

  // A pass that stops early (here at --limit) records nothing: the next run hashes again.
  const std::string t2 = "Question: {user}\n\nAnswer: {assistant}";
  const core::SourceMapping m2 = with_template(f, t2);
  const long changed2 = differing(corpus.expected, m1, m2);
  ASSERT_GT(changed2, 1);
  s.write_toml(t2);
  r = s.run({"--limit", "1"});
  EXPECT_EQ(r.embedded, 1);
  EXPECT_NE(r.err.find(k_changed_line), std::string::npos) << r.err;
  EXPECT_EQ(s.recorded(), second);
  r = s.run();
  EXPECT_EQ(r.embedded, changed2 - 1);
  EXPECT_NE(r.err.find(k_changed_line), std::string::npos) << r.err;
  EXPECT_NE(s.recorded(), second);
  r = s.run();
  EXPECT_EQ(r.embedded, 0);
  EXPECT_EQ(r.unchanged, 0);
  EXPECT_EQ(r.err.find("input definition"), std::string::npos) << r.err;

  // Back to an earlier template: noticed as a change like any other.
  s.write_toml("");
  r = s.run();
  EXPECT_EQ(r.embedded, differing(corpus.expected, m2, m0));
  EXPECT_EQ(s.recorded(), first);
}

std::string param_name(const ::testing::TestParamInfo<std::tuple<Schema, Dialect>>& info) {
  return fmt::format("{}_{}", name(std::get<0>(info.param)), name(std::get<1>(info.param)));
}

INSTANTIATE_TEST_SUITE_P(Schemas, InputDefinition,
                         ::testing::Combine(::testing::Values(Schema::default_schema, Schema::b_reply_column),
                                            ::testing::Values(Dialect::sqlite, Dialect::postgres)),
                         param_name);

}  // namespace
}  // namespace lens::test::schemas
