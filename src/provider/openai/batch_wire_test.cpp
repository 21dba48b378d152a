// Unit tests of the Batch API pieces without I/O: batch and file objects, the create
// body, classification of refused calls, the streamed result reader, the input writer.
#include "provider/openai/batch_wire.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "provider/openai/batch_file_writer.h"
#include "provider/openai/batch_results.h"
#include "provider/openai/wire.h"

namespace lens::provider::openai {
namespace {

using util::ErrorCode;

std::string base64(const std::vector<float>& v) {
  static constexpr char k[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const auto* p = reinterpret_cast<const unsigned char*>(v.data());
  const std::size_t n = v.size() * 4;
  std::string out;
  std::size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    const std::uint32_t x = (std::uint32_t(p[i]) << 16) | (std::uint32_t(p[i + 1]) << 8) | p[i + 2];
    out += {k[x >> 18], k[(x >> 12) & 63], k[(x >> 6) & 63], k[x & 63]};
  }
  if (n - i == 1) {
    const std::uint32_t x = std::uint32_t(p[i]) << 16;
    out += {k[x >> 18], k[(x >> 12) & 63], '=', '='};
  } else if (n - i == 2) {
    const std::uint32_t x = (std::uint32_t(p[i]) << 16) | (std::uint32_t(p[i + 1]) << 8);
    out += {k[x >> 18], k[(x >> 12) & 63], k[(x >> 6) & 63], '='};
  }
  return out;
}

std::vector<float> vec(int seed, int dims) {
  std::vector<float> v(static_cast<std::size_t>(dims));
  for (int i = 0; i < dims; ++i)
    v[static_cast<std::size_t>(i)] = static_cast<float>(seed) + static_cast<float>(i) / 8.0f;
  return v;
}

const char* k_batch = R"({
  "id": "batch_abc123", "object": "batch", "endpoint": "/v1/embeddings",
  "errors": null, "input_file_id": "file-in", "completion_window": "24h",
  "status": "completed", "output_file_id": "file-out", "error_file_id": null,
  "created_at": 1711471533, "in_progress_at": 1711471538, "expires_at": 1711557933,
  "finalizing_at": 1711493133, "completed_at": 1711493163, "failed_at": null,
  "expired_at": null, "cancelling_at": null, "cancelled_at": null,
  "request_counts": {"total": 100, "completed": 95, "failed": 5},
  "metadata": {"lens_batch": "k-42", "other": "x"}
})";

TEST(BatchWire, ParsesABatchWithNullsAndMetadata) {
  auto b = parse_batch_object(k_batch);
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_EQ(b->id, "batch_abc123");
  EXPECT_EQ(b->status, BatchStatus::completed);
  EXPECT_TRUE(is_terminal(b->status));
  EXPECT_EQ(b->input_file_id, "file-in");
  EXPECT_EQ(b->output_file_id, "file-out");
  EXPECT_EQ(b->error_file_id, "");
  EXPECT_EQ(b->created_at, 1711471533);
  EXPECT_EQ(b->completed_at, 1711493163);
  EXPECT_FALSE(b->failed_at);
  EXPECT_EQ(b->request_counts.total, 100);
  EXPECT_EQ(b->request_counts.completed, 95);
  EXPECT_EQ(b->request_counts.failed, 5);
  ASSERT_NE(b->metadata_value("lens_batch"), nullptr);
  EXPECT_EQ(*b->metadata_value("lens_batch"), "k-42");
  EXPECT_EQ(b->metadata_value("missing"), nullptr);
  EXPECT_FALSE(b->token_limit_exceeded());
}

TEST(BatchWire, TokenLimitFailureIsTransientValidationFailureIsPermanent) {
  auto limited = parse_batch_object(R"({"id":"batch_1","status":"failed","created_at":1,
    "errors":{"object":"list","data":[{"code":"token_limit_exceeded","message":"Enqueued token limit reached for text-embedding-3-large in organization org-x. Limit: 3,000,000 enqueued tokens.","param":null,"line":null}]}})");
  ASSERT_TRUE(limited) << limited.error().message;
  EXPECT_EQ(limited->status, BatchStatus::failed);
  EXPECT_TRUE(limited->token_limit_exceeded());
  EXPECT_EQ(limited->failure().code, ErrorCode::transient);

  auto invalid = parse_batch_object(R"({"id":"batch_2","status":"failed","created_at":1,
    "errors":{"object":"list","data":[{"code":"invalid_request","message":"bad url","param":"url","line":7}]}})");
  ASSERT_TRUE(invalid);
  ASSERT_EQ(invalid->errors.size(), 1u);
  EXPECT_EQ(invalid->errors[0].line, 7);
  EXPECT_FALSE(invalid->token_limit_exceeded());
  const util::Error e = invalid->failure();
  EXPECT_EQ(e.code, ErrorCode::permanent);
  EXPECT_NE(e.message.find("invalid_request at line 7"), std::string::npos) << e.message;
}

TEST(BatchWire, StatusesRoundTripAndUnknownIsNotTerminal) {
  for (auto s :
       {BatchStatus::validating, BatchStatus::failed, BatchStatus::in_progress, BatchStatus::finalizing,
        BatchStatus::completed, BatchStatus::expired, BatchStatus::cancelling, BatchStatus::cancelled}) {
    EXPECT_EQ(parse_batch_status(to_string(s)), s);
  }
  EXPECT_EQ(parse_batch_status("paused"), BatchStatus::unknown);
  EXPECT_FALSE(is_terminal(BatchStatus::unknown));
  EXPECT_FALSE(is_terminal(BatchStatus::cancelling));
  EXPECT_TRUE(is_terminal(BatchStatus::expired));
}

TEST(BatchWire, PagesAndFiles) {
  auto page =
      parse_batch_page(std::string(R"({"object":"list","data":[)") + k_batch + R"(],"has_more":true})");
  ASSERT_TRUE(page) << page.error().message;
  EXPECT_TRUE(page->has_more);
  EXPECT_EQ(page->last_id, "batch_abc123");  // no last_id sent: the last item's id

  auto files = parse_file_page(R"({"object":"list","data":[
      {"id":"file-1","object":"file","bytes":120,"created_at":5,"filename":"lens-k1.jsonl","purpose":"batch"},
      {"id":"file-2","object":"file","bytes":7,"created_at":4,"filename":"out.jsonl","purpose":"batch_output"}],
      "first_id":"file-1","last_id":"file-2","has_more":false})");
  ASSERT_TRUE(files) << files.error().message;
  ASSERT_EQ(files->data.size(), 2u);
  EXPECT_EQ(files->data[0].filename, "lens-k1.jsonl");
  EXPECT_EQ(files->data[0].bytes, 120);
  EXPECT_EQ(files->data[1].purpose, "batch_output");
  EXPECT_FALSE(files->has_more);
  EXPECT_EQ(files->last_id, "file-2");

  auto deleted = parse_deleted(R"({"id":"file-1","object":"file","deleted":true})");
  ASSERT_TRUE(deleted);
  EXPECT_TRUE(*deleted);
}

TEST(BatchWire, MalformedAnswersAreInvalidResponse) {
  for (const char* body :
       {"", "{", "[]", R"({"status":"completed"})", R"({"id":"b","status":7})",
        R"({"id":"b","status":"completed","request_counts":{"total":"x"}})", "<html>502</html>"}) {
    auto b = parse_batch_object(body);
    ASSERT_FALSE(b) << body;
    EXPECT_EQ(b.error().code, ErrorCode::invalid_response) << body;
  }
  EXPECT_FALSE(parse_file_page(R"({"object":"list"})"));
  EXPECT_FALSE(parse_file_object(R"({"bytes":1})"));
  EXPECT_FALSE(parse_deleted(R"({"id":"file-1"})"));
}

TEST(BatchWire, CreateBodyIsValidJsonWithEscapedMetadata) {
  std::string body;
  build_create_batch_body(body, "file-\"x", {{"lens_batch", "k\n1"}, {"host", "h\\1"}});
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(body).get(doc), simdjson::SUCCESS) << body;
  EXPECT_EQ(std::string_view(doc["input_file_id"]), "file-\"x");
  EXPECT_EQ(std::string_view(doc["endpoint"]), "/v1/embeddings");
  EXPECT_EQ(std::string_view(doc["completion_window"]), "24h");
  EXPECT_EQ(std::string_view(doc["metadata"]["lens_batch"]), "k\n1");
  EXPECT_EQ(std::string_view(doc["metadata"]["host"]), "h\\1");
  build_create_batch_body(body, "file-1", {});
  EXPECT_EQ(body.find("metadata"), std::string::npos);
}

TEST(BatchWire, ClassifiesRefusedCalls) {
  ResponseHeaders none;
  auto no_api = classify_batch_http(BatchCall::batches, 404, none, "");
  EXPECT_EQ(no_api.error.code, ErrorCode::configuration);
  EXPECT_NE(no_api.error.message.find("--batch-api"), std::string::npos) << no_api.error.message;
  EXPECT_EQ(classify_batch_http(BatchCall::files, 404, none, "").error.code, ErrorCode::configuration);
  EXPECT_EQ(
      classify_batch_http(BatchCall::batch, 404, none, R"({"error":{"message":"No batch"}})").error.code,
      ErrorCode::not_found);
  EXPECT_EQ(classify_batch_http(BatchCall::file_content, 404, none, "").error.code, ErrorCode::not_found);
  EXPECT_EQ(classify_batch_http(BatchCall::batches, 401, none, "").error.code, ErrorCode::configuration);
  EXPECT_EQ(classify_batch_http(BatchCall::file, 403, none, "").error.code, ErrorCode::configuration);
  for (int s : {500, 502, 503, 504, 408}) {
    EXPECT_EQ(classify_batch_http(BatchCall::batch, s, none, "<html>").error.code, ErrorCode::transient) << s;
  }
  ResponseHeaders retry;
  parse_header_line("retry-after-ms: 1500\r\n", retry);
  auto limited = classify_batch_http(BatchCall::batches, 429, retry, R"({"error":{"message":"slow down"}})");
  EXPECT_EQ(limited.error.code, ErrorCode::rate_limited);
  EXPECT_EQ(limited.retry_after, std::chrono::milliseconds(1500));
  EXPECT_EQ(classify_batch_http(BatchCall::batches, 429, none, R"({"error":{"code":"insufficient_quota"}})")
                .error.code,
            ErrorCode::fatal);
  EXPECT_EQ(
      classify_batch_http(BatchCall::files, 400, none, R"({"error":{"message":"bad purpose"}})").error.code,
      ErrorCode::permanent);
}

// ---- the result reader ----

struct Collected {
  std::map<std::string, std::vector<float>> vectors;
  std::map<std::string, EmbedFailure> failures;
  std::map<std::string, std::string> codes;
};

BatchResultReader make_reader(Collected& c, std::map<std::string, RequestShape> shapes, int stop_after = -1) {
  auto shape = [shapes = std::move(shapes)](std::string_view id) -> std::optional<RequestShape> {
    auto it = shapes.find(std::string(id));
    if (it == shapes.end()) return std::nullopt;
    return it->second;
  };
  auto on_line = [&c, stop_after, n = 0](const BatchResultLine& l) mutable {
    const std::string id(l.custom_id);
    if (l.success) {
      c.vectors[id] = l.success->vectors;
    } else {
      c.failures[id] = *l.failure;
    }
    c.codes[id] = std::string(l.error_code);
    return ++n != stop_after;
  };
  return BatchResultReader(shape, on_line, "test-model");
}

std::string ok_line(const std::string& id, const std::vector<std::vector<float>>& vs, bool as_base64) {
  std::string data;
  // Data items in reverse order: matched by index, not position.
  for (std::size_t k = vs.size(); k-- > 0;) {
    if (!data.empty()) data += ",";
    std::string emb;
    if (as_base64) {
      emb = "\"" + base64(vs[k]) + "\"";
    } else {
      emb = "[";
      for (std::size_t j = 0; j < vs[k].size(); ++j) {
        if (j) emb += ",";
        emb += std::to_string(vs[k][j]);
      }
      emb += "]";
    }
    data += R"({"object":"embedding","index":)" + std::to_string(k) + R"(,"embedding":)" + emb + "}";
  }
  return R"({"id":"batch_req_)" + id + R"(","custom_id":")" + id +
         R"(","response":{"status_code":200,"request_id":"req_1","body":{"object":"list","data":[)" + data +
         R"(],"model":"m","usage":{"prompt_tokens":3,"total_tokens":3}}},"error":null})" + "\n";
}

TEST(BatchResults, DeliversEveryKindOfLineFedInRandomPieces) {
  const int dims = 5;
  std::string file;
  file += ok_line("a", {vec(1, dims), vec(2, dims)}, true);
  file += ok_line("b", {vec(3, dims)}, false);
  file +=
      R"({"id":"r3","custom_id":"c","response":{"status_code":400,"request_id":"req_3","body":{"error":{"message":"This model's maximum context length is 8192 tokens, however you requested 9000 tokens.","type":"invalid_request_error","param":null,"code":null}}},"error":null})"
      "\n";
  file +=
      R"({"id":"r4","custom_id":"d","response":{"status_code":500,"request_id":"req_4","body":{"error":{"message":"The server had an error","type":"server_error"}}},"error":null})"
      "\n\n";
  file +=
      R"({"id":"r5","custom_id":"e","response":null,"error":{"code":"batch_expired","message":"This request could not be executed before the completion window expired."}})"
      "\n";
  file += ok_line("stranger", {vec(4, dims)}, true);
  file += ok_line("f", {vec(5, dims + 1)}, true);  // wrong dimensions
  file += ok_line("g", {vec(6, dims)}, true);      // no trailing newline: finish() delivers it
  file.pop_back();
  std::map<std::string, RequestShape> shapes = {{"a", {2, dims}},        {"b", {1, dims}}, {"c", {1, dims}},
                                                {"d", {1, dims}},        {"e", {1, dims}}, {"f", {1, dims}},
                                                {"g", {1, std::nullopt}}};
  std::mt19937 rng(7);
  for (int round = 0; round < 20; ++round) {
    Collected c;
    BatchResultReader reader = make_reader(c, shapes);
    std::size_t at = 0;
    while (at < file.size()) {
      const std::size_t n = std::min<std::size_t>(file.size() - at, 1 + rng() % (round < 10 ? 3 : 400));
      ASSERT_TRUE(reader.feed(std::string_view(file).substr(at, n)));
      at += n;
    }
    ASSERT_TRUE(reader.finish());
    EXPECT_EQ(reader.stats().lines, 8u);
    EXPECT_EQ(reader.stats().succeeded, 3u);
    EXPECT_EQ(reader.stats().bytes, file.size());
    std::vector<float> ab = vec(1, dims);
    const auto a2 = vec(2, dims);
    ab.insert(ab.end(), a2.begin(), a2.end());
    EXPECT_EQ(c.vectors["a"], ab);
    EXPECT_EQ(c.vectors["b"], vec(3, dims));
    EXPECT_EQ(c.vectors["g"], vec(6, dims));
    EXPECT_EQ(c.failures["c"].error.code, ErrorCode::bad_input);
    EXPECT_TRUE(c.failures["c"].context_length);
    EXPECT_EQ(c.failures["c"].http_status, 400);
    EXPECT_EQ(c.failures["d"].error.code, ErrorCode::transient);
    EXPECT_EQ(c.failures["e"].error.code, ErrorCode::transient);
    EXPECT_EQ(c.codes["e"], "batch_expired");
    EXPECT_EQ(c.failures["stranger"].error.code, ErrorCode::invalid_response);
    EXPECT_EQ(c.failures["f"].error.code, ErrorCode::invalid_response);
  }
}

TEST(BatchResults, MalformedLineStopsTheReadingAfterTheGoodOnes) {
  Collected c;
  BatchResultReader reader = make_reader(c, {{"a", {1, 3}}});
  const std::string good = ok_line("a", {vec(1, 3)}, true);
  ASSERT_TRUE(reader.feed(good));
  auto bad =
      reader.feed("{\"custom_id\": \"b\", \"response\": {\"status_code\": 200, \"body\": {\"data\": [<!--\n");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::invalid_response);
  EXPECT_EQ(reader.stats().bytes, good.size());
  EXPECT_EQ(c.vectors.size(), 1u);

  Collected c2;
  BatchResultReader no_id = make_reader(c2, {});
  auto missing = no_id.feed(R"({"id":"x","response":{"status_code":200,"body":{}}})"
                            "\n");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::invalid_response);
}

TEST(BatchResults, AReaderThatSaysStopCancels) {
  Collected c;
  BatchResultReader reader = make_reader(c, {{"a", {1, 3}}, {"b", {1, 3}}}, /*stop_after=*/1);
  auto st = reader.feed(ok_line("a", {vec(1, 3)}, true) + ok_line("b", {vec(2, 3)}, true));
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::cancelled);
  EXPECT_EQ(c.vectors.size(), 1u);
}

// ---- the input file writer ----

std::string temp_path(const std::string& name) {
  const char* dir = std::getenv("TMPDIR");
  return std::string(dir && *dir ? dir : "/tmp") + "/lens_batch_wire_" + std::to_string(::getpid()) + "_" +
         name;
}

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);)
    lines.push_back(l);
  return lines;
}

TEST(BatchFileWriter, WritesRequestLinesTheBatchApiAccepts) {
  const std::string path = temp_path("w1.jsonl");
  BatchFileOptions o;
  o.model = "text-embedding-3-large";
  o.dimensions = 256;
  auto w = BatchFileWriter::create(path, o);
  ASSERT_TRUE(w) << w.error().message;
  const std::vector<std::string_view> first = {"hello", "w\xC3\xB6rld \"q\"\n"};
  const std::vector<std::string_view> second = {"bad \xFF utf8"};
  ASSERT_EQ((*w)->append("k1-0", first), true);
  ASSERT_EQ((*w)->append("k1-1", second), true);
  auto dup = (*w)->append("k1-0", second);
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().code, ErrorCode::invalid_argument);
  EXPECT_EQ((*w)->requests(), 2u);
  EXPECT_EQ((*w)->inputs(), 3u);
  ASSERT_TRUE((*w)->finish());
  EXPECT_EQ((*w)->bytes(), batch_line_bytes("k1-0", first, o) + batch_line_bytes("k1-1", second, o));

  const auto lines = read_lines(path);
  ASSERT_EQ(lines.size(), 2u);
  std::uint64_t total = 0;
  for (const auto& l : lines)
    total += l.size() + 1;
  EXPECT_EQ(total, (*w)->bytes());
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(lines[0]).get(doc), simdjson::SUCCESS) << lines[0];
  EXPECT_EQ(std::string_view(doc["custom_id"]), "k1-0");
  EXPECT_EQ(std::string_view(doc["method"]), "POST");
  EXPECT_EQ(std::string_view(doc["url"]), "/v1/embeddings");
  EXPECT_EQ(std::string_view(doc["body"]["model"]), "text-embedding-3-large");
  EXPECT_EQ(std::string_view(doc["body"]["encoding_format"]), "base64");
  EXPECT_EQ(std::int64_t(doc["body"]["dimensions"]), 256);
  EXPECT_EQ(std::string_view(doc["body"]["input"].at(1)), "w\xC3\xB6rld \"q\"\n");
  ASSERT_EQ(parser.parse(lines[1]).get(doc), simdjson::SUCCESS) << lines[1];
  EXPECT_EQ(std::string_view(doc["body"]["input"].at(0)), "bad \xEF\xBF\xBD utf8");  // repaired
  std::remove(path.c_str());
}

TEST(BatchFileWriter, SaysWhenTheNextRequestDoesNotFit) {
  const std::string path = temp_path("w2.jsonl");
  BatchFileOptions o;
  o.model = "m";
  o.sync_on_finish = false;
  o.limits = {3, 5, 1 << 20};
  auto w = BatchFileWriter::create(path, o);
  ASSERT_TRUE(w);
  const std::vector<std::string_view> two = {"a", "b"};
  ASSERT_EQ((*w)->append("r0", two), true);
  ASSERT_EQ((*w)->append("r1", two), true);
  EXPECT_EQ((*w)->append("r2", two), false);  // 6 inputs > 5
  const std::vector<std::string_view> one = {"c"};
  ASSERT_EQ((*w)->append("r2", one), true);
  EXPECT_EQ((*w)->append("r3", one), false);  // 4 requests > 3
  ASSERT_TRUE((*w)->finish());
  EXPECT_EQ(read_lines(path).size(), 3u);

  o.limits = {100, 100, 300};
  auto small = BatchFileWriter::create(path, o);
  ASSERT_TRUE(small);
  const std::string long_text(150, 'x');
  const std::vector<std::string_view> big = {long_text};
  ASSERT_EQ((*small)->append("x0", big), true);
  EXPECT_EQ((*small)->append("x1", big), false);  // bytes
  const std::string huge(400, 'y');
  const std::vector<std::string_view> never = {huge};
  auto alone = (*small)->append("x2", never);
  ASSERT_FALSE(alone);
  EXPECT_EQ(alone.error().code, ErrorCode::invalid_argument);
  ASSERT_TRUE((*small)->finish());
  EXPECT_EQ((*small)->bytes(), read_lines(path)[0].size() + 1);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace lens::provider::openai
