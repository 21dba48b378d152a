// Issue 12, `init --track-changes` through the binary on PostgreSQL: on schema (a) (no
// updated_at) the triggers queue what a statement changed, and a run re-embeds exactly the
// exchanges whose input changed (a content edit, a deleted reply, a late reply), empties the
// queue and leaves `verify` clean; --untrack-changes removes triggers and queue; a view
// (schema c) and SQLite are refused with exit 2 naming the fix.
#include <fmt/core.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <map>
#include <memory>
#include <regex>

#include "core/input_text.h"
#include "support/pg.h"
#include "support/process.h"
#include "support/source_schemas.h"
#include "support/sql.h"
#include "util/sha256.h"

namespace lens::test::schemas {
namespace {

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// A fixture's database (PostgreSQL: lens-embed's tables in one scratch schema, the source in
// another) and a folder with its lens-embed.toml.
class Scenario {
 public:
  Scenario(Schema schema, Dialect dialect) : f_{schema, dialect}, dir_("track_changes") {
    if (dialect == Dialect::sqlite) {
      url_ = "sqlite:" + (dir_ / "source.db");
    } else {
      schema_ = std::make_unique<PgScratch>(PgServer::shared(), "trk");
      source_schema_ = std::make_unique<PgScratch>(PgServer::shared(), "trk_src");
      if (!schema_->ok() || !source_schema_->ok()) {
        error_ = schema_->error() + source_schema_->error();
        return;
      }
      f_.source_schema = source_schema_->name();
      url_ = schema_->url();
    }
    db_ = Db::open(url_);
    if (!db_) error_ = "cannot open " + url_;
    std::ofstream(dir_ / "lens-embed.toml") << toml_snippet(f_);
  }

  [[nodiscard]] const std::string& error() const { return error_; }
  [[nodiscard]] Db& db() { return *db_; }
  [[nodiscard]] const Fixture& fixture() const { return f_; }

  [[nodiscard]] const std::string& url() const { return url_; }
  [[nodiscard]] std::string config() const { return dir_ / "lens-embed.toml"; }

  [[nodiscard]] Output lens(std::vector<std::string> args) const {
    args.insert(args.end(), {"--db", url_, "--config", config()});
    return run_lens(args, dir_.path());
  }

  // `run --follow` with local-hash in the background (`extra` flags after --follow), its
  // stderr in this scenario's folder as `log`; the pid, or -1.
  [[nodiscard]] pid_t follow(const std::string& log, std::vector<std::string> extra = {}) const {
    std::vector<std::string> args = {"run", "--provider", "local-hash", "--follow"};
    args.insert(args.end(), extra.begin(), extra.end());
    args.insert(args.end(), {"--db", url_, "--config", config()});
    SpawnOptions spawned;
    spawned.cwd = dir_.path();
    spawned.err_path = dir_ / log;
    return spawn_lens(args, spawned);
  }
  [[nodiscard]] std::string log(const std::string& name) const { return slurp(dir_ / name); }
  // A count (or other whole number) the query returns; -1 when it fails.
  [[nodiscard]] long number(const std::string& sql) { return std::stol(db_->scalar(sql).value_or("-1")); }

  // `run` with local-hash: the JSON summary's `key`, or -1 when the run failed.
  [[nodiscard]] long run(const std::string& key = "embedded") const {
    const Output o = lens({"run", "--provider", "local-hash", "--json", "--quiet"});
    EXPECT_EQ(o.exit_code, 0) << o.out << o.err;
    std::smatch m;
    if (o.exit_code != 0 || !std::regex_search(o.out, m, std::regex("\"" + key + "\":([0-9]+)"))) return -1;
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

// message_embeddings holds exactly `expected`, each with the hash of its input text.
void expect_rows(Db& db, const std::vector<core::Exchange>& expected, const core::SourceMapping& m) {
  auto rows = db.query(
      "SELECT user_message_id::text, assistant_message_id::text, encode(content_sha256, 'hex') FROM "
      "message_embeddings");
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
    EXPECT_EQ(it->second.second, hex(util::sha256(core::build_input_text(ex, m)))) << ex.user_message_id;
  }
}

// Exchanges of `after` that are new or whose reply or input text differ from `before`.
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

TEST(TrackChanges, QueuedEditsDeletesAndLateRepliesAreReembeddedExactly) {
  Scenario s(Schema::a_qualified_bigint, Dialect::postgres);
  ASSERT_EQ(s.error(), "");
  const Fixture& f = s.fixture();
  Corpus corpus = make_corpus(f);
  ASSERT_EQ(load(s.db(), f, corpus.messages), "");
  const core::SourceMapping m = mapping(f);
  const std::string table = fmt::format("\"{}\".chat_messages", f.source_schema);
  const std::string triggers = fmt::format(
      "SELECT count(*) FROM pg_trigger WHERE tgrelid = '{}'::regclass AND tgname LIKE 'lens_embed_track_%'",
      table);

  const Output init = s.lens({"init", "--track-changes"});
  ASSERT_EQ(init.exit_code, 0) << init.out << init.err;
  EXPECT_TRUE(contains(init.out, "change tracking installed")) << init.out;
  EXPECT_EQ(s.db().scalar(triggers), "3");
  EXPECT_EQ(s.lens({"init", "--track-changes"}).exit_code, 0) << "idempotent";
  EXPECT_EQ(s.db().scalar(triggers), "3");
  const Output doctor = s.lens({"doctor", "--provider", "local-hash"});
  EXPECT_TRUE(contains(doctor.out, "change tracking: installed")) << doctor.out;

  const long all = static_cast<long>(corpus.expected.size());
  EXPECT_EQ(s.run(), all);
  expect_rows(s.db(), corpus.expected, m);
  EXPECT_EQ(s.db().scalar("SELECT count(*) FROM lens_embed_change_queue"), "0")
      << "the run consumed its queue";
  // Nothing queued: nothing read to hash (a run without tracking would hash all of them).
  EXPECT_EQ(s.run("unchanged"), 0);

  const auto before = expected_exchanges(f, corpus.messages);
  // An edit of a user message's content (no updated_at to say so).
  const std::string edited = corpus.expected[1].user_message_id;
  ASSERT_EQ(s.db().exec(
                fmt::format("UPDATE {} SET body = 'edited: ' || body WHERE message_no = {}", table, edited)),
            "");
  for (auto& msg : corpus.messages)
    if (msg.id == edited) msg.content = "edited: " + *msg.content;
  // A deleted reply: its exchange loses it (or takes the next one).
  std::string deleted, bereft;
  for (const auto& ex : corpus.expected) {
    if (!ex.assistant_message_id || ex.user_message_id == edited) continue;
    deleted = *ex.assistant_message_id;
    bereft = ex.user_message_id;
  }
  ASSERT_NE(deleted, "");
  ASSERT_EQ(s.db().exec(fmt::format("DELETE FROM {} WHERE message_no = {}", table, deleted)), "");
  std::erase_if(corpus.messages, [&](const Message& msg) { return msg.id == deleted; });
  // A deleted question: its row goes (the foreign key's cascade), nothing to embed for it.
  std::string gone;
  for (const auto& ex : corpus.expected)
    if (!ex.assistant_message_id && ex.user_message_id != edited && ex.user_message_id != bereft)
      gone = ex.user_message_id;
  ASSERT_NE(gone, "");
  ASSERT_EQ(s.db().exec(fmt::format("DELETE FROM {} WHERE message_no = {}", table, gone)), "");
  std::erase_if(corpus.messages, [&](const Message& msg) { return msg.id == gone; });
  // A late reply to a question nobody answered, right after it.
  const auto without_reply = expected_exchanges(f, corpus.messages);
  const core::Exchange* open = nullptr;
  for (const auto& ex : without_reply)
    if (!ex.assistant_message_id && ex.user_message_id != edited && ex.user_message_id != bereft) open = &ex;
  ASSERT_NE(open, nullptr);
  Message late;
  for (const auto& msg : corpus.messages)
    if (msg.id == open->user_message_id) late = msg;
  late.id =
      std::to_string(std::stoll(*s.db().scalar(fmt::format("SELECT max(message_no) FROM {}", table))) + 1);
  late.role = "tutor";
  late.content = "a late answer";
  ASSERT_EQ(s.db().exec(insert_sql(f, {late})), "");
  corpus.messages.push_back(late);

  const auto after = expected_exchanges(f, corpus.messages);
  const long changed = changed_count(before, after, m);
  EXPECT_GE(changed, 3) << "the edit, the exchange that lost its reply, the one that got one";
  EXPECT_NE(s.db().scalar("SELECT count(*) FROM lens_embed_change_queue"), "0");
  EXPECT_EQ(s.run(), changed);
  expect_rows(s.db(), after, m);
  EXPECT_EQ(s.db().scalar("SELECT count(*) FROM lens_embed_change_queue"), "0");
  const Output verify = s.lens({"verify", "--provider", "local-hash"});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  EXPECT_EQ(s.run(), 0);

  // Removed: no trigger, no queue; runs hash every input again.
  const Output untrack = s.lens({"init", "--untrack-changes"});
  ASSERT_EQ(untrack.exit_code, 0) << untrack.out << untrack.err;
  EXPECT_EQ(s.db().scalar(triggers), "0");
  EXPECT_EQ(s.db().scalar("SELECT to_regclass('lens_embed_change_queue') IS NULL"), "t");
  // This schema's function only: tests in other schemas of the shared server have their own.
  EXPECT_EQ(s.db().scalar("SELECT count(*) FROM pg_proc WHERE proname = 'lens_embed_queue_changes' AND "
                          "pronamespace = current_schema()::regnamespace"),
            "0");
  EXPECT_EQ(s.run("unchanged"), static_cast<long>(after.size()));
}

// Schema (a) on PostgreSQL with `corpus` loaded and change tracking installed: "" or why not.
std::string load_and_track(Scenario& s, const Corpus& corpus) {
  if (!s.error().empty()) return s.error();
  if (auto e = load(s.db(), s.fixture(), corpus.messages); !e.empty()) return e;
  const Output init = s.lens({"init", "--track-changes"});
  return init.exit_code == 0 ? "" : init.out + init.err;
}

// A user message and its reply (texts without quotes) inserted in one statement into
// conversation `thread` of schema (a); the user message's key, or "" when the insert failed.
std::string insert_exchange(Scenario& s, int thread, const std::string& question, const std::string& answer) {
  return s.db()
      .scalar(fmt::format(
          "WITH u AS (INSERT INTO \"{0}\".chat_messages (thread_no, author_role, body, posted_at) "
          "VALUES ({1}, 'student', '{2}', now()) RETURNING message_no), r AS (INSERT INTO "
          "\"{0}\".chat_messages (thread_no, author_role, body, posted_at) VALUES ({1}, 'tutor', "
          "'{3}', now() + interval '1 second')) SELECT message_no FROM u",
          s.fixture().source_schema, thread, question, answer))
      .value_or("");
}

constexpr const char* k_rows = "SELECT count(*) FROM message_embeddings";
constexpr const char* k_queued = "SELECT count(*) FROM lens_embed_change_queue";

// --follow with tracking: each wake-up hashes what the queue names, so an edit without
// updated_at is re-embedded while the session runs, and the queue empties.
TEST(TrackChanges, FollowPicksUpAnEditWithoutUpdatedAt) {
  using namespace std::chrono_literals;
  Scenario s(Schema::a_qualified_bigint, Dialect::postgres);
  const Corpus corpus = make_corpus(s.fixture());
  ASSERT_EQ(load_and_track(s, corpus), "");
  const pid_t pid = s.follow("follow.err");
  ASSERT_GT(pid, 0);
  const long expected = static_cast<long>(corpus.expected.size());
  EXPECT_TRUE(wait_until([&] { return s.number(k_rows) == expected; }, 60s)) << s.number(k_rows) << "\n"
                                                                             << s.log("follow.err");
  const std::string edited = corpus.expected[0].user_message_id;
  const std::string sha =
      "SELECT encode(content_sha256, 'hex') FROM message_embeddings WHERE user_message_id = " + edited;
  const std::string before = s.db().scalar(sha).value_or("");
  ASSERT_EQ(s.db().exec(fmt::format("UPDATE \"{}\".chat_messages SET body = 'edited while following' WHERE "
                                    "message_no = {}",
                                    s.fixture().source_schema, edited)),
            "");
  EXPECT_TRUE(wait_until([&] { return s.db().scalar(sha).value_or(before) != before; }, 20s))
      << s.log("follow.err");
  EXPECT_TRUE(wait_until([&] { return s.number(k_queued) == 0; }, 20s));
  EXPECT_EQ(kill_and_wait(pid, SIGTERM), 0) << s.log("follow.err");
  EXPECT_EQ(s.lens({"verify", "--provider", "local-hash"}).exit_code, 0);
}

// After its first committed pass, a --follow wake-up reads only what the queue names: a row
// deleted from message_embeddings by hand (which no trigger sees) stays missing while a new
// exchange is embedded, until a pass over the whole keyset (--sweep-every) restores it.
TEST(TrackChanges, FollowWakeUpsReadWhatTheQueueNamesAndSweepsTheRest) {
  using namespace std::chrono_literals;
  Scenario s(Schema::a_qualified_bigint, Dialect::postgres);
  const Corpus corpus = make_corpus(s.fixture());
  ASSERT_EQ(load_and_track(s, corpus), "");
  const auto row_of = [&](const std::string& id) {
    return s.number("SELECT count(*) FROM message_embeddings WHERE user_message_id = " + id);
  };
  const auto queue_empty = [&] { return s.number(k_queued) == 0; };
  const std::string removed = corpus.expected[0].user_message_id;
  const std::string remove = "DELETE FROM message_embeddings WHERE user_message_id = " + removed;

  pid_t pid = s.follow("wake_ups.err", {"--sweep-every", "3600"});
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(wait_until([&] { return s.number(k_rows) == static_cast<long>(corpus.expected.size()); }, 60s))
      << s.log("wake_ups.err");
  ASSERT_EQ(s.db().exec(remove), "");
  const std::string added = insert_exchange(s, 424242, "a question while following", "its answer");
  ASSERT_NE(added, "");
  EXPECT_TRUE(wait_until([&] { return row_of(added) == 1; }, 20s)) << s.log("wake_ups.err");
  // The pass that embedded it has committed (its queue entries are dropped only then); had
  // it walked the keyset, the removed row would be back.
  EXPECT_TRUE(wait_until(queue_empty, 20s)) << s.log("wake_ups.err");
  EXPECT_EQ(row_of(removed), 0) << "a wake-up read more than the queue names";
  EXPECT_EQ(kill_and_wait(pid, SIGTERM), 0) << s.log("wake_ups.err");

  // A sweep every second: a row removed after the first pass comes back without any change.
  pid = s.follow("sweeps.err", {"--sweep-every", "1"});
  ASSERT_GT(pid, 0);
  EXPECT_TRUE(wait_until([&] { return row_of(removed) == 1; }, 60s)) << s.log("sweeps.err");
  ASSERT_TRUE(wait_until(queue_empty, 20s)) << s.log("sweeps.err");
  ASSERT_EQ(s.db().exec(remove), "");
  EXPECT_TRUE(wait_until([&] { return row_of(removed) == 1; }, 30s)) << s.log("sweeps.err");
  EXPECT_EQ(kill_and_wait(pid, SIGTERM), 0) << s.log("sweeps.err");
  EXPECT_EQ(s.lens({"verify", "--provider", "local-hash"}).exit_code, 0);
}

// Two --follow workers on one tracked source: every new exchange and every edit is embedded,
// by one of them, once (the runs' embedded counters add up to exactly the work), the queue
// empties and verify passes.
TEST(TrackChanges, TwoFollowWorkersEmbedEachChangeOnce) {
  using namespace std::chrono_literals;
  Scenario s(Schema::a_qualified_bigint, Dialect::postgres);
  const Corpus corpus = make_corpus(s.fixture());
  ASSERT_EQ(load_and_track(s, corpus), "");
  std::vector<pid_t> workers;
  for (const char* log : {"worker0.err", "worker1.err"}) {
    workers.push_back(s.follow(log));
    ASSERT_GT(workers.back(), 0);
  }
  const auto logs_text = [&] { return s.log("worker0.err") + s.log("worker1.err"); };
  constexpr const char* k_embedded = "SELECT coalesce(sum(embedded), 0) FROM embedding_runs";
  const long initial = static_cast<long>(corpus.expected.size());
  ASSERT_TRUE(wait_until([&] { return s.number(k_rows) == initial; }, 60s)) << logs_text();
  constexpr int k_new = 10, k_edits = 5;
  for (int i = 0; i < k_new; ++i)
    ASSERT_NE(
        insert_exchange(s, 525000 + i, fmt::format("new question {}", i), fmt::format("its answer {}", i)),
        "");
  for (int i = 0; i < k_edits; ++i)
    ASSERT_EQ(
        s.db().exec(fmt::format("UPDATE \"{}\".chat_messages SET body = 'edited {}' WHERE message_no = {}",
                                s.fixture().source_schema, i,
                                corpus.expected[static_cast<std::size_t>(i)].user_message_id)),
        "");
  EXPECT_TRUE(wait_until(
      [&] {
        return s.number(k_rows) == initial + k_new && s.number(k_queued) == 0 &&
               s.number(k_embedded) == initial + k_new + k_edits;
      },
      30s))
      << s.number(k_embedded) << "\n"
      << logs_text();
  for (pid_t pid : workers)
    EXPECT_EQ(kill_and_wait(pid, SIGTERM), 0) << logs_text();
  EXPECT_EQ(s.number(k_embedded), initial + k_new + k_edits)
      << "an exchange was embedded twice, or one was missed";
  const Output v = s.lens({"verify", "--provider", "local-hash"});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
}

TEST(TrackChanges, RefusedOnAViewAndOnSqlite) {
  Scenario view(Schema::c_view_text_keys, Dialect::postgres);
  ASSERT_EQ(view.error(), "");
  ASSERT_EQ(load(view.db(), view.fixture(), make_corpus(view.fixture()).messages), "");
  const Output o = view.lens({"init", "--track-changes"});
  EXPECT_EQ(o.exit_code, 2) << o.out << o.err;
  EXPECT_TRUE(contains(o.err, "is a view") && contains(o.err, "updated_at") &&
              contains(o.err, "run --rehash"))
      << o.err;
  EXPECT_EQ(view.db().scalar(
                "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'lens_embed_track_%' AND "
                "tgrelid IN (SELECT oid FROM pg_class WHERE relnamespace = current_schema()::regnamespace)"),
            "0");

  Scenario lite(Schema::a_qualified_bigint, Dialect::sqlite);
  ASSERT_EQ(lite.error(), "");
  ASSERT_EQ(load(lite.db(), lite.fixture(), make_corpus(lite.fixture()).messages), "");
  for (const char* flag : {"--track-changes", "--untrack-changes"}) {
    const Output r = lite.lens({"init", flag});
    EXPECT_EQ(r.exit_code, 2) << flag << r.out << r.err;
    EXPECT_TRUE(contains(r.err, "change tracking needs PostgreSQL") && contains(r.err, "updated_at"))
        << r.err;
  }
  const Output both = lite.lens({"init", "--track-changes", "--untrack-changes"});
  EXPECT_EQ(both.exit_code, 2) << both.err;
}

}  // namespace
}  // namespace lens::test::schemas
