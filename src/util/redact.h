// Secret redaction: every string that may leave the process (logs, errors, progress,
// JSON, the runs table) goes through redact() so API keys and passwords never leak.
#pragma once

#include <string>
#include <string_view>

namespace lens::util {

// Remember a secret value (API key, DB password); shorter than 4 bytes is ignored
// because masking such short strings would garble ordinary text.
void register_secret(std::string_view secret);

// `text` with every registered secret, every `Bearer <token>`, every password in a
// URL (scheme://user:PASSWORD@host) and every `password=...` of a libpq key=value
// string replaced by "***".
[[nodiscard]] std::string redact(std::string_view text);

}  // namespace lens::util
