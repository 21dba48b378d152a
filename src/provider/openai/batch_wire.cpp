// Batch and Files API objects parsed with simdjson's DOM (they are small: one batch,
// one page of at most 100 batches or files), the create-batch body, and classification.
#include "provider/openai/batch_wire.h"

#include <simdjson.h>

#include "provider/openai/wire.h"

#include "util/redact.h"

namespace lens::provider::openai {
namespace {

namespace dom = simdjson::dom;

util::Error invalid(std::string_view what, std::string_view json) {
  return util::Error{util::ErrorCode::invalid_response,
                     "invalid response: " + std::string(what) + " (body starts: " + snippet(json, 160) + ")"};
}

// A string field; "" when absent or null. False when present with another type.
bool read_string(dom::object o, std::string_view key, std::string& out) {
  dom::element e;
  if (o.at_key(key).get(e)) return true;
  if (e.is_null()) return true;
  std::string_view s;
  if (e.get_string().get(s)) return false;
  out.assign(s);
  return true;
}

// An integer field; nullopt when absent or null. False when present with another type.
bool read_int(dom::object o, std::string_view key, std::optional<std::int64_t>& out) {
  dom::element e;
  if (o.at_key(key).get(e)) return true;
  if (e.is_null()) return true;
  std::int64_t v = 0;
  if (e.get_int64().get(v)) {
    // Some servers send whole numbers as 1.7e9 floats.
    double d = 0;
    if (e.get_double().get(d)) return false;
    v = static_cast<std::int64_t>(d);
  }
  out = v;
  return true;
}

util::Result<FileObject> file_from(dom::object o, std::string_view json) {
  FileObject f;
  std::optional<std::int64_t> bytes, created;
  if (!read_string(o, "id", f.id) || f.id.empty())
    return std::unexpected(invalid("a file without an id", json));
  if (!read_string(o, "filename", f.filename) || !read_string(o, "purpose", f.purpose) ||
      !read_string(o, "status", f.status) || !read_int(o, "bytes", bytes) ||
      !read_int(o, "created_at", created)) {
    return std::unexpected(invalid("a file field of the wrong type", json));
  }
  f.bytes = bytes.value_or(0);
  f.created_at = created.value_or(0);
  return f;
}

util::Result<BatchObject> batch_from(dom::object o, std::string_view json) {
  BatchObject b;
  if (!read_string(o, "id", b.id) || b.id.empty())
    return std::unexpected(invalid("a batch without an id", json));
  if (!read_string(o, "status", b.status_text) || b.status_text.empty()) {
    return std::unexpected(invalid("a batch without a status", json));
  }
  b.status = parse_batch_status(b.status_text);
  std::optional<std::int64_t> created;
  const bool ok =
      read_string(o, "input_file_id", b.input_file_id) && read_string(o, "endpoint", b.endpoint) &&
      read_string(o, "completion_window", b.completion_window) &&
      read_string(o, "output_file_id", b.output_file_id) &&
      read_string(o, "error_file_id", b.error_file_id) && read_int(o, "created_at", created) &&
      read_int(o, "in_progress_at", b.in_progress_at) && read_int(o, "expires_at", b.expires_at) &&
      read_int(o, "finalizing_at", b.finalizing_at) && read_int(o, "completed_at", b.completed_at) &&
      read_int(o, "failed_at", b.failed_at) && read_int(o, "expired_at", b.expired_at) &&
      read_int(o, "cancelling_at", b.cancelling_at) && read_int(o, "cancelled_at", b.cancelled_at);
  if (!ok) return std::unexpected(invalid("a batch field of the wrong type", json));
  b.created_at = created.value_or(0);

  dom::object counts;
  if (!o.at_key("request_counts").get_object().get(counts)) {
    std::optional<std::int64_t> total, completed, failed;
    if (!read_int(counts, "total", total) || !read_int(counts, "completed", completed) ||
        !read_int(counts, "failed", failed)) {
      return std::unexpected(invalid("request_counts of the wrong type", json));
    }
    b.request_counts = {total.value_or(0), completed.value_or(0), failed.value_or(0)};
  }

  dom::object errors;
  if (!o.at_key("errors").get_object().get(errors)) {
    dom::array data;
    if (!errors.at_key("data").get_array().get(data)) {
      for (dom::element item : data) {
        dom::object e;
        if (item.get_object().get(e))
          return std::unexpected(invalid("an errors.data item is not an object", json));
        BatchErrorEntry entry;
        if (!read_string(e, "code", entry.code) || !read_string(e, "message", entry.message) ||
            !read_string(e, "param", entry.param) || !read_int(e, "line", entry.line)) {
          return std::unexpected(invalid("an errors.data field of the wrong type", json));
        }
        b.errors.push_back(std::move(entry));
      }
    }
  }

  dom::object metadata;
  if (!o.at_key("metadata").get_object().get(metadata)) {
    for (auto field : metadata) {
      std::string_view value;
      if (field.value.get_string().get(value)) continue;  // OpenAI's values are strings; skip others
      b.metadata.emplace_back(std::string(field.key), std::string(value));
    }
  }
  return b;
}

// Parses `json` as an object: the root for single objects and pages alike.
template <typename F>
auto with_root(std::string_view json, F&& f) -> decltype(f(dom::object{})) {
  try {
    dom::parser parser;
    dom::element root;
    if (auto err = parser.parse(json.data(), json.size()).get(root)) {
      return std::unexpected(invalid(std::string("not JSON (") + simdjson::error_message(err) + ")", json));
    }
    dom::object o;
    if (root.get_object().get(o)) return std::unexpected(invalid("not a JSON object", json));
    return f(o);
  } catch (const std::exception& e) {
    // simdjson is used without exceptions here, but allocation can still throw.
    return std::unexpected(invalid(std::string("parser failure: ") + e.what(), json));
  }
}

template <typename Page, typename Item, typename From>
util::Result<Page> page_from(dom::object o, std::string_view json, From from) {
  Page page;
  dom::array data;
  if (o.at_key("data").get_array().get(data)) return std::unexpected(invalid("no \"data\" array", json));
  for (dom::element item : data) {
    dom::object obj;
    if (item.get_object().get(obj)) return std::unexpected(invalid("a data item is not an object", json));
    auto parsed = from(obj, json);
    if (!parsed) return std::unexpected(parsed.error());
    page.data.push_back(std::move(*parsed));
  }
  bool has_more = false;
  if (!o.at_key("has_more").get_bool().get(has_more)) page.has_more = has_more;
  // last_id when sent, else the last item's id: both are the cursor of the next page.
  if (!read_string(o, "last_id", page.last_id))
    return std::unexpected(invalid("last_id is not a string", json));
  if (page.last_id.empty() && !page.data.empty()) page.last_id = page.data.back().id;
  return page;
}

}  // namespace

std::string_view to_string(BatchStatus status) {
  switch (status) {
    case BatchStatus::validating:
      return "validating";
    case BatchStatus::failed:
      return "failed";
    case BatchStatus::in_progress:
      return "in_progress";
    case BatchStatus::finalizing:
      return "finalizing";
    case BatchStatus::completed:
      return "completed";
    case BatchStatus::expired:
      return "expired";
    case BatchStatus::cancelling:
      return "cancelling";
    case BatchStatus::cancelled:
      return "cancelled";
    case BatchStatus::unknown:
      return "unknown";
  }
  return "unknown";
}

BatchStatus parse_batch_status(std::string_view text) {
  for (auto s :
       {BatchStatus::validating, BatchStatus::failed, BatchStatus::in_progress, BatchStatus::finalizing,
        BatchStatus::completed, BatchStatus::expired, BatchStatus::cancelling, BatchStatus::cancelled}) {
    if (to_string(s) == text) return s;
  }
  return BatchStatus::unknown;
}

bool is_terminal(BatchStatus status) {
  return status == BatchStatus::failed || status == BatchStatus::completed ||
         status == BatchStatus::expired || status == BatchStatus::cancelled;
}

const std::string* BatchObject::metadata_value(std::string_view key) const {
  for (const auto& [k, v] : metadata) {
    if (k == key) return &v;
  }
  return nullptr;
}

bool BatchObject::token_limit_exceeded() const {
  for (const auto& e : errors) {
    if (e.code == "token_limit_exceeded") return true;
  }
  return false;
}

util::Error BatchObject::failure() const {
  std::string what;
  for (std::size_t i = 0; i < errors.size() && i < 3; ++i) {
    if (i) what += "; ";
    what += errors[i].code.empty() ? "error" : errors[i].code;
    if (errors[i].line) what += " at line " + std::to_string(*errors[i].line);
    if (!errors[i].message.empty()) what += ": " + snippet(errors[i].message, 200);
  }
  if (errors.size() > 3) what += "; and " + std::to_string(errors.size() - 3) + " more";
  if (what.empty()) what = "no reason given";
  if (token_limit_exceeded()) {
    return util::Error{util::ErrorCode::transient,
                       "batch " + id + " was refused for now: the enqueued-token limit was reached (" + what +
                           "); it is submitted again once earlier batches finish"};
  }
  return util::Error{util::ErrorCode::permanent, "batch " + id + " failed validation: " + what};
}

util::Result<FileObject> parse_file_object(std::string_view json) {
  return with_root(json, [&](dom::object o) { return file_from(o, json); });
}

util::Result<FilePage> parse_file_page(std::string_view json) {
  return with_root(json, [&](dom::object o) { return page_from<FilePage, FileObject>(o, json, file_from); });
}

util::Result<BatchObject> parse_batch_object(std::string_view json) {
  return with_root(json, [&](dom::object o) { return batch_from(o, json); });
}

util::Result<BatchPage> parse_batch_page(std::string_view json) {
  return with_root(json,
                   [&](dom::object o) { return page_from<BatchPage, BatchObject>(o, json, batch_from); });
}

util::Result<bool> parse_deleted(std::string_view json) {
  return with_root(json, [&](dom::object o) -> util::Result<bool> {
    bool deleted = false;
    if (o.at_key("deleted").get_bool().get(deleted))
      return std::unexpected(invalid("no \"deleted\" flag", json));
    return deleted;
  });
}

void build_create_batch_body(std::string& out, std::string_view input_file_id,
                             const std::vector<std::pair<std::string, std::string>>& metadata) {
  out.clear();
  out.append("{\"input_file_id\":");
  append_json_string(out, input_file_id);
  out.append(",\"endpoint\":");
  append_json_string(out, k_batch_endpoint);
  out.append(",\"completion_window\":");
  append_json_string(out, k_batch_completion_window);
  if (!metadata.empty()) {
    out.append(",\"metadata\":{");
    for (std::size_t i = 0; i < metadata.size(); ++i) {
      if (i) out.push_back(',');
      append_json_string(out, metadata[i].first);
      out.push_back(':');
      append_json_string(out, metadata[i].second);
    }
    out.push_back('}');
  }
  out.push_back('}');
}

EmbedFailure classify_batch_http(BatchCall call, int status, const ResponseHeaders& headers,
                                 std::string_view body) {
  const ErrorBody error = parse_error_body(body);
  const std::string said = error.message.empty() ? snippet(body) : snippet(error.message);
  const char* what = "";
  switch (call) {
    case BatchCall::batches:
      what = "the Batch API (/batches)";
      break;
    case BatchCall::batch:
      what = "a batch";
      break;
    case BatchCall::files:
      what = "the Files API (/files)";
      break;
    case BatchCall::file:
      what = "a file";
      break;
    case BatchCall::file_content:
      what = "a file's content";
      break;
  }
  using util::ErrorCode;
  EmbedFailure f;
  f.http_status = status;
  const std::string detail = "HTTP " + std::to_string(status) + " from " + what + ": " + said;
  if (status == 404) {
    if (call == BatchCall::batches || call == BatchCall::files) {
      f.error = util::Error{ErrorCode::configuration,
                            "the provider has no Batch API (" + detail +
                                "); check --base-url, or run without --batch-api to embed through "
                                "the synchronous endpoint"};
    } else {
      f.error = util::Error{ErrorCode::not_found, detail};
    }
    return f;
  }
  if (status == 400 || status == 413 || status == 415 || status == 422) {
    f.error = util::Error{ErrorCode::permanent, "the provider refused the request: " + detail};
    return f;
  }
  if (status == 401 || status == 403) {
    f.error = util::Error{ErrorCode::configuration, "the provider refused the API key (HTTP " +
                                                        std::to_string(status) +
                                                        "); check <PROVIDER>_API_KEY. " + detail};
    return f;
  }
  if (status == 429) {
    if (error.code == "insufficient_quota" || error.type == "insufficient_quota") {
      f.error = util::Error{
          ErrorCode::fatal,
          "the provider says the account's quota is exhausted; check the plan and billing. " + detail};
      return f;
    }
    f.error = util::Error{ErrorCode::rate_limited, detail};
    f.retry_after = advised_delay(headers, error.message);
    return f;
  }
  if (status == 408 || status == 409 || status >= 500) {
    f.error = util::Error{ErrorCode::transient, detail};
    f.retry_after = advised_delay(headers, error.message);
    return f;
  }
  if (status >= 300 && status < 400) {
    f.error = util::Error{ErrorCode::fatal, "unexpected redirect; check --base-url. " + detail};
    return f;
  }
  f.error = util::Error{ErrorCode::permanent, "the provider refused the request: " + detail};
  return f;
}

}  // namespace lens::provider::openai
