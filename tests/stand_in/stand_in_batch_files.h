// The stand-in Batch API's file work, internal to the stand-in: validating and indexing
// an uploaded input file, and generating output and error lines from it on demand.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace lens::stand_in {

struct ValidationError {
  std::string code;
  std::string message;
  std::string param;
  std::int64_t line = 0;  // 1-based; 0: about the whole file
};

// One request line of an input file.
struct InputRequest {
  std::uint64_t offset = 0;  // of the line in the file
  std::uint32_t length = 0;  // without the newline
  std::uint32_t n_inputs = 0;
  std::uint32_t tokens = 0;   // over all its inputs
  std::uint32_t longest = 0;  // tokens of its longest input
  bool over_limit = false;    // an input over the context length (or marked): a 400 when processed
};

struct InputIndex {
  std::string path;
  std::string model;
  std::vector<InputRequest> requests;
  std::uint64_t total_tokens = 0;
  std::uint64_t total_inputs = 0;
  std::vector<ValidationError> errors;  // empty: the file is valid
};

struct ValidationRules {
  std::string endpoint = "/v1/embeddings";
  std::string models;  // comma-separated; "": any
  int max_input_tokens = 8191;
  std::string reject_marker;
  std::function<std::size_t(std::string_view)> count_tokens;
};

// Reads the whole file once, line by line. Never fails: what is wrong goes to `errors`
// (at most 20 of them), as OpenAI reports a rejected file.
InputIndex index_input_file(const std::string& path, const ValidationRules& rules);

// How a request of a finished batch turned out.
enum class Outcome : std::uint8_t { ok, context_400, error_500, expired, not_run };

// Everything needed to write a finished batch's output or error file; immutable once made.
struct ResultsSpec {
  std::shared_ptr<const InputIndex> input;
  std::vector<Outcome> outcomes;     // per request, in file order
  std::vector<std::uint32_t> order;  // the order lines are written in (a permutation)
  std::string batch_id;
  int max_input_tokens = 8191;
  int default_dimensions = 1536;
  std::uint64_t seed = 0;
};

// Writes the lines of one file (output: the ok requests; error: the others, not_run
// excepted) in spec.order, a few at a time. Not thread-safe; one per stream.
class LineGenerator {
 public:
  LineGenerator(std::shared_ptr<const ResultsSpec> spec, bool error_file);
  ~LineGenerator();
  LineGenerator(const LineGenerator&) = delete;
  LineGenerator& operator=(const LineGenerator&) = delete;

  // Appends whole lines to `out` until it holds at least `min_bytes` or the file ends.
  // False once the file has ended and nothing was appended. Throws std::runtime_error
  // when the input file cannot be read.
  bool next(std::string& out, std::size_t min_bytes);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The size a file will have (generated and counted, nothing kept).
std::uint64_t generated_size(const std::shared_ptr<const ResultsSpec>& spec, bool error_file);

// Calls `f(inputs, tokens)` for each ok request of `spec` (for billing).
void for_each_ok_request(const ResultsSpec& spec,
                         const std::function<void(const std::vector<std::string_view>&, std::int64_t)>& f);

}  // namespace lens::stand_in
