// source_sql.h: the SQL fragments of a mapping and the check of a catalog against it.
#include "store/source_sql.h"

#include <gtest/gtest.h>

namespace lens::store {
namespace {

core::SourceMapping mapped(std::vector<core::MappingEntry> entries) {
  auto m = core::make_source_mapping(entries);
  EXPECT_TRUE(m) << m.error().message;
  return m ? *m : core::SourceMapping();
}

TEST(SourceSql, DefaultMappingExpandsToTheFixedSchemaQuoted) {
  SourceSql s;
  EXPECT_EQ(s.expand("SELECT p.@id FROM @src p WHERE p.@role@isuser AND a.@role@isassistant"),
            "SELECT p.\"id\" FROM \"messages\" p WHERE p.\"role\" = 'user' AND a.\"role\" = 'assistant'");
  EXPECT_EQ(s.expand("n.@role@isrole"), "n.\"role\" IN ('user', 'assistant')");
  EXPECT_EQ(s.prune_sql(), "") << "the foreign key follows deletes";
  EXPECT_EQ(s.keyset_index(), "messages_user_keyset");
}

TEST(SourceSql, FilterRolesAndQuotesAreWrittenSafely) {
  SourceSql s(mapped({{"source.messages", std::string("lens.chat"), "t:1"},
                      {"source.user_roles", std::vector<std::string>{"it's", "b"}, "t:2"},
                      {"source.filter", std::string("NOT is_deleted"), "t:3"}}),
              SqlDialect::postgres);
  EXPECT_EQ(s.expand("@src p"), "(SELECT * FROM \"lens\".\"chat\" WHERE (NOT is_deleted)) p");
  EXPECT_EQ(s.expand("@isuser"), " IN ('it''s', 'b')");
  EXPECT_EQ(s.expand("a @@ b"), "a @@ b") << "not a token: kept";
  EXPECT_NE(s.prune_sql().find("DELETE FROM message_embeddings"), std::string::npos);
}

TEST(SourceSql, CatalogGivesTheKeyTypeAndNamesMissingColumns) {
  SourceSql s(mapped({{"source.content", std::string("body"), "lens-embed.toml:4"}}), SqlDialect::postgres);
  SourceCatalog c;
  c.exists = true;
  c.is_table = true;
  c.key_is_unique = true;
  c.columns = {"id", "conversation_id", "role", "text", "created_at", "updated_at"};
  c.types = {"bigint", "bigint", "text", "text", "timestamp with time zone", "timestamp with time zone"};
  auto bad = s.adopt_catalog(c, "postgres");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, util::ErrorCode::configuration);
  EXPECT_NE(
      bad.error().message.find("[source] content = \"body\" (lens-embed.toml:4): `messages` has no column "
                               "body"),
      std::string::npos)
      << bad.error().message;
  EXPECT_NE(bad.error().message.find("has the columns: id, conversation_id, role, text"), std::string::npos);
  c.columns[3] = "body";
  ASSERT_TRUE(s.adopt_catalog(c, "postgres"));
  EXPECT_EQ(s.key_type(), "bigint");
  EXPECT_TRUE(s.foreign_key());
  c.is_table = false;
  ASSERT_TRUE(s.adopt_catalog(c, "postgres"));
  EXPECT_FALSE(s.foreign_key()) << "a view cannot be referenced";
  c.exists = false;
  auto none = s.adopt_catalog(c, "postgres");
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message.find("`messages` does not exist"), std::string::npos);
}

}  // namespace
}  // namespace lens::store
