// Unit tests of [source] and [output] in lens-embed.toml: read with file:line sources, shown
// by `config`, checked by make_settings (a bad mapping is an error naming key, file:line, fix).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "cli/config_file.h"
#include "cli/exit_status.h"
#include "cli/raw_config.h"
#include "cli/settings.h"

namespace lens::cli {
namespace {

std::string temp_toml(const std::string& name, const std::string& content) {
  const auto path = std::filesystem::temp_directory_path() / (name + std::to_string(::getpid()) + ".toml");
  std::ofstream(path) << content;
  return path.string();
}

RawConfig resolve(const std::string& path) {
  ::unsetenv("LENS_CONFIG");
  Flags f;
  f.config_path = path;
  auto c = resolve_config(f);
  EXPECT_TRUE(c) << c.error().message;
  return c ? *c : RawConfig{};
}

constexpr const char* k_full = R"([database]
url = "sqlite:x.db"

[source]
messages          = "lens.chat_messages"
id                = "message_no"
conversation_id   = "thread_no"
role              = "author_role"
content           = "body"
created_at        = "posted_at"
updated_at        = ""
user_roles        = ["student"]
assistant_roles   = ["tutor"]
reply             = "next"
filter            = "NOT is_deleted"
template          = "Student: {user}\n\nTutor: {assistant}"
template_no_reply = "Student: {user}"
id_type           = "bigint"

[output]
schema = "lens_embed"
)";

TEST(MappingConfig, EveryKeyIsReadWithItsLine) {
  const auto path = temp_toml("mapping_full", k_full);
  const RawConfig raw = resolve(path);
  ASSERT_EQ(raw.mapping.size(), 15u);
  auto m = core::make_source_mapping(raw.mapping);
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->messages().value, (core::RelationName{"lens", "chat_messages"}));
  EXPECT_EQ(m->messages().source, path + ":5");
  EXPECT_EQ(m->content().value, "body");
  EXPECT_EQ(m->content().source, path + ":9");
  EXPECT_FALSE(m->has_updated_at());
  EXPECT_EQ(m->user_roles().value, std::vector<std::string>{"student"});
  EXPECT_EQ(m->user_roles().source, path + ":12");
  EXPECT_EQ(m->reply_template().value.text(), "Student: {user}\n\nTutor: {assistant}");  // TOML's \n
  EXPECT_EQ(m->id_type().value, core::KeyType::bigint);
  EXPECT_EQ(m->output_schema().value, "lens_embed");
  EXPECT_EQ(m->output_schema().source, path + ":21");
}

TEST(MappingConfig, ConfigShowsTheMappingWithSources) {
  const auto path =
      temp_toml("mapping_show", "[source]\ncontent = \"body\"\nuser_roles = [\"student\", \"pupil\"]\n");
  const auto lines = describe(resolve(path));
  auto find = [&](const std::string& key) {
    for (const auto& [k, v] : lines) {
      if (k == key) return v;
    }
    ADD_FAILURE() << key << " is not shown";
    return Sourced{};
  };
  EXPECT_EQ(find("source.content").value, "\"body\"");
  EXPECT_EQ(find("source.content").source, path + ":2");
  EXPECT_EQ(find("source.user_roles").value, "[\"student\", \"pupil\"]");
  EXPECT_EQ(find("source.messages").value, "\"messages\"");
  EXPECT_EQ(find("source.messages").source, "default");
  EXPECT_EQ(find("source.template").value, "\"{user}\\n\\n{assistant}\"");
  EXPECT_EQ(find("output.schema").value, "\"\"");
}

// The error make_settings gives for the file `toml`; "" when there is none.
util::Error settings_error(const std::string& name, const std::string& toml) {
  auto s = make_settings(resolve(temp_toml(name, toml)), {});
  return s ? util::Error{} : s.error();
}

TEST(MappingConfig, BadMappingIsAConfigurationErrorNamingKeyLineAndFix) {
  struct Case {
    std::string toml, expect;
  };
  const Case cases[] = {
      {"[source]\ncontnet = \"text\"\n", ":2: unknown key [source] contnet; did you mean [source] content?"},
      {"[source]\n\nschema = \"x\"\n", ":3: unknown key [source] schema; did you mean [output] schema?"},
      {"[output]\nschem = \"x\"\n", ":2: unknown key [output] schem; did you mean [output] schema?"},
      {"[source]\nid = 5\n", ":2: [source] id = (an integer): must be a string, not an integer"},
      {"[source]\nuser_roles = \"student\"\n", "must be a list of strings, e.g. [\"student\"]"},
      {"[source]\nuser_roles = [1, 2]\n", "a list holding something other than strings"},
      {"[source]\ncontent = \"te xt\"\n",
       ":2: [source] content = \"te xt\": \"te xt\" is not a plain SQL name"},
      {"[source]\nreply = \"column\"\n", "use \"next\", \"none\" or \"column:NAME\""},
      {"[source]\ntemplate = \"{user} {answer}\"\n", "unknown placeholder {answer} at position 8"},
      {"[source]\nfilter = \"NOT deleted; --\"\n", "';' at position 12"},
      {"[source]\n[source.extra]\nx = 1\n", ":2: unknown key [source] extra"},
      {"[source]\nuser_roles = [\"a\"]\nassistant_roles = [\"a\"]\n", "both hold \"a\""},
  };
  for (const auto& c : cases) {
    const util::Error e = settings_error("mapping_bad", c.toml);
    EXPECT_EQ(exit_status(e.code), k_exit_usage) << c.toml;
    EXPECT_NE(e.message.find(c.expect), std::string::npos)
        << "wanted \"" << c.expect << "\" in: " << e.message;
  }
}

TEST(MappingConfig, SourceThatIsNotATableIsRefusedWithItsLine) {
  const auto path =
      temp_toml("mapping_scalar", "output = 1\nsource = \"messages\"\n[database]\nurl = \"x\"\n");
  ::unsetenv("LENS_CONFIG");
  Flags f;
  f.config_path = path;
  auto c = resolve_config(f);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find(path + ":2: source must be a table"), std::string::npos)
      << c.error().message;
}

TEST(MappingConfig, DefaultValuesWrittenOutAreAccepted) {
  const auto s = make_settings(resolve(temp_toml("mapping_default", R"([source]
messages = "messages"
content = "content"
user_roles = ["user"]
reply = "next"
template = "{user}\n\n{assistant}"
template_no_reply = "{user}"
[output]
schema = ""
)")),
                               {});
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_TRUE(s->mapping.is_default());
  EXPECT_EQ(s->mapping.content().source.substr(s->mapping.content().source.size() - 2), ":3");
}

// A valid mapped schema reaches the settings whole, each value with its line, for the
// stores and the pipeline to read (the guard that refused it before the stores did is gone).
TEST(MappingConfig, MappedSchemaReachesTheSettings) {
  const auto s = make_settings(resolve(temp_toml("mapping_mapped", k_full)), {});
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_FALSE(s->mapping.is_default());
  EXPECT_EQ(s->mapping.messages().value, (core::RelationName{"lens", "chat_messages"}));
  EXPECT_TRUE(s->mapping.messages().source.ends_with(":5")) << s->mapping.messages().source;
  EXPECT_EQ(s->mapping.content().value, "body");
  EXPECT_FALSE(s->mapping.has_updated_at());
  EXPECT_EQ(s->mapping.user_roles().value, std::vector<std::string>{"student"});
  EXPECT_EQ(s->mapping.filter().value, "NOT is_deleted");
  EXPECT_EQ(s->mapping.id_type().value, core::KeyType::bigint);
  EXPECT_EQ(s->mapping.output_schema().value, "lens_embed");
}

}  // namespace
}  // namespace lens::cli
