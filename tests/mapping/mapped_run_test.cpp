// The test schemas (a), (b), (c) of tests/support/source_schemas.h through the lens-embed
// binary on SQLite and PostgreSQL, with the offline local-hash provider: a full run embeds
// exactly the expected exchanges with exactly the expected input texts (each row's
// content_sha256 is the SHA-256 of core::build_input_text of the exchange the corpus
// expects), a rerun embeds nothing, an edit re-embeds that exchange alone, a delete (or a
// soft delete through the filter) removes its row, and a template change re-embeds the
// exchanges whose text it changes.
#include <fmt/core.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <sstream>

#include "core/input_text.h"
#include "support/pg.h"
#include "support/process.h"
#include "support/source_schemas.h"
#include "support/sql.h"
#include "util/sha256.h"

namespace lens::test::schemas {
namespace {

// One fixture's database and a folder with its lens-embed.toml.
class Scenario {
 public:
  explicit Scenario(Fixture f) : f_(f), dir_("mapped_run") {
    if (f_.dialect == Dialect::sqlite) {
      url_ = "sqlite:" + (dir_ / "source.db");
    } else {
      schema_ = std::make_unique<PgScratch>(PgServer::shared(), "mrun");
      source_schema_ = std::make_unique<PgScratch>(PgServer::shared(), "mrun_src");
      if (!schema_->ok() || !source_schema_->ok()) {
        error_ = schema_->error() + source_schema_->error();
        return;
      }
      f_.source_schema = source_schema_->name();
      url_ = schema_->url();
    }
    db_ = Db::open(url_);
    if (!db_) error_ = "cannot open " + url_;
    write_toml("");
  }

  [[nodiscard]] const std::string& error() const { return error_; }
  [[nodiscard]] Db& db() { return *db_; }
  [[nodiscard]] const Fixture& fixture() const { return f_; }

  // lens-embed.toml: the fixture's [source] with `extra` lines replacing its keys of the
  // same name.
  void write_toml(const std::string& extra) {
    std::istringstream in(toml_snippet(f_));
    std::string out, line;
    while (std::getline(in, line)) {
      bool replaced = false;
      std::istringstream keys(extra);
      for (std::string e; std::getline(keys, e);) {
        const auto key = e.substr(0, e.find(' '));
        if (!key.empty() && line.starts_with(key + " ")) replaced = true;
      }
      if (!replaced) out += line + "\n";
      if (line == "[source]") out += extra;
    }
    std::ofstream(dir_ / "lens-embed.toml") << out;
  }

  [[nodiscard]] Output lens(std::vector<std::string> args) const {
    args.insert(args.end(), {"--db", url_, "--config", dir_ / "lens-embed.toml"});
    return run_lens(args, dir_.path());
  }

  // `run` with local-hash; the run's "embedded" count, or -1 when it failed.
  [[nodiscard]] long run(std::vector<std::string> extra = {}) const {
    std::vector<std::string> args{"run", "--provider", "local-hash", "--json", "--quiet"};
    args.insert(args.end(), extra.begin(), extra.end());
    const Output o = lens(args);
    EXPECT_EQ(o.exit_code, 0) << o.out << o.err;
    std::smatch m;
    if (o.exit_code != 0 || !std::regex_search(o.out, m, std::regex("\"embedded\":([0-9]+)"))) return -1;
    return std::stol(m[1]);
  }

 private:
  Fixture f_;
  TempDir dir_;
  std::unique_ptr<PgScratch> schema_, source_schema_;
  std::string url_, error_;
  std::unique_ptr<Db> db_;
};

std::string hex(const util::Sha256& d) {
  std::string out;
  for (auto b : d)
    out += fmt::format("{:02x}", b);
  return out;
}

// Every row of message_embeddings is an expected exchange with its reply and the SHA-256 of
// its input text under `m`, and every expected exchange has its row.
void expect_rows(Db& db, const std::vector<core::Exchange>& expected, const core::SourceMapping& m) {
  const std::string sql =
      db.is_postgres()
          ? "SELECT user_message_id::text, assistant_message_id::text, encode(content_sha256, 'hex') "
            "FROM message_embeddings"
          : "SELECT CAST(user_message_id AS TEXT), CAST(assistant_message_id AS TEXT), "
            "lower(hex(content_sha256)) FROM message_embeddings";
  auto rows = db.query(sql);
  ASSERT_TRUE(rows) << db.last_error();
  std::map<std::string, std::pair<std::optional<std::string>, std::string>> got;
  for (const auto& r : *rows)
    got[r[0].value_or("")] = {r[1], r[2].value_or("")};
  EXPECT_EQ(got.size(), expected.size());
  for (const auto& ex : expected) {
    auto it = got.find(ex.user_message_id);
    if (it == got.end()) {
      ADD_FAILURE() << "no row for " << ex.user_message_id;
      continue;
    }
    EXPECT_EQ(it->second.first, ex.assistant_message_id) << ex.user_message_id;
    EXPECT_EQ(it->second.second, hex(util::sha256(core::build_input_text(ex, m))))
        << ex.user_message_id << ": " << core::build_input_text(ex, m);
  }
}

// How many exchanges of `after` a run has to embed when the rows hold `before`: new ones,
// and those whose reply or input text changed.
long changed_count(const std::vector<core::Exchange>& before, const std::vector<core::Exchange>& after,
                   const core::SourceMapping& m) {
  std::map<std::string, const core::Exchange*> old;
  for (const auto& ex : before)
    old[ex.user_message_id] = &ex;
  long n = 0;
  for (const auto& ex : after) {
    auto it = old.find(ex.user_message_id);
    if (it == old.end() || it->second->assistant_message_id != ex.assistant_message_id ||
        core::build_input_text(*it->second, m) != core::build_input_text(ex, m))
      ++n;
  }
  return n;
}

// The table that holds user messages, its key and content columns, and a later time.
struct Edit {
  std::string table, key, content, updated;  // updated: "" when the schema has none
};
Edit edit_target(const Fixture& f) {
  switch (f.schema) {
    case Schema::a_qualified_bigint:
      return {fmt::format("\"{}\".chat_messages", f.source_schema), "message_no", "body", ""};
    case Schema::b_reply_column:
      return {"posts", "id", "content", "updated_at"};
    case Schema::c_view_text_keys:
      return {"questions", "question_key", "question", "edited_at"};
    case Schema::default_schema:
      break;
  }
  return {"messages", "id", "content", "updated_at"};
}

class MappedRun : public ::testing::TestWithParam<std::tuple<Schema, Dialect>> {};

TEST_P(MappedRun, RunRerunEditDeleteTemplateChange) {
  Scenario s({std::get<0>(GetParam()), std::get<1>(GetParam())});
  ASSERT_EQ(s.error(), "");
  const Fixture& f = s.fixture();
  Corpus corpus = make_corpus(f);
  ASSERT_EQ(load(s.db(), f, corpus.messages), "");
  const core::SourceMapping m = mapping(f);
  ASSERT_GT(corpus.expected.size(), 3u);

  const Output init = s.lens({"init"});
  ASSERT_EQ(init.exit_code, 0) << init.err;

  // A full run: every expected exchange, each with its exact input text.
  EXPECT_EQ(s.run(), static_cast<long>(corpus.expected.size()));
  expect_rows(s.db(), corpus.expected, m);

  // A rerun finds nothing to embed (without updated_at it reads and hashes everything).
  EXPECT_EQ(s.run(), 0);

  // An edit of one user message: that exchange alone is embedded again.
  const Edit e = edit_target(f);
  const std::string edited_id = corpus.expected[1].user_message_id;
  const std::string later =
      f.dialect == Dialect::sqlite ? "2031-01-01T00:00:00.000Z" : "2031-01-01 00:00:00Z";
  std::string sql = fmt::format("UPDATE {} SET {} = 'edited: ' || {}", e.table, e.content, e.content);
  if (!e.updated.empty()) sql += fmt::format(", {} = '{}'", e.updated, later);
  sql += fmt::format(" WHERE {} = '{}'", e.key, edited_id);
  ASSERT_EQ(s.db().exec(sql), "");
  for (auto& msg : corpus.messages) {
    if (msg.id != edited_id) continue;
    msg.content = "edited: " + *msg.content;
    if (!e.updated.empty()) msg.updated_at = "2031-01-01T00:00:00.000Z";
  }
  EXPECT_EQ(s.run(), 1);
  expect_rows(s.db(), expected_exchanges(f, corpus.messages), m);

  // A delete (schema a: the soft delete its filter reads) removes the exchange's row.
  const auto before_delete = expected_exchanges(f, corpus.messages);
  const std::string deleted_id = corpus.expected[2].user_message_id;
  if (f.schema == Schema::a_qualified_bigint) {
    ASSERT_EQ(s.db().exec(fmt::format("UPDATE {} SET is_deleted = {} WHERE message_no = {}", e.table,
                                      f.dialect == Dialect::sqlite ? "1" : "true", deleted_id)),
              "");
    for (auto& msg : corpus.messages)
      if (msg.id == deleted_id) msg.deleted = true;
  } else {
    // SQLite applies the schema's own ON DELETE rules (reply_to's SET NULL, the output's
    // CASCADE) only on a connection that enables them, as an application using them does.
    const std::string pragma = f.dialect == Dialect::sqlite ? "PRAGMA foreign_keys = ON; " : "";
    ASSERT_EQ(
        s.db().exec(fmt::format("{}DELETE FROM {} WHERE {} = '{}'", pragma, e.table, e.key, deleted_id)), "");
    std::erase_if(corpus.messages, [&](const Message& msg) { return msg.id == deleted_id; });
    for (auto& msg : corpus.messages)
      if (msg.reply_to == deleted_id) msg.reply_to.reset();  // ON DELETE SET NULL
  }
  auto expected = expected_exchanges(f, corpus.messages);
  EXPECT_EQ(s.run(), changed_count(before_delete, expected, m));
  expect_rows(s.db(), expected, m);

  // A deleted reply: its exchange takes the next one or none, although the version it was
  // stored with (the reply's) is newer than the one it now has.
  std::string reply_id;
  for (const auto& ex : expected)
    if (ex.assistant_message_id) reply_id = *ex.assistant_message_id;
  ASSERT_NE(reply_id, "");
  const std::string reply_table = f.schema == Schema::c_view_text_keys ? "answers" : e.table;
  const std::string reply_key = f.schema == Schema::c_view_text_keys ? "answer_key" : e.key;
  ASSERT_EQ(s.db().exec(fmt::format("DELETE FROM {} WHERE {} = '{}'", reply_table, reply_key, reply_id)), "");
  std::erase_if(corpus.messages, [&](const Message& msg) { return msg.id == reply_id; });
  const auto before_reply_delete = expected;
  expected = expected_exchanges(f, corpus.messages);
  ASSERT_GE(changed_count(before_reply_delete, expected, m), 1);
  EXPECT_EQ(s.run(), changed_count(before_reply_delete, expected, m));
  expect_rows(s.db(), expected, m);

  // A template change: the exchanges whose text it changes are embedded again, with --rehash
  // (a source without updated_at rehashes every run).
  const std::string tmpl = f.schema == Schema::c_view_text_keys
                               ? "[{user.topic}] {user}\n--\n{assistant} ({assistant.answered_by})"
                               : "Q: {user}\n--\nA: {assistant}";
  s.write_toml("template = " + core::toml_text(tmpl) + "\n");
  std::vector<core::MappingEntry> entries = mapping_entries(f);
  std::erase_if(entries, [](const core::MappingEntry& en) { return en.key == "source.template"; });
  entries.push_back({"source.template", tmpl, "test"});
  auto changed = core::make_source_mapping(entries);
  ASSERT_TRUE(changed) << changed.error().message;
  long with_reply = 0;
  for (const auto& ex : expected)
    if (core::build_input_text(ex, m) != core::build_input_text(ex, *changed)) ++with_reply;
  ASSERT_GT(with_reply, 0);
  EXPECT_EQ(s.run({"--rehash"}), with_reply);
  expect_rows(s.db(), expected, *changed);
  EXPECT_EQ(s.run({"--rehash"}), 0);
}

std::string param_name(const ::testing::TestParamInfo<std::tuple<Schema, Dialect>>& info) {
  return fmt::format("{}_{}", name(std::get<0>(info.param)), name(std::get<1>(info.param)));
}

INSTANTIATE_TEST_SUITE_P(Schemas, MappedRun,
                         ::testing::Combine(::testing::Values(Schema::a_qualified_bigint,
                                                              Schema::b_reply_column,
                                                              Schema::c_view_text_keys),
                                            ::testing::Values(Dialect::sqlite, Dialect::postgres)),
                         param_name);

}  // namespace
}  // namespace lens::test::schemas
