// libFuzzer target: the OpenAI embeddings response parser (wire.h ResponseParser) and the
// error-body and header parsers, on arbitrary bytes; checks the parser's promises.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>

#include "provider/openai/wire.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  // The first byte picks the expected input count (1..8) and dimensions (none or 1..8),
  // so small seeds can be valid responses and the checks of count and width run.
  const std::size_t n_inputs = 1 + (data[0] & 7);
  const std::optional<int> dims =
      (data[0] & 0x80) ? std::optional<int>(1 + ((data[0] >> 3) & 7)) : std::nullopt;
  std::string body(reinterpret_cast<const char*>(data + 1), size - 1);
  static lens::provider::openai::ResponseParser parser;  // one per event loop, reused like there
  auto r = parser.parse(body, n_inputs, dims);
  if (r) {
    // A success holds exactly one finite vector per input, all of the width it reports.
    if (r->dimensions <= 0 || r->vectors.size() != n_inputs * static_cast<std::size_t>(r->dimensions))
      std::abort();
    if (dims && r->dimensions != *dims) std::abort();
    for (float x : r->vectors) {
      if (!std::isfinite(x)) std::abort();
    }
  }
  (void)lens::provider::openai::parse_error_body(body);
  lens::provider::openai::ResponseHeaders headers;
  lens::provider::openai::parse_header_line(body, headers);
  (void)lens::provider::openai::parse_duration(body);
  (void)lens::provider::openai::parse_try_again_in(body);
  (void)lens::provider::openai::snippet(body);
  return 0;
}
