// The stand-in Batch API's HTTP side: /v1/files (multipart upload streamed to disk,
// list, metadata, delete, content streamed as it is generated), /v1/batches (create,
// retrieve, list, cancel), POST /control/batch and GET /stats/billed.
#include <fcntl.h>
#include <httplib.h>
#include <simdjson.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "stand_in_batch.h"
#include "stand_in_batch_state.h"
#include "stand_in_billing.h"
#include "stand_in_common.h"

namespace lens::stand_in {
namespace {

using httplib::Request;
using httplib::Response;

constexpr std::size_t k_chunk = 256u << 10;

void json_reply(Response& res, int status, const std::string& body) {
  res.status = status;
  res.set_content(body, "application/json");
}

void not_found(Response& res, std::string_view what) {
  json_reply(res, 404, error_json("No such " + std::string(what) + ".", "invalid_request_error", "", ""));
}

void bad_request(Response& res, const std::string& message, std::string_view param = {}) {
  json_reply(res, 400, error_json(message, "invalid_request_error", param, ""));
}

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// An `after` cursor over items sorted newest first: the items after it, at most `limit`.
template <typename T>
std::pair<std::vector<const T*>, bool> page(std::vector<const T*> all, const std::string& after,
                                            std::size_t limit) {
  std::size_t from = 0;
  if (!after.empty()) {
    const auto it = std::find_if(all.begin(), all.end(), [&](const T* x) { return x->id == after; });
    from = it == all.end() ? all.size() : static_cast<std::size_t>(it - all.begin()) + 1;
  }
  std::vector<const T*> out;
  for (std::size_t i = from; i < all.size() && out.size() < limit; ++i)
    out.push_back(all[i]);
  return {out, from + out.size() < all.size()};
}

template <typename T, typename Json>
std::string list_json(const std::vector<const T*>& items, bool has_more, Json json) {
  std::string s = "{\"object\":\"list\",\"data\":[";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) s += ",";
    s += json(*items[i]);
  }
  s += "],\"first_id\":" + (items.empty() ? std::string("null") : "\"" + items.front()->id + "\"") +
       ",\"last_id\":" + (items.empty() ? std::string("null") : "\"" + items.back()->id + "\"") +
       ",\"has_more\":" + (has_more ? "true" : "false") + "}";
  return s;
}

std::size_t limit_param(const Request& req, std::size_t fallback, std::size_t most) {
  if (!req.has_param("limit")) return fallback;
  const long v = std::strtol(req.get_param_value("limit").c_str(), nullptr, 10);
  return static_cast<std::size_t>(std::clamp<long>(v, 1, static_cast<long>(most)));
}

}  // namespace

void BatchService::register_routes(httplib::Server& svr) {
  Impl& m = *impl_;
  // Answers 404 (batch API off) or 401 (wrong key); true when the call may go on.
  auto admit = [&m](const Request& req, Response& res) {
    bool enabled = false;
    {
      std::lock_guard lock(m.mu);
      enabled = m.o.enabled;
    }
    if (!enabled) {
      res.status = 404;  // what a server without the route answers: no JSON body
      return false;
    }
    if (!m.host.api_key.empty() && req.get_header_value("Authorization") != "Bearer " + m.host.api_key) {
      json_reply(res, 401,
                 error_json("Incorrect API key provided. You can find your API key at "
                            "https://platform.openai.com/account/api-keys.",
                            "invalid_request_error", "", "invalid_api_key"));
      return false;
    }
    return true;
  };

  svr.Post("/v1/files", [&m, admit](const Request& req, Response& res, const httplib::ContentReader& reader) {
    if (!admit(req, res)) {
      // Read the body anyway: a client still sending it would see a broken connection.
      if (req.is_multipart_form_data()) {
        reader([](const httplib::MultipartFormData&) { return true; },
               [](const char*, std::size_t) { return true; });
      } else {
        reader([](const char*, std::size_t) { return true; });
      }
      return;
    }
    std::string id, path, part, purpose, filename;
    {
      std::lock_guard lock(m.mu);
      id = m.new_id("file-");
      ++m.next_seq;
      const std::string dir = m.uploads_dir();
      if (!dir.empty()) path = dir + "/" + id + ".jsonl";
    }
    if (path.empty()) {
      if (req.is_multipart_form_data()) {
        reader([](const httplib::MultipartFormData&) { return true; },
               [](const char*, std::size_t) { return true; });
      }
      return json_reply(res, 500, error_json("stand-in: no folder for uploads", "server_error", "", ""));
    }
    FILE* out = nullptr;
    std::uint64_t bytes = 0;
    bool ok = true;
    if (req.is_multipart_form_data()) {
      reader(
          [&](const httplib::MultipartFormData& f) {
            part = f.name;
            if (part == "file") {
              filename = f.filename;
              out = std::fopen(path.c_str(), "wb");
              ok = ok && out != nullptr;
            }
            return ok;
          },
          [&](const char* data, std::size_t n) {
            if (part == "purpose") purpose.append(data, n);
            if (part == "file" && out) {
              ok = ok && std::fwrite(data, 1, n, out) == n;
              bytes += n;
            }
            return ok;
          });
    } else {
      reader([](const char*, std::size_t) { return true; });
    }
    if (out) ok = std::fclose(out) == 0 && ok;
    if (!ok || filename.empty()) {
      std::remove(path.c_str());
      return bad_request(res, "A multipart upload with a file part is required.", "file");
    }
    if (purpose != "batch") {
      std::remove(path.c_str());
      return bad_request(res, "This stand-in accepts only purpose 'batch', not '" + purpose + "'.",
                         "purpose");
    }
    std::lock_guard lock(m.mu);
    FileRec f;
    f.id = id;
    f.seq = m.next_seq++;
    f.filename = filename;
    f.purpose = purpose;
    f.bytes = static_cast<std::int64_t>(bytes);
    f.created_at = unix_now();
    f.path = path;
    m.bump("batch_files_uploaded");
    m.bump("batch_upload_bytes", static_cast<std::int64_t>(bytes));
    json_reply(res, 200, m.file_json(f));
    m.files.emplace(id, std::move(f));
  });

  svr.Get("/v1/files", [&m, admit](const Request& req, Response& res) {
    if (!admit(req, res)) return;
    const std::string purpose = req.get_param_value("purpose");
    const bool asc = req.get_param_value("order") == "asc";
    std::lock_guard lock(m.mu);
    m.advance_all(BatchClock::now());
    std::vector<const FileRec*> all;
    for (auto& [id, f] : m.files) {
      if (!f.deleted && (purpose.empty() || f.purpose == purpose)) all.push_back(&f);
    }
    std::sort(all.begin(), all.end(),
              [asc](const FileRec* a, const FileRec* b) { return asc ? a->seq < b->seq : a->seq > b->seq; });
    auto [items, more] = page(all, req.get_param_value("after"), limit_param(req, 10'000, 10'000));
    for (const FileRec* f : items) {
      if (f->bytes < 0)
        const_cast<FileRec*>(f)->bytes = static_cast<std::int64_t>(generated_size(f->results, f->error_file));
    }
    json_reply(res, 200, list_json(items, more, [&](const FileRec& f) { return m.file_json(f); }));
  });

  auto find_file = [&m](const std::string& id) -> FileRec* {
    auto it = m.files.find(id);
    if (it == m.files.end() || it->second.deleted) return nullptr;
    if (it->second.results && m.o.outputs_deleted) return nullptr;
    return &it->second;
  };

  svr.Get(R"(/v1/files/([A-Za-z0-9_-]+))", [&m, admit, find_file](const Request& req, Response& res) {
    if (!admit(req, res)) return;
    std::lock_guard lock(m.mu);
    m.advance_all(BatchClock::now());
    FileRec* f = find_file(req.matches[1]);
    if (!f) return not_found(res, "File object: " + std::string(req.matches[1]));
    if (f->bytes < 0) f->bytes = static_cast<std::int64_t>(generated_size(f->results, f->error_file));
    json_reply(res, 200, m.file_json(*f));
  });

  svr.Delete(R"(/v1/files/([A-Za-z0-9_-]+))", [&m, admit, find_file](const Request& req, Response& res) {
    if (!admit(req, res)) return;
    std::lock_guard lock(m.mu);
    FileRec* f = find_file(req.matches[1]);
    if (!f) return not_found(res, "File object: " + std::string(req.matches[1]));
    // The bytes stay on disk: a batch made from an input file still reads it.
    f->deleted = true;
    m.bump("batch_files_deleted");
    json_reply(res, 200, "{\"id\":\"" + f->id + "\",\"object\":\"file\",\"deleted\":true}");
  });

  svr.Get(R"(/v1/files/([A-Za-z0-9_-]+)/content)", [&m, admit, find_file](const Request& req, Response& res) {
    if (!admit(req, res)) return;
    std::shared_ptr<const ResultsSpec> spec;
    std::string upload_path;
    bool error_file = false, doomed = false, dropped = false;
    std::int64_t reset_after = 0;
    {
      std::lock_guard lock(m.mu);
      m.advance_all(BatchClock::now());
      FileRec* f = find_file(req.matches[1]);
      if (!f) return not_found(res, "File object: " + std::string(req.matches[1]));
      m.bump("batch_downloads_started");
      if (m.fire(m.o.download_503)) {
        m.bump("batch_download_503");
        return json_reply(
            res, 503,
            error_json("The server is overloaded or not ready yet.", "service_unavailable", "", ""));
      }
      doomed = m.fire(m.o.download_reset);
      dropped = !doomed && m.fire(m.o.download_drop);
      reset_after = m.o.download_reset_after_bytes;
      spec = f->results;
      error_file = f->error_file;
      upload_path = f->path;
    }
    struct Stream {
      std::unique_ptr<LineGenerator> gen;
      int fd = -1;
      std::string buf;
      std::int64_t sent = 0;
      ~Stream() {
        if (fd >= 0) ::close(fd);
      }
    };
    auto st = std::make_shared<Stream>();
    if (spec) {
      st->gen = std::make_unique<LineGenerator>(spec, error_file);
    } else {
      st->fd = ::open(upload_path.c_str(), O_RDONLY | O_CLOEXEC);
    }
    const std::string addr = req.remote_addr;
    const int port = req.remote_port;
    res.set_chunked_content_provider("application/jsonl", [&m, st, doomed, dropped, reset_after, addr, port](
                                                              std::size_t, httplib::DataSink& sink) {
      try {
        {
          std::lock_guard lock(m.mu);
          if (m.stopping) return false;
        }
        st->buf.clear();
        bool more = false;
        if (st->gen) {
          more = st->gen->next(st->buf, k_chunk);
        } else if (st->fd >= 0) {
          st->buf.resize(k_chunk);
          const ssize_t n = ::read(st->fd, st->buf.data(), k_chunk);
          st->buf.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
          more = n > 0;
        }
        if ((doomed || dropped) &&
            (!more || st->sent + static_cast<std::int64_t>(st->buf.size()) >= reset_after)) {
          const auto part = static_cast<std::size_t>(
              std::clamp<std::int64_t>(reset_after - st->sent, 0, static_cast<std::int64_t>(st->buf.size())));
          if (part) sink.write(st->buf.data(), part);
          if (doomed) {
            reset_connection(addr, port);
          } else {
            drop_connection(addr, port);
          }
          std::lock_guard lock(m.mu);
          m.bump(doomed ? "batch_download_reset" : "batch_download_drop");
          return false;
        }
        if (!more) {
          sink.done();
          std::lock_guard lock(m.mu);
          m.bump("batch_downloads_completed");
          return true;
        }
        st->sent += static_cast<std::int64_t>(st->buf.size());
        return sink.write(st->buf.data(), st->buf.size());
      } catch (const std::exception& e) {
        std::fprintf(stderr, "stand-in: download failed: %s\n", e.what());
        return false;
      }
    });
  });

  svr.Post("/v1/batches", [&m, admit](const Request& req, Response& res) {
    if (!admit(req, res)) return;
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    std::string_view input_file_id, endpoint, window;
    if (parser.parse(req.body).get(doc) || doc["input_file_id"].get_string().get(input_file_id) ||
        doc["endpoint"].get_string().get(endpoint) || doc["completion_window"].get_string().get(window)) {
      return bad_request(res, "input_file_id, endpoint and completion_window are required.");
    }
    if (endpoint != "/v1/embeddings") {
      return bad_request(res, "This stand-in batches only /v1/embeddings.", "endpoint");
    }
    if (window != "24h") return bad_request(res, "completion_window must be 24h.", "completion_window");
    std::vector<std::pair<std::string, std::string>> metadata;
    if (simdjson::dom::object md; !doc["metadata"].get_object().get(md)) {
      for (auto [k, v] : md) {
        std::string_view value;
        if (v.get_string().get(value) || k.size() > 64 || value.size() > 512) {
          return bad_request(res, "metadata values are strings of at most 512 characters.", "metadata");
        }
        metadata.emplace_back(std::string(k), std::string(value));
      }
      if (metadata.size() > 16) return bad_request(res, "metadata holds at most 16 keys.", "metadata");
    }
    std::shared_ptr<const InputIndex> index;
    std::string path;
    {
      std::lock_guard lock(m.mu);
      auto it = m.files.find(std::string(input_file_id));
      if (it == m.files.end() || it->second.deleted || it->second.purpose != "batch") {
        return bad_request(res, "No such File object with purpose batch: " + std::string(input_file_id),
                           "input_file_id");
      }
      index = it->second.index;
      path = it->second.path;
    }
    if (!index) {
      ValidationRules rules;
      rules.models = m.host.models;
      rules.max_input_tokens = m.host.max_input_tokens;
      rules.reject_marker = m.host.reject_marker;
      rules.count_tokens = m.host.count_tokens;
      index = std::make_shared<const InputIndex>(index_input_file(path, rules));
    }
    std::lock_guard lock(m.mu);
    m.files[std::string(input_file_id)].index = index;
    m.advance_all(BatchClock::now());
    BatchRec b;
    b.id = m.new_id("batch_");
    b.seq = m.next_seq++;
    b.seed = m.rng();
    b.input_file_id = std::string(input_file_id);
    b.metadata = std::move(metadata);
    b.created = BatchClock::now();
    b.created_unix = unix_now();
    b.input = index;
    if (m.o.fail_validation > 0) {
      --m.o.fail_validation;
      b.inject_failure = true;
    }
    m.bump("batch_created");
    json_reply(res, 200, m.batch_json(b));
    const std::string id = b.id;
    m.batches.emplace(id, std::move(b));
  });

  // Polls: the switchable 503s and resets come first.
  auto poll_fault = [&m](const Request& req, Response& res) {
    if (m.fire(m.o.poll_503)) {
      m.bump("batch_poll_503");
      json_reply(res, 503,
                 error_json("The server is overloaded or not ready yet.", "service_unavailable", "", ""));
      return true;
    }
    if (m.fire(m.o.poll_reset)) {
      m.bump("batch_poll_reset");
      reset_connection(req.remote_addr, req.remote_port);
      return true;
    }
    return false;
  };

  svr.Get("/v1/batches", [&m, admit, poll_fault](const Request& req, Response& res) {
    if (!admit(req, res)) return;
    std::lock_guard lock(m.mu);
    if (poll_fault(req, res)) return;
    m.advance_all(BatchClock::now());
    std::vector<const BatchRec*> all;
    for (const auto& [id, b] : m.batches)
      all.push_back(&b);
    std::sort(all.begin(), all.end(), [](const BatchRec* a, const BatchRec* b) { return a->seq > b->seq; });
    auto [items, more] = page(all, req.get_param_value("after"), limit_param(req, 20, 100));
    json_reply(res, 200, list_json(items, more, [&](const BatchRec& b) { return m.batch_json(b); }));
  });

  svr.Get(R"(/v1/batches/([A-Za-z0-9_-]+))", [&m, admit, poll_fault](const Request& req, Response& res) {
    if (!admit(req, res)) return;
    std::lock_guard lock(m.mu);
    if (poll_fault(req, res)) return;
    m.advance_all(BatchClock::now());
    auto it = m.batches.find(req.matches[1]);
    if (it == m.batches.end()) return not_found(res, "batch: " + std::string(req.matches[1]));
    m.bump("batch_polls");
    json_reply(res, 200, m.batch_json(it->second));
  });

  svr.Post(R"(/v1/batches/([A-Za-z0-9_-]+)/cancel)", [&m, admit](const Request& req, Response& res) {
    if (!admit(req, res)) return;
    std::lock_guard lock(m.mu);
    m.advance_all(BatchClock::now());
    auto it = m.batches.find(req.matches[1]);
    if (it == m.batches.end()) return not_found(res, "batch: " + std::string(req.matches[1]));
    BatchRec& b = it->second;
    if (b.status == "validating" || b.status == "in_progress" || b.status == "finalizing") {
      if (b.status == "validating")
        m.start(b, std::chrono::duration<double, std::milli>(BatchClock::now() - b.created).count());
      b.status = "cancelling";
      b.cancelling_ms = std::chrono::duration<double, std::milli>(BatchClock::now() - b.created).count();
      m.bump("batch_cancel_requests");
    }
    json_reply(res, 200, m.batch_json(b));
  });

  svr.Post("/control/batch", [this, &m](const Request& req, Response& res) {
    simdjson::dom::parser parser;
    simdjson::dom::object doc;
    if (parser.parse(req.body).get_object().get(doc)) return bad_request(res, "a JSON object is expected");
    std::string action, batch_id;
    double fraction = 0.5;
    std::string bad;
    {
      std::lock_guard lock(m.mu);
      for (auto [key, value] : doc) {
        std::string text;
        if (value.is_string()) {
          text = std::string(std::string_view(value.get_string()));
        } else {
          text = simdjson::minify(value);
        }
        if (key == "action") {
          action = text;
        } else if (key == "batch_id") {
          batch_id = text;
        } else if (key == "fraction") {
          fraction = std::strtod(text.c_str(), nullptr);
        } else if (!set_batch_option(m.o, key, text)) {
          bad += std::string(bad.empty() ? "" : ", ") + std::string(key);
        }
      }
    }
    if (!bad.empty()) return bad_request(res, "unknown or malformed batch options: " + bad);
    if (action == "complete") {
      complete(batch_id);
    } else if (action == "expire") {
      expire(batch_id, fraction);
    } else if (!action.empty()) {
      return bad_request(res, "action is complete or expire, not " + action);
    }
    json_reply(res, 200, "{\"ok\":true}");
  });

  svr.Get("/stats/billed", [&m](const Request&, Response& res) {
    json_reply(res, 200, m.host.billing ? m.host.billing->json() : std::string("{}"));
  });
}

}  // namespace lens::stand_in
