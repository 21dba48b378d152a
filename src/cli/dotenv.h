// .env loading: KEY=VALUE lines put into the process environment at start, never
// overriding a variable that is already set (docs/CONTRACT.md, configuration). The loader
// remembers the line each variable it set came from, so `lens-embed config` can say so.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "util/result.h"

namespace lens::cli {

// The variables one .env file put into the environment and the line of each.
struct DotenvOrigins {
  std::string path;                    // as given to load_dotenv
  std::map<std::string, int> line_of;  // only the variables it set, not those already there

  // "PATH:LINE" when this file set `name`; nullopt when the variable came from elsewhere.
  [[nodiscard]] std::optional<std::string> source_of(const std::string& name) const;
};

// Loads `path` if it exists (a missing file is not an error and sets nothing). Syntax:
// `KEY=VALUE`, optional `export ` prefix, `#` comments, values in '...' (literal) or "..."
// (\n \t \r \" \\ escapes). A variable already in the environment (even empty) keeps its
// value; when a key repeats, its first line wins.
// On success: what it set, with lines. On failure: invalid_argument naming the file and
// line; the lines before the bad one have been applied. Not thread-safe (setenv): call it
// at start, before any thread exists.
[[nodiscard]] util::Result<DotenvOrigins> load_dotenv(const std::string& path);

}  // namespace lens::cli
