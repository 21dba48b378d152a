// .env loading: KEY=VALUE lines put into the process environment at start, never
// overriding a variable that is already set (CONTRACT §5).
#pragma once

#include <string>

#include "util/result.h"

namespace lens::cli {

// Loads `path` if it exists (a missing file is not an error). A malformed line fails
// with invalid_argument naming the file and line. Syntax: `KEY=VALUE`, optional
// `export ` prefix, `#` comments, values in '...' (literal) or "..." (\n \t \" \\ escapes).
[[nodiscard]] util::Status load_dotenv(const std::string& path);

}  // namespace lens::cli
