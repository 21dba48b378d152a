// Unit tests of the cli's parsing pieces: .env, database URLs, config precedence.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "cli/backends.h"
#include "cli/config.h"
#include "cli/dotenv.h"

namespace lens::cli {
namespace {

std::string temp_file(const std::string& name, const std::string& content) {
  const auto path = std::filesystem::temp_directory_path() / (name + std::to_string(::getpid()));
  std::ofstream(path) << content;
  return path.string();
}

TEST(Dotenv, NeverOverridesAndParsesQuotes) {
  ::setenv("LENS_T_SET", "from-env", 1);
  ::unsetenv("LENS_T_NEW");
  ::unsetenv("LENS_T_Q");
  const auto path = temp_file("dotenv",
                              "# comment\nLENS_T_SET=from-file\nexport LENS_T_NEW=x # trailing\n"
                              "LENS_T_Q=\"a\\nb\"\n\n");
  ASSERT_TRUE(load_dotenv(path));
  EXPECT_STREQ(std::getenv("LENS_T_SET"), "from-env");
  EXPECT_STREQ(std::getenv("LENS_T_NEW"), "x");
  EXPECT_STREQ(std::getenv("LENS_T_Q"), "a\nb");
}

TEST(Dotenv, BadLineNamesFileAndLine) {
  const auto path = temp_file("dotenv_bad", "OK=1\nthis is not an assignment\n");
  auto s = load_dotenv(path);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find(path + ":2"), std::string::npos) << s.error().message;
}

TEST(DatabaseUrl, RecognisesBackends) {
  EXPECT_EQ(parse_database_url("sqlite:lens.db")->location, "lens.db");
  EXPECT_EQ(parse_database_url("sqlite:lens.db")->kind, DatabaseKind::sqlite);
  EXPECT_EQ(parse_database_url("data/x.sqlite3")->kind, DatabaseKind::sqlite);
  EXPECT_EQ(parse_database_url("postgresql://u@h/db")->kind, DatabaseKind::postgres);
  EXPECT_EQ(parse_database_url("host=h dbname=d")->kind, DatabaseKind::postgres);
  EXPECT_FALSE(parse_database_url("what"));
}

TEST(Config, FlagsBeatEnvBeatFileBeatDefaults) {
  const auto path = temp_file("cfg.toml",
                              "[database]\nurl = \"sqlite:file.db\"\n[defaults]\nbatch_size = 64\n"
                              "concurrency = 3\n");
  ::unsetenv("LENS_DATABASE_URL");
  ::unsetenv("DATABASE_URL");
  ::setenv("LENS_BATCH_SIZE", "32", 1);
  Flags f;
  f.config_path = path;
  auto c = resolve_config(f);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->database.value, "sqlite:file.db");
  EXPECT_EQ(c->batch_size.value, "32");
  EXPECT_EQ(c->batch_size.source, "env LENS_BATCH_SIZE");
  EXPECT_EQ(c->concurrency.value, "3");
  EXPECT_EQ(c->concurrency.source, path + ":5");
  EXPECT_EQ(c->provider.value, "local-hash");
  f.batch_size = 8;
  c = resolve_config(f);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->batch_size.value, "8");
  EXPECT_EQ(c->batch_size.source, "flag --batch-size");
  ::unsetenv("LENS_BATCH_SIZE");
}

TEST(Config, BrokenTomlNamesFileAndLine) {
  const auto path = temp_file("bad.toml", "[database]\nurl = \"sqlite:x.db\"\nbatch_size = = 3\n");
  Flags f;
  f.config_path = path;
  auto c = resolve_config(f);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find(path + ":3"), std::string::npos) << c.error().message;
}

TEST(Config, UnknownProviderIsAUsageError) {
  Flags f;
  f.provider = "nonesuch";
  auto c = resolve_config(f);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, util::ErrorCode::invalid_argument);
  EXPECT_NE(c.error().message.find("--provider nonesuch"), std::string::npos);
}

}  // namespace
}  // namespace lens::cli
