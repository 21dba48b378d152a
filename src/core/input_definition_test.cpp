// The input definition's fingerprint: every key that decides which rows are read, how they
// pair or how the text is written changes it; the keys that decide none of that do not.
#include "core/input_definition.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace lens::core {
namespace {

using Entries = std::vector<MappingEntry>;

MappingEntry text(const std::string& key, const std::string& value) {
  return {key, value, "t.toml:3"};
}

std::string of(const Entries& entries) {
  auto m = make_source_mapping(entries);
  EXPECT_TRUE(m) << m.error().message;
  return m ? input_definition_fingerprint(*m) : "";
}

TEST(InputDefinition, ChangesWithWhatDecidesTheTexts) {
  const std::string base = input_definition_fingerprint(SourceMapping());
  ASSERT_EQ(base.size(), 16u);
  EXPECT_EQ(base, input_definition_fingerprint(SourceMapping()));
  const Entries changes[] = {
      {text("source.template", "{user}\n{assistant}")},
      {text("source.template_no_reply", "Q: {user}")},
      {text("source.reply", "none")},
      {text("source.filter", "NOT deleted")},
      {{"source.user_roles", std::vector<std::string>{"student"}, "t.toml:4"}},
      {text("source.messages", "lens.messages")},
      {text("source.messages", "posts")},
      {text("source.id", "message_no")},
      {text("source.conversation_id", "thread")},
      {text("source.role", "kind")},
      {text("source.content", "body")},
      {text("source.created_at", "posted_at")},
  };
  std::vector<std::string> seen{base};
  for (const auto& entries : changes) {
    const std::string fp = of(entries);
    EXPECT_EQ(std::find(seen.begin(), seen.end(), fp), seen.end()) << entries[0].key;
    seen.push_back(fp);
  }
  // These decide when to look, the output's key type or where lens-embed's tables go.
  EXPECT_EQ(of({text("source.updated_at", "")}), base);
  EXPECT_EQ(of({text("source.updated_at", "edited_at")}), base);
  EXPECT_EQ(of({text("source.id_type", "text")}), base);
}

}  // namespace
}  // namespace lens::core
