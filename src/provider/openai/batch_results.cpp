// The streamed reader of Batch API result files: simdjson On-Demand walks each line
// once to find its fields; the embeddings body goes to the synchronous ResponseParser.
#include "provider/openai/batch_results.h"

#include <simdjson.h>

#include <cstring>

#include "provider/openai/wire.h"

namespace lens::provider::openai {
namespace {

namespace od = simdjson::ondemand;

util::Error bad_line(std::uint64_t line_no, std::string_view what, std::string_view line) {
  return util::Error{util::ErrorCode::invalid_response,
                     "invalid result file: line " + std::to_string(line_no) + " " + std::string(what) +
                         " (starts: " + snippet(line, 120) + ")"};
}

// Line-level errors that mean "this request did not run": submitting it again can work.
bool transient_line_error(std::string_view code) {
  return code == "batch_expired" || code == "batch_cancelled" || code == "server_error" ||
         code == "timeout" || code == "rate_limit_exceeded" || code == "internal_error";
}

bool blank(std::string_view s) {
  for (char c : s) {
    if (c != ' ' && c != '\t' && c != '\r') return false;
  }
  return true;
}

}  // namespace

struct BatchResultReader::Impl {
  ShapeFn shape;
  LineFn on_line;
  std::string model;
  std::size_t max_line_bytes;

  od::parser parser;
  ResponseParser bodies;
  std::string line;  // the line being assembled (capacity kept, padded for simdjson)
  std::string body;  // a copy of the response body, padded for ResponseParser
  std::string error_message;
  EmbedSuccess success;  // the one buffer every line's vectors are decoded into
  BatchReadStats stats;
  std::uint64_t line_no = 0;  // lines seen, blank ones included (for messages)
  bool spent = false;

  util::Status process(std::uint64_t consumed_through);
};

BatchResultReader::BatchResultReader(ShapeFn shape, LineFn on_line, std::string model,
                                     std::size_t max_line_bytes)
    : impl_(std::make_unique<Impl>()) {
  impl_->shape = std::move(shape);
  impl_->on_line = std::move(on_line);
  impl_->model = std::move(model);
  impl_->max_line_bytes = max_line_bytes;
}

BatchResultReader::~BatchResultReader() = default;

const BatchReadStats& BatchResultReader::stats() const {
  return impl_->stats;
}

util::Status BatchResultReader::feed(std::string_view bytes) {
  Impl& m = *impl_;
  if (m.spent) return util::fail(util::ErrorCode::internal, "BatchResultReader used after a failure");
  std::uint64_t consumed = m.stats.bytes + m.line.size();
  while (!bytes.empty()) {
    const void* nl = std::memchr(bytes.data(), '\n', bytes.size());
    const std::size_t take =
        nl ? static_cast<std::size_t>(static_cast<const char*>(nl) - bytes.data()) : bytes.size();
    if (m.line.size() + take > m.max_line_bytes) {
      m.spent = true;
      return util::fail(util::ErrorCode::invalid_response,
                        "invalid result file: line " + std::to_string(m.line_no + 1) + " is longer than " +
                            std::to_string(m.max_line_bytes) + " bytes");
    }
    m.line.append(bytes.data(), take);
    consumed += take;
    if (!nl) break;
    bytes.remove_prefix(take + 1);
    consumed += 1;
    if (auto st = m.process(consumed); !st) {
      m.spent = true;
      return st;
    }
  }
  return {};
}

util::Status BatchResultReader::finish() {
  Impl& m = *impl_;
  if (m.spent) return util::fail(util::ErrorCode::internal, "BatchResultReader used after a failure");
  if (m.line.empty()) return {};
  auto st = m.process(m.stats.bytes + m.line.size());
  if (!st) m.spent = true;
  return st;
}

util::Status BatchResultReader::Impl::process(std::uint64_t consumed_through) try {
  ++line_no;
  if (blank(line)) {
    line.clear();
    stats.bytes = consumed_through;
    return {};
  }
  if (line.capacity() < line.size() + simdjson::SIMDJSON_PADDING) {
    line.reserve(line.size() + simdjson::SIMDJSON_PADDING);
  }
  od::document doc;
  if (auto err = parser.iterate(line.data(), line.size(), line.capacity()).get(doc)) {
    return std::unexpected(
        bad_line(line_no, std::string("is not JSON: ") + simdjson::error_message(err), line));
  }
  od::object root;
  if (doc.get_object().get(root)) return std::unexpected(bad_line(line_no, "is not a JSON object", line));

  BatchResultLine out;
  bool have_custom_id = false;
  bool have_response = false;
  std::string_view body_json;
  std::string_view line_error_message;
  for (auto field_r : root) {
    od::field field;
    if (auto err = std::move(field_r).get(field)) {
      return std::unexpected(bad_line(line_no, simdjson::error_message(err), line));
    }
    const od::raw_json_string key = field.key();
    od::value value = field.value();
    bool is_null = false;
    if (value.is_null().get(is_null))
      return std::unexpected(bad_line(line_no, "has a malformed value", line));
    if (is_null) continue;
    if (key == "custom_id") {
      if (value.get_string().get(out.custom_id)) {
        return std::unexpected(bad_line(line_no, "has a custom_id that is not a string", line));
      }
      have_custom_id = true;
    } else if (key == "id") {
      if (value.get_string().get(out.line_id)) out.line_id = {};
    } else if (key == "response") {
      od::object response;
      if (value.get_object().get(response)) {
        return std::unexpected(bad_line(line_no, "has a response that is not an object", line));
      }
      have_response = true;
      for (auto r_r : response) {
        od::field r;
        if (auto err = std::move(r_r).get(r)) {
          return std::unexpected(bad_line(line_no, simdjson::error_message(err), line));
        }
        const od::raw_json_string k = r.key();
        if (k == "status_code") {
          std::int64_t code = 0;
          if (r.value().get_int64().get(code)) {
            return std::unexpected(bad_line(line_no, "has a status_code that is not an integer", line));
          }
          out.status_code = static_cast<int>(code);
        } else if (k == "request_id") {
          if (r.value().get_string().get(out.request_id)) out.request_id = {};
        } else if (k == "body") {
          // Not an object (a string an odd server sends with an error): left empty; a
          // success without a body object is reported as an invalid_response below.
          od::object b;
          if (r.value().get_object().get(b) || b.raw_json().get(body_json)) body_json = {};
        }
      }
    } else if (key == "error") {
      od::object e;
      if (value.get_object().get(e)) continue;
      for (auto e_r : e) {
        od::field ef;
        if (std::move(e_r).get(ef)) break;
        const od::raw_json_string k = ef.key();
        if (k == "code") {
          if (ef.value().get_string().get(out.error_code)) out.error_code = {};
        } else if (k == "message") {
          if (ef.value().get_string().get(line_error_message)) line_error_message = {};
        }
      }
    }
  }
  if (!have_custom_id) return std::unexpected(bad_line(line_no, "has no custom_id", line));

  auto fail_line = [&](util::ErrorCode code, std::string message, int status) {
    EmbedFailure f;
    f.error = util::Error{code, std::move(message)};
    f.http_status = status;
    out.failure = std::move(f);
  };
  const std::optional<RequestShape> shape_of = shape(out.custom_id);
  if (!have_response) {
    const std::string what =
        "request " + std::string(out.custom_id) + " did not run: " +
        (out.error_code.empty() ? std::string("no response and no error code")
                                : std::string(out.error_code)) +
        (line_error_message.empty() ? "" : " (" + snippet(line_error_message, 200) + ")");
    fail_line(transient_line_error(out.error_code) ? util::ErrorCode::transient : util::ErrorCode::permanent,
              what, 0);
  } else if (out.status_code < 200 || out.status_code >= 300) {
    body.assign(body_json);
    const ErrorBody error = parse_error_body(body);
    error_message = error.code;  // keeps the code alive for out.error_code
    if (out.error_code.empty()) out.error_code = error_message;
    out.failure = classify_http(out.status_code, ResponseHeaders{}, error, body, model);
  } else if (!shape_of) {
    fail_line(
        util::ErrorCode::invalid_response,
        "result for custom_id " + snippet(out.custom_id, 80) + ", which is not one of this batch's requests",
        out.status_code);
  } else if (body_json.empty()) {
    fail_line(util::ErrorCode::invalid_response,
              "result for " + std::string(out.custom_id) + " has status " + std::to_string(out.status_code) +
                  " but no body",
              out.status_code);
  } else {
    body.assign(body_json);
    if (auto parsed = bodies.parse_into(body, shape_of->n_inputs, shape_of->dimensions, success); parsed) {
      out.success = &success;
    } else {
      fail_line(
          util::ErrorCode::invalid_response,
          parsed.error().message + " (result for " + std::string(out.custom_id) + ", model " + model + ")",
          out.status_code);
    }
  }

  ++stats.lines;
  if (out.success) {
    ++stats.succeeded;
  } else {
    ++stats.failed;
  }
  const bool go_on = on_line(out);
  line.clear();
  stats.bytes = consumed_through;
  if (!go_on)
    return util::fail(util::ErrorCode::cancelled, "reading the result file was stopped by its reader");
  return {};
} catch (const std::exception& e) {
  // simdjson is used without exceptions here, but allocation can still throw.
  return std::unexpected(bad_line(line_no, std::string("could not be parsed: ") + e.what(), line));
}

}  // namespace lens::provider::openai
