// How the stores open and migrate (issue 11): read-only opens run no DDL and create
// nothing, the source table is never created and a missing one is named, a lens-embed v1
// database is upgraded in place, an application's own schema_migrations is left alone, and
// an error about the schema (not a row) stops a write instead of being recorded per row.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <fmt/core.h>
#include <filesystem>

#include "store/sqlite/migrations.h"
#include "store/sqlite/sqlite_store.h"
#include "store_backends.h"
#include "support/source_schema.h"
#include "util/sha256.h"
#include "v1_schema.h"

namespace lens::store::test {
namespace {

constexpr const char* k_provider = "am-provider";
constexpr const char* k_model = "m4";

bool mentions(const util::Error& e, const std::string& word) {
  return e.message.find(word) != std::string::npos;
}

class AccessModes : public ::testing::TestWithParam<std::string> {
 protected:
  std::unique_ptr<Backend> backend(bool source_schema) {
    auto b = make_backend(GetParam(), false, source_schema);
    EXPECT_TRUE(b);
    return b;
  }
  OpenOptions mode(AccessMode access) const {
    OpenOptions o;
    o.access = access;
    return o;
  }
  static std::int64_t count(Backend& b, const std::string& sql) {
    const std::string v = b.scalar(sql);
    return v.empty() ? -1 : std::stoll(v);
  }
  // Tables of lens-embed in the test's database (schema), whatever their version.
  static std::int64_t our_tables(Backend& b) {
    return count(b,
                 b.is_postgres()
                     ? "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename IN "
                       "('message_embeddings', 'embedding_failures', 'embedding_runs', 'embedding_claims', "
                       "'lens_embed_schema_migrations')"
                     : "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN "
                       "('message_embeddings', 'embedding_failures', 'embedding_runs', "
                       "'lens_embed_schema_migrations')");
  }
  static void message(Backend& b, int id, int seconds) {
    b.exec(
        fmt::format("INSERT INTO messages (id, conversation_id, role, content, created_at) VALUES "
                    "('{}', '{}', 'user', 'question {}', '{}')",
                    uid(id), uid(1), id, at(seconds)));
  }
  static void conversation(Backend& b) {
    b.exec(fmt::format("INSERT INTO conversations (id, user_id, created_at) VALUES ('{}', '{}', '{}')",
                       uid(1), uid(2), at(0)));
  }
  static std::vector<std::string> pending_ids(Store& s) {
    WorkScope scope;
    scope.provider = k_provider;
    scope.model = k_model;
    PendingCursor cursor;
    std::vector<std::string> out;
    for (int guard = 0; guard < 100; ++guard) {
      auto p = s.next_pending(scope, cursor, 100);
      EXPECT_TRUE(p) << (p ? "" : p.error().message);
      if (!p) break;
      for (const auto& x : p->items)
        out.push_back(x.user_message_id);
      if (p->exhausted) break;
    }
    return out;
  }
};

TEST_P(AccessModes, ReadOnlyOnADatabaseWithoutOurTablesSaysToRunInitAndCreatesNothing) {
  auto b = backend(true);
  auto s = b->open(mode(AccessMode::read_only));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, util::ErrorCode::configuration) << s.error().message;
  EXPECT_TRUE(mentions(s.error(), "lens-embed init")) << s.error().message;
  EXPECT_EQ(our_tables(*b), 0);
}

TEST_P(AccessModes, ReadOnlyReadsACurrentSchemaAndCannotWrite) {
  auto b = backend(true);
  conversation(*b);
  message(*b, 101, 1);
  {
    auto rw = b->open({});
    ASSERT_TRUE(rw);
    ASSERT_TRUE((*rw)->migrate());
  }
  auto s = b->open(mode(AccessMode::read_only));
  ASSERT_TRUE(s) << s.error().message;
  auto m = (*s)->migrate();  // checks only
  EXPECT_TRUE(m) << m.error().message;
  auto status = (*s)->status(1);
  ASSERT_TRUE(status) << status.error().message;
  EXPECT_EQ(status->eligible, 1);
  auto pairs = (*s)->pairs();
  EXPECT_TRUE(pairs) << pairs.error().message;
  auto run = (*s)->begin_run({k_provider, k_model, "{}", "host:1"});
  EXPECT_FALSE(run);
  EXPECT_EQ(count(*b, "SELECT count(*) FROM embedding_runs"), 0);
}

TEST_P(AccessModes, AMissingSourceTableIsConfigurationNamingItAndNothingIsCreated) {
  auto b = backend(false);
  auto s = b->open(mode(b->is_postgres() ? AccessMode::read_write : AccessMode::create));
  ASSERT_TRUE(s) << s.error().message;
  auto m = (*s)->migrate();
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code, util::ErrorCode::configuration) << m.error().message;
  EXPECT_TRUE(mentions(m.error(), "`messages`")) << m.error().message;
  EXPECT_EQ(our_tables(*b), 0);
  const std::string source_tables =
      b->is_postgres() ? "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename "
                         "IN ('messages', "
                         "'conversations')"
                       : "SELECT count(*) FROM sqlite_schema WHERE name IN ('messages', 'conversations')";
  EXPECT_EQ(count(*b, source_tables), 0);
  auto ro = b->open(mode(AccessMode::read_only));
  ASSERT_FALSE(ro);
  EXPECT_TRUE(mentions(ro.error(), "`messages`")) << ro.error().message;
}

TEST_P(AccessModes, AMissingSourceColumnIsConfigurationNamingIt) {
  auto b = backend(false);
  b->exec(b->is_postgres() ? "CREATE TABLE messages (id uuid PRIMARY KEY, conversation_id uuid, role text, "
                             "content text, created_at timestamptz)"
                           : "CREATE TABLE messages (id TEXT PRIMARY KEY, conversation_id TEXT, role TEXT, "
                             "content TEXT, created_at TEXT)");
  auto s = b->open({});
  ASSERT_TRUE(s) << s.error().message;
  auto m = (*s)->migrate();
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code, util::ErrorCode::configuration);
  EXPECT_TRUE(mentions(m.error(), "updated_at")) << m.error().message;
  EXPECT_EQ(our_tables(*b), 0);
}

TEST_P(AccessModes, MigrateCreatesNoSourceIndexUnlessInitAsks) {
  auto b = backend(false);
  b->exec(b->is_postgres() ? "CREATE TABLE messages (id uuid PRIMARY KEY, conversation_id uuid, role text, "
                             "content text, created_at timestamptz, updated_at timestamptz)"
                           : "CREATE TABLE messages (id TEXT PRIMARY KEY, conversation_id TEXT, role TEXT, "
                             "content TEXT, created_at TEXT, updated_at TEXT)");
  const std::string indexes = b->is_postgres()
                                  ? "SELECT count(*) FROM pg_indexes WHERE tablename = 'messages' "
                                    "AND schemaname = current_schema() AND indexname <> "
                                    "'messages_pkey'"
                                  : "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND "
                                    "tbl_name = 'messages' AND sql IS NOT NULL";
  OpenOptions run;
  run.notify_trigger = false;
  auto s = b->open(run);
  ASSERT_TRUE(s);
  ASSERT_TRUE((*s)->migrate());
  EXPECT_EQ(count(*b, indexes), 0);
  if (b->is_postgres()) {
    EXPECT_EQ(
        count(*b,
              "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'lens%' AND tgrelid = 'messages'::regclass"),
        0);
  }
  OpenOptions init;
  init.source_indexes = true;
  auto i = b->open(init);
  ASSERT_TRUE(i);
  auto m = (*i)->migrate();
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(count(*b, indexes), 2);
}

TEST_P(AccessModes, AVersion1DatabaseIsUpgradedInPlace) {
  auto b = backend(false);
  const bool pg = b->is_postgres();
  b->exec(pg ? k_postgres_v1 : k_sqlite_v1);
  conversation(*b);
  for (int i = 1; i <= 4; ++i)
    message(*b, 100 + i, i);
  // v1 left a row, a parked transient failure and a permanent one.
  b->exec(fmt::format(
      "INSERT INTO message_embeddings (provider, model, user_message_id, content_sha256, token_count, "
      "dimensions, embedding, source_version) VALUES ('{}', '{}', '{}', {}, 2, 4, {}, '{}')",
      k_provider, k_model, uid(101), pg ? "decode(repeat('00', 32), 'hex')" : "zeroblob(32)",
      pg ? "'{1,2,3,4}'" : "zeroblob(16)", at(1)));
  for (auto [id, reason] : {std::pair{102, "retries_exhausted"}, std::pair{103, "context_length"}}) {
    b->exec(
        fmt::format("INSERT INTO embedding_failures (provider, model, user_message_id, reason, detail, "
                    "source_version) VALUES ('{}', '{}', '{}', '{}', 'v1', '{}')",
                    k_provider, k_model, uid(id), reason, at(id - 100)));
  }

  auto ro = b->open(mode(AccessMode::read_only));
  ASSERT_FALSE(ro);
  EXPECT_EQ(ro.error().code, util::ErrorCode::configuration);
  EXPECT_TRUE(mentions(ro.error(), "version 1") && mentions(ro.error(), "lens-embed init"))
      << ro.error().message;

  auto s = b->open({});
  ASSERT_TRUE(s) << s.error().message;
  auto m = (*s)->migrate();
  ASSERT_TRUE(m) << m.error().message;
  // Both stores are at the same version (sqlite::k_schema_version == postgres::k_schema_version).
  EXPECT_EQ(b->scalar("SELECT max(version) FROM lens_embed_schema_migrations"),
            std::to_string(sqlite::k_schema_version));
  if (!pg) {  // v1's own table is left as it was
    EXPECT_EQ(b->scalar("SELECT group_concat(version) FROM schema_migrations"), "1");
  }
  // The parked transient failure is due at once; the permanent one stays; the row stays.
  EXPECT_EQ(pending_ids(**s), (std::vector<std::string>{uid(102), uid(104)}));
  auto failures = (*s)->failures(k_provider, k_model);
  ASSERT_TRUE(failures) << failures.error().message;
  ASSERT_EQ(failures->size(), 2u);
  for (const auto& f : *failures) {
    if (f.user_message_id == uid(102))
      EXPECT_EQ(f.next_attempt_at, f.last_failed_at);
    else
      EXPECT_EQ(f.next_attempt_at, "");
  }
  auto pairs = (*s)->pairs();
  ASSERT_TRUE(pairs) << pairs.error().message;
  ASSERT_EQ(pairs->size(), 1u);
  EXPECT_EQ((*pairs)[0].rows, 1);
  EXPECT_EQ((*pairs)[0].dimensions, (std::vector<std::int64_t>{4}));
  // Idempotent, and now readable read-only.
  auto again = b->open({});
  ASSERT_TRUE(again);
  EXPECT_TRUE((*again)->migrate());
  auto now_ro = b->open(mode(AccessMode::read_only));
  EXPECT_TRUE(now_ro) << now_ro.error().message;
}

TEST_P(AccessModes, AnApplicationsOwnSchemaMigrationsIsNeverMistakenForOurs) {
  auto b = backend(true);
  b->exec(
      "CREATE TABLE schema_migrations (version TEXT PRIMARY KEY, dirty BOOLEAN NOT NULL DEFAULT FALSE); "
      "INSERT INTO schema_migrations (version) VALUES ('20240101120000'), ('3')");
  auto s = b->open({});
  ASSERT_TRUE(s);
  auto m = (*s)->migrate();
  ASSERT_TRUE(m) << m.error().message;
  // Both stores are at the same version (sqlite::k_schema_version == postgres::k_schema_version).
  EXPECT_EQ(b->scalar("SELECT max(version) FROM lens_embed_schema_migrations"),
            std::to_string(sqlite::k_schema_version));
  EXPECT_EQ(count(*b, "SELECT count(*) FROM schema_migrations"), 2);
  EXPECT_EQ(b->scalar("SELECT min(version) FROM schema_migrations"), "20240101120000");
  auto run = (*s)->begin_run({k_provider, k_model, "{}", "host:1"});
  EXPECT_TRUE(run) << run.error().message;
}

TEST_P(AccessModes, AnErrorAboutTheSchemaStopsTheWriteInsteadOfRefusingEveryRow) {
  auto b = backend(true);
  conversation(*b);
  for (int i = 1; i <= 3; ++i)
    message(*b, 100 + i, i);
  auto s = b->open({});
  ASSERT_TRUE(s);
  ASSERT_TRUE((*s)->migrate());
  WorkScope scope;
  scope.provider = k_provider;
  scope.model = k_model;
  PendingCursor cursor;
  auto page = (*s)->next_pending(scope, cursor, 10);
  ASSERT_TRUE(page);
  ASSERT_EQ(page->items.size(), 3u);
  // Someone renames a column the store writes.
  b->exec("ALTER TABLE message_embeddings RENAME COLUMN token_count TO tokens");
  WriteBatch batch;
  batch.provider = k_provider;
  batch.model = k_model;
  for (const auto& x : page->items) {
    core::EmbeddingRow row;
    row.user_message_id = x.user_message_id;
    row.content_sha256 = util::sha256(x.user_content);
    row.source_version = x.source_version;
    row.embedding = {1, 2, 3, 4};
    batch.rows.push_back(std::move(row));
  }
  auto w = (*s)->write_batch(batch);
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code, util::ErrorCode::configuration) << w.error().message;
  EXPECT_EQ(count(*b, "SELECT count(*) FROM embedding_failures"), 0);
  EXPECT_EQ(count(*b, "SELECT count(*) FROM message_embeddings"), 0);
}

INSTANTIATE_TEST_SUITE_P(Backends, AccessModes, ::testing::ValuesIn(available_backends(true, true, false)),
                         [](const auto& info) { return info.param; });

// ---- SQLite files ----------------------------------------------------------------------

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / fmt::format("lens_access_{}_{}.db", name, ::getpid()))
      .string();
}

TEST(SqliteAccess, AMissingFileIsNeverCreatedUnlessAsked) {
  const std::string path = temp_path("missing");
  std::filesystem::remove(path);
  for (AccessMode access : {AccessMode::read_only, AccessMode::read_write}) {
    auto s = open_sqlite_store(path, access);
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().code, util::ErrorCode::configuration);
    EXPECT_TRUE(mentions(s.error(), "lens-embed init --create")) << s.error().message;
    for (const char* ext : {"", "-wal", "-shm", ".lens-embed.lock"})
      EXPECT_FALSE(std::filesystem::exists(path + ext)) << path + ext;
  }
  {
    auto s = open_sqlite_store(path, AccessMode::create);
    ASSERT_TRUE(s) << s.error().message;
    EXPECT_TRUE(std::filesystem::exists(path));
  }
  for (const char* ext : {"", "-wal", "-shm", ".lens-embed.lock"})
    std::filesystem::remove(path + ext);
}

TEST(SqliteAccess, ReadOnlyLeavesNoFileBehind) {
  const std::string path = temp_path("ro");
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, lens::test::k_sqlite_source_schema, nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  {
    auto s = open_sqlite_store(path, AccessMode::read_write);
    ASSERT_TRUE(s) << s.error().message;
    ASSERT_TRUE((*s)->migrate());
  }
  std::filesystem::remove(path + ".lens-embed.lock");
  EXPECT_FALSE(std::filesystem::exists(path + "-wal"));  // the WAL file of a clean close is gone
  {
    auto s = open_sqlite_store(path, AccessMode::read_only);
    ASSERT_TRUE(s) << s.error().message;
    auto status = (*s)->status(1);
    ASSERT_TRUE(status) << status.error().message;
  }
  for (const char* ext : {"-wal", "-shm", ".lens-embed.lock"})
    EXPECT_FALSE(std::filesystem::exists(path + ext)) << path + ext;
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace lens::store::test
