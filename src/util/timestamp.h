// Reading the timestamps databases hand back as text (SQLite's ISO 8601 strings,
// PostgreSQL's timestamptz output) into a point in time, for ages such as "the oldest
// pending message changed 40 s ago".
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace lens::util {

// "YYYY-MM-DD", optionally followed by 'T' or ' ' and "HH:MM[:SS[.fraction]]", optionally
// followed by "Z" or an offset "+HH", "+HHMM" or "+HH:MM" (also '-'), with an optional
// space before the zone. No zone means UTC (lens-embed's own SQLite default writes UTC).
// On success: the instant, to the microsecond. nullopt for anything else (a field out of
// range, trailing text, an empty string).
[[nodiscard]] std::optional<std::chrono::system_clock::time_point> parse_timestamp(std::string_view text);

}  // namespace lens::util
