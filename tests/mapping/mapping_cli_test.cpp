// [source] and [output] through the lens-embed binary: every key misspelled or given a bad
// value stops the command with exit 2 and a message naming the key and its file:line, before
// any database is touched; `config` shows the mapping with its sources.
#include <fmt/core.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/source_mapping.h"
#include "support/process.h"
#include "support/source_schemas.h"

namespace lens::test::schemas {
namespace {

namespace fs = std::filesystem;

// A folder of the test's own, with lens-embed.toml holding `toml`.
class Workdir {
 public:
  explicit Workdir(const std::string& toml) : dir_("mapping_cli") { std::ofstream(config()) << toml; }

  [[nodiscard]] std::string config() const { return dir_ / "lens-embed.toml"; }
  [[nodiscard]] std::string db() const { return dir_ / "lens.db"; }

  // lens-embed ARGS --db sqlite:lens.db --config lens-embed.toml, in this folder.
  [[nodiscard]] Output run(std::vector<std::string> args) const {
    args.insert(args.end(), {"--db", "sqlite:" + db(), "--config", config()});
    return run_lens(args, dir_.path());
  }

 private:
  TempDir dir_;
};

// "source.content" -> "[source] content", as messages show a key.
std::string shown(std::string_view key) {
  const auto dot = key.find('.');
  return fmt::format("[{}] {}", key.substr(0, dot), key.substr(dot + 1));
}

// The file for `key = value`: its table header on line 2, the key on line 3.
std::string file_with(std::string_view key, const std::string& value) {
  const auto dot = key.find('.');
  return fmt::format("# test\n[{}]\n{} = {}\n", key.substr(0, dot), key.substr(dot + 1), value);
}

// The commands that open the database.
const std::vector<std::string> k_commands[] = {{"run", "--dry-run"}, {"status"}, {"init"}};

TEST(MappingCli, EveryMisspelledKeyIsExit2NamingItAndTheNearestKey) {
  for (std::string_view key : core::mapping_keys()) {
    const std::string typo = std::string(key) + "x";  // "[source] contentx"
    Workdir w(file_with(typo, "\"x\""));
    const Output o = w.run({"run", "--dry-run"});
    EXPECT_EQ(o.exit_code, 2) << key << "\n" << o.err;
    EXPECT_NE(o.err.find(
                  fmt::format("{}:3: unknown key {}; did you mean {}?", w.config(), shown(typo), shown(key))),
              std::string::npos)
        << o.err;
    EXPECT_EQ(o.out, "");
    EXPECT_FALSE(fs::exists(w.db())) << "a configuration error must stop before the database is opened";
  }
}

TEST(MappingCli, EveryBadValueIsExit2NamingKeyLineAndFix) {
  struct Case {
    std::string key, value, expect;
  };
  const Case cases[] = {
      {"source.messages", "\"lens.chat messages\"", "'lens.\"chat messages\"'"},
      {"source.id", "\"message id\"", "is not a plain SQL name"},
      {"source.conversation_id", "\"\"", "must name a column"},
      {"source.role", "7", "must be a string, not an integer"},
      {"source.content", "\"text;\"", "is not a plain SQL name"},
      {"source.created_at", "[\"a\"]", "must be a string, not a list"},
      {"source.updated_at", "\"1x\"", "is not a plain SQL name"},
      {"source.user_roles", "\"student\"", "must be a list of strings, e.g. [\"student\"]"},
      {"source.assistant_roles", "[]", "must hold at least one role"},
      {"source.reply", "\"parent\"", "use \"next\", \"none\" or \"column:NAME\""},
      {"source.filter", "\"NOT deleted; DROP TABLE messages\"", "not a statement"},
      {"source.template", "\"{user} {answer}\"", "unknown placeholder {answer} at position 8"},
      {"source.template_no_reply", "\"{user} {assistant}\"", "names the assistant"},
      {"source.id_type", "\"int\"", "use \"auto\""},
      {"output.schema", "true", "must be a string, not a boolean"},
  };
  ASSERT_EQ(std::size(cases), core::mapping_keys().size());
  for (const auto& c : cases) {
    Workdir w(file_with(c.key, c.value));
    for (const auto& command : k_commands) {
      const Output o = w.run(command);
      EXPECT_EQ(o.exit_code, 2) << command[0] << " " << c.key << "\n" << o.err;
      EXPECT_NE(o.err.find(fmt::format("{}:3: {} = ", w.config(), shown(c.key))), std::string::npos) << o.err;
      EXPECT_NE(o.err.find(c.expect), std::string::npos) << "wanted \"" << c.expect << "\" in: " << o.err;
      EXPECT_FALSE(fs::exists(w.db())) << command[0] << " " << c.key;
    }
  }
}

TEST(MappingCli, ConfigShowsTheMappingAndWhereEachValueCameFrom) {
  Workdir w(toml_snippet({Schema::c_view_text_keys}));
  const Output o = w.run({"config", "--json"});
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_NE(o.out.find(fmt::format(R"("source.content":{{"source":"{}:6","value":"\"Body\""}})", w.config())),
            std::string::npos)
      << o.out;
  EXPECT_NE(o.out.find(R"("source.reply":{"source":"default","value":"\"next\""})"), std::string::npos)
      << o.out;
  EXPECT_NE(o.out.find(R"("source.template_no_reply":{"source":")"), std::string::npos) << o.out;
  // A bad value is shown too: `config` is how one finds it.
  Workdir bad(file_with("source.content", "\"te xt\""));
  const Output shown_bad = bad.run({"config"});
  EXPECT_EQ(shown_bad.exit_code, 0) << shown_bad.err;
  EXPECT_NE(shown_bad.out.find("\"te xt\""), std::string::npos) << shown_bad.out;
}

// `snippet` (a [source] table, one key a line) with `key`'s line set to `key = value`.
std::string with_key(const std::string& snippet, const std::string& key, const std::string& value) {
  std::string out;
  bool found = false;
  for (std::size_t at = 0; at < snippet.size();) {
    const auto end = snippet.find('\n', at);
    const std::string line = snippet.substr(at, end - at);
    at = end == std::string::npos ? snippet.size() : end + 1;
    if (line.starts_with(key + " ")) {
      out += key + " = " + value + "\n";
      found = true;
    } else {
      out += line + "\n";
    }
  }
  return found ? out : out + key + " = " + value + "\n";
}

// How many of lens-embed's tables the SQLite file at `path` holds.
std::string our_tables(const std::string& path) {
  auto db = Db::open(path);
  if (!db) return "<cannot open>";
  return db
      ->scalar(
          "SELECT count(*) FROM sqlite_schema WHERE name LIKE 'message_embeddings%' OR name LIKE "
          "'embedding_%'")
      .value_or("<error>");
}

// A mapping that names a column or a table the database does not have stops every command
// that opens the database with exit 2, naming the key, its line, and the table's real
// columns; nothing is created and no SQL error reaches stdout.
TEST(MappingCli, MissingMappedColumnOrTableIsExit2NamingIt) {
  struct Case {
    std::string key, value, expect;
  };
  const Case cases[] = {
      {"id", "\"post_id\"", "[source] id = \"post_id\""},
      {"conversation_id", "\"thread\"", "[source] conversation_id = \"thread\""},
      {"role", "\"kind\"", "[source] role = \"kind\""},
      {"content", "\"text\"", "[source] content = \"text\""},
      {"created_at", "\"posted\"", "[source] created_at = \"posted\""},
      {"updated_at", "\"edited\"", "[source] updated_at = \"edited\""},
      {"reply", "\"column:parent\"", "[source] reply = \"column:parent\""},
      {"template", "\"{user.mood} {user}\\n\\n{assistant}\"", "`posts` has no column mood"},
      {"messages", "\"postz\"", "the source table `postz` does not exist"},
  };
  const Fixture b{Schema::b_reply_column};
  for (const auto& c : cases) {
    Workdir w(with_key(toml_snippet(b), c.key, c.value));
    {
      auto db = Db::open(w.db());
      ASSERT_TRUE(db);
      ASSERT_EQ(db->exec(create_sql(b)), "");
    }
    for (const auto& command : k_commands) {
      const Output o = w.run(command);
      EXPECT_EQ(o.exit_code, 2) << command[0] << " " << c.key << "\n" << o.err;
      EXPECT_NE(o.err.find(c.expect), std::string::npos) << c.key << ": " << o.err;
      if (c.key != "messages") {
        EXPECT_NE(o.err.find("`posts` has the columns: id, conversation_id, role, content, created_at, "
                             "updated_at, reply_to"),
                  std::string::npos)
            << o.err;
      }
      EXPECT_EQ(o.out, "") << c.key;
    }
    EXPECT_EQ(our_tables(w.db()), "0") << c.key;
  }
}

// Issue 12's crash: a default-mapped `messages` whose text column is `text`. `run --dry-run`
// segfaulted (exit 139) in count_pending and `init` reported success; both are exit 2 naming
// the column now.
TEST(MappingCli, MessagesWithoutContentColumnIsExit2NotACrash) {
  Workdir w("");
  {
    auto db = Db::open(w.db());
    ASSERT_TRUE(db);
    ASSERT_EQ(
        db->exec("CREATE TABLE messages (id TEXT PRIMARY KEY, conversation_id TEXT, role TEXT, text TEXT, "
                 "created_at TEXT, updated_at TEXT);"
                 "INSERT INTO messages VALUES ('m1', 'c1', 'user', 'hello', '2024-01-01T00:00:00Z', NULL);"),
        "");
  }
  for (const auto& command : k_commands) {
    const Output o = w.run(command);
    EXPECT_EQ(o.exit_code, 2) << command[0] << "\n" << o.err;
    EXPECT_NE(o.err.find("[source] content = \"content\" (default): `messages` has no column content"),
              std::string::npos)
        << o.err;
    EXPECT_NE(
        o.err.find("`messages` has the columns: id, conversation_id, role, text, created_at, updated_at"),
        std::string::npos)
        << o.err;
  }
  EXPECT_EQ(our_tables(w.db()), "0");
}

}  // namespace
}  // namespace lens::test::schemas
