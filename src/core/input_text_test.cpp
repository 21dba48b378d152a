// Unit tests of input text rendering: the default template byte for byte as before the
// mapping existed, custom templates, extra columns, the no-reply template, UTF-8 repair.
#include "core/input_text.h"

#include <gtest/gtest.h>

namespace lens::core {
namespace {

Exchange exchange(std::string user, std::optional<std::string> assistant_id = std::nullopt,
                  std::string assistant = "") {
  Exchange ex;
  ex.user_message_id = "u1";
  ex.user_content = std::move(user);
  ex.assistant_message_id = std::move(assistant_id);
  ex.assistant_content = std::move(assistant);
  return ex;
}

SourceMapping mapping(std::string with_reply, std::string without_reply = "{user}") {
  auto m = make_source_mapping({{"source.template", std::move(with_reply), "t:1"},
                                {"source.template_no_reply", std::move(without_reply), "t:2"}});
  EXPECT_TRUE(m) << m.error().message;
  return m ? *m : SourceMapping();
}

// The input text as lens-embed built it before templates existed (input_text.cpp until
// issue 12), kept here to prove the default template changes no byte of it.
std::string text_before_templates(const Exchange& ex) {
  std::string text = ex.user_content;
  if (ex.assistant_message_id && !ex.assistant_content.empty()) text += "\n\n" + ex.assistant_content;
  return text;
}

TEST(InputText, DefaultTemplateIsByteForByteTheOldText) {
  const Exchange cases[] = {
      exchange("What is a derivative?", "a1", "The rate of change."),
      exchange("unanswered"),
      exchange("answered with nothing", "a1", ""),  // an empty reply counts as none
      exchange("  spaces \n", "a1", " \n "),        // white space is kept as it is
      exchange("{user} braces {assistant}", "a1", "{{x}}"),
      exchange("日本語 ✓", "a1", "réponse\r\n"),
      exchange(std::string("nul\0inside", 10), "a1", std::string("\0", 1)),
  };
  const SourceMapping defaults;
  for (const auto& ex : cases) {
    EXPECT_EQ(build_input_text(ex), text_before_templates(ex)) << ex.user_content;
    EXPECT_EQ(build_input_text(ex, defaults), text_before_templates(ex)) << ex.user_content;
  }
  EXPECT_EQ(build_input_text(exchange("q", "a1", "r")), "q\n\nr");
  EXPECT_EQ(build_input_text(exchange("q")), "q");
}

TEST(InputText, CustomTemplates) {
  const auto m = mapping("Student: {user}\n\nTutor: {assistant}", "Student: {user}");
  EXPECT_EQ(build_input_text(exchange("why?", "a1", "because"), m), "Student: why?\n\nTutor: because");
  EXPECT_EQ(build_input_text(exchange("why?"), m), "Student: why?");
  EXPECT_EQ(build_input_text(exchange("why?", "a1", ""), m), "Student: why?");
  // Literal braces, and placeholders inside contents are not expanded again.
  const auto braces = mapping("{{{user}}} -> {assistant}");
  EXPECT_EQ(build_input_text(exchange("{assistant}", "a1", "{user}"), braces), "{{assistant}} -> {user}");
  // A placeholder used twice is rendered twice.
  EXPECT_EQ(build_input_text(exchange("x", "a1", "y"), mapping("{user}|{user}|{assistant}")), "x|x|y");
}

TEST(InputText, ExtraColumns) {
  const auto m = mapping("[{user.topic}] {user}\n\n{assistant.author}: {assistant}", "[{user.topic}] {user}");
  ASSERT_EQ(m.user_columns(), std::vector<std::string>{"topic"});
  ASSERT_EQ(m.assistant_columns(), std::vector<std::string>{"author"});
  Exchange ex = exchange("what is 2+2?", "a1", "4");
  ex.user_columns["topic"] = "arithmetic";
  ex.assistant_columns["author"] = "Ada";
  EXPECT_EQ(build_input_text(ex, m), "[arithmetic] what is 2+2?\n\nAda: 4");
  ex.assistant_message_id.reset();
  ex.assistant_content.clear();
  EXPECT_EQ(build_input_text(ex, m), "[arithmetic] what is 2+2?");
  // A NULL column is stored as "" by the store; a missing one renders the same way.
  ex.user_columns.clear();
  EXPECT_EQ(build_input_text(ex, m), "[] what is 2+2?");
}

TEST(InputText, RepairsInvalidUtf8AfterRendering) {
  const auto m = mapping("{user} / {assistant.x} / {assistant}");
  Exchange ex = exchange("bad \xff", "a1", "ok");
  ex.assistant_columns.emplace("x", std::string(1, '\xc3'));  // a cut multi-byte sequence
  EXPECT_EQ(build_input_text(ex, m), "bad \xEF\xBF\xBD / \xEF\xBF\xBD / ok");
}

}  // namespace
}  // namespace lens::core
