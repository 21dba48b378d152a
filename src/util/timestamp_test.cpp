// parse_timestamp against the forms SQLite and PostgreSQL print, and what it refuses.
#include "util/timestamp.h"

#include <gtest/gtest.h>

namespace lens::util {
namespace {

using namespace std::chrono;

std::int64_t micros(std::string_view text) {
  auto t = parse_timestamp(text);
  EXPECT_TRUE(t.has_value()) << text;
  return t ? duration_cast<microseconds>(t->time_since_epoch()).count() : -1;
}

TEST(Timestamp, ReadsTheFormsDatabasesPrint) {
  // 2024-03-01T12:34:56Z = 1709296496 s since the epoch.
  const std::int64_t base = 1'709'296'496'000'000;
  EXPECT_EQ(micros("2024-03-01T12:34:56Z"), base);
  EXPECT_EQ(micros("2024-03-01T12:34:56.250Z"), base + 250'000);       // SQLite strftime('%f')
  EXPECT_EQ(micros("2024-03-01 12:34:56"), base);                      // no zone: UTC
  EXPECT_EQ(micros("2024-03-01 12:34:56.123456+00"), base + 123'456);  // PostgreSQL timestamptz
  EXPECT_EQ(micros("2024-03-01 14:34:56+02"), base);
  EXPECT_EQ(micros("2024-03-01 18:04:56+05:30"), base);
  EXPECT_EQ(micros("2024-03-01T04:34:56-0800"), base);
  EXPECT_EQ(micros("2024-03-01T12:34:56.1234567Z"), base + 123'456);  // digits past micros dropped
  EXPECT_EQ(micros("2024-03-01T12:34Z"), base - 56'000'000);
  EXPECT_EQ(micros("2024-03-01"), 1'709'251'200'000'000);
  EXPECT_EQ(micros("1970-01-01T00:00:00Z"), 0);
}

TEST(Timestamp, RefusesWhatIsNotATimestamp) {
  for (std::string_view bad :
       {"", "yesterday", "2024-02-30", "2024-13-01", "2024-03-01T25:00:00Z", "2024-03-01T12:34:56.Z",
        "2024-03-01T12:34:56Zjunk", "2024-03-01T12", "2024-03-01 12:34:56+2", "24-03-01"})
    EXPECT_FALSE(parse_timestamp(bad).has_value()) << bad;
}

}  // namespace
}  // namespace lens::util
