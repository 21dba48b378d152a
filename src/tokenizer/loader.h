// Private to lens_tokenizer and its tests: loading without the per-process cache, so tests
// can exercise not_found and the sha256 check whatever an earlier load left cached.
#pragma once

#include <memory>
#include <string>

#include "tokenizer/tokenizer.h"
#include "util/result.h"

namespace lens::tokenizer::detail {

// Loads `encoding` from exactly the file `path`. On failure: not_found (cannot open),
// permanent (sha256 mismatch, corrupt file).
[[nodiscard]] util::Result<std::shared_ptr<const Tokenizer>> load_file(Encoding encoding,
                                                                       const std::string& path);
// The uncached search that Tokenizer::load does (see the order in tokenizer.h).
[[nodiscard]] util::Result<std::shared_ptr<const Tokenizer>> load_uncached(Encoding encoding);

}  // namespace lens::tokenizer::detail
