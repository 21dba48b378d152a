// Input files are validated and indexed once (offsets, token counts); output and error
// lines are made on demand from the input line (pread + simdjson DOM), so a download of
// any size costs a few line-sized buffers.
#include "stand_in_batch_files.h"

#include <fcntl.h>
#include <simdjson.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <stdexcept>
#include <unordered_set>

#include "stand_in_common.h"
#include "stand_in_vector.h"

namespace lens::stand_in {
namespace {

constexpr std::size_t k_max_requests = 50'000;
constexpr std::size_t k_max_inputs = 50'000;
constexpr std::uint64_t k_max_bytes = 200ull << 20;
constexpr std::size_t k_max_errors = 20;

// OpenAI's error body on one line (the multi-line error_json would break JSONL).
std::string compact_error(std::string_view message, std::string_view type, std::string_view code) {
  return "{\"error\":{\"message\":\"" + json_escape(message) + "\",\"type\":\"" + json_escape(type) +
         "\",\"param\":null,\"code\":" +
         (code.empty() ? std::string("null") : "\"" + json_escape(code) + "\"") + "}}";
}

bool known_model(std::string_view list, std::string_view model) {
  if (list.empty()) return true;
  while (!list.empty()) {
    const auto comma = list.find(',');
    if (list.substr(0, comma) == model) return true;
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
  }
  return false;
}

std::uint64_t mix(std::uint64_t z) {
  z += 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// The inputs, model, format and dimensions of one request line (views into `parser`).
struct ParsedRequest {
  std::string_view custom_id;
  std::string_view model;
  std::vector<std::string_view> inputs;
  bool base64 = false;
  int dimensions = 0;
};

bool parse_request(simdjson::dom::parser& parser, std::string_view line, int default_dimensions,
                   ParsedRequest& out) {
  simdjson::dom::element doc;
  if (parser.parse(line.data(), line.size()).get(doc)) return false;
  out.inputs.clear();
  if (doc["custom_id"].get_string().get(out.custom_id)) return false;
  simdjson::dom::element body;
  if (doc["body"].get(body)) return false;
  if (body["model"].get_string().get(out.model)) return false;
  simdjson::dom::element input;
  if (body["input"].get(input)) return false;
  if (input.is_string()) {
    out.inputs.push_back(std::string_view(input.get_string()));
  } else {
    simdjson::dom::array arr;
    if (input.get_array().get(arr)) return false;
    for (simdjson::dom::element e : arr) {
      std::string_view s;
      if (e.get_string().get(s)) return false;
      out.inputs.push_back(s);
    }
  }
  std::string_view fmt;
  out.base64 = !body["encoding_format"].get_string().get(fmt) && fmt == "base64";
  std::int64_t dims = 0;
  out.dimensions = body["dimensions"].get_int64().get(dims) ? default_dimensions : static_cast<int>(dims);
  return true;
}

}  // namespace

InputIndex index_input_file(const std::string& path, const ValidationRules& rules) {
  InputIndex idx;
  idx.path = path;
  auto error = [&](std::int64_t line, std::string code, std::string message, std::string param = {}) {
    if (idx.errors.size() < k_max_errors) {
      idx.errors.push_back({std::move(code), std::move(message), std::move(param), line});
    }
  };
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) {
    error(0, "invalid_file", "The input file could not be read.");
    return idx;
  }
  simdjson::dom::parser parser;
  std::unordered_set<std::string> ids;
  char* buf = nullptr;
  std::size_t cap = 0;
  std::uint64_t offset = 0;
  std::int64_t line_no = 0;
  for (ssize_t n; (n = ::getline(&buf, &cap, f)) > 0;) {
    ++line_no;
    const auto at = offset;
    offset += static_cast<std::uint64_t>(n);
    std::string_view line(buf, static_cast<std::size_t>(n));
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r'))
      line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    simdjson::dom::element doc;
    if (parser.parse(line.data(), line.size()).get(doc) || !doc.is_object()) {
      error(line_no, "invalid_json_line", "This line is not parseable as valid JSON.");
      continue;
    }
    std::string_view custom_id, method, url, model;
    simdjson::dom::element body, input;
    if (doc["custom_id"].get_string().get(custom_id) || doc["method"].get_string().get(method) ||
        doc["url"].get_string().get(url) || doc["body"].get(body) || !body.is_object() ||
        body["model"].get_string().get(model) || body["input"].get(input)) {
      error(line_no, "missing_required_parameter",
            "A request line needs custom_id, method, url and a body with model and input.");
      continue;
    }
    if (method != "POST") error(line_no, "invalid_method", "Only POST is supported.", "method");
    if (url != rules.endpoint) {
      error(line_no, "invalid_url", "The url must match the batch's endpoint " + rules.endpoint + ".", "url");
    }
    if (!ids.emplace(custom_id).second) {
      error(line_no, "duplicate_custom_id", "The custom_id " + std::string(custom_id) + " is used twice.",
            "custom_id");
    }
    if (idx.model.empty()) idx.model = std::string(model);
    if (model != idx.model)
      error(line_no, "mixed_models", "All requests of a batch must use one model.", "model");
    if (!known_model(rules.models, model)) {
      error(line_no, "model_not_found", "The model `" + std::string(model) + "` does not exist.", "model");
    }
    std::vector<std::string_view> inputs;
    if (input.is_string()) {
      inputs.push_back(std::string_view(input.get_string()));
    } else if (input.is_array()) {
      bool ok = true;
      for (simdjson::dom::element e : input.get_array()) {
        std::string_view s;
        ok = ok && !e.get_string().get(s);
        inputs.push_back(s);
      }
      if (!ok) inputs.clear();
    }
    if (inputs.empty() || inputs.size() > 2048) {
      error(line_no, "invalid_input", "input must be a string or an array of 1 to 2048 strings.",
            "body.input");
      continue;
    }
    std::string_view fmt = "float";
    if (auto e = body["encoding_format"];
        e.error() == simdjson::SUCCESS && (e.get_string().get(fmt) || (fmt != "float" && fmt != "base64"))) {
      error(line_no, "invalid_encoding_format", "encoding_format must be float or base64.",
            "encoding_format");
    }
    if (auto d = body["dimensions"]; d.error() == simdjson::SUCCESS) {
      std::int64_t dims = 0;
      if (d.get_int64().get(dims) || dims < 1 || dims > 3072) {
        error(line_no, "invalid_dimensions", "dimensions must be an integer from 1 to 3072.", "dimensions");
      }
    }
    InputRequest r;
    r.offset = at;
    r.length = static_cast<std::uint32_t>(line.size());
    r.n_inputs = static_cast<std::uint32_t>(inputs.size());
    for (auto in : inputs) {
      auto t = static_cast<std::uint32_t>(rules.count_tokens(in));
      if (!rules.reject_marker.empty() && in.find(rules.reject_marker) != std::string_view::npos) {
        t = std::max(t, static_cast<std::uint32_t>(rules.max_input_tokens) + 1);
      }
      r.tokens += t;
      r.longest = std::max(r.longest, t);
      if (t > static_cast<std::uint32_t>(rules.max_input_tokens) || in.empty()) r.over_limit = true;
    }
    idx.total_tokens += r.tokens;
    idx.total_inputs += r.n_inputs;
    idx.requests.push_back(r);
  }
  std::free(buf);
  std::fclose(f);
  if (offset > k_max_bytes) error(0, "file_too_large", "The input file is larger than 200 MB.");
  if (idx.requests.empty() && idx.errors.empty()) error(0, "empty_file", "The input file has no requests.");
  if (idx.requests.size() > k_max_requests) {
    error(0, "too_many_requests", "The input file has more than 50,000 requests.");
  }
  if (idx.total_inputs > k_max_inputs) {
    error(0, "too_many_inputs", "The batch has more than 50,000 embedding inputs in total.");
  }
  return idx;
}

struct LineGenerator::Impl {
  std::shared_ptr<const ResultsSpec> spec;
  bool error_file = false;
  std::size_t pos = 0;
  int fd = -1;
  simdjson::dom::parser parser;
  std::string raw;
  std::vector<float> v;
  ParsedRequest req;

  ~Impl() {
    if (fd >= 0) ::close(fd);
  }

  std::string_view read_line(const InputRequest& r) {
    raw.resize(r.length);
    std::size_t got = 0;
    while (got < r.length) {
      const ssize_t n = ::pread(fd, raw.data() + got, r.length - got, static_cast<off_t>(r.offset + got));
      if (n <= 0) throw std::runtime_error("stand-in: cannot read input file " + spec->input->path);
      got += static_cast<std::size_t>(n);
    }
    return raw;
  }

  void emit(std::uint32_t i, Outcome outcome, std::string& out) {
    const InputRequest& r = spec->input->requests[i];
    if (!parse_request(parser, read_line(r), spec->default_dimensions, req)) {
      throw std::runtime_error("stand-in: an indexed input line no longer parses");
    }
    const std::uint64_t h = mix(spec->seed ^ (static_cast<std::uint64_t>(i) * 0x100000001B3ULL));
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
    out += "{\"id\":\"batch_req_";
    out += hex;
    out += "\",\"custom_id\":\"";
    out += json_escape(req.custom_id);
    out += "\",";
    if (outcome == Outcome::expired) {
      out +=
          "\"response\":null,\"error\":{\"code\":\"batch_expired\",\"message\":\"This request could not be "
          "executed before the completion window expired.\"}}\n";
      return;
    }
    out += "\"response\":{\"status_code\":";
    out += outcome == Outcome::ok ? "200" : outcome == Outcome::context_400 ? "400" : "500";
    out += ",\"request_id\":\"req_";
    out += hex;
    out += "\",\"body\":";
    if (outcome == Outcome::context_400) {
      out += compact_error(
          "This model's maximum context length is " + std::to_string(spec->max_input_tokens + 1) +
              " tokens, however you requested " + std::to_string(r.longest) + " tokens (" +
              std::to_string(r.longest) +
              " in your prompt; 0 for the completion). Please reduce your prompt; or completion "
              "length.",
          "invalid_request_error", "");
    } else if (outcome == Outcome::error_500) {
      out += compact_error("The server had an error while processing your request. Sorry about that!",
                           "server_error", "");
    } else {
      const auto d = static_cast<std::size_t>(req.dimensions);
      v.resize(d);
      out += "{\"object\":\"list\",\"data\":[";
      char num[32];
      for (std::size_t k = 0; k < req.inputs.size(); ++k) {
        stand_in_vector(req.inputs[k], v);
        if (k) out += ',';
        out += "{\"object\":\"embedding\",\"index\":";
        out += std::to_string(k);
        out += ",\"embedding\":";
        if (req.base64) {
          out += '"';
          append_base64(out, reinterpret_cast<const unsigned char*>(v.data()), d * 4);
          out += '"';
        } else {
          out += '[';
          for (std::size_t j = 0; j < d; ++j) {
            if (j) out += ',';
            const auto [end, ec] = std::to_chars(num, num + sizeof num, v[j]);
            out.append(num, static_cast<std::size_t>(end - num));
          }
          out += ']';
        }
        out += '}';
      }
      out += "],\"model\":\"";
      out += json_escape(req.model);
      out += "\",\"usage\":{\"prompt_tokens\":";
      out += std::to_string(r.tokens);
      out += ",\"total_tokens\":";
      out += std::to_string(r.tokens);
      out += "}}";
    }
    out += "},\"error\":null}\n";
  }
};

LineGenerator::LineGenerator(std::shared_ptr<const ResultsSpec> spec, bool error_file)
    : impl_(std::make_unique<Impl>()) {
  impl_->spec = std::move(spec);
  impl_->error_file = error_file;
  impl_->fd = ::open(impl_->spec->input->path.c_str(), O_RDONLY | O_CLOEXEC);
}

LineGenerator::~LineGenerator() = default;

bool LineGenerator::next(std::string& out, std::size_t min_bytes) {
  Impl& m = *impl_;
  if (m.fd < 0) throw std::runtime_error("stand-in: cannot open input file " + m.spec->input->path);
  const std::size_t start = out.size();
  const auto& order = m.spec->order;
  while (m.pos < order.size() && out.size() < min_bytes) {
    const std::uint32_t i = order[m.pos++];
    const Outcome o = m.spec->outcomes[i];
    if (o == Outcome::not_run) continue;
    if ((o == Outcome::ok) == m.error_file) continue;
    m.emit(i, o, out);
  }
  return out.size() > start;
}

std::uint64_t generated_size(const std::shared_ptr<const ResultsSpec>& spec, bool error_file) {
  LineGenerator gen(spec, error_file);
  std::string chunk;
  std::uint64_t total = 0;
  while (gen.next(chunk, 1u << 20)) {
    total += chunk.size();
    chunk.clear();
  }
  return total;
}

void for_each_ok_request(const ResultsSpec& spec,
                         const std::function<void(const std::vector<std::string_view>&, std::int64_t)>& f) {
  const int fd = ::open(spec.input->path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("stand-in: cannot open input file " + spec.input->path);
  simdjson::dom::parser parser;
  ParsedRequest req;
  std::string raw;
  for (std::size_t i = 0; i < spec.outcomes.size(); ++i) {
    if (spec.outcomes[i] != Outcome::ok) continue;
    const InputRequest& r = spec.input->requests[i];
    raw.resize(r.length);
    if (::pread(fd, raw.data(), r.length, static_cast<off_t>(r.offset)) != static_cast<ssize_t>(r.length) ||
        !parse_request(parser, raw, spec.default_dimensions, req)) {
      ::close(fd);
      throw std::runtime_error("stand-in: cannot read input file " + spec.input->path);
    }
    f(req.inputs, r.tokens);
  }
  ::close(fd);
}

}  // namespace lens::stand_in
