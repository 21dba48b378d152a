// Unit tests of the cli's parsing pieces: .env, database URLs, the raw configuration with
// its sources (phase one) and the typed settings (phase two).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "cli/backends.h"
#include "cli/dotenv.h"
#include "cli/raw_config.h"
#include "cli/settings.h"

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

TEST(Dotenv, RemembersTheLineOfWhatItSetAndOnlyThat) {
  ::setenv("LENS_T_KEPT", "from-env", 1);
  ::unsetenv("LENS_T_A");
  ::unsetenv("LENS_T_TWICE");
  const auto path = temp_file("dotenv_lines",
                              "LENS_T_KEPT=no\n# c\nLENS_T_A=1\nLENS_T_TWICE=first\n"
                              "LENS_T_TWICE=second\n");
  auto origins = load_dotenv(path);
  ASSERT_TRUE(origins) << origins.error().message;
  EXPECT_EQ(origins->source_of("LENS_T_A"), path + ":3");
  EXPECT_EQ(origins->source_of("LENS_T_TWICE"), path + ":4");
  EXPECT_STREQ(std::getenv("LENS_T_TWICE"), "first");
  EXPECT_EQ(origins->source_of("LENS_T_KEPT"), std::nullopt);
  EXPECT_STREQ(std::getenv("LENS_T_KEPT"), "from-env");
  EXPECT_TRUE(load_dotenv(path + "-missing"));  // no file, nothing set, no error
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

TEST(Config, ValuesFromDotenvNameTheirLine) {
  ::unsetenv("LENS_MODEL");
  ::unsetenv("LENS_CONCURRENCY");
  ::setenv("LENS_CONCURRENCY", "7", 1);
  const auto path = temp_file("dotenv_cfg", "LENS_MODEL=my-model\nLENS_CONCURRENCY=9\n");
  auto dotenv = load_dotenv(path);
  ASSERT_TRUE(dotenv);
  auto c = resolve_config(Flags{}, *dotenv);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->model.value, "my-model");
  EXPECT_EQ(c->model.source, path + ":1");
  EXPECT_EQ(c->concurrency.value, "7");  // the environment was there first
  EXPECT_EQ(c->concurrency.source, "env LENS_CONCURRENCY");
  ::unsetenv("LENS_MODEL");
  ::unsetenv("LENS_CONCURRENCY");
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

TEST(Settings, ParsesWholeNumbersOnly) {
  EXPECT_EQ(parse_whole_number("42"), 42);
  EXPECT_EQ(parse_whole_number(" +7"), 7);
  EXPECT_EQ(parse_whole_number("-3"), -3);
  EXPECT_EQ(parse_whole_number(""), std::nullopt);
  EXPECT_EQ(parse_whole_number("3.5"), std::nullopt);
  EXPECT_EQ(parse_whole_number("12abc"), std::nullopt);
  EXPECT_EQ(parse_whole_number("+-3"), std::nullopt);
  EXPECT_EQ(parse_whole_number("99999999999999999999"), std::nullopt);
}

RawConfig raw_config() {
  auto c = resolve_config(Flags{});
  EXPECT_TRUE(c) << c.error().message;
  return c ? *c : RawConfig{};
}

TEST(Settings, TypesEveryValueTheCommandUses) {
  RawConfig raw = raw_config();
  raw.batch_size = {"64", "flag --batch-size"};
  raw.rpm = {"600", "default"};
  raw.dimensions = {"256", "lens-embed.toml:3"};
  raw.timeout_seconds = {"30", "default"};
  raw.long_input = {"chunk", "default"};
  raw.insecure = {"1", "env LENS_INSECURE"};
  auto s = make_settings(raw, {.provider = true, .run = true});
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->run->batch_size, 64u);
  EXPECT_EQ(s->run->rate.requests_per_minute, 600.0);
  EXPECT_EQ(s->run->long_input, pipeline::LongInput::chunk);
  EXPECT_EQ(s->provider_settings->dimensions, 256);
  EXPECT_EQ(s->provider_settings->timeout, std::chrono::seconds(30));
  EXPECT_FALSE(s->provider_settings->verify_tls);
  EXPECT_EQ(s->provider_settings->kind, ProviderKind::local_hash);
  auto names_only = make_settings(raw, {});
  ASSERT_TRUE(names_only);
  EXPECT_FALSE(names_only->run);
  EXPECT_FALSE(names_only->provider_settings);
}

TEST(Settings, ErrorsNameTheValueAndItsSource) {
  struct Case {
    Sourced RawConfig::*field;
    Sourced value;
    std::string message;
  };
  const Case cases[] = {
      {&RawConfig::batch_size,
       {"0", "env LENS_BATCH_SIZE"},
       "--batch-size 0 (from env LENS_BATCH_SIZE): must be 1..2048"},
      {&RawConfig::batch_size, {"-3", ".env:4"}, "--batch-size -3 (from .env:4): must be 1..2048"},
      {&RawConfig::batch_size,
       {"abc", "lens-embed.toml:2"},
       "--batch-size: \"abc\" from lens-embed.toml:2 is not a whole number"},
      {&RawConfig::concurrency,
       {"0", "env LENS_CONCURRENCY"},
       "--concurrency 0 (from env LENS_CONCURRENCY): must be 1..1024"},
      {&RawConfig::rpm, {"-1", "env SUPERMIND_RPM"}, "--rpm -1 (from env SUPERMIND_RPM): must be at least 0"},
      {&RawConfig::max_attempts,
       {"0", "env LENS_MAX_ATTEMPTS"},
       "--max-attempts 0 (from env LENS_MAX_ATTEMPTS): must be 1..100"},
      {&RawConfig::dimensions,
       {"-8", "env LENS_DIMENSIONS"},
       "--dimensions -8 (from env LENS_DIMENSIONS): must be 1..2147483647"},
      {&RawConfig::timeout_seconds,
       {"0", "lens-embed.toml:9"},
       "--timeout 0 (from lens-embed.toml:9): must be at least 1"},
      {&RawConfig::long_input,
       {"cut", "env LENS_LONG_INPUT"},
       "--long-input cut (from env LENS_LONG_INPUT): use truncate or chunk"},
      {&RawConfig::encoding_format,
       {"hex", "env LENS_ENCODING_FORMAT"},
       "--encoding-format hex (from env LENS_ENCODING_FORMAT): use base64 or float"},
  };
  for (const auto& c : cases) {
    RawConfig raw = raw_config();
    raw.*c.field = c.value;
    auto s = make_settings(raw, {.provider = true, .run = true});
    ASSERT_FALSE(s) << c.message;
    EXPECT_EQ(s.error().code, util::ErrorCode::invalid_argument);
    EXPECT_EQ(s.error().message, c.message);
    // A command that does not use the value is not stopped by it.
    EXPECT_TRUE(make_settings(raw, {})) << c.message;
  }
}

TEST(Settings, ModelOverridesFromTheConfigFileApply) {
  const auto path = temp_file("models.toml",
                              "[models.\"my-embedder\"]\nencoding = \"o200k_base\"\nmax_input_tokens = 512\n"
                              "dimensions = 1024\nusd_per_million_tokens = 1\n");
  ::unsetenv("LENS_MODEL");
  Flags f;
  f.config_path = path;
  f.model = "my-embedder";
  auto raw = resolve_config(f);
  ASSERT_TRUE(raw) << raw.error().message;
  auto s = make_settings(*raw, {});
  ASSERT_TRUE(s);
  EXPECT_EQ(s->model_spec.encoding, "o200k_base");
  EXPECT_EQ(s->model_spec.max_input_tokens, 512);
  EXPECT_EQ(s->model_spec.default_dimensions, 1024);
  EXPECT_EQ(s->model_spec.usd_per_million_tokens, 1.0);
}

util::Result<RawConfig> from_file(const std::string& name, const std::string& toml) {
  Flags f;
  f.config_path = temp_file(name, toml);
  return resolve_config(f);
}

TEST(Config, UnknownTablesAndKeysAreErrorsNamingTheNearestKnownOne) {
  struct Case {
    std::string toml, line, key, nearest;
  };
  const Case cases[] = {
      {"[defaults]\nbach_size = 3\n", ":2:", "\"bach_size\" in [defaults]", "\"batch_size\""},
      {"[database]\nurl = \"sqlite:x.db\"\nuri = \"y\"\n", ":3:", "\"uri\" in [database]", "\"url\""},
      {"[providers.mine]\nkind = \"openai\"\nbse_url = \"http://x\"\n",
       ":3:", "\"bse_url\" in [providers.mine]", "\"base_url\""},
      {"[models.\"m\"]\ndimension = 3\n", ":2:", "\"dimension\" in [models.m]", "\"dimensions\""},
      {"[defualts]\nprovider = \"local-hash\"\n", ":1:", "\"defualts\"", "\"defaults\""},
      {"provider = \"local-hash\"\n", ":1:", "\"provider\"", "\"providers\""},
  };
  for (const auto& c : cases) {
    auto r = from_file("unknown.toml", c.toml);
    ASSERT_FALSE(r) << c.toml;
    EXPECT_EQ(r.error().code, util::ErrorCode::invalid_argument);
    const auto& m = r.error().message;
    EXPECT_NE(m.find(c.line), std::string::npos) << m;
    EXPECT_NE(m.find("unknown"), std::string::npos) << m;
    EXPECT_NE(m.find(c.key), std::string::npos) << m;
    EXPECT_NE(m.find("nearest known one is " + c.nearest), std::string::npos) << m;
  }
  // The source mapping's tables have their own reader (issue 12).
  EXPECT_TRUE(from_file("source.toml", "[source]\nmessages = \"messages\"\n"));
}

TEST(Config, AnArrayWhereAValueBelongsIsAnError) {
  auto r = from_file("array.toml", "[defaults]\nbatch_size = [1, 2]\n");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find(":2: [defaults] batch_size must be"), std::string::npos)
      << r.error().message;
}

TEST(Config, SupermindBaseUrlMakesSupermindTheDefaultProvider) {
  ::unsetenv("LENS_PROVIDER");
  ::setenv("SUPERMIND_BASE_URL", "http://127.0.0.1:9/v1", 1);
  auto c = resolve_config(Flags{});
  ::unsetenv("SUPERMIND_BASE_URL");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->provider.value, "supermind");
  EXPECT_NE(c->provider.source.find("SUPERMIND_BASE_URL is set"), std::string::npos) << c->provider.source;
  EXPECT_EQ(c->model.value, "text-embedding-3-large");
  // Named anywhere, the name wins.
  ::setenv("LENS_PROVIDER", "local-hash", 1);
  ::setenv("SUPERMIND_BASE_URL", "http://127.0.0.1:9/v1", 1);
  c = resolve_config(Flags{});
  ::unsetenv("SUPERMIND_BASE_URL");
  ::unsetenv("LENS_PROVIDER");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->provider.value, "local-hash");
  EXPECT_EQ(c->provider.source, "env LENS_PROVIDER");
}

TEST(Settings, ModelOverridesAreCheckedNamingFileAndLine) {
  struct Case {
    std::string body, message;
  };
  const Case cases[] = {
      {"dimensions = -3\n", "[models.\"my-embedder\"] dimensions -3 (from "},
      {"max_input_tokens = 0\n", "[models.\"my-embedder\"] max_input_tokens 0 (from "},
      {"max_input_tokens = \"lots\"\n", "is not a whole number"},
      {"usd_per_million_tokens = -1\n", "usd_per_million_tokens: \"-1\" from "},
      {"encoding = \"r50k\"\n", "[models.\"my-embedder\"] encoding r50k (from "},
  };
  ::unsetenv("LENS_MODEL");
  for (const auto& c : cases) {
    Flags f;
    f.config_path = temp_file("override.toml", "[models.\"my-embedder\"]\n" + c.body);
    f.model = "my-embedder";
    auto raw = resolve_config(f);
    ASSERT_TRUE(raw) << raw.error().message;
    auto s = make_settings(*raw, {});
    ASSERT_FALSE(s) << c.body;
    EXPECT_EQ(s.error().code, util::ErrorCode::invalid_argument);
    EXPECT_NE(s.error().message.find(c.message), std::string::npos) << s.error().message;
    EXPECT_NE(s.error().message.find("override.toml"), std::string::npos) << s.error().message;
  }
}

TEST(Settings, DimensionsAreCheckedAgainstTheModelTable) {
  struct Case {
    std::string model, dimensions;
    std::optional<std::string> error;  // nullopt: accepted
    std::optional<int> sent;
  };
  const Case cases[] = {
      {"text-embedding-3-large", "5000", "text-embedding-3-large gives 1..3072 dimensions", {}},
      {"text-embedding-3-large", "256", std::nullopt, 256},
      {"text-embedding-3-small", "3072", "text-embedding-3-small gives 1..1536 dimensions", {}},
      {"text-embedding-ada-002", "256", "text-embedding-ada-002 gives only 1536 dimensions", {}},
      {"text-embedding-ada-002", "1536", std::nullopt, std::nullopt},  // fixed: never sent
      {"local-hash-v1", "70000", "local-hash-v1 gives 1..65536 dimensions", {}},
      {"someone-elses-model", "5000", std::nullopt, 5000},  // unknown range: the provider judges
  };
  for (const auto& c : cases) {
    RawConfig raw = raw_config();
    raw.model = {c.model, "flag --model"};
    raw.dimensions = {c.dimensions, "flag --dimensions"};
    auto s = make_settings(raw, {.provider = true, .run = true});
    if (c.error) {
      ASSERT_FALSE(s) << c.model << " " << c.dimensions;
      EXPECT_EQ(s.error().code, util::ErrorCode::invalid_argument);
      EXPECT_EQ(s.error().message, "--dimensions " + c.dimensions + " (from flag --dimensions): " + *c.error);
    } else {
      ASSERT_TRUE(s) << s.error().message;
      EXPECT_EQ(s->provider_settings->dimensions, c.sent) << c.model;
      EXPECT_EQ(s->dimensions, std::stoi(c.dimensions));
      EXPECT_TRUE(s->dimensions_known);
    }
  }
}

TEST(Settings, AnAliasStoresUnderItsNameAndAsksForItsModel) {
  ::unsetenv("LENS_MODEL");
  Flags f;
  f.config_path = temp_file("alias.toml",
                            "[models.\"large-256\"]\nmodel = \"text-embedding-3-large\"\ndimensions = 256\n");
  f.model = "large-256";
  f.provider = "supermind";
  auto raw = resolve_config(f);
  ASSERT_TRUE(raw) << raw.error().message;
  auto s = make_settings(*raw, {.provider = true});
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->model, "large-256");
  EXPECT_EQ(s->provider_settings->model, "text-embedding-3-large");
  EXPECT_EQ(s->provider_settings->dimensions, 256);
  EXPECT_EQ(s->dimensions, 256);
  EXPECT_EQ(s->model_spec.usd_per_million_tokens, 0.13);  // the facts of the model that answers
  // An alias's size must be one its model gives.
  f.config_path = temp_file(
      "alias.toml", "[models.\"large-5000\"]\nmodel = \"text-embedding-3-large\"\ndimensions = 5000\n");
  f.model = "large-5000";
  raw = resolve_config(f);
  ASSERT_TRUE(raw);
  s = make_settings(*raw, {});
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("text-embedding-3-large gives 1..3072"), std::string::npos)
      << s.error().message;
}

}  // namespace
}  // namespace lens::cli
