// Hostile inputs (cases.tsv) through the real lens-embed binary against SQLite and
// PostgreSQL: each case is embedded correctly or recorded with a reason, nothing crashes,
// a second run has nothing to do, and PostgreSQL refuses invalid UTF-8 at insert.
#include <gtest/gtest.h>

#include <fmt/core.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "support/corpus.h"
#include "support/paths.h"
#include "support/pg.h"
#include "support/process.h"
#include "support/source_schema.h"
#include "support/sql.h"
#include "support/stand_in.h"
#include "verifier.h"

namespace {

using lens::test::Db;

struct Case {
  std::string name, role, expect;
  bool pg_rejects = false;
  std::optional<std::string> content;
  std::string user_id, assistant_id, conversation_id;
};

std::string unescape(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 >= s.size()) {
      out += s[i];
      continue;
    }
    const char c = s[++i];
    if (c == 'n')
      out += '\n';
    else if (c == 't')
      out += '\t';
    else if (c == 'r')
      out += '\r';
    else if (c == 'x' && i + 2 < s.size() + 1) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else
      out += c;
  }
  return out;
}

std::vector<Case> load_cases() {
  std::ifstream in(lens::test::source_dir() + "/tests/hostile/cases.tsv");
  std::vector<Case> cases;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> f;
    std::size_t at = 0;
    for (int k = 0; k < 5; ++k) {
      const auto tab = line.find('\t', at);
      f.push_back(line.substr(at, tab - at));
      at = tab + 1;
    }
    f.push_back(line.substr(at));
    Case c{f[0], f[1], f[2], f[3] == "rejected", std::nullopt, "", "", ""};
    if (f[5] != "<NULL>") {
      const std::string piece = unescape(f[5]);
      std::string text;
      for (int r = std::stoi(f[4]); r > 0; --r)
        text += piece;
      c.content = text;
    }
    cases.push_back(std::move(c));
  }
  return cases;
}

class Hostile : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    cases_ = load_cases();
    ASSERT_GE(cases_.size(), 30u) << "the corpus must hold at least 30 cases";
    for (std::size_t i = 0; i < cases_.size(); ++i) {
      cases_[i].conversation_id = lens::test::uuid_from(0xC0FFEE000ULL + i);
      cases_[i].user_id = lens::test::uuid_from(0xFACE0000ULL + 2 * i);
      cases_[i].assistant_id = lens::test::uuid_from(0xFACE0000ULL + 2 * i + 1);
    }
  }
  void TearDown() override {
    if (HasFailure()) dir_.keep();
  }
  lens::test::Output lens(const std::vector<std::string>& args) {
    return lens::test::run_lens(args, dir_.path(), {{"SUPERMIND_API_KEY", "sk-hostile"}});
  }

  void run_cases(const std::string& url) {
    auto db = Db::open(url);
    ASSERT_TRUE(db);
    ASSERT_EQ(lens::test::create_source_schema(*db), "");  // lens-embed never creates them
    auto init = lens({"init", "--db", url});
    ASSERT_EQ(init.exit_code, 0) << init.out << init.err;
    std::set<std::string> inserted;
    for (const Case& c : cases_) {
      const bool user_side = c.role != "assistant";
      Db::Message user{c.user_id, c.conversation_id, "user", "2024-01-01T00:00:00.000Z",
                       user_side ? c.content : std::optional<std::string>("q")};
      Db::Message answer{c.assistant_id, c.conversation_id, "assistant", "2024-01-01T00:00:01.000Z",
                         user_side ? std::optional<std::string>("fine") : c.content};
      const std::string e1 = db->insert_one(user), e2 = c.role == "user-alone" ? "" : db->insert_one(answer);
      const std::string err = e1 + e2;
      if (db->is_postgres() && c.pg_rejects) {
        // PostgreSQL checks text is valid UTF-8 on the way in: such bytes never reach
        // a PostgreSQL Lens database, so there is nothing for lens-embed to handle.
        EXPECT_NE(err.find("22021"), std::string::npos)
            << c.name << ": expected invalid_byte_sequence, got: " << err;
      } else {
        EXPECT_EQ(err, "") << c.name;
        inserted.insert(c.name);
      }
    }
    lens::stand_in::StandInOptions so;
    so.reject_marker = lens::test::k_poison_marker;
    so.api_key = "sk-hostile";
    lens::test::StandIn server(so);
    ASSERT_TRUE(server.ok());
    std::vector<std::string> run_args = {"run", "--db", url};
    for (const auto& a : server.provider_args("text-embedding-3-small"))
      run_args.push_back(a);
    run_args.insert(run_args.end(), {"--dimensions", "16", "--timeout", "30", "--json", "--batch-size", "8",
                                     "--log-file", dir_ / "lens.log"});
    const auto first = lens(run_args);
    ASSERT_EQ(first.exit_code, 0) << "lens-embed must neither crash nor stop:\n" << first.out << first.err;

    lens::verify::VerifyOptions vo;
    vo.db = url;
    vo.dimensions = 16;
    vo.allowed_reasons = {"empty_input", "context_length"};
    const auto report = lens::verify::verify(vo);
    EXPECT_TRUE(report.ok()) << report.to_json();

    for (const Case& c : cases_) {
      if (!inserted.contains(c.name)) continue;
      const auto rows = db->scalar(
          fmt::format("SELECT count(*) FROM message_embeddings WHERE user_message_id = '{}'", c.user_id));
      const auto truncated = db->scalar(fmt::format(
          "SELECT CASE WHEN truncated THEN 1 ELSE 0 END FROM message_embeddings WHERE user_message_id = '{}'",
          c.user_id));
      const auto reason = db->scalar(
          fmt::format("SELECT reason FROM embedding_failures WHERE user_message_id = '{}'", c.user_id));
      const std::string got = reason ? "failure:" + *reason
                              : rows && *rows == "1"
                                  ? (truncated && *truncated == "1" ? "truncated" : "embedded")
                                  : "ineligible";
      EXPECT_EQ(got, c.expect) << "case " << c.name;
    }
    // Hostile text hashes the same every time: the second run finds nothing to do.
    const auto second = lens(run_args);
    ASSERT_EQ(second.exit_code, 0) << second.out << second.err;
    auto j = nlohmann::json::parse(second.out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << second.out;
    EXPECT_EQ(j["stats"]["requests"], 0) << second.out;
    EXPECT_EQ(j["stats"]["embedded"], 0) << second.out;
    // And the status command copes with all of it.
    const auto status = lens({"status", "--db", url});
    EXPECT_EQ(status.exit_code, 0) << status.out << status.err;
    const auto failures = lens({"failures", "--db", url});
    EXPECT_EQ(failures.exit_code, 0) << failures.out << failures.err;
  }

  lens::test::TempDir dir_{"hostile"};
  std::vector<Case> cases_;
};

TEST_P(Hostile, EveryCaseIsEmbeddedOrRecordedAndNothingCrashes) {
  if (GetParam() == "sqlite") {
    run_cases("sqlite:" + dir_ / "lens.db");
  } else {
    const auto pg = lens::test::PgServer::start(dir_ / "pg.env");
    ASSERT_TRUE(pg->ok()) << pg->error();
    run_cases(pg->url());
  }
}

INSTANTIATE_TEST_SUITE_P(Db, Hostile, ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });

}  // namespace
